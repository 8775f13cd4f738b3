"""The REST API of the running web service, on real Postgres and on the SQLite default.

One service per database kind serves every test of this module (fresh broker, fresh
database, schema made by the migrations from empty); the tests use distinct names so
they do not depend on each other's order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest

from obsy.messages import (
    AllskyFrame,
    AllskyStreak,
    Event,
    McpState,
    PlannedBlock,
    Reading,
    SafetyReason,
    SafetyVerdict,
    SchedulerPlan,
    WeatherState,
)
from tests.support.pretend_mcp import PretendMcp
from tests.support.web_server import PASSWORD, RunningWeb, web_on

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def web(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"web-{request.param}")
    with web_on(
        request.param,
        workdir,
        {"vera": "viewer", "otto": "operator", "ada": "admin"},
        command_timeout=1.5,
        login_attempts_per_minute=3,
    ) as server:
        yield server


def test_nothing_is_shown_without_a_login(web):
    with web.client() as anonymous:
        for path in ("/api/v1/status", "/api/v1/events", "/api/v1/targets", "/api/v1/live"):
            reply = anonymous.get(path)
            assert reply.status_code == 401, path
            assert "log in" in reply.json()["detail"]
        assert anonymous.get("/", follow_redirects=False).headers["location"].startswith("/login")
        assert anonymous.get("/api/v1/status", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_status_aggregates_services_and_the_observatory(web, bus):
    state = McpState(state="observing", reason="all safe", roof="open", safe=True)
    bus.publish("obsy/mcp/state", state.to_json(), retain=True)
    bus.publish("obsy/mcp/availability", "online", retain=True)
    with web.login("vera") as viewer:

        def observed():
            status = viewer.get("/api/v1/status").json()
            mcp = status["observatory"]["mcp"]
            return (
                status
                if mcp and mcp["state"] == "observing" and status["services"]["mcp"]["availability"] == "online"
                else None
            )

        status = web.wait_until(observed)
    assert status["services"]["web"]["availability"] == "online"
    assert status["observatory"]["mcp"]["roof"] == "open"
    assert set(status["ingest"]) >= {"database_ok", "received", "stored_messages"}


def test_wrong_password_then_rate_limit(web):
    web.add_user("ratty", "viewer")
    with web.client() as client:
        for _ in range(3):
            reply = client.post("/api/v1/auth/login", json={"username": "ratty", "password": "wrong password"})
            assert reply.status_code == 401
            assert reply.json()["detail"] == "wrong username or password"
        blocked = client.post("/api/v1/auth/login", json={"username": "ratty", "password": PASSWORD})
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) > 0
        assert "too many failed logins" in blocked.json()["detail"]


def test_roles_and_csrf_guard_changes(web):
    target = {"name": "Guarded", "ra_deg": 10.0, "dec_deg": 20.0}
    with web.login("vera") as viewer:
        reply = viewer.post("/api/v1/targets", json=target)
        assert reply.status_code == 403
        assert "operator" in reply.json()["detail"]
        assert viewer.post("/api/v1/commands/roof", json={"action": "OPEN"}).status_code == 403
        assert viewer.get("/api/v1/users").status_code == 403
    with web.login("otto") as operator:
        del operator.headers["X-CSRF-Token"]
        reply = operator.post("/api/v1/targets", json=target)
        assert reply.status_code == 403
        assert "CSRF" in reply.json()["detail"]
        operator.headers["X-CSRF-Token"] = "forged"
        assert operator.post("/api/v1/targets", json=target).status_code == 403
    with web.token_client("otto") as script:  # API tokens need no CSRF token
        assert script.post("/api/v1/targets", json=target).status_code == 201


def test_targets_crud_with_catalogue_lookup_published_for_the_scheduler(web, bus):
    with web.login("otto") as operator:
        found = operator.get("/api/v1/catalogue/lookup", params={"name": "NGC 7000"}).json()
        assert found["catalogue_id"] == "NGC7000"
        assert found["ra_deg"] == pytest.approx(314.82, abs=0.05)
        assert operator.get("/api/v1/catalogue/lookup", params={"name": "Vega"}).json()["kind"] == "Star"
        missing = operator.get("/api/v1/catalogue/lookup", params={"name": "NGC 99999"})
        assert missing.status_code == 404 and "not in the catalogues" in missing.json()["detail"]

        created = operator.post(
            "/api/v1/targets",
            json={
                "catalogue_name": "M 31",
                "priority": 8,
                "exposure_plans": [{"filter": "L", "exposure_s": 300, "count": 20}],
                "constraints": {"min_altitude": 35},
            },
        )
        assert created.status_code == 201, created.text
        m31 = created.json()
        assert m31["name"] == "M 31" and m31["catalogue_id"] == "NGC0224"
        assert m31["ra_deg"] == pytest.approx(10.685, abs=0.01) and m31["dec_deg"] == pytest.approx(41.27, abs=0.01)

        def published(expected_names):
            def check(messages):
                retained = [m for m in messages if m.topic == "obsy/web/targets"]
                return retained and expected_names <= {t["name"] for t in json.loads(retained[-1].payload)["targets"]}

            return check

        bus.wait_for(published({"M 31"}))
        latest = json.loads(bus.on("obsy/web/targets")[-1].payload)
        scheduled = next(t for t in latest["targets"] if t["id"] == m31["id"])
        assert scheduled["exposure_plans"][0]["exposure_s"] == 300 and scheduled["priority"] == 8

        clash = operator.post("/api/v1/targets", json={"name": "M 31", "ra_deg": 1, "dec_deg": 1})
        assert clash.status_code == 409
        bad = operator.post("/api/v1/targets", json={"name": "No position"})
        assert bad.status_code == 422 and "catalogue_name" in bad.json()["detail"]
        unknown = operator.post("/api/v1/targets", json={"catalogue_name": "Nowhere Nebula"})
        assert unknown.status_code == 422

        changed = operator.put(
            f"/api/v1/targets/{m31['id']}",
            json={"name": "Andromeda", "ra_deg": 10.68, "dec_deg": 41.27, "priority": 3, "enabled": False},
        )
        assert changed.status_code == 200
        assert changed.json()["exposure_plans"] == [] and changed.json()["enabled"] is False
        bus.wait_for(published({"Andromeda"}))
        assert operator.delete(f"/api/v1/targets/{m31['id']}").status_code == 204
        assert operator.get(f"/api/v1/targets/{m31['id']}").status_code == 404
        bus.wait_for(
            lambda msgs: (
                m31["id"]
                not in {
                    t["id"]
                    for t in json.loads([m for m in msgs if m.topic == "obsy/web/targets"][-1].payload)["targets"]
                }
            )
        )


def test_a_variable_star_target_holds_a_time_series_for_the_scheduler(web, bus):
    """A cadence and a window rather than a number of frames: stored, returned, published; a bad one refused."""
    series = {"cadence_min": 20, "window_start": "2026-11-21T18:00:00Z", "window_end": "2026-11-22T02:00:00Z"}
    with web.login("otto") as operator:
        created = operator.post(
            "/api/v1/targets",
            json={
                "name": "SS Cyg",
                "ra_deg": 325.68,
                "dec_deg": 43.59,
                "exposure_plans": [{"filter": "V", "exposure_s": 60, "count": 1}],
                "time_series": {**series, "frames_per_visit": 3},
            },
        )
        assert created.status_code == 201, created.text
        stored = operator.get(f"/api/v1/targets/{created.json()['id']}").json()["time_series"]
        assert stored["cadence_min"] == 20 and stored["frames_per_visit"] == 3
        assert datetime.fromisoformat(stored["window_start"]) == datetime(2026, 11, 21, 18, 0, tzinfo=UTC)

        def published(messages):
            retained = [m for m in messages if m.topic == "obsy/web/targets"]
            targets = json.loads(retained[-1].payload)["targets"] if retained else []
            return any(t["name"] == "SS Cyg" and t["time_series"] for t in targets)

        bus.wait_for(published)
        backwards = {**series, "window_end": "2026-11-21T17:00:00Z"}
        bad = operator.post("/api/v1/targets", json={"name": "RZ Cet", "ra_deg": 12.4, "dec_deg": -8.9,
                                                     "time_series": backwards})  # fmt: skip
        assert bad.status_code == 422 and "ends before it starts" in bad.text
        plain = operator.put(
            f"/api/v1/targets/{created.json()['id']}", json={"name": "SS Cyg", "ra_deg": 325.68, "dec_deg": 43.59}
        )
        assert plain.status_code == 200 and plain.json()["time_series"] is None


def test_weather_history_is_downsampled_and_safety_history_lists_changes(web, bus):
    t0 = datetime(2026, 1, 10, 20, 0, tzinfo=UTC)
    for minute in range(120):
        when = t0 + timedelta(minutes=minute)
        state = WeatherState(timestamp=when, readings={"dew_margin": Reading(value=minute, unit="K", measured_at=when)})
        bus.publish("obsy/weather/state", state.to_json(), retain=True)
    verdicts = [
        SafetyVerdict(timestamp=t0 + timedelta(minutes=5), safe=True),
        SafetyVerdict(
            timestamp=t0 + timedelta(minutes=50),
            safe=False,
            reasons=[SafetyReason(quantity="dew_margin", message="too humid", value=1, limit=2)],
        ),
    ]
    for verdict in verdicts:
        bus.publish("obsy/weather/safety", verdict.to_json(), retain=True)
    params = {
        "quantity": "dew_margin",
        "start": t0.isoformat(),
        "end": (t0 + timedelta(hours=2)).isoformat(),
        "points": 4,
    }
    with web.login("vera") as viewer:
        history = web.wait_until(
            lambda: (
                (h := viewer.get("/api/v1/weather/history", params=params).json())["series"]
                and sum(p["count"] for p in h["series"][0]["points"]) == 120
                and h
            )
        )
        assert history["bucket_s"] == 1800
        points = history["series"][0]["points"]
        assert [p["count"] for p in points] == [30, 30, 30, 30]
        assert [p["mean"] for p in points] == [14.5, 44.5, 74.5, 104.5]
        assert points[1]["min"] == 30 and points[1]["max"] == 59
        assert points[0]["time"].startswith("2026-01-10T20:00:00")
        assert "dew_margin" in viewer.get("/api/v1/weather/quantities").json()

        window = {"start": t0.isoformat(), "end": (t0 + timedelta(hours=2)).isoformat()}
        safety = web.wait_until(
            lambda: (s := viewer.get("/api/v1/safety/history", params=window).json())["total"] == 2 and s
        )
        assert [item["safe"] for item in safety["items"]] == [False, True]
        assert safety["items"][0]["reasons"][0]["limit"] == 2

        bad = viewer.get("/api/v1/weather/history", params={"start": "2026-01-10T20:00:00"})
        assert bad.status_code == 422 and "time zone" in bad.json()["detail"]
        reversed_range = viewer.get("/api/v1/safety/history", params={"start": window["end"], "end": window["start"]})
        assert reversed_range.status_code == 422 and "before" in reversed_range.json()["detail"]
        too_many = viewer.get("/api/v1/events", params={"limit": 5000})
        assert too_many.status_code == 422 and "limit" in too_many.json()["detail"]


def test_events_filter_and_paginate(web, bus):
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    for n in range(12):
        level = "error" if n % 4 == 0 else "info"
        event = Event(
            service="mcp",
            kind="alarm" if level == "error" else "transition",
            level=level,
            message=f"paging test {n}",
            timestamp=t0 + timedelta(seconds=n),
        )
        bus.publish("obsy/mcp/events", event.to_json())
    with web.login("vera") as viewer:
        web.wait_until(lambda: viewer.get("/api/v1/events", params={"text": "paging test"}).json()["total"] == 12)
        errors = viewer.get("/api/v1/events", params={"text": "paging test", "level": "warning"}).json()
        assert errors["total"] == 3 and {e["kind"] for e in errors["items"]} == {"alarm"}
        page = viewer.get("/api/v1/events", params={"text": "paging test", "limit": 5, "offset": 5}).json()
        assert [e["message"] for e in page["items"]] == [f"paging test {n}" for n in range(6, 1, -1)]
        assert viewer.get("/api/v1/events", params={"service": "weather", "text": "paging test"}).json()["total"] == 0


def test_allsky_images_and_files_only_from_the_data_directory(web, bus):
    night_dir = web.data_dir / "allsky" / "2026-01-11"
    night_dir.mkdir(parents=True, exist_ok=True)
    (night_dir / "frame-001.jpg").write_bytes(b"\xff\xd8\xff\xe0fake jpeg")
    (web.data_dir / "secret.txt").write_text("not for the web")
    frame = AllskyFrame(
        frame_id="frame-001", night="2026-01-11", exposure_s=30, stars=812, url="/files/allsky/2026-01-11/frame-001.jpg"
    )
    bus.publish("obsy/allsky/frames", frame.to_json())
    with web.login("vera") as viewer:
        web.wait_until(lambda: viewer.get("/api/v1/allsky/images", params={"night": "2026-01-11"}).json()["total"] == 1)
        assert viewer.get("/api/v1/allsky/images/latest").json()["frame_id"] == "frame-001"
        assert "2026-01-11" in [n["night"] for n in viewer.get("/api/v1/allsky/nights").json()]
        image = viewer.get("/api/v1/allsky/images/frame-001/file")
        assert image.status_code == 200 and image.content.startswith(b"\xff\xd8")
        assert viewer.get("/api/v1/files/allsky/2026-01-11/frame-001.jpg").status_code == 200
        for sneaky in (
            "/api/v1/files/secret.txt",
            "/api/v1/files/obsy.sqlite3",
            "/api/v1/files/../obsy.yaml",
            "/api/v1/files/allsky/%2e%2e/%2e%2e/obsy.yaml",
            "/api/v1/files/%2Fetc%2Fpasswd",
            "/api/v1/files/allsky/2026-01-11/missing.jpg",
        ):
            assert viewer.get(sneaky).status_code == 404, sneaky
        assert viewer.get("/api/v1/allsky/images/nope/file").status_code == 404
        (night_dir / "keogram.jpg").write_bytes(b"\xff\xd8keogram")
        (night_dir / "timelapse.mp4").write_bytes(b"not really a video")
        products = viewer.get("/api/v1/allsky/nights/2026-01-11/products").json()
        assert {(p["kind"], p["name"]) for p in products} == {
            ("keogram", "keogram.jpg"),
            ("timelapse", "timelapse.mp4"),
        }
        assert viewer.get(products[0]["url"]).status_code == 200
        assert viewer.get("/api/v1/allsky/nights/..%2F..%2Fetc/products").status_code in (404, 422)


def test_a_command_without_an_mcp_is_a_clear_timeout(web):
    with web.login("otto") as operator:
        reply = operator.post("/api/v1/commands/roof", json={"action": "CLOSE"})
    assert reply.status_code == 504
    assert "MCP did not answer" in reply.json()["detail"]


def test_an_operator_command_returns_the_mcps_answer(web, bus):
    mcp = PretendMcp(web.broker.port)
    try:
        with web.login("otto") as operator:
            reply = operator.post("/api/v1/commands/roof", json={"action": "CLOSE"})
            assert reply.status_code == 200, reply.text
            answer = reply.json()
            assert answer["answer_topic"] == "mcp/state" and answer["accepted"] is None
            assert answer["answer"]["reason"] == "operator asked: CLOSE"
            refused = operator.post("/api/v1/commands/roof", json={"action": "OPEN"}).json()
            assert refused["answer_topic"] == "mcp/events" and "refused" in refused["answer"]["message"]
            assert refused["accepted"] is False
            assert operator.post("/api/v1/commands/roof", json={"action": "WIDER"}).status_code == 422
        assert mcp.commands == ["CLOSE", "OPEN"]
        assert {(o.kind, o.user, o.role) for o in mcp.origins} == {("web", "otto", "operator")}
        audit = bus.wait_for(lambda msgs: sum(m.topic == "obsy/web/events" for m in msgs) >= 2)
        said = [json.loads(m.payload)["message"] for m in audit if m.topic == "obsy/web/events"]
        assert "web user otto, role operator sent roof CLOSE" in said
    finally:
        mcp.close()


def test_api_tokens_and_user_administration(web):
    with web.login("ada") as admin:
        created = admin.post(
            "/api/v1/users", json={"username": "newbie", "password": "a fine long password", "role": "viewer"}
        )
        assert created.status_code == 201
        short = admin.post("/api/v1/users", json={"username": "shorty", "password": "short"})
        assert short.status_code == 422 and "at least" in short.json()["detail"]
        assert (
            admin.post("/api/v1/users", json={"username": "newbie", "password": "another long one"}).status_code == 409
        )
        user_id = created.json()["id"]
    script = web.token_client("vera")
    assert script.get("/api/v1/auth/me").json()["username"] == "vera"
    with web.login("vera") as vera:
        token_id = vera.get("/api/v1/auth/tokens").json()[-1]["id"]
        assert vera.delete(f"/api/v1/auth/tokens/{token_id}").status_code == 204
    assert script.get("/api/v1/status").status_code == 401
    script.close()
    with web.login("newbie", "a fine long password") as newbie:
        assert newbie.get("/api/v1/status").status_code == 200
        with web.login("ada") as admin:
            assert admin.patch(f"/api/v1/users/{user_id}", json={"disabled": True}).status_code == 200
        web.wait_until(lambda: newbie.get("/api/v1/status").status_code == 401, timeout=10)


def test_allsky_frames_published_as_file_urls_are_served_from_the_data_directory(web, bus, tmp_path):
    """The allsky service publishes ``file://`` URLs of its JPEGs under the shared data_dir."""
    night_dir = web.data_dir / "allsky" / "2026-01-12"
    night_dir.mkdir(parents=True, exist_ok=True)
    inside = night_dir / "frame-101.jpg"
    inside.write_bytes(b"\xff\xd8\xff\xe0a frame")
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(b"\xff\xd8\xff\xe0not in the data directory")
    escaping = f"file://{night_dir}/../../../{outside.name}"
    for frame_id, url in (
        ("frame-101", inside.resolve().as_uri()),
        ("frame-102", outside.resolve().as_uri()),
        ("frame-103", escaping),
        ("frame-104", "file://other-host/data/frame.jpg"),
    ):
        frame = AllskyFrame(frame_id=frame_id, night="2026-01-12", exposure_s=5, url=url)
        bus.publish("obsy/allsky/frames", frame.to_json())
    with web.login("vera") as viewer:
        web.wait_until(lambda: viewer.get("/api/v1/allsky/images", params={"night": "2026-01-12"}).json()["total"] == 4)
        image = viewer.get("/api/v1/allsky/images/frame-101/file")
        assert image.status_code == 200 and image.content == inside.read_bytes()
        for frame_id in ("frame-102", "frame-103", "frame-104"):
            refused = viewer.get(f"/api/v1/allsky/images/{frame_id}/file")
            assert refused.status_code == 404, (frame_id, refused.text)


def test_a_nights_streaks_are_stored_once_and_listed_with_their_crops(web, bus, tmp_path):
    """``allsky/streaks`` events become a night's gallery: crops under the data directory are served."""
    streaks_dir = web.data_dir / "allsky" / "2026-01-13" / "streaks"
    streaks_dir.mkdir(parents=True, exist_ok=True)
    crop = streaks_dir / "20260113T221503250Z-1-meteor.png"
    crop.write_bytes(b"\x89PNG\r\n\x1a\na meteor")
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"\x89PNG\r\n\x1a\nnot in the data directory")
    when = datetime(2026, 1, 13, 22, 15, 5, tzinfo=UTC)
    common = {"night": "2026-01-13", "snr": 12.5, "steadiness": 0.1, "fade": 0.4, "exposure_s": 10.0}
    meteor = AllskyStreak(
        timestamp=when,
        frame_id="20260113T221503250Z",
        kind="meteor",
        start=(200.0, 150.0),
        end=(260.0, 180.0),
        start_altaz=(41.2, 130.5),
        end_altaz=(35.0, 141.0),
        length_px=67.1,
        length_deg=10.1,
        crop_url=crop.resolve().as_uri(),
        **common,
    )
    satellite = AllskyStreak(
        timestamp=when + timedelta(seconds=30),
        frame_id="20260113T221533250Z",
        kind="satellite",
        start=(10.0, 20.0),
        end=(300.0, 400.0),
        length_px=478.0,
        crop_url=outside.resolve().as_uri(),
        **common,
    )
    for event in (meteor, meteor, satellite):  # the first one delivered twice: stored once
        bus.publish("obsy/allsky/streaks", event.to_json())
    bus.publish("obsy/allsky/streaks", json.dumps({"kind": "comet"}))  # invalid: dropped
    with web.login("vera") as viewer:
        url = "/api/v1/allsky/nights/2026-01-13/streaks"
        web.wait_until(lambda: len(viewer.get(url).json()) == 2)
        listed = viewer.get(url).json()
        assert [s["kind"] for s in listed] == ["meteor", "satellite"]
        first, second = listed
        assert first["frame_id"] == "20260113T221503250Z" and first["start_altaz"] == [41.2, 130.5]
        assert first["length_deg"] == 10.1 and first["snr"] == 12.5
        assert first["crop"] == "/api/v1/files/allsky/2026-01-13/streaks/20260113T221503250Z-1-meteor.png"
        served = viewer.get(first["crop"])
        assert served.status_code == 200 and served.content == crop.read_bytes()
        assert second["crop"] is None and second["start_altaz"] is None  # a crop outside the data directory
        assert viewer.get("/api/v1/allsky/nights/2026-01-14/streaks").json() == []
        assert viewer.get("/api/v1/allsky/nights/nope/streaks").status_code == 422


def test_create_admin_command_never_uses_a_default_password(web, tmp_path):
    command = [
        sys.executable,
        "-m",
        "obsy_web",
        "create-admin",
        "root2",
        "-c",
        str(web.config_path),
        "--password-stdin",
    ]
    short = subprocess.run(command, input="short\n", capture_output=True, text=True, timeout=60, check=False)
    assert short.returncode == 1 and "at least" in short.stderr
    empty = subprocess.run(command, input="", capture_output=True, text=True, timeout=60, check=False)
    assert empty.returncode == 1
    done = subprocess.run(
        command, input="a proper admin password\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    with web.login("root2", "a proper admin password") as admin:
        assert admin.get("/api/v1/auth/me").json()["role"] == "admin"


def test_nul_characters_are_refused_not_internal_errors(web):
    """Postgres cannot store NUL in text: such input is a 4xx with a reason, never a 500."""
    with web.login("otto") as operator:
        assert operator.get("/api/v1/events", params={"text": "a\x00b"}).status_code == 400
        assert operator.get("/api/v1/targets/abc%00def").status_code == 400
        assert operator.get("/api/v1/weather/history", params={"quantity": "x\x00"}).status_code == 400
        reply = operator.post("/api/v1/targets", json={"name": "bad\x00name", "ra_deg": 1, "dec_deg": 1})
        assert reply.status_code == 422 and "name" in reply.json()["detail"]
        assert operator.post("/api/v1/auth/tokens", json={"name": "\x00"}).status_code == 422
    with web.client() as anonymous:
        login = anonymous.post("/api/v1/auth/login", json={"username": "x\x00", "password": "whatever"})
        assert login.status_code == 422


def test_tonights_plan_and_altitude_curves(web, bus):
    with web.login("otto") as operator:
        target = operator.post("/api/v1/targets", json={"catalogue_name": "NGC 7000", "name": "Plan target"}).json()
        dusk = datetime(2026, 8, 10, 20, 30, tzinfo=UTC)
        plan = SchedulerPlan(
            night="2026-08-10",
            dark_start=dusk,
            dark_end=dusk + timedelta(hours=6),
            blocks=[
                PlannedBlock(
                    target_id=target["id"], target_name="Plan target", start=dusk, end=dusk + timedelta(hours=2)
                )
            ],
            excluded={"x1": "below 30° all night"},
        )
        bus.publish("obsy/scheduler/plan", plan.to_json(), retain=True)
        tonight = web.wait_until(
            lambda: (
                (r := operator.get("/api/v1/plan/tonight")).status_code == 200
                and r.json()["night"] == "2026-08-10"
                and r.json()
            )
        )
        assert tonight["excluded"] == {"x1": "below 30° all night"}
        curves = operator.get("/api/v1/plan/tonight/altitudes").json()
        assert len(curves["times"]) == 37  # six hours every ten minutes
        (curve,) = curves["targets"]
        assert curve["name"] == "Plan target"
        # NGC 7000 (dec +44.5) seen from latitude 48.2 N on an August night: high, culminating near 86°.
        assert 60 < max(curve["altitudes"]) <= 87
        assert all(-90 <= a <= 90 for a in curve["altitudes"])


def test_the_plan_s_ekos_files_download_as_a_zip(web, bus):
    """The scheduler's own writer puts the files in the data directory, as it does by default;
    the zip holds exactly the schedule and the sequences the plan names, byte for byte."""
    import io
    import zipfile
    from datetime import date

    from obsy.config import SchedulerConfig, SiteConfig
    from obsy.messages import ExposurePlan, Target
    from obsy_scheduler.ekos import write_plan
    from obsy_scheduler.planner import Planner

    site = SiteConfig(name="Vienna", latitude=48.2, longitude=16.37, elevation=200, timezone="Europe/Vienna")
    target = Target(
        id="m31", name="M 31", ra_deg=10.68, dec_deg=41.27, exposure_plans=[ExposurePlan(exposure_s=60, count=5)]
    )
    settings = SchedulerConfig()
    plan = Planner(site, settings).plan([target], date(2026, 11, 22))
    files = write_plan(plan, settings.ekos, web.data_dir / "ekos", web.data_dir / "frames", site.timezone)
    message = plan.to_message(trigger="test", schedule_path=str(files.schedule))
    message.sequence_paths = [str(path) for path in files.sequence_paths()]
    bus.publish("obsy/scheduler/plan", message.to_json(), retain=True)
    with web.login("otto") as operator:
        reply = web.wait_until(
            lambda: (
                (r := operator.get("/api/v1/plan/tonight/files.zip")).status_code == 200 and r
                if operator.get("/api/v1/plan/tonight").json().get("night") == "2026-11-22"
                else None
            )
        )
        assert reply.headers["content-type"] == "application/zip"
        assert "obsy-ekos-2026-11-22.zip" in reply.headers["content-disposition"]
        archive = zipfile.ZipFile(io.BytesIO(reply.content))
        wanted = [files.schedule, *files.sequence_paths()]
        assert sorted(archive.namelist()) == sorted("/".join(p.parts[-3:]) for p in wanted)
        for path in wanted:
            assert archive.read("/".join(path.parts[-3:])) == path.read_bytes()
        # A plan whose files are elsewhere (another host's path) is refused with the reason.
        moved = message.model_copy(
            update={"ekos_schedule_path": "/elsewhere/obsy-2026-11-23.esl", "night": "2026-11-23"}
        )
        bus.publish("obsy/scheduler/plan", moved.to_json(), retain=True)
        refused = web.wait_until(lambda: (r := operator.get("/api/v1/plan/tonight/files.zip")).status_code == 404 and r)
        assert "not on this host" in refused.json()["detail"]
    with web.client() as anonymous:
        assert anonymous.get("/api/v1/plan/tonight/files.zip").status_code == 401


def test_stopping_the_service_ends_open_live_streams_cleanly(mosquitto, tmp_path):
    """A dashboard left open must not hold the shutdown: its /live stream ends as a complete response."""
    server = RunningWeb(tmp_path, mosquitto, f"sqlite:///{tmp_path / 'live.sqlite3'}").start()
    server.add_user("vera", "viewer")
    lines: list[str] = []
    outcome: list[BaseException | None] = []

    def follow(client) -> None:
        try:
            with client.stream("GET", "/api/v1/live", timeout=30) as reply:
                for line in reply.iter_lines():
                    lines.append(line)
            outcome.append(None)
        except Exception as error:  # an abrupt close: the response body was cut off
            outcome.append(error)

    try:
        with server.login("vera") as viewer:
            reader = threading.Thread(target=follow, args=(viewer,), daemon=True)
            reader.start()
            server.wait_until(lambda: ": connected" in lines, timeout=10)
            server.stop()
            reader.join(20)
    finally:
        server.stop()
    assert outcome == [None], outcome
    assert not server.thread.is_alive()
