"""A linter for discovery payloads: the keys, classes and units Home Assistant accepts, per component.

A developer and test tool, not imported by the services: Home Assistant silently drops a
misspelled key or refuses an entity whose device class and unit do not fit, so a mistake
would otherwise only show as a missing feature. The tests lint every payload the project
emits (tests/unit/homeassistant/test_homeassistant.py) and start a real Home Assistant on them
(tests/integration/homeassistant/test_homeassistant_real.py).

The tables below are copied by hand from Home Assistant's MQTT integration and sensor
constants (2026 releases; the oldest release OBSY supports, 2024.3, is tested for real).
Extend them when OBSY announces a component, key or device class they do not list.

    from obsy.homeassistant.lint import lint_entities
    assert lint_entities(entities, node) == []
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from obsy.homeassistant.discovery import Node, discovery_payload
from obsy.homeassistant.entities import COMPONENTS, Entity

SENSOR_NON_NUMERIC_DEVICE_CLASSES = frozenset({"date", "enum", "timestamp"})

#: Numeric sensor device classes (Home Assistant 2026); ``number`` accepts the same set.
SENSOR_NUMERIC_DEVICE_CLASSES = frozenset(
    {
        "absolute_humidity",
        "apparent_power",
        "aqi",
        "area",
        "atmospheric_pressure",
        "battery",
        "blood_glucose_concentration",
        "carbon_dioxide",
        "carbon_monoxide",
        "conductivity",
        "current",
        "data_rate",
        "data_size",
        "distance",
        "duration",
        "energy",
        "energy_distance",
        "energy_storage",
        "frequency",
        "gas",
        "humidity",
        "illuminance",
        "irradiance",
        "moisture",
        "monetary",
        "nitrogen_dioxide",
        "nitrogen_monoxide",
        "nitrous_oxide",
        "ozone",
        "ph",
        "pm1",
        "pm10",
        "pm25",
        "pm4",
        "power",
        "power_factor",
        "precipitation",
        "precipitation_intensity",
        "pressure",
        "reactive_energy",
        "reactive_power",
        "signal_strength",
        "sound_pressure",
        "speed",
        "sulphur_dioxide",
        "temperature",
        "temperature_delta",
        "volatile_organic_compounds",
        "volatile_organic_compounds_parts",
        "voltage",
        "volume",
        "volume_flow_rate",
        "volume_storage",
        "water",
        "weight",
        "wind_direction",
        "wind_speed",
    }
)

BINARY_SENSOR_DEVICE_CLASSES = frozenset(
    {
        "battery",
        "battery_charging",
        "carbon_monoxide",
        "cold",
        "connectivity",
        "door",
        "garage_door",
        "gas",
        "heat",
        "light",
        "lock",
        "moisture",
        "motion",
        "moving",
        "occupancy",
        "opening",
        "plug",
        "power",
        "presence",
        "problem",
        "running",
        "safety",
        "smoke",
        "sound",
        "tamper",
        "update",
        "vibration",
        "window",
    }
)

COVER_DEVICE_CLASSES = frozenset(
    {"awning", "blind", "curtain", "damper", "door", "garage", "gate", "shade", "shutter", "window"}
)

DEVICE_CLASSES: dict[str, frozenset[str]] = {
    "sensor": SENSOR_NUMERIC_DEVICE_CLASSES | SENSOR_NON_NUMERIC_DEVICE_CLASSES,
    "binary_sensor": BINARY_SENSOR_DEVICE_CLASSES,
    "cover": COVER_DEVICE_CLASSES,
    "button": frozenset({"identify", "restart", "update"}),
    "switch": frozenset({"outlet", "switch"}),
    "number": SENSOR_NUMERIC_DEVICE_CLASSES,
    "select": frozenset(),
    "image": frozenset(),
    "event": frozenset({"button", "doorbell", "motion"}),
}

STATE_CLASSES = frozenset({"measurement", "measurement_angle", "total", "total_increasing"})
#: State classes newer than the oldest supported Home Assistant (docs/topics.md), with the release that added them.
TOO_NEW_STATE_CLASSES = {"measurement_angle": "2025.4"}

_TEMPERATURE = frozenset({"°C", "°F", "K"})
_PRESSURE = frozenset({"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"})
_SPEED = frozenset({"Beaufort", "ft/s", "in/s", "km/h", "kn", "m/s", "mm/s", "mph"})
_VOLUMETRIC_FLUX = frozenset({"in/d", "in/h", "mm/d", "mm/h"})
_MICROGRAMS_PER_M3 = frozenset({"µg/m³"})

#: Units Home Assistant accepts per device class, for the common classes (None: no unit).
DEVICE_CLASS_UNITS: dict[str, frozenset[str | None]] = {
    "temperature": _TEMPERATURE,
    "temperature_delta": _TEMPERATURE,
    "humidity": frozenset({"%"}),
    "moisture": frozenset({"%"}),
    "battery": frozenset({"%"}),
    "absolute_humidity": frozenset({"g/m³", "mg/m³"}),
    "pressure": _PRESSURE,
    "atmospheric_pressure": _PRESSURE,
    "wind_speed": _SPEED,
    "speed": _SPEED | _VOLUMETRIC_FLUX,
    "wind_direction": frozenset({"°"}),
    "precipitation": frozenset({"cm", "in", "mm"}),
    "precipitation_intensity": _VOLUMETRIC_FLUX,
    "illuminance": frozenset({"lx"}),
    "irradiance": frozenset({"W/m²", "BTU/(h⋅ft²)"}),
    "duration": frozenset({"d", "h", "min", "s", "ms", "μs"}),
    "distance": frozenset({"mm", "cm", "m", "km", "in", "ft", "yd", "mi", "nmi"}),
    "voltage": frozenset({"V", "mV", "µV", "μV", "kV", "MV"}),
    "current": frozenset({"A", "mA"}),
    "power": frozenset({"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"}),
    "frequency": frozenset({"Hz", "kHz", "MHz", "GHz"}),
    "signal_strength": frozenset({"dB", "dBm"}),
    "sound_pressure": frozenset({"dB", "dBA"}),
    "carbon_dioxide": frozenset({"ppm"}),
    "pm1": _MICROGRAMS_PER_M3,
    "pm10": _MICROGRAMS_PER_M3,
    "pm25": _MICROGRAMS_PER_M3,
    "aqi": frozenset({None}),
    "ph": frozenset({None}),
    "power_factor": frozenset({"%", None}),
    "date": frozenset({None}),
    "enum": frozenset({None}),
    "timestamp": frozenset({None}),
}

#: State classes Home Assistant accepts per sensor device class, where it restricts them.
DEVICE_CLASS_STATE_CLASSES: dict[str, frozenset[str]] = {
    "temperature": frozenset({"measurement"}),
    "humidity": frozenset({"measurement"}),
    "pressure": frozenset({"measurement"}),
    "atmospheric_pressure": frozenset({"measurement"}),
    "wind_speed": frozenset({"measurement"}),
    "wind_direction": frozenset({"measurement_angle"}),
    "precipitation_intensity": frozenset({"measurement"}),
    "illuminance": frozenset({"measurement"}),
    "irradiance": frozenset({"measurement"}),
    "battery": frozenset({"measurement"}),
    "energy": frozenset({"total", "total_increasing"}),
    "monetary": frozenset({"total"}),
    "date": frozenset(),
    "enum": frozenset(),
    "timestamp": frozenset(),
}

COMMON_KEYS = frozenset(
    {
        "availability",
        "availability_mode",
        "availability_template",
        "availability_topic",
        "payload_available",
        "payload_not_available",
        "default_entity_id",
        "device",
        "enabled_by_default",
        "encoding",
        "entity_category",
        "entity_picture",
        "icon",
        "json_attributes_template",
        "json_attributes_topic",
        "name",
        "object_id",
        "origin",
        "platform",
        "qos",
        "unique_id",
    }
)

#: Per component: (required keys, further accepted keys beyond COMMON_KEYS).
COMPONENT_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "sensor": (
        frozenset({"state_topic"}),
        frozenset(
            {
                "device_class",
                "expire_after",
                "force_update",
                "last_reset_value_template",
                "options",
                "state_class",
                "suggested_display_precision",
                "unit_of_measurement",
                "value_template",
            }
        ),
    ),
    "binary_sensor": (
        frozenset({"state_topic"}),
        frozenset(
            {"device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on", "value_template"}
        ),
    ),
    "button": (
        frozenset({"command_topic"}),
        frozenset({"command_template", "device_class", "payload_press", "retain"}),
    ),
    "select": (
        frozenset({"command_topic", "options"}),
        frozenset({"command_template", "optimistic", "retain", "state_topic", "value_template"}),
    ),
    "switch": (
        frozenset({"command_topic"}),
        frozenset(
            {
                "command_template",
                "device_class",
                "optimistic",
                "payload_off",
                "payload_on",
                "retain",
                "state_off",
                "state_on",
                "state_topic",
                "value_template",
            }
        ),
    ),
    "number": (
        frozenset({"command_topic"}),
        frozenset(
            {
                "command_template",
                "device_class",
                "max",
                "min",
                "mode",
                "optimistic",
                "payload_reset",
                "retain",
                "state_topic",
                "step",
                "unit_of_measurement",
                "value_template",
            }
        ),
    ),
    "cover": (
        frozenset(),
        frozenset(
            {
                "command_topic",
                "device_class",
                "optimistic",
                "payload_close",
                "payload_open",
                "payload_stop",
                "payload_stop_tilt",
                "position_closed",
                "position_open",
                "position_template",
                "position_topic",
                "retain",
                "set_position_template",
                "set_position_topic",
                "state_closed",
                "state_closing",
                "state_open",
                "state_opening",
                "state_stopped",
                "state_topic",
                "tilt_closed_value",
                "tilt_command_template",
                "tilt_command_topic",
                "tilt_max",
                "tilt_min",
                "tilt_opened_value",
                "tilt_optimistic",
                "tilt_status_template",
                "tilt_status_topic",
                "value_template",
            }
        ),
    ),
    "image": (
        frozenset(),
        frozenset({"content_type", "image_encoding", "image_topic", "url_template", "url_topic"}),
    ),
    # An event entity: each message on state_topic (JSON with "event_type", or a value_template
    # that renders such JSON) fires one event of the listed types.
    "event": (
        frozenset({"state_topic", "event_types"}),
        frozenset({"device_class", "json_attributes_template", "json_attributes_topic", "value_template"}),
    ),
}

DEVICE_KEYS = frozenset(
    {
        "configuration_url",
        "connections",
        "hw_version",
        "identifiers",
        "manufacturer",
        "model",
        "model_id",
        "name",
        "serial_number",
        "suggested_area",
        "sw_version",
        "via_device",
    }
)
ORIGIN_KEYS = frozenset({"name", "sw_version", "support_url"})
AVAILABILITY_ENTRY_KEYS = frozenset({"topic", "payload_available", "payload_not_available", "value_template"})
AVAILABILITY_MODES = frozenset({"all", "any", "latest"})

_PUBLISH_TOPIC_KEYS = ("command_topic", "set_position_topic", "tilt_command_topic")
_SUBSCRIBE_TOPIC_KEYS = (
    "state_topic",
    "json_attributes_topic",
    "availability_topic",
    "image_topic",
    "url_topic",
    "position_topic",
    "tilt_status_topic",
)


def _unknown(key: str, known: Iterable[str], where: str) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{where}{hint}: Home Assistant ignores it"


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _lint_topics(payload: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in (*_PUBLISH_TOPIC_KEYS, *_SUBSCRIBE_TOPIC_KEYS):
        if key not in payload:
            continue
        value = payload[key]
        if not _is_str(value):
            problems.append(f"'{key}' must be a non-empty topic string, not {value!r}")
        elif key in _PUBLISH_TOPIC_KEYS and ("+" in value or "#" in value):
            problems.append(f"'{key}' {value!r} is a publish topic and must not contain wildcards")
    return problems


def _lint_availability(payload: Mapping[str, Any]) -> list[str]:
    problems = []
    if "availability" in payload and "availability_topic" in payload:
        problems.append("'availability' and 'availability_topic' must not be used together")
    mode = payload.get("availability_mode")
    if mode is not None and mode not in AVAILABILITY_MODES:
        problems.append(f"availability_mode {mode!r} is not one of {', '.join(sorted(AVAILABILITY_MODES))}")
    if "availability" not in payload:
        return problems
    entries = payload["availability"]
    if not isinstance(entries, list) or not entries:
        return [*problems, "'availability' must be a non-empty list of {topic, payload_available, ...} entries"]
    for index, entry in enumerate(entries):
        where = f" in availability[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"availability[{index}] must be a mapping, not {entry!r}")
            continue
        if not _is_str(entry.get("topic")):
            problems.append(f"availability[{index}] has no 'topic'")
        for key in entry:
            if key not in AVAILABILITY_ENTRY_KEYS:
                problems.append(_unknown(key, AVAILABILITY_ENTRY_KEYS, where))
        for key in ("payload_available", "payload_not_available", "value_template"):
            if key in entry and not isinstance(entry[key], str):
                problems.append(f"availability[{index}].{key} must be a string")
    return problems


def _lint_device(payload: Mapping[str, Any]) -> list[str]:
    device = payload.get("device")
    if device is None:
        return []
    if not isinstance(device, Mapping):
        return ["'device' must be a mapping"]
    problems = [_unknown(key, DEVICE_KEYS, " in device") for key in device if key not in DEVICE_KEYS]
    if not device.get("identifiers") and not device.get("connections"):
        problems.append("device needs 'identifiers' or 'connections'")
    identifiers = device.get("identifiers")
    if identifiers is not None and not (
        isinstance(identifiers, str) or (isinstance(identifiers, list) and all(_is_str(i) for i in identifiers))
    ):
        problems.append("device.identifiers must be a string or a list of strings")
    return problems


def _lint_origin(payload: Mapping[str, Any]) -> list[str]:
    origin = payload.get("origin")
    if origin is None:
        return []
    if not isinstance(origin, Mapping):
        return ["'origin' must be a mapping"]
    problems = [_unknown(key, ORIGIN_KEYS, " in origin") for key in origin if key not in ORIGIN_KEYS]
    if not _is_str(origin.get("name")):
        problems.append("origin needs a 'name'")
    return problems


def _lint_device_class(component: str, payload: Mapping[str, Any]) -> list[str]:
    problems = []
    device_class = payload.get("device_class")
    accepted = DEVICE_CLASSES[component]
    if device_class is not None and device_class not in accepted:
        if accepted:
            close = difflib.get_close_matches(str(device_class), sorted(accepted), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"device_class {device_class!r} is not a {component} device class{hint}")
        else:
            problems.append(f"{component} has no device classes")
    if component in ("sensor", "number") and device_class in DEVICE_CLASS_UNITS:
        unit = payload.get("unit_of_measurement")
        allowed = DEVICE_CLASS_UNITS[device_class]
        if unit not in allowed:
            shown = ", ".join(sorted(repr(u) if u is not None else "no unit" for u in allowed))
            problems.append(
                f"unit_of_measurement {unit!r} does not fit device_class {device_class!r}"
                f" (Home Assistant accepts {shown})"
            )
    return problems


def _lint_sensor(payload: Mapping[str, Any]) -> list[str]:
    problems = []
    device_class = payload.get("device_class")
    state_class = payload.get("state_class")
    if state_class is not None:
        if state_class not in STATE_CLASSES:
            problems.append(f"state_class {state_class!r} is not one of {', '.join(sorted(STATE_CLASSES))}")
        elif device_class in DEVICE_CLASS_STATE_CLASSES and state_class not in DEVICE_CLASS_STATE_CLASSES[device_class]:
            problems.append(f"state_class {state_class!r} does not fit device_class {device_class!r}")
        if state_class in TOO_NEW_STATE_CLASSES:
            problems.append(
                f"state_class {state_class!r} is Home Assistant {TOO_NEW_STATE_CLASSES[state_class]}'s:"
                " older supported releases (2024.3, tested) refuse it and drop the whole entity"
            )
    options = payload.get("options")
    if options is not None:
        if device_class != "enum":
            problems.append("'options' of a sensor needs device_class 'enum'")
        if state_class is not None or payload.get("unit_of_measurement") is not None:
            problems.append("'options' must not be combined with state_class or unit_of_measurement")
        if not isinstance(options, list) or not options:
            problems.append("'options' must be a non-empty list")
    if "last_reset_value_template" in payload and state_class != "total":
        problems.append("'last_reset_value_template' needs state_class 'total'")
    return problems


def _lint_component(component: str, payload: Mapping[str, Any]) -> list[str]:
    problems = []
    if component == "select":
        options = payload.get("options")
        if "options" in payload and (
            not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options)
        ):
            problems.append("select 'options' must be a non-empty list of strings")
    if component == "image":
        has_image, has_url = "image_topic" in payload, "url_topic" in payload
        if not has_image and not has_url:
            problems.append("missing required key: an image needs 'image_topic' or 'url_topic'")
        if has_image and has_url:
            problems.append("'image_topic' and 'url_topic' must not be used together")
        if payload.get("image_encoding") not in (None, "b64"):
            problems.append("image_encoding must be 'b64' (or absent for raw bytes)")
    if component == "event":
        types = payload.get("event_types")
        if "event_types" in payload and (
            not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types)
        ):
            problems.append("event 'event_types' must be a non-empty list of strings")
    if component == "number" and payload.get("mode") not in (None, "auto", "box", "slider"):
        problems.append(f"number mode {payload.get('mode')!r} is not one of auto, box, slider")
    return problems


def lint_discovery(component: str, payload: Mapping[str, Any]) -> list[str]:
    """Problems Home Assistant would have with this discovery payload; empty when clean.

    Checks unknown keys (Home Assistant ignores them silently), required keys, device and
    state classes, units of the common device classes, ``unique_id``, the availability
    list and the device and origin blocks.
    """
    if component not in COMPONENT_KEYS:
        return [f"component {component!r} is not one OBSY announces ({', '.join(COMPONENTS)})"]
    if not isinstance(payload, Mapping):
        return ["a discovery payload must be a JSON object"]
    required, accepted = COMPONENT_KEYS[component]
    known = COMMON_KEYS | required | accepted
    problems = [_unknown(key, known, "") for key in payload if key not in known]
    problems += [f"missing required key '{key}'" for key in sorted(required) if key not in payload]
    if not _is_str(payload.get("unique_id")):
        problems.append("missing 'unique_id': without it Home Assistant cannot keep the entity's settings or remove it")
    if "object_id" in payload:
        problems.append(
            "'object_id' is deprecated since Home Assistant 2025.10 and ignored from 2026.4; use 'default_entity_id'"
        )
    entity_id = payload.get("default_entity_id")
    if entity_id is not None and (not isinstance(entity_id, str) or not entity_id.startswith(f"{component}.")):
        problems.append(f"default_entity_id {entity_id!r} must look like '{component}.<object id>'")
    if "name" in payload and payload["name"] is not None and not isinstance(payload["name"], str):
        problems.append("'name' must be a string or null")
    category = payload.get("entity_category")
    if category is not None and category not in ("config", "diagnostic"):
        problems.append(f"entity_category {category!r} is not 'config' or 'diagnostic'")
    icon = payload.get("icon")
    if icon is not None and (not isinstance(icon, str) or ":" not in icon):
        problems.append(f"icon {icon!r} must look like 'mdi:name'")
    if payload.get("qos", 0) not in (0, 1, 2):
        problems.append(f"qos {payload.get('qos')!r} is not 0, 1 or 2")
    problems += _lint_topics(payload)
    problems += _lint_availability(payload)
    problems += _lint_device(payload)
    problems += _lint_origin(payload)
    problems += _lint_device_class(component, payload)
    if component == "sensor":
        problems += _lint_sensor(payload)
    problems += _lint_component(component, payload)
    return problems


def lint_entities(entities: Sequence[Entity], node: Node) -> list[str]:
    """Lint the payloads of several entities of one node; each problem names its entity."""
    problems = []
    seen: set[tuple[str, str]] = set()
    for entity in entities:
        if entity.key in seen:
            problems.append(f"{node.service}: duplicate entity {entity.component} {entity.object_id}")
        seen.add(entity.key)
        for problem in lint_discovery(entity.component, discovery_payload(entity, node)):
            problems.append(f"{node.service} {entity.component} {entity.object_id}: {problem}")
    return problems
