"""Pure parts of the web service: catalogue lookup, file paths, login limit, message routing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from obsy.messages import AllskyFrame, AllskyStreak, Event, McpState
from obsy.topics import Topics
from obsy_web import catalogue
from obsy_web.auth.ratelimit import LoginLimiter
from obsy_web.ingest.records import Incoming, InvalidMessageError, Router
from obsy_web.live import LatestStates, decode


@pytest.mark.parametrize(
    ("name", "catalogue_id", "ra", "dec"),
    [
        ("M 31", "NGC0224", 10.685, 41.269),
        ("m31", "NGC0224", 10.685, 41.269),
        ("NGC 7000", "NGC7000", 314.821, 44.529),
        ("IC 434", "IC0434", 85.254, -2.454),
        ("Andromeda Galaxy", "NGC0224", 10.685, 41.269),
        ("Vega", "star:Vega", 279.235, 38.784),
        ("betelgeuse", "star:Betelgeuse", 88.793, 7.407),
    ],
)
def test_catalogue_finds_objects_offline(name, catalogue_id, ra, dec):
    entry = catalogue.lookup(name)
    assert entry is not None
    assert entry.catalogue_id == catalogue_id
    assert entry.ra_deg == pytest.approx(ra, abs=0.01)
    assert entry.dec_deg == pytest.approx(dec, abs=0.01)


@pytest.mark.parametrize("name", ["", "   ", "NGC 99999", "Nowhere Nebula", 'x" OR 1=1 --', "M 31%", "a" * 200])
def test_catalogue_says_none_for_unknown_or_odd_names(name):
    assert catalogue.lookup(name) is None


def test_data_files_stay_inside_the_data_directory(tmp_path):
    # The API module brings FastAPI and Starlette: imported by this test, not at collection.
    from fastapi import HTTPException

    from obsy_web.api.files import resolve_data_file

    data = tmp_path / "data"
    (data / "allsky").mkdir(parents=True)
    (data / "allsky" / "a.jpg").write_bytes(b"jpeg")
    (data / "obsy.sqlite3").write_bytes(b"db")
    (data / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "outside.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "outside.jpg", data / "allsky" / "link.jpg")
    assert resolve_data_file(data, "allsky/a.jpg") == (data / "allsky" / "a.jpg").resolve()
    for bad in (
        "obsy.sqlite3",
        ".hidden.jpg",
        "../outside.jpg",
        "/etc/passwd",
        "allsky/link.jpg",
        "allsky\\..\\..\\x.jpg",
        "",
        "allsky/missing.jpg",
    ):
        with pytest.raises(HTTPException) as refused:
            resolve_data_file(data, bad)
        assert refused.value.status_code == 404, bad


def test_login_limit_blocks_a_username_before_an_address():
    limiter = LoginLimiter(attempts=2, window_s=60, address_factor=3)
    keys = ("ip:10.0.0.1", "user:alice")
    assert limiter.retry_after(*keys) == 0
    limiter.failed(*keys)
    limiter.failed(*keys)
    assert limiter.retry_after(*keys) > 0  # alice is blocked
    assert limiter.retry_after("ip:10.0.0.1", "user:bob") == 0  # the household is not, yet
    limiter.succeeded("user:alice")
    assert limiter.retry_after(*keys) == 0
    for _ in range(4):
        limiter.failed("ip:10.0.0.1", "user:bob")
    assert limiter.retry_after("ip:10.0.0.1", "user:carol") > 0  # 6 failures from one address


def message(topic: str, payload: bytes) -> Incoming:
    return Incoming(topic, payload, datetime(2026, 11, 21, tzinfo=UTC))


def test_router_maps_each_stored_topic_and_names_bad_payloads():
    router = Router(Topics("obs/site1"))
    frame = AllskyFrame(frame_id="f1", night="2026-11-20", exposure_s=10, url="/files/a.jpg")
    assert router.rows_for(message("obs/site1/allsky/frames", frame.to_json()))[0].table.name == "allsky_frames"
    streak = AllskyStreak(
        frame_id="f1",
        night="2026-11-20",
        kind="meteor",
        start=(1, 2),
        end=(30, 40),
        length_px=36.2,
        snr=9.0,
        steadiness=0.3,
        fade=0.4,
        exposure_s=10,
    )
    (row,) = router.rows_for(message("obs/site1/allsky/streaks", streak.to_json()))
    assert row.table.name == "allsky_streaks" and row.values["kind"] == "meteor"
    assert len(row.values["fingerprint"]) == 64
    assert row.values["data"]["end"] == [30.0, 40.0]
    state = McpState(state="idle")
    assert router.rows_for(message("obs/site1/mcp/state", state.to_json()))[0].values["state"] == "idle"
    event = Event(service="weather", kind="sensor_lost")
    assert router.rows_for(message("obs/site1/weather/events", event.to_json()))[0].table.name == "events"
    assert router.rows_for(message("obs/site1/mcp/roof/set", b"OPEN")) == []
    assert router.rows_for(message("other/mcp/state", state.to_json())) == []
    assert router.rows_for(message("obs/site1/mcp/state", b"")) == []  # a cleared retained topic
    with pytest.raises(InvalidMessageError) as bad:
        router.rows_for(message("obs/site1/mcp/state", json.dumps({"roof": "sideways"}).encode()))
    assert "obs/site1/mcp/state" in str(bad.value) and "McpState" in str(bad.value)


def test_latest_states_decode_json_text_and_skip_binary():
    latest = LatestStates(Topics("obsy"))
    latest.update("obsy/mcp/state", b'{"state": "idle"}')
    latest.update("obsy/web/availability", b"online")
    latest.update("obsy/allsky/image", b"\xff\xd8\xff")
    assert latest.get("mcp/state") == {"state": "idle"}
    assert latest.get("web/availability") == "online"
    assert latest.get("allsky/image") is None
    latest.update("obsy/mcp/state", b"")
    assert latest.get("mcp/state") is None
    assert decode(b"[1, 2]") == [1, 2]


def test_passwords_are_hashed_with_argon2id_at_the_rfc_9106_cost():
    """The service's real hashing parameters (the integration tests use a cheaper hasher)."""
    from argon2 import Type, extract_parameters, profiles

    from obsy_web.auth import accounts

    parameters = extract_parameters(accounts._hasher.hash("correct horse battery"))
    assert parameters == profiles.RFC_9106_LOW_MEMORY
    assert (parameters.type, parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
        Type.ID,
        3,
        64 * 1024,
        4,
    )
