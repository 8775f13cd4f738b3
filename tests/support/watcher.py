"""A plain paho client that records what arrives, for asserting on the bus from outside a service."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float


class Watcher:
    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        host: str = "127.0.0.1",
        client_id: str = "",
        clean_session: bool = True,
    ) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._topics = topics
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("watcher could not subscribe")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append(
                Received(message.topic, bytes(message.payload), bool(message.retain), time.monotonic())
            )
            self._cond.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[-10:]]
                    raise TimeoutError(f"condition not met within {timeout} s; last messages: {seen}")
                self._cond.wait(remaining)
            return list(self.messages)

    def wait_payload(self, topic: str, payload: bytes, timeout: float = 10.0) -> Received:
        self.wait_for(lambda msgs: any(m.topic == topic and m.payload == payload for m in msgs), timeout)
        return next(m for m in self.on(topic) if m.payload == payload)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
