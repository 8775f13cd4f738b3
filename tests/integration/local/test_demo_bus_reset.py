"""A new demo starts from an empty bus: an earlier demo's retained messages go, even across a broker restart."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest

from obsy_local.demo.retained import clear_retained
from tests.support.mosquitto import MosquittoBroker

pytestmark = pytest.mark.integration


def retained_under(broker: MosquittoBroker, topic_filter: str) -> dict[str, bytes]:
    """The retained messages a new subscriber gets (a second clear_retained finds none to delete)."""
    seen: dict[str, bytes] = {}
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: seen.update({m.topic: m.payload}) if m.retain else None
    client.connect(broker.host, broker.port)
    client.subscribe(topic_filter, qos=1)
    client.loop_start()
    try:
        time.sleep(1.0)
    finally:
        client.disconnect()
        client.loop_stop()
    return seen


def test_an_earlier_demos_retained_messages_go_and_nothing_else(mosquitto: MosquittoBroker) -> None:
    publisher = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    acquired = '{"lights": [{"target": "M1", "frame_type": "Dark", "accepted": 5}]}'
    for topic, payload in [
        ("obsy-demo/imaging/acquired", acquired),
        ("obsy-demo/web/targets", "{}"),
        ("obsy-demo/mcp/availability", "stopped"),
        ("obsy/imaging/acquired", acquired),  # a real observatory's, on the same broker
        ("obsy-demo-other/state", "kept"),
    ]:
        publisher.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()
    mosquitto.stop()  # the broker persists them, as the launcher's own Mosquitto does
    mosquitto.start()

    deleted = clear_retained(mosquitto.broker_config(prefix="obsy-demo"))

    assert deleted == ["obsy-demo/imaging/acquired", "obsy-demo/mcp/availability", "obsy-demo/web/targets"]
    assert retained_under(mosquitto, "#") == {
        "obsy/imaging/acquired": acquired.encode(),
        "obsy-demo-other/state": b"kept",
    }
    assert clear_retained(mosquitto.broker_config(prefix="obsy-demo")) == []


def test_no_broker_is_an_error() -> None:
    from obsy.config import BrokerConfig
    from tests.support.ports import free_port

    with pytest.raises(OSError):
        clear_retained(BrokerConfig(port=free_port(), prefix="obsy-demo"), timeout=2)
