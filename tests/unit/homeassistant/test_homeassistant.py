"""Home Assistant discovery: payloads, the linter, and the publisher's logic (without a broker)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import jinja2
import paho.mqtt.client as mqtt
import pytest

from obsy.bus import Bus, encode_payload
from obsy.config import SERVICE_NAMES, BrokerConfig, HomeAssistantConfig, load_config
from obsy.homeassistant import (
    AVAILABILITY_TEMPLATE,
    KINDS,
    BinarySensor,
    Cover,
    DiscoveryPublisher,
    Entity,
    Event,
    Node,
    Select,
    Sensor,
    discovery_payload,
    disk_free_sensor,
    json_attributes,
    json_value_or_unknown,
    node_id,
    safety_binary_sensor,
    service_entities,
    service_label,
    standard_entities,
)
from obsy.homeassistant.lint import COMMON_KEYS, COMPONENT_KEYS, lint_discovery, lint_entities
from obsy.messages import ServiceHealth
from obsy.services import registered_services
from obsy.topics import HOMEASSISTANT_STATUS, Topics

REPO = Path(__file__).resolve().parents[3]
EXAMPLE_CONFIG = REPO / "config" / "obsy.example.yaml"


def node(prefix: str = "obsy", service: str = "weather", **kwargs: Any) -> Node:
    return Node(prefix=prefix, service=service, site_name="Test site", sw_version="1.2.3", **kwargs)


def sensor_payload(**overrides: Any) -> dict[str, Any]:
    entity = Sensor("temperature", "Temperature", state_topic="obsy/weather/state")
    payload = discovery_payload(entity, node())
    payload.update(overrides)
    return payload


def bare(component: str, **overrides: Any) -> dict[str, Any]:
    """The common part of a clean payload, for a component, without its own keys."""
    payload = {k: v for k, v in sensor_payload().items() if k != "state_topic"}
    payload["default_entity_id"] = f"{component}.obsy_obsy_weather_thing"
    payload.update(overrides)
    return payload


def has(problems: list[str], *fragments: str) -> bool:
    return any(all(fragment in problem for fragment in fragments) for problem in problems)


# --- payloads ----------------------------------------------------------------------------


def test_payload_has_ids_device_origin_and_two_availability_entries() -> None:
    entity = Sensor(
        "ambient_temperature",
        "Ambient temperature",
        state_topic="obsy/weather/state",
        value_template="{{ value_json.readings.ambient_temperature.value }}",
        device_class="temperature",
        unit_of_measurement="°C",
        state_class="measurement",
    )
    site = node(site_availability_topic="obsy/mcp/availability", support_url="https://example.org/obsy")
    payload = discovery_payload(entity, site)

    assert site.config_topic(entity) == "homeassistant/sensor/obsy_obsy_weather/ambient_temperature/config"
    assert payload["unique_id"] == "obsy_obsy_weather_ambient_temperature"
    assert payload["default_entity_id"] == "sensor.obsy_obsy_weather_ambient_temperature"
    assert "object_id" not in payload
    assert payload["device"] == {
        "identifiers": ["obsy_obsy"],
        "name": "Test site",
        "manufacturer": "OBSY",
        "model": "Observatory automation",
        "sw_version": "1.2.3",
    }
    assert payload["origin"] == {"name": "OBSY", "sw_version": "1.2.3", "support_url": "https://example.org/obsy"}
    assert payload["availability_mode"] == "all"
    assert [a["topic"] for a in payload["availability"]] == ["obsy/weather/availability", "obsy/mcp/availability"]
    for entry in payload["availability"]:
        assert entry["payload_available"] == "online"
        assert entry["payload_not_available"] == "offline"
        assert entry["value_template"] == AVAILABILITY_TEMPLATE
    assert payload["qos"] == 1
    assert lint_discovery("sensor", payload) == []
    # It is JSON the bus can send, with no abbreviated keys.
    assert json.loads(encode_payload(payload)) == payload
    assert all(len(key) > 3 or key == "qos" for key in payload)


def test_availability_template_maps_stopped_to_offline() -> None:
    # The template's only branch: 'online' stays, anything else ('offline', 'stopped') is offline.
    assert AVAILABILITY_TEMPLATE == "{{ 'online' if value == 'online' else 'offline' }}"


def test_extra_options_are_merged_and_options_become_a_list() -> None:
    entity = Select(
        "mode",
        "Mode",
        command_topic="obsy/mcp/mode/set",
        state_topic="obsy/mcp/state",
        value_template="{{ value_json.mode }}",
        options=["auto", "manual", "off"],
        extra={"retain": False},
    )
    payload = discovery_payload(entity, node(service="mcp"))
    assert payload["options"] == ["auto", "manual", "off"]
    assert payload["retain"] is False
    assert lint_discovery("select", payload) == []


def test_entity_rejects_bad_object_id_options_and_the_common_part_alone() -> None:
    with pytest.raises(ValueError, match="object_id"):
        Sensor("Bad Id", "x", state_topic="t")
    with pytest.raises(TypeError, match="Sensor, BinarySensor"):
        Entity("lamp", "x")
    with pytest.raises(ValueError, match="options must be a non-empty sequence of strings"):
        Select("mode", "Mode", command_topic="t/set", options="auto")
    with pytest.raises(ValueError, match="event_types"):
        Event("roof_event", "Roof event", state_topic="t", event_types=())
    with pytest.raises(TypeError, match="state_topic"):
        Sensor("temperature", "Temperature")  # type: ignore[call-arg]


def test_each_kind_sends_its_own_options_and_none_of_the_unset_ones() -> None:
    cover = Cover(
        "roof",
        "Roof",
        command_topic="obsy/mcp/roof/set",
        state_topic="obsy/mcp/state",
        state_open="open",
        icon="mdi:garage",
    )
    payload = discovery_payload(cover, node(service="mcp"))
    assert {k: payload[k] for k in ("command_topic", "state_topic", "state_open", "icon")} == {
        "command_topic": "obsy/mcp/roof/set",
        "state_topic": "obsy/mcp/state",
        "state_open": "open",
        "icon": "mdi:garage",
    }
    assert not {"state_closed", "payload_open", "value_template", "entity_category", "extra"} & payload.keys()
    assert lint_discovery("cover", payload) == []

    event = discovery_payload(Event("streak", "Streak", state_topic="t", event_types=("meteor",)), node())
    assert event["event_types"] == ["meteor"]
    assert lint_discovery("event", event) == []


def test_every_kind_is_a_component_the_linter_knows_and_sends_only_keys_it_accepts() -> None:
    for component, kind in KINDS.items():
        assert kind.component == component
        required, accepted = COMPONENT_KEYS[component]
        # object_id, availability and extra shape the payload; every other field is sent under its own name.
        sent = {f.name for f in fields(kind)} - {"object_id", "availability", "extra"}
        assert sent <= COMMON_KEYS | required | accepted, f"{component}: {sorted(sent - COMMON_KEYS - accepted)}"
        must_give = {f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING}
        assert required <= must_give, f"{component}: Home Assistant needs {sorted(required - must_give)}"


def test_template_helpers_render_what_they_say() -> None:
    env = jinja2.Environment()
    nullable = env.from_string(json_value_or_unknown("stars"))
    assert nullable.render(value_json={"stars": 12}) == "12"
    assert nullable.render(value_json={"stars": 0}) == "0"
    assert nullable.render(value_json={"stars": None}) == "None"
    attributes = env.from_string(json_attributes("night", of="details", lights="lights_tonight"))
    rendered = attributes.render(value_json={"details": {"night": "2026-12-05", "lights_tonight": 3, "x": 1}})
    assert json.loads(rendered) == {"night": "2026-12-05", "lights": 3}


def test_safety_binary_sensor_is_on_when_unsafe() -> None:
    entity = safety_binary_sensor("safety", "Weather safety", "obsy/weather/safety")
    assert isinstance(entity, BinarySensor)
    payload = discovery_payload(entity, node())
    assert payload["device_class"] == "safety"
    assert payload["value_template"] == "{{ 'OFF' if value_json.safe else 'ON' }}"
    assert lint_discovery("binary_sensor", payload) == []


# --- standard entities -------------------------------------------------------------------


def test_connectivity_sensor_is_not_subject_to_availability() -> None:
    entities = {e.object_id: e for e in standard_entities("weather", Topics("obsy"))}
    connectivity = discovery_payload(entities["connectivity"], node())
    assert connectivity["device_class"] == "connectivity"
    assert connectivity["state_topic"] == "obsy/weather/availability"
    assert "availability" not in connectivity
    assert "availability_topic" not in connectivity
    # 'stopped' and 'offline' both read as OFF.
    assert connectivity["value_template"] == "{{ 'ON' if value == 'online' else 'OFF' }}"

    invalid = discovery_payload(entities["invalid_messages"], node())
    assert invalid["state_topic"] == "obsy/weather/health"
    assert "invalid_messages" in invalid["value_template"]
    assert invalid["entity_category"] == "diagnostic"
    assert "availability" in invalid

    heartbeat = discovery_payload(entities["last_heartbeat"], node())
    assert heartbeat["device_class"] == "timestamp"
    assert "unit_of_measurement" not in heartbeat and "state_class" not in heartbeat


def test_every_service_has_a_version_sensor_read_from_its_health() -> None:
    for service in ("weather", "mcp", "web"):
        entities = {e.object_id: e for e in standard_entities(service, Topics("obsy"))}
        version = discovery_payload(entities["version"], node())
        assert lint_discovery("sensor", version) == []
        assert version["state_topic"] == f"obsy/{service}/health"
        assert version["entity_category"] == "diagnostic"
        assert version["name"] == f"{service_label(service)} version"
        health = ServiceHealth(service=service, heartbeat_interval_s=15, version="1.2.3").model_dump(mode="json")
        rendered = jinja2.Environment().from_string(version["value_template"]).render(value_json=health)
        assert rendered == "1.2.3"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_standard_entities_lint_clean(service: str) -> None:
    site = node(service=service, site_availability_topic="obsy/mcp/availability")
    assert lint_entities(standard_entities(service, Topics("obsy")), site) == []


@pytest.mark.parametrize("service", ["allsky", "imaging", "web"])
def test_the_disk_free_sensor_lints_clean_and_reads_the_health(service: str) -> None:
    sensor = disk_free_sensor(service, Topics("obsy"))
    assert lint_entities([*standard_entities(service, Topics("obsy")), sensor], node(service=service)) == []
    payload = discovery_payload(sensor, node(service=service))
    assert (payload["device_class"], payload["unit_of_measurement"]) == ("data_size", "GB")
    assert payload["state_topic"] == f"obsy/{service}/health"
    assert payload["name"] == f"{service_label(service)} disk free"


def test_unique_ids_and_topics_are_unique_across_services() -> None:
    unique_ids: list[str] = []
    topics: list[str] = []
    for service in SERVICE_NAMES:
        site = node(service=service)
        for entity in standard_entities(service, site.topics):
            unique_ids.append(discovery_payload(entity, site)["unique_id"])
            topics.append(site.config_topic(entity))
    assert len(unique_ids) == len(set(unique_ids))
    assert len(topics) == len(set(topics))


def test_two_prefixes_give_disjoint_topics_and_ids() -> None:
    def everything(prefix: str) -> tuple[set[str], set[str], set[str]]:
        ids, config_topics, state_topics = set(), set(), set()
        for service in SERVICE_NAMES:
            site = node(prefix=prefix, service=service)
            for entity in standard_entities(service, Topics(prefix)):
                payload = discovery_payload(entity, site)
                ids |= {payload["unique_id"], payload["default_entity_id"], *payload["device"]["identifiers"]}
                config_topics.add(site.config_topic(entity))
                state_topics.add(payload["state_topic"])
        return ids, config_topics, state_topics

    a = everything("obsy")
    b = everything("site-b/obsy")
    for left, right in zip(a, b, strict=True):
        assert left.isdisjoint(right)
    assert node_id("site-b/obsy", "weather") == "obsy_site_b_obsy_weather"


# --- the linter --------------------------------------------------------------------------


def test_lint_catches_misspelled_and_abbreviated_keys() -> None:
    problems = lint_discovery("sensor", sensor_payload(unit_of_measurment="°C", stat_cla="measurement"))
    assert has(problems, "unit_of_measurment", "did you mean 'unit_of_measurement'")
    assert has(problems, "stat_cla")
    device = sensor_payload()["device"] | {"manufactuer": "OBSY"}
    assert has(lint_discovery("sensor", sensor_payload(device=device)), "manufactuer", "in device")


def test_lint_catches_missing_required_keys() -> None:
    payload = sensor_payload()
    del payload["state_topic"]
    assert has(lint_discovery("sensor", payload), "missing required key 'state_topic'")

    assert has(lint_discovery("button", bare("button")), "missing required key 'command_topic'")
    select = lint_discovery("select", bare("select", command_topic="obsy/mcp/mode/set"))
    assert has(select, "missing required key 'options'")
    assert has(lint_discovery("image", bare("image")), "image_topic", "url_topic")
    assert lint_discovery("image", bare("image", image_topic="obsy/allsky/image", content_type="image/jpeg")) == []
    assert has(lint_discovery("switch", bare("switch")), "missing required key 'command_topic'")
    assert has(lint_discovery("number", bare("number")), "missing required key 'command_topic'")
    # A cover needs no particular key.
    assert lint_discovery("cover", bare("cover", command_topic="obsy/mcp/roof/set")) == []


def test_lint_catches_missing_unique_id_and_deprecated_object_id() -> None:
    payload = sensor_payload()
    del payload["unique_id"]
    assert has(lint_discovery("sensor", payload), "unique_id")
    assert has(lint_discovery("sensor", sensor_payload(object_id="x")), "object_id", "default_entity_id")
    assert has(lint_discovery("sensor", sensor_payload(default_entity_id="binary_sensor.x")), "default_entity_id")


def test_lint_catches_bad_device_class() -> None:
    assert has(lint_discovery("sensor", sensor_payload(device_class="temprature")), "did you mean 'temperature'")
    binary = bare("binary_sensor", state_topic="obsy/weather/safety")
    assert has(lint_discovery("binary_sensor", binary | {"device_class": "unsafe"}), "not a binary_sensor device class")
    assert lint_discovery("binary_sensor", binary | {"device_class": "safety"}) == []
    assert has(lint_discovery("cover", bare("cover", device_class="roof")), "not a cover device class")
    assert lint_discovery("cover", bare("cover", device_class="garage")) == []
    assert has(lint_discovery("select", bare("select", device_class="x")), "select has no device classes")
    assert has(lint_discovery("sensor", sensor_payload(state_class="average")), "state_class")


def test_lint_checks_units_against_device_class() -> None:
    good = {
        "temperature": "°C",
        "humidity": "%",
        "pressure": "hPa",
        "atmospheric_pressure": "hPa",
        "wind_speed": "km/h",
        "precipitation_intensity": "mm/h",
        "illuminance": "lx",
        "irradiance": "W/m²",
        "duration": "s",
    }
    for device_class, unit in good.items():
        payload = sensor_payload(device_class=device_class, unit_of_measurement=unit, state_class="measurement")
        assert lint_discovery("sensor", payload) == [], device_class
    bad = {"temperature": "C", "humidity": "percent", "wind_speed": "kmh", "pressure": "hpa", "duration": "sec"}
    for device_class, unit in bad.items():
        problems = lint_discovery("sensor", sensor_payload(device_class=device_class, unit_of_measurement=unit))
        assert has(problems, "does not fit device_class", device_class), device_class
    # A numeric class needs its unit; a timestamp must have none and no state class.
    assert has(lint_discovery("sensor", sensor_payload(device_class="temperature")), "None", "temperature")
    timestamp = sensor_payload(device_class="timestamp", state_class="measurement", unit_of_measurement="s")
    assert has(lint_discovery("sensor", timestamp), "state_class 'measurement' does not fit")
    assert has(lint_discovery("sensor", timestamp), "unit_of_measurement 's' does not fit")
    # OBSY's own units without a device class are fine.
    assert lint_discovery("sensor", sensor_payload(unit_of_measurement="mag/arcsec²")) == []


def test_lint_checks_availability_entries() -> None:
    entries = sensor_payload()["availability"]
    assert has(lint_discovery("sensor", sensor_payload(availability_topic="obsy/x")), "together")
    assert has(lint_discovery("sensor", sensor_payload(availability=[{"payload_available": "online"}])), "no 'topic'")
    assert has(
        lint_discovery("sensor", sensor_payload(availability=[entries[0] | {"tpoic": "x"}])), "did you mean 'topic'"
    )
    assert has(lint_discovery("sensor", sensor_payload(availability="obsy/x")), "non-empty list")
    assert has(lint_discovery("sensor", sensor_payload(availability_mode="every")), "availability_mode")


def test_lint_checks_device_and_origin_blocks() -> None:
    device = {"name": "Test site", "manufacturer": "OBSY"}
    assert has(lint_discovery("sensor", sensor_payload(device=device)), "identifiers")
    assert lint_discovery("sensor", sensor_payload(device={"connections": [["mac", "00:11:22:33:44:55"]]})) == []
    assert has(lint_discovery("sensor", sensor_payload(origin={"sw_version": "1"})), "origin needs a 'name'")


def test_lint_other_checks() -> None:
    assert has(lint_discovery("light", {}), "component")
    assert has(lint_discovery("sensor", sensor_payload(entity_category="system")), "entity_category")
    assert has(lint_discovery("sensor", sensor_payload(icon="thermometer")), "mdi:")
    assert has(lint_discovery("sensor", sensor_payload(options=["a"])), "enum")
    assert has(lint_discovery("button", bare("button", command_topic="obsy/+/set")), "wildcards")


# --- the publisher, against a stand-in bus -----------------------------------------------


class FakeBus:
    """Records what a DiscoveryPublisher does with the bus; delivers messages by hand."""

    def __init__(self, prefix: str = "obsy") -> None:
        self.broker = BrokerConfig(prefix=prefix)
        self.topics = Topics(prefix)
        self.published: list[tuple[str, Any, int, bool]] = []
        self.subscriptions: list[tuple[str, Callable[[str, Any], None], str | None]] = []
        self.hooks: list[Callable[[], None]] = []
        self.connected = threading.Event()

    def publish(self, topic: str, payload: Any, *, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload, qos, retain))

    def forget_retained(self, topic: str) -> None:
        self.publish(topic, b"", qos=1, retain=True)

    def subscribe(
        self,
        topic_filter: str,
        handler: Callable[[str, Any], None],
        model: Any = None,
        *,
        qos: int = 1,
        decode: str | None = None,
    ) -> None:
        self.subscriptions.append((topic_filter, handler, decode))

    def on_connect(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def connect(self) -> None:
        self.connected.set()
        for hook in self.hooks:
            hook()

    def deliver(self, topic: str, payload: bytes) -> None:
        for topic_filter, handler, decode in self.subscriptions:
            if mqtt.topic_matches_sub(topic_filter, topic):
                handler(topic, payload.decode() if decode == "text" else payload)


def make_publisher(bus: FakeBus, **ha: Any) -> DiscoveryPublisher:
    config = HomeAssistantConfig(**ha)
    return DiscoveryPublisher(bus, config, "Test site", "weather", standard_entities("weather", bus.topics))  # type: ignore[arg-type]


def test_publisher_publishes_retained_on_connect_and_when_home_assistant_comes_online() -> None:
    bus = FakeBus()
    publisher = make_publisher(bus)
    publisher.attach()
    filters = {(f, d) for f, _, d in bus.subscriptions}
    assert ("homeassistant/+/obsy_obsy_weather/+/config", "bytes") in filters
    assert (HOMEASSISTANT_STATUS, "text") in filters
    assert bus.published == []

    bus.connect()
    assert {t for t, _, _, _ in bus.published} == set(publisher.configs())
    assert all(qos == 1 and retain for _, _, qos, retain in bus.published)
    assert all(lint_discovery(t.split("/")[1], p) == [] for t, p, _, _ in bus.published)

    bus.published.clear()
    bus.deliver(HOMEASSISTANT_STATUS, b"offline")
    assert bus.published == []
    bus.deliver(HOMEASSISTANT_STATUS, b"online")
    assert len(bus.published) == len(publisher.entities)

    bus.published.clear()
    bus.connect()  # a reconnect
    assert len(bus.published) == len(publisher.entities)


def test_publisher_removes_only_its_own_stale_configs() -> None:
    bus = FakeBus()
    publisher = make_publisher(bus)
    publisher.attach()
    bus.connect()
    bus.published.clear()
    offered = next(iter(publisher.configs()))
    stale = "homeassistant/sensor/obsy_obsy_weather/old_reading/config"
    moved = "homeassistant/switch/obsy_obsy_weather/connectivity/config"  # same object_id, other component
    other_node = "homeassistant/sensor/obsy_other_weather/old_reading/config"
    for topic in (offered, stale, moved, other_node):
        bus.deliver(topic, b'{"name": "x"}')
    assert [(t, p) for t, p, _, _ in bus.published] == [(stale, b""), (moved, b"")]
    assert publisher.removed == [stale, moved]

    bus.published.clear()
    bus.deliver(stale, b"")  # the echo of the removal
    assert bus.published == []


def test_publisher_remove_all_and_detach() -> None:
    bus = FakeBus()
    publisher = make_publisher(bus)
    publisher.attach()
    bus.connect()
    leftover = "homeassistant/sensor/obsy_obsy_weather/leftover/config"
    bus.deliver(leftover, b'{"name": "x"}')
    bus.published.clear()

    publisher.remove_all()
    cleared = {t for t, p, _, retain in bus.published if p == b"" and retain}
    assert cleared == set(publisher.configs()) | {leftover}

    bus.published.clear()
    bus.connect()
    bus.deliver(HOMEASSISTANT_STATUS, b"online")
    assert bus.published == []

    # Attached again (connected): announces at once, without subscribing twice.
    subscriptions = len(bus.subscriptions)
    publisher.attach()
    assert len(bus.published) == len(publisher.entities)
    assert len(bus.subscriptions) == subscriptions


def test_publisher_does_nothing_when_disabled() -> None:
    bus = FakeBus()
    make_publisher(bus, enabled=False).attach()
    bus.connect()
    assert bus.subscriptions == [] and bus.published == []


def test_publisher_honours_the_discovery_prefix_and_rejects_duplicates() -> None:
    bus = FakeBus(prefix="site-b")
    publisher = make_publisher(bus, discovery_prefix="ha")
    assert all(t.startswith("ha/") and "/obsy_site_b_weather/" in t for t in publisher.configs())
    publisher.attach()
    assert {f for f, _, _ in bus.subscriptions} >= {
        "ha/+/obsy_site_b_weather/+/config",
        "ha/status",
        HOMEASSISTANT_STATUS,
    }
    twice = standard_entities("weather") * 2
    with pytest.raises(ValueError, match="both"):
        DiscoveryPublisher(bus, HomeAssistantConfig(), "Test site", "weather", twice)  # type: ignore[arg-type]


# --- every payload the project emits -----------------------------------------------------


def test_every_discovery_payload_the_project_emits_lints_clean() -> None:

    registered = registered_services()  # that it names every service: tests/unit/test_services_registry.py
    assert registered, "no service in the entry-point group 'obsy.services': nothing was linted (install services/*)"
    config = load_config(EXAMPLE_CONFIG, env={})
    problems: list[str] = []
    unique_ids: dict[str, str] = {}
    names: dict[str, str] = {}  # every service's entities are on one device: one name, one entity
    for entry in registered:
        cls = entry.load()  # a Service of that name, or ServiceRegistryError
        bus = Bus(config.broker, cls.name)
        service = cls(config, bus)
        # With the disk sensor whether or not this config watches a folder: every entity it may send.
        entities = service_entities(cls.name, bus.topics, service.ha_entities(), watches_disk=True)
        assert all(isinstance(e, Entity) for e in entities), f"{cls.name}.ha_entities() must return Entity objects"
        publisher = DiscoveryPublisher(bus, config.homeassistant, config.site.name, cls.name, entities)
        problems += lint_entities(entities, publisher.node)
        for topic, payload in publisher.configs().items():
            uid = payload["unique_id"]
            assert uid not in unique_ids, f"unique_id {uid} is used by {unique_ids[uid]} and {topic}"
            unique_ids[uid] = topic
            name = payload["name"].casefold()
            assert name not in names, f"two entities are named {payload['name']!r}: {names[name]} and {topic}"
            names[name] = topic
    assert problems == []


def test_lint_checks_event_entities() -> None:
    assert has(lint_discovery("event", bare("event")), "state_topic")
    assert has(lint_discovery("event", bare("event", state_topic="obsy/allsky/streaks")), "event_types")
    assert has(lint_discovery("event", bare("event", state_topic="obsy/a/b", event_types=[])), "non-empty")
    assert lint_discovery("event", bare("event", state_topic="obsy/allsky/streaks", event_types=["meteor"])) == []


def test_lint_catches_a_state_class_older_supported_releases_refuse() -> None:
    """Home Assistant 2024.3 refused the wind direction's measurement_angle and dropped the entity."""
    angle = sensor_payload(state_class="measurement_angle", unit_of_measurement="°")
    assert has(lint_discovery("sensor", angle), "measurement_angle", "2025.4")
    assert lint_discovery("sensor", sensor_payload(unit_of_measurement="°")) == []


@pytest.mark.slow
def test_no_service_imports_the_linter() -> None:
    """The linter and its copy of Home Assistant's schema are a developer and test tool, not run-time code."""
    import subprocess
    import sys

    modules = ["obsy.runner", "obsy.homeassistant", *(entry.entry_point.module for entry in registered_services())]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('obsy.homeassistant')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = result.stdout.strip()
    assert "obsy.homeassistant.publisher" in loaded  # the check sees what the services load
    assert "obsy.homeassistant.lint" not in loaded
