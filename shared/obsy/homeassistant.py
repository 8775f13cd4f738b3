"""Home Assistant MQTT discovery for every OBSY service.

Design
------
Every entity gets its own discovery topic,
``<discovery_prefix>/<component>/<node_id>/<object_id>/config``: this form works on every
Home Assistant version and lets one entity be removed (an empty retained config) without
touching the others. ``node_id`` is ``obsy_<slug of broker.prefix>_<service>``, so two
observatories with different prefixes on one broker never share a topic, a ``unique_id``
(``<node_id>_<object_id>``) or an entity id (``default_entity_id``,
``<component>.<unique_id>``; it replaced the ``object_id`` option, deprecated in Home
Assistant 2025.10 and gone in 2026.4; older versions ignore the key).

All services of one observatory share one Home Assistant device (identifiers
``obsy_<slug of prefix>``, named after ``site.name``); entity names therefore start with
the service ("Weather service", "MCP invalid messages").

Availability is a list: the service's ``<prefix>/<service>/availability`` and, when given,
an observatory-wide topic, with ``availability_mode: all``. The service topic carries
``online``/``offline``/``stopped``; Home Assistant ignores a payload that is neither
``payload_available`` nor ``payload_not_available``, so each entry has a
``value_template`` mapping anything but ``online`` to ``offline``.

:class:`DiscoveryPublisher` publishes every config retained (QoS 1) on each (re)connect
and again when Home Assistant announces itself ``online`` on ``homeassistant/status``
(Home Assistant drops discovery it received before it subscribed; ``<discovery_prefix>/status``
is watched too, for installations that moved the birth topic along). It also subscribes to
its own node's configs, ``<discovery_prefix>/+/<node_id>/+/config``, and clears any
retained config there that it no longer offers, so a renamed or dropped entity disappears
from Home Assistant. Configs of other nodes are never touched.

:func:`lint_discovery` checks a payload against the keys Home Assistant accepts for its
component: Home Assistant silently drops a misspelled key, so a typo would otherwise only
show as a missing feature.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

from obsy.config import HomeAssistantConfig
from obsy.topics import HOMEASSISTANT_STATUS, ONLINE, Topics

if TYPE_CHECKING:
    from obsy.bus import Bus

log = logging.getLogger("obsy.homeassistant")

Component = Literal["sensor", "binary_sensor", "cover", "select", "button", "image", "switch", "number", "event"]
COMPONENTS: tuple[str, ...] = (
    "sensor",
    "binary_sensor",
    "cover",
    "select",
    "button",
    "image",
    "switch",
    "number",
    "event",
)
EntityCategory = Literal["config", "diagnostic"]

MANUFACTURER = "OBSY"
DEFAULT_MODEL = "Observatory automation"

#: Maps the three availability values to the two Home Assistant understands.
AVAILABILITY_TEMPLATE = "{{ 'online' if value == 'online' else 'offline' }}"

#: The origin every command from Home Assistant carries (a :class:`~obsy.messages.CommandOrigin`).
HA_ORIGIN = {"kind": "home_assistant"}
#: ``command_template`` of an entity whose value Home Assistant fills in (a select's option).
HA_COMMAND_TEMPLATE = '{"value": {{ value | tojson }}, "origin": {"kind": "home_assistant"}}'


def ha_command(value: str) -> str:
    """A fixed command payload that says it came from Home Assistant (a cover's ``payload_open``...)."""
    return json.dumps({"value": value, "origin": HA_ORIGIN}, separators=(",", ":"))


_OBJECT_ID = re.compile(r"^[a-z0-9_]+$")
_SLUG_STRIP = re.compile(r"[^a-z0-9]+")


def _obsy_version() -> str:
    try:
        return metadata.version("obsy-core")
    except metadata.PackageNotFoundError:
        return "unknown"


def slug(text: str) -> str:
    """Lower-case ``[a-z0-9_]`` form of a prefix or name (what Home Assistant ids allow)."""
    return _SLUG_STRIP.sub("_", text.lower()).strip("_") or "x"


def device_id(prefix: str) -> str:
    """The identifier of the one Home Assistant device of an observatory."""
    return f"obsy_{slug(prefix)}"


def node_id(prefix: str, service: str) -> str:
    """The discovery node of one service of one observatory."""
    return f"obsy_{slug(prefix)}_{slug(service)}"


# --- entities --------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity a service offers; :func:`discovery_payload` turns it into a config.

    Fields left ``None`` are not sent (Home Assistant's defaults apply). ``extra`` is merged
    last, for options without a field here (``min``/``max``/``step`` of a number,
    ``state_open`` of a cover, ``expire_after``...). ``availability=False`` leaves the entity
    out of the service's availability, for entities that must stay readable while the
    service is down (its connectivity sensor).
    """

    component: Component
    object_id: str
    name: str | None
    state_topic: str | None = None
    value_template: str | None = None
    json_attributes_topic: str | None = None
    json_attributes_template: str | None = None
    device_class: str | None = None
    unit_of_measurement: str | None = None
    state_class: str | None = None
    icon: str | None = None
    entity_category: EntityCategory | None = None
    command_topic: str | None = None
    command_template: str | None = None
    payload_on: str | None = None
    payload_off: str | None = None
    payload_press: str | None = None
    payload_open: str | None = None
    payload_close: str | None = None
    payload_stop: str | None = None
    options: Sequence[str] | None = None
    image_topic: str | None = None
    content_type: str | None = None
    enabled_by_default: bool = True
    availability: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.component not in COMPONENTS:
            raise ValueError(
                f"unsupported Home Assistant component {self.component!r} (one of {', '.join(COMPONENTS)})"
            )
        if not _OBJECT_ID.match(self.object_id):
            raise ValueError(f"object_id {self.object_id!r} must be lower-case letters, digits and underscores")
        if self.options is not None:
            if isinstance(self.options, str):
                raise ValueError("options must be a sequence of strings, not one string")
            object.__setattr__(self, "options", tuple(self.options))

    @property
    def key(self) -> tuple[str, str]:
        """(component, object_id): what identifies the entity within its node."""
        return (self.component, self.object_id)


_ENTITY_KEYS = (
    "state_topic",
    "value_template",
    "json_attributes_topic",
    "json_attributes_template",
    "device_class",
    "unit_of_measurement",
    "state_class",
    "icon",
    "entity_category",
    "command_topic",
    "command_template",
    "payload_on",
    "payload_off",
    "payload_press",
    "payload_open",
    "payload_close",
    "payload_stop",
    "image_topic",
    "content_type",
)


SERVICE_LABELS = {
    "weather": "Weather",
    "clouddetect": "Cloud detection",
    "allsky": "All-sky camera",
    "scheduler": "Scheduler",
    "mcp": "MCP",
    "web": "Web",
    "imaging": "Imaging",
}


def service_label(service: str) -> str:
    """How entity names refer to a service ("MCP service", "All-sky camera health")."""
    return SERVICE_LABELS.get(service, service.replace("_", " ").capitalize())


def connectivity_binary_sensor(service: str, topics: Topics) -> Entity:
    """ON while the service is ``online``; OFF when ``offline`` (Last Will) or ``stopped``.

    It is not subject to availability itself, so Home Assistant shows a dead service as
    *off* rather than *unavailable*.
    """
    return Entity(
        component="binary_sensor",
        object_id="connectivity",
        name=f"{service_label(service)} service",
        state_topic=topics.availability(service),
        value_template="{{ 'ON' if value == 'online' else 'OFF' }}",
        device_class="connectivity",
        entity_category="diagnostic",
        availability=False,
    )


def safety_binary_sensor(
    object_id: str,
    name: str,
    state_topic: str,
    *,
    safe_expression: str = "value_json.safe",
    json_attributes_topic: str | None = None,
) -> Entity:
    """A binary_sensor of device class ``safety``: **ON means unsafe**, OFF means safe.

    That is Home Assistant's convention for the class, the opposite of OBSY's ``safe``
    flag, hence the inverting template. ``safe_expression`` is a Jinja expression true
    when safe (default: the ``safe`` field of a :class:`~obsy.messages.SafetyVerdict`).
    """
    return Entity(
        component="binary_sensor",
        object_id=object_id,
        name=name,
        state_topic=state_topic,
        value_template=f"{{{{ 'OFF' if {safe_expression} else 'ON' }}}}",
        device_class="safety",
        json_attributes_topic=json_attributes_topic,
    )


def standard_entities(service: str, topics: Topics | None = None) -> list[Entity]:
    """The entities every service gets: connectivity, health status, version, last heartbeat, invalid messages."""
    topics = topics or Topics()
    health = topics.health(service)
    label = service_label(service)
    return [
        connectivity_binary_sensor(service, topics),
        Entity(
            component="sensor",
            object_id="health",
            name=f"{label} health",
            state_topic=health,
            value_template="{{ value_json.status }}",
            device_class="enum",
            options=("ok", "degraded", "failing"),
            json_attributes_topic=health,
            # Only the fields that rarely change: every attribute change is a new history row.
            json_attributes_template=(
                "{{ {'version': value_json.version, 'host': value_json.host, 'pid': value_json.pid} | tojson }}"
            ),
            icon="mdi:heart-pulse",
            entity_category="diagnostic",
        ),
        # The version this service runs (the device's sw_version is obsy-core's, shared by all services).
        Entity(
            component="sensor",
            object_id="version",
            name=f"{label} version",
            state_topic=health,
            value_template="{{ value_json.version }}",
            icon="mdi:tag-outline",
            entity_category="diagnostic",
        ),
        # Readable while the service is down: the time of its last sign of life.
        Entity(
            component="sensor",
            object_id="last_heartbeat",
            name=f"{label} last heartbeat",
            state_topic=health,
            value_template="{{ value_json.timestamp }}",
            device_class="timestamp",
            entity_category="diagnostic",
            availability=False,
            enabled_by_default=False,
        ),
        Entity(
            component="sensor",
            object_id="invalid_messages",
            name=f"{label} invalid messages",
            state_topic=health,
            value_template="{{ value_json.invalid_messages }}",
            state_class="total_increasing",
            icon="mdi:message-alert-outline",
            entity_category="diagnostic",
        ),
    ]


def disk_free_sensor(service: str, topics: Topics) -> Entity:
    """The least free space of a service's watched folders (``obsy.diskspace``), from its health; each folder's
    figures and level as attributes."""
    health = topics.health(service)
    return Entity(
        component="sensor",
        object_id="disk_free",
        name=f"{service_label(service)} disk free",
        state_topic=health,
        value_template="{{ value_json.details.disk.free_gb }}",
        device_class="data_size",
        unit_of_measurement="GB",
        state_class="measurement",
        icon="mdi:harddisk",
        json_attributes_topic=health,
        json_attributes_template=(
            "{{ {'level': value_json.details.disk.level, 'paths': value_json.details.disk.paths} | tojson }}"
        ),
    )


# --- discovery payloads ----------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Where one service's entities live in Home Assistant, and what every config shares."""

    prefix: str
    service: str
    site_name: str
    discovery_prefix: str = "homeassistant"
    sw_version: str = field(default_factory=_obsy_version)
    model: str = DEFAULT_MODEL
    site_availability_topic: str | None = None
    via_device: str | None = None
    support_url: str | None = None
    configuration_url: str | None = None

    @property
    def node_id(self) -> str:
        return node_id(self.prefix, self.service)

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def unique_id(self, entity: Entity) -> str:
        return f"{self.node_id}_{entity.object_id}"

    def config_topic(self, entity: Entity) -> str:
        return f"{self.discovery_prefix}/{entity.component}/{self.node_id}/{entity.object_id}/config"

    def config_filter(self) -> str:
        """Every config of this node, whatever its component or object_id."""
        return f"{self.discovery_prefix}/+/{self.node_id}/+/config"

    def parse_config_topic(self, topic: str) -> tuple[str, str] | None:
        """(component, object_id) of a config topic of this node, else None."""
        parts = topic.split("/")
        head = self.discovery_prefix.split("/")
        if len(parts) != len(head) + 4 or parts[: len(head)] != head:
            return None
        component, node, object_id, leaf = parts[len(head) :]
        if node != self.node_id or leaf != "config":
            return None
        return component, object_id

    def device(self) -> dict[str, Any]:
        block: dict[str, Any] = {
            "identifiers": [device_id(self.prefix)],
            "name": self.site_name,
            "manufacturer": MANUFACTURER,
            "model": self.model,
            "sw_version": self.sw_version,
        }
        if self.via_device:
            block["via_device"] = self.via_device
        if self.configuration_url:
            block["configuration_url"] = self.configuration_url
        return block

    def origin(self) -> dict[str, Any]:
        block: dict[str, Any] = {"name": MANUFACTURER, "sw_version": self.sw_version}
        if self.support_url:
            block["support_url"] = self.support_url
        return block

    def availability(self) -> list[dict[str, str]]:
        topics = [self.topics.availability(self.service)]
        if self.site_availability_topic and self.site_availability_topic not in topics:
            topics.append(self.site_availability_topic)
        return [
            {
                "topic": topic,
                "payload_available": ONLINE,
                "payload_not_available": "offline",
                "value_template": AVAILABILITY_TEMPLATE,
            }
            for topic in topics
        ]


def discovery_payload(entity: Entity, node: Node) -> dict[str, Any]:
    """The discovery config of one entity, with full (not abbreviated) key names."""
    unique_id = node.unique_id(entity)
    payload: dict[str, Any] = {
        "name": entity.name,
        "unique_id": unique_id,
        "default_entity_id": f"{entity.component}.{unique_id}",
    }
    for key in _ENTITY_KEYS:
        value = getattr(entity, key)
        if value is not None:
            payload[key] = value
    if entity.options is not None:
        payload["options"] = list(entity.options)
    if not entity.enabled_by_default:
        payload["enabled_by_default"] = False
    if entity.availability:
        payload["availability"] = node.availability()
        payload["availability_mode"] = "all"
    payload["qos"] = 1
    payload["device"] = node.device()
    payload["origin"] = node.origin()
    payload.update(entity.extra)
    return payload


# --- publishing ------------------------------------------------------------------------


class DiscoveryPublisher:
    """Announces one service's entities to Home Assistant and keeps its node tidy.

    ``attach()`` is all a service needs (the runner calls it). ``remove_all()`` withdraws
    every entity of the node, for uninstalling.
    """

    def __init__(
        self,
        bus: Bus,
        ha_config: HomeAssistantConfig,
        site_name: str,
        service: str,
        entities: Iterable[Entity],
        *,
        sw_version: str | None = None,
        model: str = DEFAULT_MODEL,
        site_availability_topic: str | None = None,
        via_device: str | None = None,
        support_url: str | None = None,
        configuration_url: str | None = None,
    ) -> None:
        self.bus = bus
        self.ha_config = ha_config
        self.node = Node(
            prefix=bus.broker.prefix,
            service=service,
            site_name=site_name,
            discovery_prefix=ha_config.discovery_prefix,
            sw_version=sw_version or _obsy_version(),
            model=model,
            site_availability_topic=site_availability_topic,
            via_device=via_device,
            support_url=support_url,
            configuration_url=configuration_url,
        )
        self.entities: dict[tuple[str, str], Entity] = {}
        for entity in entities:
            if entity.key in self.entities:
                raise ValueError(
                    f"{service}: two Home Assistant entities are both {entity.component} {entity.object_id!r}"
                )
            self.entities[entity.key] = entity
        self.publish_count = 0
        self.removed: list[str] = []
        self._attached = False
        self._wired = False
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    # --- what is offered -----------------------------------------------------------
    def configs(self) -> dict[str, dict[str, Any]]:
        """Config topic -> payload for every offered entity."""
        return {self.node.config_topic(e): discovery_payload(e, self.node) for e in self.entities.values()}

    def lint(self) -> list[str]:
        """Problems in the payloads this publisher would send (see :func:`lint_discovery`)."""
        problems = []
        for entity in self.entities.values():
            for problem in lint_discovery(entity.component, discovery_payload(entity, self.node)):
                problems.append(f"{entity.component} {entity.object_id}: {problem}")
        return problems

    # --- lifecycle -----------------------------------------------------------------
    def attach(self) -> None:
        """Publish now (or on connect), on every reconnect and whenever Home Assistant comes online."""
        if not self.ha_config.enabled:
            log.info("Home Assistant discovery is disabled; not announcing %s", self.node.service)
            return
        if self._attached:
            return
        self._attached = True
        if self._wired:  # attached again after detach(): the subscriptions and hook are still there
            if self.bus.connected.is_set():
                self.publish_all()
            return
        self._wired = True
        for problem in self.lint():
            log.warning("Home Assistant discovery of %s: %s", self.node.service, problem, extra={"event": "ha_lint"})
        self.bus.subscribe(self.node.config_filter(), self._on_config, decode="bytes")
        for topic in sorted({HOMEASSISTANT_STATUS, f"{self.node.discovery_prefix}/status"}):
            self.bus.subscribe(topic, self._on_ha_status, decode="text")
        self.bus.on_connect(self._on_connect)  # also runs at once when already connected

    def detach(self) -> None:
        """Stop reacting (Home Assistant restarts, stale configs); published configs stay."""
        self._attached = False

    def remove_all(self) -> None:
        """Withdraw this node from Home Assistant: empty retained configs for every offered entity
        and for every other config of the node seen since :meth:`attach`."""
        self.detach()
        with self._lock:
            topics = set(self._seen) | set(self.configs())
            self._seen.clear()
        for topic in sorted(topics):
            self.bus.forget_retained(topic)
        log.info("removed %d Home Assistant configs of %s", len(topics), self.node.service)

    def publish_all(self) -> None:
        """Publish every config, retained, QoS 1."""
        for topic, payload in self.configs().items():
            self.bus.publish(topic, payload, qos=1, retain=True)
        self.publish_count += 1
        log.debug("published %d Home Assistant configs of %s", len(self.entities), self.node.service)

    # --- bus callbacks -------------------------------------------------------------
    def _on_connect(self) -> None:
        if self._attached:
            self.publish_all()

    def _on_ha_status(self, topic: str, value: str) -> None:
        if self._attached and value.strip() == ONLINE:
            log.info("Home Assistant is online; announcing %s again", self.node.service, extra={"event": "ha_online"})
            self.publish_all()

    def _on_config(self, topic: str, payload: bytes) -> None:
        parsed = self.node.parse_config_topic(topic)
        if parsed is None:
            return
        with self._lock:
            if not payload:
                self._seen.discard(topic)
                return
            self._seen.add(topic)
        if not self._attached or parsed in self.entities:
            return
        component, object_id = parsed
        log.info(
            "removing stale Home Assistant entity %s %s of %s",
            component,
            object_id,
            self.node.service,
            extra={"event": "ha_stale_removed", "topic": topic},
        )
        self.removed.append(topic)
        self.bus.forget_retained(topic)


# --- linting ---------------------------------------------------------------------------

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
