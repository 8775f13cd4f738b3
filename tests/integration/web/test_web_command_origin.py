"""Who commanded the roof, as the web stores and shows it; nothing large reaches the database.

Real Mosquitto, the real MCP with indiserver's simulators, the real web service on SQLite and Postgres.
"""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from obsy.messages import Event
from obsy.topics import Topics
from obsy_web.db import make_engine, models
from tests.support.indiserver import IndiServer, devices_at_start, require_indi
from tests.support.mcp_harness import DRIVERS, Inputs, McpProcess, Sky, mcp_config, prepare_devices, wait_state
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.support.web_databases import database_url  # noqa: F401 (fixture)
from tests.support.web_server import RunningWeb

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = Topics()
MB = 1024 * 1024


@pytest.fixture
def web(tmp_path: Path, mosquitto: MosquittoBroker, database_url: str) -> Iterator[RunningWeb]:  # noqa: F811
    (tmp_path / "web").mkdir()
    server = RunningWeb(tmp_path / "web", mosquitto, database_url, command_timeout=10, ingest_max_payload=4096)
    server.start()
    server.add_user("otto", "operator")
    try:
        yield server
    finally:
        server.stop()


def stored_events(web: RunningWeb) -> list[models.EventRecord]:
    engine = make_engine(web.database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(models.EventRecord)))
    finally:
        engine.dispose()


def events_api(web: RunningWeb, **params: Any) -> list[dict[str, Any]]:
    with web.login("otto") as client:
        reply = client.get("/api/v1/events", params={"limit": 500, **params})
        reply.raise_for_status()
        return reply.json()["items"]


def test_the_events_page_shows_who_sent_each_command_and_nothing_large_is_stored(
    tmp_path: Path, mosquitto: MosquittoBroker, watcher: Watcher, web: RunningWeb
) -> None:
    pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
    require_indi(DRIVERS)
    indi = IndiServer(tmp_path / "indi", DRIVERS, parked=devices_at_start(roof_open=False, mount_parked=True))
    indi.start()
    (tmp_path / "mcp").mkdir()
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    config = mcp_config(tmp_path / "mcp", mosquitto, indi.config())
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    inputs.weather(False, "rain detected")
    mcp = McpProcess(config, Sky(-25.0)).start()
    try:
        wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed")
        # Too large for a command: dropped at the MCP's bus and at the web's, never answered, never stored.
        watcher.publish(TOPICS.mcp_roof_command, b"OPEN" * (10 * MB // 4))
        watcher.publish(TOPICS.mcp_roof_command, b"O" * 100_000)
        # A web user: the web sends the account and its role.
        with web.login("otto") as client:
            reply = client.post("/api/v1/commands/roof", json={"action": "OPEN"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["accepted"] is False  # it rains
        assert reply.json()["answer"]["data"]["origin"] == {"kind": "web", "user": "otto", "role": "operator"}
        # Home Assistant, with the payload its discovery config tells it to send.
        roof = next(e for e in mcp.service.ha_entities() if e.object_id == "roof")
        watcher.publish(TOPICS.mcp_roof_command, roof.payload_close or "")
        # The command line.
        cli = subprocess.run(
            [sys.executable, "-m", "obsy_mcp", "roof", "CLOSE", "--config", str(config.source_file)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr

        def answers() -> list[dict[str, Any]]:
            found = events_api(web, service="mcp")
            return [e for e in found if e["kind"] in ("command_accepted", "command_rejected")]

        shown = web.wait_until(lambda: len(answers()) >= 3 and answers(), timeout=30)
    finally:
        mcp.stop()
        indi.stop()

    origins = {e["origin"] for e in shown}
    assert "web user otto, role operator" in origins
    assert "Home Assistant" in origins
    assert any(o.startswith(f"command line {getpass.getuser()}@") for o in origins), origins
    assert len(shown) == 3, "the oversize commands must never be answered"
    audit = [e for e in events_api(web, service="web") if e["kind"] == "command"]
    assert [e["origin"] for e in audit] == ["web user otto, role operator"]

    rows = stored_events(web)
    assert rows and all(len(json.dumps(r.data)) + len(r.message) < 2000 for r in rows), "nothing large is stored"
    assert web.service.ingest_bus.oversize_messages == 2  # the web's own bus dropped both commands too

    with web.login("otto") as client:
        page = client.get("/events")
    assert page.status_code == 200
    assert "<th>Origin</th>" in page.text


def test_the_ingest_refuses_an_oversize_message_and_stores_the_rest(watcher: Watcher, web: RunningWeb) -> None:
    small = [Event(service="mcp", kind="test", message=f"small {n}") for n in range(2)]
    large = Event(service="mcp", kind="test", message="large", data={"blob": "x" * 8000})  # over 4096
    for event in (small[0], large, small[1]):
        watcher.publish(TOPICS.events("mcp"), event.to_json())

    web.wait_until(lambda: web.service.ingestor.oversize == 1, timeout=30)
    web.wait_until(lambda: len([r for r in stored_events(web) if r.kind == "test"]) >= 2, timeout=30)
    assert sorted(r.message for r in stored_events(web) if r.kind == "test") == ["small 0", "small 1"]
    assert web.service.health_details()["ingest"]["oversize"] == 1
    assert web.service.ingestor.database_ok


def test_a_bad_request_is_echoed_only_as_an_excerpt(web: RunningWeb) -> None:
    with web.login("otto") as client:
        reply = client.post("/api/v1/commands/roof", json={"action": "OPEN", "k" * 5000: 1})
    assert reply.status_code == 422
    assert "Extra inputs are not permitted" in reply.json()["detail"]
    assert len(reply.text) < 1000, "an unknown field's name is echoed only as an excerpt"
