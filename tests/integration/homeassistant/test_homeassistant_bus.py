"""Home Assistant discovery over a real Mosquitto broker."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest

from obsy.bus import Bus
from obsy.config import BrokerConfig, HomeAssistantConfig
from obsy.homeassistant import DiscoveryPublisher, Entity, Sensor, standard_entities
from obsy.homeassistant.lint import lint_discovery
from obsy.topics import HOMEASSISTANT_STATUS
from tests.support.mosquitto import MosquittoBroker

pytestmark = pytest.mark.integration

PREFIX = "site-a/obsy"
NODE = "obsy_site_a_obsy_weather"


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


class Recorder:
    """A plain MQTT client that records every message (with its retain flag) under a filter."""

    def __init__(self, broker: BrokerConfig, topic_filter: str = "homeassistant/#") -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"recorder-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = lambda client, *_: client.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "recorder could not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain)))

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def count(self, topic: str) -> int:
        return sum(1 for m in self.snapshot() if m.topic == topic)

    def last(self, topic: str) -> Received | None:
        matching = [m for m in self.snapshot() if m.topic == topic]
        return matching[-1] if matching else None

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def retained_now(broker: BrokerConfig, settle: float = 0.5) -> dict[str, bytes]:
    """What a new subscriber gets retained under homeassistant/# right now."""
    recorder = Recorder(broker)
    try:
        time.sleep(settle)
        return {m.topic: m.payload for m in recorder.snapshot() if m.retain}
    finally:
        recorder.close()


@pytest.fixture
def broker(mosquitto: MosquittoBroker) -> BrokerConfig:
    return mosquitto.broker_config(prefix=PREFIX)


@pytest.fixture
def bus(broker: BrokerConfig) -> Iterator[Bus]:
    bus = Bus(broker, "weather")
    try:
        yield bus
    finally:
        bus.stop()


def extra_entity() -> Entity:
    return Sensor(
        "ambient_temperature",
        "Ambient temperature",
        state_topic=f"{PREFIX}/weather/state",
        value_template="{{ value_json.readings.ambient_temperature.value }}",
        device_class="temperature",
        unit_of_measurement="°C",
        state_class="measurement",
    )


def make_publisher(bus: Bus) -> DiscoveryPublisher:
    entities = [*standard_entities("weather", bus.topics), extra_entity()]
    return DiscoveryPublisher(bus, HomeAssistantConfig(), "Test site", "weather", entities, sw_version="9.9.9")


def test_configs_arrive_retained_at_the_right_topics(broker: BrokerConfig, bus: Bus) -> None:
    publisher = make_publisher(bus)
    expected = publisher.configs()
    assert all(t.startswith("homeassistant/") and f"/{NODE}/" in t and t.endswith("/config") for t in expected)
    assert "homeassistant/sensor/obsy_site_a_obsy_weather/ambient_temperature/config" in expected

    publisher.attach()  # before connecting: the on_connect hook publishes
    assert bus.start(wait=10)
    assert bus.wait_idle()
    wait_until(lambda: set(expected) <= set(retained_now(broker, settle=0.2)), what="retained configs")

    retained = retained_now(broker)
    for topic, payload in expected.items():
        received = json.loads(retained[topic])
        assert received == payload
        assert lint_discovery(topic.split("/")[1], received) == []
    assert json.loads(retained[f"homeassistant/binary_sensor/{NODE}/connectivity/config"])["state_topic"] == (
        f"{PREFIX}/weather/availability"
    )


def test_home_assistant_online_makes_them_published_again(broker: BrokerConfig, bus: Bus) -> None:
    publisher = make_publisher(bus)
    publisher.attach()
    assert bus.start(wait=10)
    topics = list(publisher.configs())
    recorder = Recorder(broker)
    try:
        wait_until(lambda: all(recorder.count(t) >= 1 for t in topics), what="initial configs")
        before = {t: recorder.count(t) for t in topics}

        recorder.publish(HOMEASSISTANT_STATUS, "offline")
        time.sleep(0.5)
        assert {t: recorder.count(t) for t in topics} == before

        recorder.publish(HOMEASSISTANT_STATUS, "online")
        wait_until(lambda: all(recorder.count(t) > before[t] for t in topics), what="configs published again")
        for topic in topics:
            last = recorder.last(topic)
            assert last is not None and json.loads(last.payload)["unique_id"].startswith(NODE)
    finally:
        recorder.close()


def test_stale_config_of_this_node_is_cleared_and_other_nodes_are_left_alone(broker: BrokerConfig, bus: Bus) -> None:
    stale = f"homeassistant/sensor/{NODE}/old_reading/config"
    moved = f"homeassistant/switch/{NODE}/connectivity/config"
    other_service = "homeassistant/sensor/obsy_site_a_obsy_mcp/old_reading/config"
    other_site = "homeassistant/sensor/obsy_obsy_weather/old_reading/config"
    seeder = Recorder(broker)
    try:
        for topic in (stale, moved, other_service, other_site):
            seeder.publish(topic, json.dumps({"name": "old", "unique_id": topic}), retain=True)
    finally:
        seeder.close()
    assert {stale, moved, other_service, other_site} <= set(retained_now(broker))

    publisher = make_publisher(bus)
    publisher.attach()
    assert bus.start(wait=10)
    wait_until(lambda: set(publisher.removed) == {stale, moved}, what="stale configs removed")

    def settled() -> bool:
        retained = retained_now(broker, settle=0.2)
        return stale not in retained and moved not in retained and set(publisher.configs()) <= set(retained)

    wait_until(settled, what="broker to forget the stale configs")
    retained = retained_now(broker)
    assert other_service in retained and other_site in retained

    # remove_all withdraws everything of this node and nothing else.
    publisher.remove_all()
    assert bus.wait_idle()

    def withdrawn() -> bool:
        return not any(f"/{NODE}/" in t for t in retained_now(broker, settle=0.2))

    wait_until(withdrawn, what="every config of the node removed")
    retained = retained_now(broker)
    assert other_service in retained and other_site in retained
