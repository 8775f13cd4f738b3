"""OBSY's entities in a real Home Assistant: discovered, named without collisions, reading what OBSY
publishes, unavailable when a service stops, and the roof driven from Home Assistant.

Home Assistant runs in its own virtual environment (``scripts/homeassistant-env.sh``, or
``OBSY_HOMEASSISTANT_PYTHON``); without one these tests are skipped. Its MQTT integration is set
up through the UI's config flow against the test's own Mosquitto; everything is asserted through
its REST API, as a dashboard or an automation sees it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsy.bus import Bus
from obsy.config import HomeAssistantConfig, load_config
from obsy.homeassistant import DiscoveryPublisher, service_entities, slug
from obsy.services import registered_services
from obsy.topics import Topics
from tests.support import homeassistant as ha
from tests.support.configs import write_config
from tests.support.indiserver import IndiServer, devices_at_start, require_indi
from tests.support.mcp_harness import (
    DRIVERS,
    Heartbeats,
    Inputs,
    McpProcess,
    Sky,
    events,
    mcp_config,
    prepare_devices,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.support.weather import RunningWeather

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not ha.available(), reason=f"no Home Assistant environment ({ha.SETUP})"),
]

SITE = "Test site"  # tests/support/configs.py's site: the name of OBSY's device in Home Assistant
TOPICS = Topics()


@pytest.fixture
def home_assistant(tmp_path: Path, mosquitto: MosquittoBroker) -> Iterator[ha.HomeAssistant]:
    with ha.HomeAssistant(tmp_path / "homeassistant", mosquitto) as instance:
        yield instance


def entity_id(component: str, name: str) -> str:
    """What Home Assistant names an MQTT entity that has a name and a device: ``<device> <name>``, slugified."""
    return f"{component}.{slug(f'{SITE} {name}')}"


def obsy_entities(home_assistant: ha.HomeAssistant) -> dict[str, dict[str, Any]]:
    """Every entity of OBSY's device (all of OBSY's entity ids start with the site's name)."""
    prefix = slug(SITE) + "_"
    return {k: v for k, v in home_assistant.states().items() if k.split(".", 1)[1].startswith(prefix)}


def value(state: dict[str, Any] | None) -> str | None:
    return None if state is None else state["state"]


# --- every service's entities: distinct entity ids --------------------------------------------


@pytest.mark.long(seconds=20)
def test_every_services_entities_get_the_entity_ids_their_names_promise(
    tmp_path: Path, mosquitto: MosquittoBroker, home_assistant: ha.HomeAssistant
) -> None:
    """All services' discovery at once, as one device: no entity is renamed ``..._2`` for a clash."""
    config = load_config(write_config(tmp_path, mosquitto, homeassistant={"enabled": True}))
    expected: dict[str, str] = {}  # entity id -> config topic
    buses: list[Bus] = []
    try:
        for entry in sorted(registered_services(), key=lambda e: e.name):
            cls = entry.load()
            bus = Bus(config.broker, cls.name)
            buses.append(bus)
            own = cls(config, bus).ha_entities()
            # The disk sensor for every service: all a service may announce (whether it watches a folder is
            # known only once it runs).
            entities = service_entities(cls.name, bus.topics, own, watches_disk=True)
            publisher = DiscoveryPublisher(bus, config.homeassistant, config.site.name, cls.name, entities)
            publisher.attach()
            assert bus.start(wait=10)
            for entity in entities:
                if entity.enabled_by_default:  # a disabled entity has no state to list
                    name = entity_id(entity.component, entity.name or "")
                    assert name not in expected, f"{name}: {expected.get(name)} and {entity}"
                    expected[name] = publisher.node.config_topic(entity)
        seen: dict[str, dict[str, Any]] = {}

        def all_there() -> bool:
            seen.update(obsy_entities(home_assistant))
            return set(expected) <= set(seen)

        home_assistant.wait_until(all_there, 60, "every service's entities")
        assert home_assistant.discovery_errors() == []
        # Nothing beyond them: a clash would have added "<id>_2" and left one expected id to the other entity.
        assert sorted(set(seen) - set(expected)) == []
        # The three pairs that once shared a name (issue 21), each now two entities of their own.
        for pair in (
            ("sensor.test_site_cloud_cover", "sensor.test_site_all_sky_cloud_cover"),
            ("sensor.test_site_sky_brightness", "sensor.test_site_all_sky_sky_brightness"),
            ("image.test_site_all_sky_image", "sensor.test_site_sky_condition"),
        ):
            assert set(pair) <= set(seen), pair
    finally:
        for bus in buses:
            bus.stop()


# --- the weather service ------------------------------------------------------------------------

ZIGBEE = "zigbee2mqtt/garden_sensor"
HA_RAIN = "homeassistant_statestream/binary_sensor/rain/state"
SENSORS = {
    "type": "mqtt",
    "name": "broker",
    "max_age": 300,
    "sensors": [
        {"topic": ZIGBEE, "json_path": "temperature", "quantity": "ambient_temperature", "unit": "°F"},
        {"topic": HA_RAIN, "quantity": "rain"},
    ],
}


@pytest.mark.long(seconds=20)
def test_weather_readings_and_verdict_in_home_assistant_and_unavailable_when_it_stops(
    tmp_path: Path, mosquitto: MosquittoBroker, watcher: Watcher, home_assistant: ha.HomeAssistant
) -> None:
    unsafe = entity_id("binary_sensor", "Weather unsafe")
    temperature = entity_id("sensor", "Ambient temperature")
    rain = entity_id("binary_sensor", "Rain")
    connectivity = entity_id("binary_sensor", "Weather service")
    weather = RunningWeather(
        tmp_path,
        mosquitto,
        sections={"homeassistant": {"enabled": True}},
        sources=[SENSORS],
        limits={"rain": {"unsafe_if": True}},
        safe_delay=0,
    )
    with weather:
        watcher.wait_payload(TOPICS.availability("weather"), b"online")
        watcher.publish(ZIGBEE, json.dumps({"temperature": 50.0}))
        watcher.publish(HA_RAIN, "off")
        state = home_assistant.wait_state(temperature, lambda s: value(s) not in (None, "unknown", "unavailable"), 60)
        assert state is not None
        assert float(state["state"]) == pytest.approx(10.0)  # 50 °F, converted by OBSY
        assert state["attributes"]["unit_of_measurement"] == "°C"
        assert state["attributes"]["device_class"] == "temperature"
        assert state["attributes"]["source"] == "broker"
        assert value(home_assistant.wait_state(rain, lambda s: value(s) == "off")) == "off"
        assert value(home_assistant.wait_state(unsafe, lambda s: value(s) == "off")) == "off"  # safe
        assert value(home_assistant.state(connectivity)) == "on"
        # Every entity was taken: Home Assistant 2024.3 dropped the wind direction for its state class once.
        assert home_assistant.state(entity_id("sensor", "Wind direction")) is not None
        assert home_assistant.discovery_errors() == []

        watcher.publish(HA_RAIN, "on")
        verdict = home_assistant.wait_state(unsafe, lambda s: value(s) == "on")  # ON means unsafe
        assert verdict is not None and verdict["attributes"]["device_class"] == "safety"
        assert value(home_assistant.state(rain)) == "on"

    # Stopped: its entities are unavailable, its connectivity sensor off (it stays readable).
    for entity in (unsafe, temperature, rain):
        home_assistant.wait_state(entity, lambda s: value(s) == "unavailable")
    assert value(home_assistant.wait_state(connectivity, lambda s: value(s) == "off")) == "off"


# --- the MCP: its roof as a cover ---------------------------------------------------------------


@pytest.mark.long(seconds=30)
def test_home_assistant_closes_the_roof_through_the_mcp(
    tmp_path: Path, mosquitto: MosquittoBroker, watcher: Watcher, home_assistant: ha.HomeAssistant
) -> None:
    pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
    require_indi(DRIVERS)
    roof = entity_id("cover", "Roof")
    safety = entity_id("binary_sensor", "Observatory safety")
    connectivity = entity_id("binary_sensor", "MCP service")
    with IndiServer(tmp_path / "indi", DRIVERS, parked=devices_at_start(roof_open=True, mount_parked=False)) as indi:
        prepare_devices(indi.config(), roof_open=True, mount_parked=False)
        config = mcp_config(tmp_path, mosquitto, indi.config())
        config = config.model_copy(update={"homeassistant": HomeAssistantConfig(enabled=True)})
        inputs = Inputs(watcher, TOPICS, config)
        inputs.all_safe()
        process = McpProcess(config, Sky(-25.0)).start()
        beats = Heartbeats(inputs).start()
        try:
            wait_state(watcher, TOPICS, lambda s: s["state"] == "observing" and s["roof"] == "open")
            assert value(home_assistant.wait_state(roof, lambda s: value(s) == "open", 60)) == "open"
            assert value(home_assistant.wait_state(safety, lambda s: value(s) == "off")) == "off"  # safe
            assert value(home_assistant.state(connectivity)) == "on"
            assert home_assistant.discovery_errors() == []

            # What a dashboard button or an automation does: cover.close_cover.
            home_assistant.call("cover", "close_cover", entity_id=roof)
            watcher.wait_for(lambda _m: any(e["kind"] == "command_accepted" for e in events(watcher, TOPICS)), 30)
            accepted = next(e for e in events(watcher, TOPICS) if e["kind"] == "command_accepted")
            assert accepted["data"]["origin"] == {"kind": "home_assistant"}
            assert accepted["data"]["command"] == {"thing": "roof", "value": "CLOSE"}
            home_assistant.wait_state(roof, lambda s: value(s) == "closed", 60)
            wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed")

            # Rain: OBSY's verdict turns unsafe, Home Assistant's safety sensor ON.
            inputs.weather(False, "rain detected")
            assert value(home_assistant.wait_state(safety, lambda s: value(s) == "on")) == "on"
        finally:
            beats.stop()
            process.stop()
        # Stopped: the cover is unavailable, the MCP's connectivity sensor off.
        for entity in (roof, safety):
            home_assistant.wait_state(entity, lambda s: value(s) == "unavailable")
        assert value(home_assistant.wait_state(connectivity, lambda s: value(s) == "off")) == "off"
