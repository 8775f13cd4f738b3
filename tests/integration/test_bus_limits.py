"""Payload sizes are capped at the bus, per topic kind, against a real Mosquitto (broker.max_payload)."""

from __future__ import annotations

import logging
import threading

import pytest

from obsy.bus import Bus
from obsy.config import PayloadLimitsConfig
from obsy.messages import Event
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

COMMAND = "obsy/echo/text/set"
EVENTS = "obsy/echo/events"
IMAGE = "obsy/allsky/image"
MB = 1024 * 1024


class Received:
    """What one subscription's handler got, by topic."""

    def __init__(self) -> None:
        self.payloads: list[tuple[str, bytes]] = []
        self.changed = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self.changed:
            self.payloads.append((topic, payload))
            self.changed.notify_all()

    def wait_for(self, payload: bytes, timeout: float = 20.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: any(p == payload for _t, p in self.payloads), timeout)

    def subscribed(self, watcher: Watcher) -> None:
        """Wait until the bus's subscription is in place (the broker answers it after the connection)."""
        for _ in range(100):
            watcher.publish(COMMAND, b"ready")
            if self.wait_for(b"ready", 0.2):
                self.payloads.clear()
                return
        raise AssertionError("the bus never received what was published")


@pytest.fixture
def bus(mosquitto: MosquittoBroker) -> Bus:
    bus = Bus(mosquitto.broker_config(), "echo")
    yield bus
    bus.stop()


def test_oversize_commands_are_dropped_at_the_bus_counted_and_logged_once(
    bus: Bus, watcher: Watcher, caplog: pytest.LogCaptureFixture
) -> None:
    received = Received()
    bus.subscribe("obsy/#", received, decode="bytes")
    assert bus.start(wait=10)
    received.subscribed(watcher)
    caplog.set_level(logging.WARNING, logger="obsy.bus")
    huge, large = b"OPEN" + b"\n\x00<x>" * (10 * MB // 7), b"A" * 100_000

    watcher.publish(COMMAND, huge)
    watcher.publish(COMMAND, large)
    watcher.publish(COMMAND, b"CLOSE")  # after them on the same connection: they have been handled
    assert received.wait_for(b"CLOSE")
    bus.wait_idle()

    assert [p for t, p in received.payloads if t == COMMAND and p != b"ready"] == [b"CLOSE"]
    assert bus.oversize_messages == 2
    assert bus.invalid_messages == 2  # what the service's health reports
    assert bus.invalid_by_topic[COMMAND] == 2
    lines = [r.getMessage() for r in caplog.records if COMMAND in r.getMessage()]
    assert len(lines) == 2, lines  # one line per message, naming topic and size
    assert f"{len(huge)} bytes" in lines[0] and "broker.max_payload.command" in lines[0]
    assert f"{len(large)} bytes" in lines[1]
    assert all(len(line) < 200 for line in lines), "a dropped payload is never echoed"


def test_each_topic_kind_has_its_own_limit_and_legitimate_payloads_pass(bus: Bus, watcher: Watcher) -> None:
    received = Received()
    bus.subscribe("obsy/#", received, decode="bytes")
    assert bus.start(wait=10)
    received.subscribed(watcher)
    limits = PayloadLimitsConfig()
    event = Event(service="echo", kind="big", data={"blob": "x" * 200_000}).to_json()  # under the event limit
    jpeg = b"\xff\xd8" + bytes(range(256)) * (5 * MB // 256)  # the allsky JPEG at its widest is a few MiB
    over_event = b"y" * (limits.event + 1)

    watcher.publish(EVENTS, event)
    watcher.publish(IMAGE, jpeg)
    watcher.publish(EVENTS, over_event)
    watcher.publish(COMMAND, b"x" * limits.command)  # exactly at the limit: kept
    watcher.publish(COMMAND, b"done")
    assert received.wait_for(b"done")
    bus.wait_idle()

    kept = [p for _t, p in received.payloads]
    assert event in kept and jpeg in kept and b"x" * limits.command in kept
    assert over_event not in kept
    assert bus.oversize_messages == 1


def test_invalid_payload_logs_show_only_a_short_escaped_excerpt(
    bus: Bus, watcher: Watcher, caplog: pytest.LogCaptureFixture
) -> None:
    received = Received()
    bus.subscribe(EVENTS, received, Event)
    bus.subscribe(COMMAND, received, decode="bytes")
    assert bus.start(wait=10)
    received.subscribed(watcher)
    caplog.set_level(logging.WARNING, logger="obsy.bus")
    forged = '{"service": "x\nWARNING forged log line ' + "z" * 50_000 + '"'  # not JSON: cut short

    watcher.publish(EVENTS, forged)
    watcher.publish(COMMAND, b"done")
    assert received.wait_for(b"done")
    bus.wait_idle()

    lines = [r.getMessage() for r in caplog.records if EVENTS in r.getMessage()]
    assert len(lines) == 1, [r.getMessage()[:300] for r in caplog.records]
    assert "\n" not in lines[0], "a control character in a payload must not start a log line of its own"
    assert "\\nWARNING forged" in lines[0]
    assert len(lines[0]) < 400
    assert f"({len(forged)} bytes)" in lines[0]
