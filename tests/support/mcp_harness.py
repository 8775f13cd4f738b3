"""Helpers for the MCP tests: the service in-process, its inputs on the bus, INDI recorded from outside."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from obsy import astro
from obsy.config import IndiServerConfig, ObsyConfig, load_config
from obsy.indi import IndiClient
from obsy.messages import (
    CloudState,
    Event,
    McpState,
    PlannedBlock,
    SafetyReason,
    SafetyVerdict,
    SchedulerPlan,
    ServiceHealth,
)
from obsy.topics import Topics
from obsy_mcp.service import McpService
from obsy_mcp.service import main as mcp_main
from tests.support.configs import write_config
from tests.support.indiserver import ROOF, TELESCOPE, IndiServer
from tests.support.mosquitto import MosquittoBroker
from tests.support.service_thread import ServiceThread
from tests.support.watcher import Watcher

DRIVERS = ["indi_rolloff_dome", "indi_simulator_telescope"]


class Recorded:
    """Where an in-process controller's states and events go (its outbox) when no broker is needed."""

    def __init__(self) -> None:
        self.states: list[McpState] = []
        self.events: list[Event] = []

    def state(self, state: McpState) -> None:
        self.states.append(state)

    def event(self, event: Event) -> None:
        self.events.append(event)

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


class Sky:
    """The Sun's altitude as the MCP sees it in a test (the real one depends on when the test runs)."""

    def __init__(self, altitude: float = -25.0) -> None:
        self.altitude = altitude

    def __call__(self) -> float:
        return self.altitude


def midnight_site() -> dict[str, Any]:
    """A site on the equator where it is local midnight now: the real Sun is far below the horizon.

    For an MCP in its own process, where the Sun cannot be injected; good for hours.
    """
    now = datetime.now(UTC)
    hours = now.hour + now.minute / 60
    longitude = (-hours * 15.0 + 180.0) % 360.0 - 180.0  # local solar time = UTC + longitude / 15 h
    return {"name": "Midnight test site", "latitude": 0.0, "longitude": round(longitude, 2), "timezone": "UTC"}


def operator_decides(config: ObsyConfig, *decision: str) -> None:
    """The operator's decision before the MCP starts, the documented way: ``obsy-mcp decision ...``."""
    assert config.source_file is not None
    assert mcp_main(["decision", *decision, "--config", str(config.source_file)]) == 0


def mcp_config(
    tmp_path: Path,
    broker: MosquittoBroker,
    indi: IndiServerConfig,
    *,
    site: dict[str, Any] | None = None,
    decided: bool = True,
    **mcp: Any,
) -> ObsyConfig:
    """The MCP's config for a test; ``decided``: the operator has told it to run tonight in auto mode.

    Without a saved decision the MCP opens nothing until an operator acts (docs/mcp.md).
    """
    settings: dict[str, Any] = {
        "startup_grace": 3.0,
        "safe_delay": 0.0,
        "broker_grace": 3.0,
        "evaluate_interval": 0.2,
        "heartbeat_interval": 2.0,
        "required_services": ["weather"],
        "devices": {"roof": ROOF, "mount": TELESCOPE, "retries": 1, "retry_delay": 0.5, "roof_timeout": 30},
    }
    for key, value in mcp.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    extra: dict[str, Any] = {"site": site} if site else {}
    path = write_config(
        tmp_path, broker, indi={"host": indi.host, "port": indi.port, "connect_timeout": 5}, mcp=settings, **extra
    )
    config = load_config(path)
    if decided:
        operator_decides(config, "--mode", "auto", "--night", "start")
    return config


class McpProcess(ServiceThread):
    """The MCP service run by the common runner on a thread, with an injected Sun."""

    def __init__(self, config: ObsyConfig, sky: Sky, **options: Any) -> None:
        class TestMcp(McpService):
            def __init__(self, config: ObsyConfig, bus: Any) -> None:
                super().__init__(config, bus, sun_altitude=sky, **options)

        super().__init__(TestMcp, config, name="mcp-under-test")

    @property
    def service(self) -> McpService:
        return self.runner.service  # type: ignore[return-value]

    def stop(self, wait: float = 30.0) -> None:
        """Stop as SIGTERM does (in auto mode the MCP closes the roof first); a second request after ``wait``."""
        self.stop_timeout = wait
        super().stop()
        if self.thread.is_alive():
            self.runner.request_stop()  # as a second SIGTERM: exit now
            self.thread.join(10)


class McpSubprocess:
    """The MCP as deployed: its own process (``python -m obsy_mcp run``), stopped by real signals."""

    def __init__(self, config: ObsyConfig, log_path: Path) -> None:
        assert config.source_file is not None
        self.log_path = log_path
        self._log = log_path.open("wb")
        argv = [sys.executable, "-m", "obsy_mcp", "run", "--config", str(config.source_file), "--log-format", "text"]
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.flush()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


class Inputs:
    """Publishes what the other services would: weather verdict, sky, plan, availability, heartbeats."""

    def __init__(self, watcher: Watcher, topics: Topics, config: ObsyConfig) -> None:
        self.watcher = watcher
        self.topics = topics
        self.config = config

    def publish(self, topic: str, payload: Any, retain: bool = True) -> None:
        data = payload.model_dump_json() if hasattr(payload, "model_dump_json") else payload
        self.watcher.publish(topic, data, retain=retain)

    def weather(self, safe: bool, why: str = "rain detected") -> None:
        reasons = [] if safe else [SafetyReason(quantity="rain", message=why, value=True, limit=False)]
        self.publish(self.topics.weather_safety, SafetyVerdict(safe=safe, reasons=reasons))

    def weather_alive(self, interval: float = 2.0) -> None:
        self.publish(self.topics.availability("weather"), "online")
        self.heartbeat("weather", interval)

    def heartbeat(self, service: str, interval: float = 2.0) -> None:
        self.publish(self.topics.health(service), ServiceHealth(service=service, heartbeat_interval_s=interval))

    def sky(self, clear: bool) -> None:
        self.publish(self.topics.clouddetect_state, CloudState(clear=clear, label="clear" if clear else "cloudy"))

    def plan(self, schedule: str | None = None) -> None:
        now = datetime.now(UTC)
        night = astro.night_of(self.config.site, now).isoformat()
        block = PlannedBlock(target_id="m31", target_name="M 31", start=now, end=now + timedelta(hours=2))
        plan = SchedulerPlan(night=night, blocks=[block], ekos_schedule_path=schedule)
        self.publish(self.topics.scheduler_plan, plan)

    def all_safe(self, schedule: str | None = None) -> None:
        self.weather_alive()
        self.weather(True)
        self.sky(True)
        self.plan(schedule)


class Heartbeats:
    """Keeps a service's heartbeat going from a thread, like the runner does, until stopped."""

    def __init__(self, inputs: Inputs, service: str = "weather", interval: float = 1.0) -> None:
        self.inputs, self.service, self.interval = inputs, service, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # the broker may be down in a test; try again on the next beat
                self.inputs.heartbeat(self.service, self.interval)
            self._stop.wait(self.interval)

    def start(self) -> Heartbeats:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class IndiRecord:
    at: float
    device: str
    name: str
    state: str
    values: dict[str, Any]


class IndiRecorder:
    """An independent INDI client that records every report of the roof and the mount."""

    WATCHED = ("DOME_PARK", "DOME_ABORT_MOTION", "TELESCOPE_PARK", "TELESCOPE_ABORT_MOTION")
    #: How long no new property must come before the definitions count as all received.
    SETTLED_S = 0.5

    def __init__(self, server: IndiServerConfig) -> None:
        self.client = IndiClient.from_config(server, timeout=10.0)
        self.records: list[IndiRecord] = []
        self._lock = threading.Condition()
        self.client.add_listener(self._record)  # before connecting: every definition is recorded
        self.client.connect()
        self._settle()

    def _settle(self, timeout: float = 10.0) -> None:
        """Wait until the listener has recorded the definitions the client has received of the watched
        properties: on a loaded machine the listener runs behind, and a definition recorded after a
        test's :meth:`clear` would look like a report made since (a mount "aborted" that never was).

        Settled: every watched property the client has is recorded and no new property has come for
        :data:`SETTLED_S`. Drivers not connected yet define none of them (the test connects them
        later, and their definitions are then recorded as they come): waiting for one cost every
        such test its whole ``timeout``."""
        deadline = time.monotonic() + timeout
        count, changed = -1, time.monotonic()
        while time.monotonic() < deadline:
            names = [(device, name) for device in self.client.devices() for name in self.client.properties(device)]
            if len(names) != count:
                count, changed = len(names), time.monotonic()
            known = {(device, name) for device, name in names if name in self.WATCHED}
            with self._lock:
                seen = {(r.device, r.name) for r in self.records}
            if names and known <= seen and time.monotonic() - changed >= self.SETTLED_S:
                return
            time.sleep(0.05)

    def _record(self, device: str, name: str, state: str, values: Any) -> None:
        if name in self.WATCHED:
            with self._lock:
                self.records.append(IndiRecord(time.monotonic(), device, name, state, dict(values)))
                self._lock.notify_all()

    def clear(self) -> None:
        with self._lock:
            self.records.clear()

    def first(self, predicate: Callable[[IndiRecord], bool]) -> int:
        """Index of the first record matching ``predicate``; -1 when none does."""
        with self._lock:
            return next((i for i, r in enumerate(self.records) if predicate(r)), -1)

    def wait(self, predicate: Callable[[IndiRecord], bool], timeout: float = 10.0) -> int:
        """Index of the first record matching ``predicate``, waiting for it (the listener runs behind)."""
        with self._lock:
            if not self._lock.wait_for(lambda: any(predicate(r) for r in self.records), timeout):
                raise TimeoutError(f"no matching INDI report within {timeout} s; records: {self.records[-10:]}")
        return self.first(predicate)

    def close(self) -> None:
        self.client.disconnect()


def prepare_devices(server: IndiServerConfig, *, roof_open: bool, mount_parked: bool, fast_park: bool = True) -> None:
    """Put the simulators where a test starts; ``fast_park``: the park position is where the mount is.

    Without it the telescope simulator parks at HA -6 h, Dec 0, a slew of some 15 s.
    """
    with IndiClient.from_config(server, timeout=30.0) as client:
        for device in (ROOF, TELESCOPE):
            client.connect_device(device)
        client.wait_for(TELESCOPE, "TELESCOPE_PARK", lambda p: any(p.values.values()), what="park state known")
        client.wait_for(ROOF, "DOME_PARK", lambda p: any(p.values.values()), what="park state known")
        # A parked mount refuses a new park position (and is at its park position anyway).
        if fast_park and not client.get_switch(TELESCOPE, "TELESCOPE_PARK")["PARK"]:
            # Drivers define their properties in stages: the park option may come after the park state.
            client.wait_property(TELESCOPE, "TELESCOPE_PARK_OPTION")
            client.set_switch(TELESCOPE, "TELESCOPE_PARK_OPTION", "PARK_CURRENT")
        client.set_switch(TELESCOPE, "TELESCOPE_PARK", "PARK" if mount_parked else "UNPARK", wait=False)
        client.wait_for(
            TELESCOPE,
            "TELESCOPE_PARK",
            lambda p: p.state == "Ok" and p.values["PARK" if mount_parked else "UNPARK"],
            timeout=30,
        )
        element = "UNPARK" if roof_open else "PARK"
        if not client.get_switch(ROOF, "DOME_PARK")[element]:
            client.set_switch(ROOF, "DOME_PARK", element, wait=False)
        client.wait_for(ROOF, "DOME_PARK", lambda p: p.state == "Ok" and p.values[element], timeout=30)


def states(watcher: Watcher, topics: Topics) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in watcher.on(topics.mcp_state) if m.payload]


def events(watcher: Watcher, topics: Topics) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in watcher.on(topics.events("mcp"))]


def wait_state(watcher: Watcher, topics: Topics, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30):
    """The first MCP state that matches, waiting for it."""

    def found(_messages: Any) -> bool:
        return any(predicate(s) for s in states(watcher, topics))

    try:
        watcher.wait_for(found, timeout)
    except TimeoutError as error:
        raise TimeoutError(f"{error}\n\nthe MCP's last state: {last_state_said(watcher, topics)}") from None
    return next(s for s in states(watcher, topics) if predicate(s))


def last_state_said(watcher: Watcher, topics: Topics) -> str:
    """The MCP's last published state in a line: state, reason, roof, mount, safety, Ekos, its last moves."""
    published = states(watcher, topics)
    if not published:
        return "none published"
    last = published[-1]
    moves = "; ".join(
        f"{t.get('at', '')[11:19]} {t.get('from_state')} -> {t.get('to_state')} ({t.get('reason')})"
        for t in last.get("recent_transitions", [])[-4:]
    )
    keys = ("state", "reason", "roof", "mount_parked", "safe", "unsafe_reasons", "ekos_scheduler", "alarm_reason")
    return ", ".join(f"{key}={last.get(key)!r}" for key in keys) + f"; moves: {moves or 'none'}"


# ---------------------------------------------------------------------- set-ups and event helpers

TOPICS = Topics()


#: The ``indi`` fixture's start for a test that begins observing (:func:`observing_mcp`): roof open, mount unparked.
OBSERVING_AT_START = pytest.mark.devices_at_start(roof_open=True, mount_parked=False)


def observing_mcp(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, fast_park: bool = True, **mcp: Any
) -> tuple[McpProcess, Inputs]:
    """Roof open, mount unparked, everything safe: the MCP reads that back and observes.

    Mark the test :data:`OBSERVING_AT_START`: the simulators then start there, with no travel."""
    prepare_devices(indi.config(), roof_open=True, mount_parked=False, fast_park=fast_park)
    config = mcp_config(tmp_path, mosquitto, indi.config(), **mcp)
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    process = McpProcess(config, Sky(-25.0)).start()
    state = wait_state(watcher, TOPICS, lambda s: s["state"] == "observing")
    assert state["roof"] == "open"
    assert state["safe"] is True
    return process, inputs


@contextlib.contextmanager
def mcp_observing(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, fast_park: bool = True, **mcp: Any
) -> Iterator[tuple[McpProcess, Inputs]]:
    """:func:`observing_mcp` with the weather service's heartbeat going; both stop on leaving."""
    process, inputs = observing_mcp(tmp_path, mosquitto, indi, watcher, fast_park, **mcp)
    beats = Heartbeats(inputs).start()
    try:
        yield process, inputs
    finally:
        beats.stop()
        process.stop()


def of_kind(watcher: Watcher, kind: str) -> list[dict[str, Any]]:
    """The MCP's events of one kind, in order."""
    return [e for e in events(watcher, TOPICS) if e["kind"] == kind]


def wait_event(watcher: Watcher, kind: str, timeout: float = 30, count: int = 1) -> dict[str, Any]:
    """The ``count``-th MCP event of ``kind``, waiting for it."""
    watcher.wait_for(lambda _m: len(of_kind(watcher, kind)) >= count, timeout)
    return of_kind(watcher, kind)[count - 1]
