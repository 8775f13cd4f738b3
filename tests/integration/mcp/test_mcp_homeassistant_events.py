"""The MCP's Home Assistant event entities fire on a real night: dusk, the roof opening, rain, dawn.

Real Mosquitto, real indiserver with the roll-off roof and telescope simulators; the Sun is injected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obsy.config import HomeAssistantConfig
from obsy.homeassistant.lint import lint_discovery
from obsy.topics import Topics
from tests.support.indiserver import IndiServer, require_indi
from tests.support.mcp_harness import (
    DRIVERS,
    Heartbeats,
    Inputs,
    McpProcess,
    Sky,
    mcp_config,
    prepare_devices,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

TOPICS = Topics()
NODE = "obsy_obsy_mcp"


def fired(watcher: Watcher, topic: str) -> list[dict]:
    return [json.loads(m.payload) for m in watcher.on(topic)]


def wait_fired(watcher: Watcher, topic: str, event_type: str, timeout: float = 60) -> dict:
    watcher.wait_for(lambda _m: any(e["event_type"] == event_type for e in fired(watcher, topic)), timeout)
    return next(e for e in fired(watcher, topic) if e["event_type"] == event_type)


def test_roof_and_night_event_entities_fire_on_the_mcp_transitions(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    config = mcp_config(tmp_path, mosquitto, indi.config())
    config = config.model_copy(update={"homeassistant": HomeAssistantConfig(enabled=True)})
    discovery = Watcher(mosquitto.port, ["homeassistant/#"])
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    sky = Sky(-5.0)  # dusk: the Sun above the MCP's limit (-12 degrees)
    process = McpProcess(config, sky).start()
    beats = Heartbeats(inputs).start()
    try:
        wait_state(watcher, TOPICS, lambda s: s["state"] == "waiting_for_dark")

        # Discovery: three event entities, linted clean, each reading its own topic.
        for name, topic in (
            ("roof_event", TOPICS.mcp_roof_event),
            ("alarm_event", TOPICS.mcp_alarm_event),
            ("night_event", TOPICS.mcp_night_event),
        ):
            config_topic = f"homeassistant/event/{NODE}/{name}/config"
            discovery.wait_for(lambda _m, t=config_topic: bool(discovery.on(t)), timeout=30)
            payload = json.loads(discovery.on(config_topic)[-1].payload)
            assert lint_discovery("event", payload) == []
            assert payload["state_topic"] == topic
        version = json.loads(discovery.on(f"homeassistant/sensor/{NODE}/version/config")[-1].payload)
        assert lint_discovery("sensor", version) == []

        # The first altitude after a start is no dusk; the Sun sinking below the limit is.
        assert fired(watcher, TOPICS.mcp_night_event) == []
        sky.altitude = -25.0
        started = wait_fired(watcher, TOPICS.mcp_night_event, "started")
        assert started["night"]
        opened = wait_fired(watcher, TOPICS.mcp_roof_event, "opened")
        assert opened["reason"]
        wait_state(watcher, TOPICS, lambda s: s["state"] == "observing")

        # Rain: the roof closes, and Home Assistant is told why.
        inputs.weather(False, "rain detected")
        closing = wait_fired(watcher, TOPICS.mcp_roof_event, "closing_unsafe")
        assert any("rain detected" in r for r in closing["unsafe_reasons"])
        closed = wait_fired(watcher, TOPICS.mcp_roof_event, "closed_unsafe")
        assert any("rain detected" in r for r in closed["unsafe_reasons"])
        assert [e["event_type"] for e in fired(watcher, TOPICS.mcp_roof_event)] == [
            "opened",
            "closing_unsafe",
            "closed_unsafe",
        ]

        # Dawn ends the night, once.
        sky.altitude = 2.0
        ended = wait_fired(watcher, TOPICS.mcp_night_event, "ended")
        assert "rose above" in ended["reason"]
        assert [e["event_type"] for e in fired(watcher, TOPICS.mcp_night_event)] == ["started", "ended"]
        # Every one went out as an MCP event too (what the web service stores and notifies).
        kinds = [json.loads(m.payload)["kind"] for m in watcher.on(TOPICS.events("mcp"))]
        for kind in ("night_started", "roof_opened", "roof_closing", "roof_closed", "night_ended"):
            assert kind in kinds
        # Never retained: Home Assistant would fire them again on every reconnect.
        assert not any(m.retain for m in watcher.on(TOPICS.mcp_roof_event))
    finally:
        beats.stop()
        process.stop()
        discovery.close()
