"""The sequences and the one command path, on the real roof and mount simulators (no broker needed).

The controller runs in-process with its inputs set directly (as the service's bus handlers do)
and its states and events recorded; the roof and mount are ``indi_rolloff_dome`` and
``indi_simulator_telescope`` on a real indiserver, watched from a second INDI client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from obsy import astro
from obsy.config import ObsyConfig
from obsy.indi import IndiClient
from obsy.messages import CloudState, Mode, PlannedBlock, SafetyVerdict, SchedulerPlan, ServiceHealth
from obsy_mcp import operator_state
from obsy_mcp.controller import Controller
from obsy_mcp.operator_state import OperatorState
from obsy_mcp.statemachine import RoofPosition, State
from tests.support.indiserver import ROOF, TELESCOPE, IndiServer, require_indi
from tests.support.mcp_harness import DRIVERS, IndiRecorder, Recorded, prepare_devices

pytestmark = pytest.mark.integration
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

SITE = {"latitude": 48.2, "longitude": 16.4, "timezone": "Europe/Vienna"}


class Running:
    """An in-process controller on the test's indiserver, everything safe and dark, a plan for tonight."""

    def __init__(self, tmp_path: Path, indi: IndiServer) -> None:
        server = indi.config()
        self.config = ObsyConfig.model_validate(
            {
                "site": SITE,
                "data_dir": str(tmp_path),
                "indi": {"host": server.host, "port": server.port, "connect_timeout": 5},
                "mcp": {
                    "startup_grace": 0.0,
                    "safe_delay": 0.0,
                    "evaluate_interval": 0.2,
                    "required_services": ["weather"],
                    "devices": {"roof": ROOF, "mount": TELESCOPE, "retries": 1, "retry_delay": 0.5, "roof_timeout": 30},
                },
            }
        )
        operator_state.save(operator_state.state_path(self.config), OperatorState(Mode.AUTO))
        self.outbox = Recorded()
        self.indi = IndiClient.from_config(self.config.indi, timeout=5.0)
        self.controller = Controller(self.config, self.indi, self.outbox, sun_altitude=lambda: -30.0)
        inputs, now = self.controller.inputs, datetime.now(UTC)
        inputs.set_verdict(SafetyVerdict(safe=True))
        inputs.set_cloud(CloudState(clear=True, label="clear"))
        inputs.set_availability("weather", "online")
        inputs.set_health("weather", ServiceHealth(service="weather", heartbeat_interval_s=600.0))
        block = PlannedBlock(target_id="m31", target_name="M 31", start=now, end=now + timedelta(hours=2))
        tonight = astro.night_of(self.config.site, now).isoformat()
        inputs.set_plan(SchedulerPlan(night=tonight, blocks=[block]))

    def start(self) -> Running:
        self.controller.restore_operator_state()
        self.controller.start()
        return self

    def close(self) -> None:
        self.controller.stop()
        self.indi.disconnect()

    def until(self, what: str, check: Callable[[], bool], timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                kinds = [f"{e.kind}: {e.message}" for e in self.outbox.events[-12:]]
                raise AssertionError(f"{what}: not within {timeout} s; last events: {kinds}")
            time.sleep(0.05)

    def messages(self, kind: str) -> list[str]:
        return [e.message for e in self.outbox.of_kind(kind)]

    def moves(self) -> list[tuple[str, str]]:
        return [(e.data["from"], e.data["to"]) for e in self.outbox.of_kind("transition")]


@pytest.fixture
def mcp(tmp_path: Path, indi: IndiServer) -> Iterator[Running]:
    running = Running(tmp_path, indi)
    try:
        yield running
    finally:
        running.close()


def roof_busy(recorder: IndiRecorder, element: str) -> None:
    """Wait until the roof driver reports it moving: ``PARK`` (closing) or ``UNPARK`` (opening)."""
    recorder.wait(lambda r: r.name == "DOME_PARK" and r.state == "Busy" and r.values[element], timeout=30)


@pytest.mark.devices_at_start(roof_open=True, mount_parked=True)
def test_stop_during_a_closing_halts_the_roof_hands_over_and_drops_what_waited_for_the_closing(
    mcp: Running, indi: IndiServer, recorder: IndiRecorder
) -> None:
    prepare_devices(indi.config(), roof_open=True, mount_parked=True)
    mcp.start()
    mcp.until("observing", lambda: mcp.controller.state is State.OBSERVING)
    recorder.clear()

    assert mcp.controller.command("night", "ABORT").accepted
    roof_busy(recorder, "PARK")
    kept = mcp.controller.command("mode", "off")  # waits for the closing ...
    assert kept.accepted and kept.deferred
    stop = mcp.controller.command("roof", "STOP")
    assert stop.accepted and not stop.deferred

    mcp.until("manual", lambda: mcp.controller.state is State.MANUAL)
    assert mcp.moves()[-2:] == [("observing", "closing"), ("closing", "manual")]
    assert mcp.outbox.of_kind("transition")[-1].data["reason"] == "STOP: roof halted by the operator"
    assert [m for m in mcp.messages("device_action") if m.startswith("close_roof")] == [
        "close_roof: started (attempt 1)",
        f"close_roof: interrupted ({ROOF}: closing interrupted)",
    ]  # halted, not retried
    assert not mcp.outbox.of_kind("step_failed") and not mcp.outbox.of_kind("alarm")
    (dropped,) = mcp.outbox.of_kind("deferred_commands_dropped")  # ... and STOP drops it
    assert dropped.data["commands"] == [{"thing": "mode", "value": "off"}]
    assert not mcp.outbox.of_kind("deferred_command_applied")
    assert mcp.controller.inputs.mode is Mode.MANUAL
    assert recorder.first(lambda r: r.name == "DOME_ABORT_MOTION") >= 0
    time.sleep(1.5)
    assert mcp.controller.roof.position() is RoofPosition.STOPPED  # it stays where the operator stopped it
    assert mcp.controller.state is State.MANUAL


def test_close_during_an_opening_cuts_it_short_then_closes_and_open_reopens(
    mcp: Running, indi: IndiServer, recorder: IndiRecorder
) -> None:
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    recorder.clear()
    mcp.start()
    roof_busy(recorder, "UNPARK")

    close = mcp.controller.command("roof", "CLOSE")
    assert close.accepted and not close.deferred

    mcp.until("closed, standby", lambda: mcp.controller.state is State.STANDBY)
    assert mcp.controller.roof.position() is RoofPosition.CLOSED
    assert mcp.controller.reason == "night ended by the operator"  # CLOSE in auto: closed for tonight
    assert mcp.moves() == [("starting", "opening"), ("opening", "closing"), ("closing", "standby")]
    assert f"open_roof: interrupted ({ROOF}: opening interrupted)" in mcp.messages("device_action")
    assert not mcp.outbox.of_kind("step_failed") and not mcp.outbox.of_kind("alarm")
    aborted = recorder.first(lambda r: r.name == "DOME_ABORT_MOTION")
    closing = recorder.first(lambda r: r.name == "DOME_PARK" and r.state == "Busy" and r.values["PARK"])
    assert 0 <= aborted < closing  # the opening was aborted before the roof was sent closed

    # OPEN asks what the rules would say if the night went on, without ending or resuming anything ...
    assert mcp.controller.commands.open_refusals() == []
    assert mcp.controller.inputs.night_aborted and mcp.controller.state is State.STANDBY
    # ... and, accepted, resumes the night: the roof opens again.
    assert mcp.controller.command("roof", "OPEN").accepted
    mcp.until("observing again", lambda: mcp.controller.state is State.OBSERVING)
    assert mcp.controller.roof.position() is RoofPosition.OPEN and not mcp.controller.inputs.night_aborted
