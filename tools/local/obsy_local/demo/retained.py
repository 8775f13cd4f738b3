"""A new demo starts from an empty bus: the retained messages of an earlier demo are deleted first.

The demo starts a new database every time, but the broker keeps what the services published retained
under the demo's prefix (Mosquitto persists it across restarts, and a broker that was already running
keeps it anyway). Until each service has published again, the new dashboard would show the earlier
demo's plan, roof state and allsky frame; and the imaging service's accepted frames per target
(``<prefix>/imaging/acquired``) are counted by the web service against the new demo's targets of the
same names: with the imaging repository (``<data_dir>/demo/imaging``) removed to start afresh, the LRGB
target's bias and darks would count as taken, not be planned again, and its lights would wait for a
master dark that no longer exists. So before any service starts, every retained message under the prefix
goes (an empty retained payload deletes one, MQTT 3.1.1 section 3.3.1.3); the imaging service then
publishes the counts of the repository that is there.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import paho.mqtt.client as mqtt

from obsy.bus import broker_client
from obsy.config import BrokerConfig

log = logging.getLogger("obsy_local.demo.retained")

#: The broker sends the retained messages right after the subscription: this long without one, they are all in.
QUIET_S = 0.5


def clear_retained(broker: BrokerConfig, *, timeout: float = 10.0) -> list[str]:
    """Delete every retained message under ``broker.prefix``; the topics deleted, sorted. Raises
    ``OSError`` when the broker cannot be reached, ``TimeoutError`` when it does not answer in time."""
    found: set[str] = set()
    last_arrival = [time.monotonic()]
    subscribed = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain and message.payload:
            found.add(message.topic)
        last_arrival[0] = time.monotonic()

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, properties: object) -> None:
        client.subscribe(f"{broker.prefix}/#", qos=1)

    def on_subscribe(client: mqtt.Client, userdata: object, mid: int, reasons: object, properties: object) -> None:
        last_arrival[0] = time.monotonic()
        subscribed.set()

    client = broker_client(broker, f"obsy-demo-reset-{os.getpid()}")
    client.on_connect, client.on_message, client.on_subscribe = on_connect, on_message, on_subscribe
    deadline = time.monotonic() + timeout
    client.connect(broker.host, broker.port, keepalive=broker.keepalive)
    client.loop_start()
    try:
        if not subscribed.wait(timeout):
            raise TimeoutError(f"the broker at {broker.host}:{broker.port} did not confirm the subscription")
        while time.monotonic() - last_arrival[0] < QUIET_S and time.monotonic() < deadline:
            time.sleep(0.05)
        topics = sorted(found)
        for topic in topics:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(max(0.1, deadline - time.monotonic()))
    finally:
        client.disconnect()
        client.loop_stop()
    return topics
