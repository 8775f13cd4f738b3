"""The MCP's Home Assistant entities: valid discovery, and templates that read McpState right."""

from __future__ import annotations

import json
from typing import Any

import jinja2
import pytest

from obsy.bus import Bus
from obsy.config import ObsyConfig
from obsy.homeassistant import Node, discovery_payload
from obsy.homeassistant.lint import lint_entities
from obsy.messages import Command, Event, McpState, Mode, OriginKind
from obsy_mcp.ha import entity_event
from obsy_mcp.service import McpService
from tests.support.ha_cover import cover_state


@pytest.fixture(scope="module")
def entities() -> dict[str, Any]:
    config = ObsyConfig.model_validate({"site": {"latitude": 48.2, "longitude": 16.4}})
    service = McpService(config, Bus(config.broker, "mcp"))
    found = service.ha_entities()
    node = Node(prefix="obsy", service="mcp", site_name="Test site", sw_version="1")
    assert lint_entities(found, node) == []
    return {e.object_id: discovery_payload(e, node) for e in found}


def render(template: str, state: McpState) -> str:
    payload = state.model_dump_json()
    return jinja2.Environment().from_string(template).render(value=payload, value_json=json.loads(payload)).strip()


def sent_by_home_assistant(payload: str) -> str:
    """The value of a command Home Assistant publishes, checked to say it came from Home Assistant."""
    command = Command.parse(payload)
    assert command.origin.kind is OriginKind.HOME_ASSISTANT
    return command.value


def test_the_entities_home_assistant_needs(entities: dict[str, Any]) -> None:
    assert entities["roof"]["command_topic"] == "obsy/mcp/roof/set"
    roof = entities["roof"]
    assert [sent_by_home_assistant(roof[f"payload_{a}"]) for a in ("open", "close", "stop")] == [
        "OPEN",
        "CLOSE",
        "STOP",
    ]
    assert entities["mode"]["options"] == ["auto", "manual", "off"]
    assert entities["mode"]["command_topic"] == "obsy/mcp/mode/set"
    assert sent_by_home_assistant(entities["start_night"]["payload_press"]) == "START"
    assert sent_by_home_assistant(entities["abort_night"]["payload_press"]) == "ABORT"
    assert entities["safety"]["device_class"] == "safety"
    assert entities["alarm"]["device_class"] == "problem"


@pytest.mark.parametrize("mode", ["auto", "manual", "off"])
def test_mode_select_sends_its_option_as_a_command_from_home_assistant(entities: dict[str, Any], mode: str) -> None:
    # Home Assistant renders command_template with the chosen option as ``value``.
    payload = jinja2.Environment().from_string(entities["mode"]["command_template"]).render(value=mode)
    assert sent_by_home_assistant(payload) == mode


@pytest.mark.parametrize("roof", ["open", "closed", "opening", "closing"])
def test_roof_cover_state(entities: dict[str, Any], roof: str) -> None:
    assert render(entities["roof"]["value_template"], McpState(state="observing", roof=roof)) == roof


@pytest.mark.parametrize("before", ["closing", "closed", "opening", "open", None])
def test_a_roof_stopped_part_way_never_looks_closed_in_home_assistant(entities: dict[str, Any], before) -> None:
    """Home Assistant takes a "stopped" payload for closed after closing: a stopped roof is sent as open."""
    stopped = McpState(state="manual", roof="stopped").model_dump_json()
    assert cover_state(entities["roof"], stopped, before) == "open"


def test_unknown_roof_is_unknown_to_home_assistant(entities: dict[str, Any]) -> None:
    assert render(entities["roof"]["value_template"], McpState(state="starting", roof="unknown")) == "None"


def test_safety_alarm_mode_and_state(entities: dict[str, Any]) -> None:
    unsafe = McpState(state="closed_unsafe", safe=False, alarm=True, mode=Mode.MANUAL)
    assert render(entities["safety"]["value_template"], unsafe) == "ON"  # HA: ON means unsafe
    assert render(entities["alarm"]["value_template"], unsafe) == "ON"
    assert render(entities["mode"]["value_template"], unsafe) == "manual"
    assert render(entities["state"]["value_template"], unsafe) == "closed_unsafe"
    safe = McpState(state="observing", safe=True)
    assert render(entities["safety"]["value_template"], safe) == "OFF"
    assert render(entities["alarm"]["value_template"], safe) == "OFF"


def test_event_entities_read_their_own_topics(entities: dict[str, Any]) -> None:
    assert entities["roof_event"]["state_topic"] == "obsy/mcp/roof/event"
    assert entities["roof_event"]["event_types"] == ["opened", "closing", "closing_unsafe", "closed", "closed_unsafe"]
    assert entities["alarm_event"]["event_types"] == ["raised", "cleared"]
    assert entities["night_event"]["event_types"] == ["started", "ended"]


@pytest.mark.parametrize(
    ("kind", "data", "entity", "event_type"),
    [
        ("roof_opened", {"reason": "safe, dark, plan"}, "roof", "opened"),
        ("roof_closing", {"reason": "night over", "unsafe_reasons": []}, "roof", "closing"),
        ("roof_closing", {"reason": "weather unsafe", "unsafe_reasons": ["weather: rain"]}, "roof", "closing_unsafe"),
        ("roof_closed", {"reason": "weather unsafe", "unsafe_reasons": ["weather: rain"]}, "roof", "closed_unsafe"),
        ("roof_closed", {"reason": "dawn"}, "roof", "closed"),
        ("alarm", {"alarm": "the roof did not move"}, "alarm", "raised"),
        ("alarm_cleared", {}, "alarm", "cleared"),
        ("night_started", {"night": "2026-12-06"}, "night", "started"),
        ("night_ended", {"night": "2026-12-06", "reason": "dawn"}, "night", "ended"),
    ],
)
def test_mcp_events_fire_the_event_entities(
    entities: dict[str, Any], kind: str, data: dict, entity: str, event_type: str
) -> None:
    fired = entity_event(Event(service="mcp", kind=kind, message=f"{kind}!", data=data))
    assert fired is not None
    assert fired[0] == entity
    assert fired[1].event_type == event_type
    assert event_type in entities[f"{entity}_event"]["event_types"]


def test_other_events_fire_nothing() -> None:
    assert entity_event(Event(service="mcp", kind="transition", data={"from": "day", "to": "standby"})) is None
