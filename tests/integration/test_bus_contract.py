"""The bus contract against a real Mosquitto: availability, reconnect, retained state, bad payloads."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from obsy.bus import Bus, Delivery
from obsy.config import load_config
from tests.support.configs import write_config
from tests.support.echo_service import EchoService
from tests.support.mosquitto import MosquittoBroker
from tests.support.service_thread import ServiceThread
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

AVAILABILITY = "obsy/echo/availability"
STATE = "obsy/echo/state"
HEALTH = "obsy/echo/health"
COMMAND = "obsy/echo/text/set"
REPO = Path(__file__).resolve().parents[2]


def start_echo_process(config_path: Path, run_dir: Path, log_dir: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OBSY_RUN_DIR": str(run_dir), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.echo_service", "run", "--config", str(config_path)],
        cwd=REPO,
        env=env,
        stdout=((log_dir or run_dir) / "echo.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_online_only_after_initial_state_and_offline_on_sigkill(mosquitto, watcher, tmp_path):
    config = write_config(tmp_path, mosquitto)
    proc = start_echo_process(config, tmp_path)
    try:
        online = watcher.wait_payload(AVAILABILITY, b"online", timeout=20)
        states = watcher.on(STATE)
        assert states, "the initial state must be published"
        assert states[0].at <= online.at, "online must follow the initial state"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        watcher.wait_payload(AVAILABILITY, b"offline", timeout=10)
    finally:
        proc.kill()
        proc.wait()
    # A late joiner sees the retained offline.
    late = Watcher(mosquitto.port, [AVAILABILITY])
    try:
        late.wait_payload(AVAILABILITY, b"offline")
    finally:
        late.close()


def test_clean_stop_shows_stopped_and_exits_zero(mosquitto, watcher, tmp_path):
    config = write_config(tmp_path, mosquitto)
    proc = start_echo_process(config, tmp_path)
    try:
        watcher.wait_payload(AVAILABILITY, b"online", timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()
    watcher.wait_payload(AVAILABILITY, b"stopped")
    assert b"offline" not in [m.payload for m in watcher.on(AVAILABILITY)]


def test_healthcheck_reports_a_running_service_and_a_stopped_one(mosquitto, watcher, tmp_path):
    config = write_config(tmp_path, mosquitto)
    run_dir = tmp_path / "run" / "obsy"  # not there yet: the service makes it
    env = {**os.environ, "OBSY_RUN_DIR": str(run_dir), "PYTHONPATH": str(REPO)}
    check = [sys.executable, "-m", "tests.support.echo_service", "healthcheck", "--config", str(config)]
    proc = start_echo_process(config, run_dir, log_dir=tmp_path)
    try:
        watcher.wait_payload(AVAILABILITY, b"online", timeout=20)
        healthy = subprocess.run(check, env=env, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
        assert healthy.returncode == 0, healthy.stdout
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    finally:
        proc.kill()
    stopped = subprocess.run(check, env=env, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert stopped.returncode == 1
    assert "not running" in stopped.stdout


class InProcessService(ServiceThread):
    """The echo service under the real runner, on a thread of the test process (started at once)."""

    def __init__(self, config_path: Path, run_dir: Path) -> None:
        os.environ["OBSY_RUN_DIR"] = str(run_dir)
        super().__init__(EchoService, load_config(config_path), stop_timeout=15)
        self.start()


def test_reconnect_restores_subscriptions_and_retained_state(tmp_path):
    # No persistence: the restarted broker has forgotten every retained message.
    broker = MosquittoBroker(tmp_path, persistence=False)
    broker.start()
    service = InProcessService(write_config(tmp_path, broker), tmp_path)
    try:
        first = Watcher(broker.port, ["obsy/#"])
        first.wait_payload(AVAILABILITY, b"online", timeout=20)
        first.publish(COMMAND, json.dumps({"text": "before"}))
        first.wait_for(lambda ms: any(m.topic == STATE and b'"before"' in m.payload for m in ms))
        first.close()

        broker.stop()
        broker.start()
        bus = service.runner.bus
        deadline = time.monotonic() + 20
        while bus.connect_count < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bus.connect_count >= 2, "the service did not reconnect"
        bus.wait_idle()
        # The service republishes its retained state as it reconnects; a client subscribed before that
        # gets it live. Once one client has seen it, the broker holds it again.
        probe = Watcher(broker.port, [STATE])
        probe.wait_for(lambda ms: any(m.topic == STATE and b'"before"' in m.payload for m in ms))
        probe.close()

        # A client joining after the restart finds the state retained again.
        late = Watcher(broker.port, ["obsy/#"])
        late.wait_payload(AVAILABILITY, b"online", timeout=20)
        late.wait_for(lambda ms: any(m.topic == STATE and m.retain and b'"before"' in m.payload for m in ms))
        # The service subscribed again: a command after the restart is handled.
        late.publish(COMMAND, json.dumps({"text": "after"}))
        late.wait_for(lambda ms: any(m.topic == STATE and b'"after"' in m.payload for m in ms))
        late.close()
    finally:
        service.stop()
        broker.stop()


def test_qos1_messages_published_while_the_broker_is_down_are_delivered(tmp_path):
    broker = MosquittoBroker(tmp_path, persistence=True)
    broker.start()
    service = InProcessService(write_config(tmp_path, broker), tmp_path)
    events = "obsy/echo/events"
    # A persistent subscriber: its session and queue survive the broker restart.
    subscriber = Watcher(broker.port, [events], client_id="qos1-subscriber", clean_session=False)
    try:
        assert service.runner.bus.connected.wait(20)
        subscriber.close()
        broker.stop()
        service.runner.bus.connected.clear()
        for number in range(50):
            service.runner.bus.publish_event({"number": number})
        broker.start()
        subscriber = Watcher(broker.port, [events], client_id="qos1-subscriber", clean_session=False)
        subscriber.wait_for(lambda ms: len({m.payload for m in ms if m.topic == events}) == 50, timeout=30)
        numbers = {json.loads(m.payload)["number"] for m in subscriber.on(events)}
        assert numbers == set(range(50))
    finally:
        subscriber.close()
        service.stop()
        broker.stop()


def malformed_payloads(rng: random.Random, count: int) -> list[bytes]:
    """Payloads that must all be rejected by EchoCommand validation."""
    fixed = [
        b"",
        b"{",
        b"null",
        b"[]",
        b'"text"',
        b"\xff\xfe\x00binary",
        b'{"text": 5}',
        b'{"text": "x", "repeat": "many"}',
        b'{"repeat": 2}',
        b'{"text": "x", "schema_version": 99}',
        b'{"text": "x", "timestamp": "2026-01-01T00:00:00"}',
        b'{"text": "x", "timestamp": "not a time"}',
        b'{"text": "x", "repeat": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"text": ' + b'"' + b"A" * 2_000_000,
    ]
    payloads = list(fixed)
    while len(payloads) < count:
        kind = rng.randrange(4)
        if kind == 0:
            payloads.append(rng.randbytes(rng.randrange(1, 300)))
        elif kind == 1:
            text = json.dumps({"text": rng.random()}) if rng.random() < 0.5 else json.dumps({"txt": "a"})
            payloads.append(text.encode())
        elif kind == 2:
            valid = json.dumps({"text": "ok"})
            cut = rng.randrange(1, len(valid) - 1)
            payloads.append(valid[:cut].encode())
        else:
            payloads.append(json.dumps({"text": "x", "repeat": rng.choice(["1.5x", None, [1], {"a": 1}])}).encode())
    return payloads


def test_fuzzed_payloads_are_counted_and_dropped_and_the_service_keeps_running(mosquitto, watcher, tmp_path):
    config = write_config(tmp_path, mosquitto, plugins={"echo": {"heartbeat_interval": 0.5}})
    proc = start_echo_process(config, tmp_path)
    try:
        watcher.wait_payload(AVAILABILITY, b"online", timeout=20)
        payloads = malformed_payloads(random.Random(20261121), 3000)
        for payload in payloads:
            watcher.client.publish(COMMAND, payload, qos=1)
        watcher.publish(COMMAND, json.dumps({"text": "still alive", "repeat": 2}))
        watcher.wait_for(lambda ms: any(m.topic == STATE and b"still alivestill alive" in m.payload for m in ms), 60)

        def counted(ms):
            healths = [json.loads(m.payload) for m in ms if m.topic == HEALTH]
            return bool(healths) and healths[-1]["invalid_messages"] == len(payloads)

        watcher.wait_for(counted, timeout=30)
        assert proc.poll() is None, "the service must survive malformed payloads"
        last_state = json.loads([m for m in watcher.on(STATE)][-1].payload)
        assert last_state["commands"] == 1, "no malformed payload may change the state"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    output = (tmp_path / "echo.log").read_text()
    assert "dropped invalid payload on obsy/echo/text/set" in output
    # Every payload is counted, but a flood does not flood the log.
    assert output.count("dropped invalid payload") <= 20


class HeldDeliveries:
    """What a ``subscribe_with_ack`` handler received, and the most the bus ever held unacknowledged."""

    def __init__(self, bus: Bus, acknowledge: bool) -> None:
        self.bus = bus
        self.acknowledge = acknowledge
        self.deliveries: list[Delivery] = []
        self.most_unacknowledged = 0
        self.states: list[object] = []  # what the ordinary (automatically acknowledged) handler got
        self._cond = threading.Condition()

    def __call__(self, delivery: Delivery) -> None:
        with self._cond:
            self.most_unacknowledged = max(self.most_unacknowledged, self.bus.unacknowledged)
            self.deliveries.append(delivery)
            self._cond.notify_all()
        if self.acknowledge:
            delivery.ack()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.deliveries) >= count, timeout):
                raise TimeoutError(f"{len(self.deliveries)} of {count} messages arrived")
            return list(self.deliveries)


def manual_ack_bus(mosquitto: MosquittoBroker, acknowledge: bool, limit: int) -> tuple[Bus, HeldDeliveries]:
    bus = Bus(
        mosquitto.broker_config(),
        "drill",
        client_id="manual-ack-drill",
        clean_session=False,
        manual_ack=True,
        max_unacknowledged=limit,
    )
    held = HeldDeliveries(bus, acknowledge)
    bus.subscribe_with_ack("obsy/drill/events", held)
    bus.subscribe("obsy/drill/state", lambda topic, value: held.states.append(value), decode="json")
    assert bus.start(wait=20)
    return bus, held


def subscribed(watcher: Watcher, held: HeldDeliveries, timeout: float = 20.0) -> None:
    """Wait until the bus's subscriptions are in place at the broker (connected is not enough).

    Its subscriptions go out when it connects, in order, the state topic last: once a message on
    the state topic reaches the handler, the broker routes both topics to it.
    """
    deadline = time.monotonic() + timeout
    while "ready" not in held.states:
        assert time.monotonic() < deadline, "the drill bus's subscriptions never took effect"
        watcher.publish("obsy/drill/state", b'"ready"')
        time.sleep(0.1)


def test_manual_ack_bus_gets_again_what_it_did_not_acknowledge_and_holds_a_bounded_number(mosquitto, watcher):
    events, state = "obsy/drill/events", "obsy/drill/state"
    first, held = manual_ack_bus(mosquitto, acknowledge=False, limit=5)
    subscribed(watcher, held)
    # An ordinary handler's message and an invalid one: acknowledged once handled or dropped.
    watcher.publish(state, b'"handled"')
    watcher.publish(state, b"{not json")
    for number in range(12):
        watcher.publish(events, str(number).encode())
    not_acknowledged = held.wait_for(5)
    first.stop()  # as a crash would: nothing of the 5 was acknowledged
    assert held.most_unacknowledged <= 5
    assert [s for s in held.states if s != "ready"] == ["handled"]
    assert first.invalid_messages == 1
    assert [d.payload for d in not_acknowledged] == [str(n).encode() for n in range(5)]

    second, again = manual_ack_bus(mosquitto, acknowledge=True, limit=5)
    try:
        arrived = again.wait_for(12)
        assert sorted(int(d.payload) for d in arrived) == list(range(12))
        assert again.most_unacknowledged <= 5
        resent = {d.payload: d for d in arrived if d.resent}
        for delivery in not_acknowledged:  # the broker sent them again, same packet id, DUP flag set
            assert resent[delivery.payload].packet_id == delivery.packet_id
        assert second.wait_idle()
    finally:
        second.stop()

    third, after = manual_ack_bus(mosquitto, acknowledge=True, limit=5)
    try:
        watcher.publish(events, b"last")
        # Resends come before new messages: once "last" is here, nothing acknowledged came back.
        assert [d.payload for d in after.wait_for(1)] == [b"last"]
        assert after.states == []
        assert third.wait_idle()
        assert third.unacknowledged == 0
    finally:
        third.stop()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_bus_held_back_again_and_again_warns_once_not_per_message(mosquitto, watcher):
    """Under sustained load the limit holds for nearly every message: one warning, not a flood."""
    bus, held = manual_ack_bus(mosquitto, acknowledge=False, limit=2)
    stop = threading.Event()

    def acknowledge_slowly() -> None:
        """A writer that falls behind: it acknowledges only once the bus is full, and slowly."""
        done = 0
        while not stop.is_set() and done < 40:
            with held._cond:
                full = held._cond.wait_for(lambda done=done: len(held.deliveries) - done >= 2 or stop.is_set(), 1.0)
                waiting = held.deliveries[done:]
            if full and done + len(waiting) < 40:
                time.sleep(0.05)  # the next message waits at the limit meanwhile
            for delivery in waiting:
                delivery.ack()
            done += len(waiting)

    acknowledger = threading.Thread(target=acknowledge_slowly, daemon=True)
    try:
        subscribed(watcher, held)
        acknowledger.start()
        records = Records()
        logging.getLogger("obsy.bus").addHandler(records)
        try:
            for number in range(40):
                watcher.publish("obsy/drill/events", str(number).encode())
            held.wait_for(40, timeout=30)
        finally:
            logging.getLogger("obsy.bus").removeHandler(records)
        assert held.most_unacknowledged == 2  # it was held back at the limit, more than once
        warnings = [m for m in records.messages if "unacknowledged messages" in m]
        assert len(warnings) == 1, warnings
    finally:
        stop.set()
        bus.stop()


def test_home_assistant_device_links_to_the_configured_dashboard(mosquitto, tmp_path):
    """Every discovery config of a running service names the device with the dashboard's address
    (``homeassistant.configuration_url``), and passes the discovery linter."""
    from obsy.homeassistant.lint import lint_discovery

    url = "http://observatory.local:8080/"
    config = write_config(tmp_path, mosquitto, homeassistant={"enabled": True, "configuration_url": url})
    configs = Watcher(mosquitto.port, ["homeassistant/#"])
    proc = start_echo_process(config, tmp_path)
    try:
        announced = configs.wait_for(lambda messages: len([m for m in messages if m.payload]) >= 3, timeout=20)
        for message in [m for m in announced if m.payload]:
            payload = json.loads(message.payload)
            assert payload["device"]["configuration_url"] == url, message.topic
            assert lint_discovery(message.topic.split("/")[1], payload) == [], message.topic
    finally:
        configs.close()
        proc.terminate()
        proc.wait(20)
    bad = write_config(tmp_path, mosquitto, homeassistant={"enabled": True, "configuration_url": "observatory"})
    from obsy.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="configuration_url"):
        load_config(bad, env={})
