"""The MCP's Home Assistant entities (the runner adds the standard ones), and what fires its event entities.

The roof is a cover, the mode a select, the night's start and abort are buttons; roof, alarm
and night events each fire an event entity from a topic of its own (not retained: Home
Assistant would fire it again on every reconnect).
"""

from __future__ import annotations

from obsy.homeassistant import (
    HA_COMMAND_TEMPLATE,
    BinarySensor,
    Button,
    Cover,
    Entity,
    Event,
    Select,
    Sensor,
    ha_command,
    json_attributes,
    json_value,
    safety_binary_sensor,
)
from obsy.messages import Event as BusEvent
from obsy.messages import McpEntityEvent, Mode
from obsy.topics import Topics

#: Event types of the Home Assistant event entities, by entity.
ROOF_EVENT_TYPES = ("opened", "closing", "closing_unsafe", "closed", "closed_unsafe")
ALARM_EVENT_TYPES = ("raised", "cleared")
NIGHT_EVENT_TYPES = ("started", "ended")


def entities(topics: Topics) -> list[Entity]:
    state = topics.mcp_state
    return [
        Cover(
            "roof",
            "Roof",
            device_class="garage",
            state_topic=state,
            # A roof stopped part-way is "open" to Home Assistant: its cover takes a "stopped"
            # payload for closed when the roof was last closing, and a roof that is not closed
            # must never look closed.
            value_template=(
                "{{ {'open': 'open', 'closed': 'closed', 'opening': 'opening', 'closing': 'closing',"
                " 'stopped': 'open'}.get(value_json.roof, 'None') }}"
            ),
            command_topic=topics.mcp_roof_command,
            payload_open=ha_command("OPEN"),
            payload_close=ha_command("CLOSE"),
            payload_stop=ha_command("STOP"),
            state_open="open",
            state_closed="closed",
            state_opening="opening",
            state_closing="closing",
        ),
        Select(
            "mode",
            "Mode",
            options=tuple(m.value for m in Mode),
            state_topic=state,
            value_template=json_value("mode"),
            command_topic=topics.mcp_mode_command,
            command_template=HA_COMMAND_TEMPLATE,
            icon="mdi:robot",
        ),
        Sensor(
            "state",
            "State",
            state_topic=state,
            value_template=json_value("state"),
            json_attributes_topic=state,
            json_attributes_template=json_attributes("reason"),
            icon="mdi:state-machine",
        ),
        safety_binary_sensor("safety", "Observatory safety", state),
        BinarySensor(
            "alarm",
            "Alarm",
            state_topic=state,
            value_template="{{ 'ON' if value_json.alarm else 'OFF' }}",
            device_class="problem",
            json_attributes_topic=state,
            json_attributes_template=json_attributes("alarm_reason"),
        ),
        # What people automate on: each message's event_type fires the entity, its other fields are attributes.
        Event(
            "roof_event",
            "Roof event",
            state_topic=topics.mcp_roof_event,
            event_types=ROOF_EVENT_TYPES,
            icon="mdi:garage-variant",
        ),
        Event(
            "alarm_event",
            "Alarm event",
            state_topic=topics.mcp_alarm_event,
            event_types=ALARM_EVENT_TYPES,
            icon="mdi:alarm-light",
        ),
        Event(
            "night_event",
            "Night event",
            state_topic=topics.mcp_night_event,
            event_types=NIGHT_EVENT_TYPES,
            icon="mdi:weather-night",
        ),
        Button(
            "start_night",
            "Start night",
            command_topic=topics.mcp_night_command,
            payload_press=ha_command("START"),
            icon="mdi:telescope",
        ),
        Button(
            "abort_night",
            "Abort night",
            command_topic=topics.mcp_night_command,
            payload_press=ha_command("ABORT"),
            icon="mdi:stop-circle",
        ),
    ]


def event_topic(topics: Topics, entity: str) -> str:
    """The topic of the event entity ``roof``, ``alarm`` or ``night``."""
    return {"roof": topics.mcp_roof_event, "alarm": topics.mcp_alarm_event, "night": topics.mcp_night_event}[entity]


def entity_event(event: BusEvent) -> tuple[str, McpEntityEvent] | None:
    """The Home Assistant event entity (roof, alarm, night) an MCP event fires, and what it says; else None."""
    data = event.data
    unsafe = [str(reason) for reason in data.get("unsafe_reasons") or []]
    if event.kind in ("roof_opened", "roof_closing", "roof_closed"):
        happened = event.kind.removeprefix("roof_")
        if unsafe and happened != "opened":
            happened += "_unsafe"
        return "roof", McpEntityEvent(event_type=happened, reason=str(data.get("reason", "")), unsafe_reasons=unsafe)
    if event.kind == "alarm":
        return "alarm", McpEntityEvent(event_type="raised", reason=event.message)
    if event.kind == "alarm_cleared":
        return "alarm", McpEntityEvent(event_type="cleared", reason=event.message)
    if event.kind in ("night_started", "night_ended"):
        return "night", McpEntityEvent(
            event_type=event.kind.removeprefix("night_"), reason=event.message, night=data.get("night")
        )
    return None
