"""The MCP watches the Ekos scheduler while observing: finished -> close for the night; aborted -> policy.

A stand-in Ekos on a private D-Bus (tests/support/ekos_standin.py) finishes or aborts the
schedule when the test says so; the roof and mount are the real simulators on a real
indiserver, the broker a real Mosquitto. (The same watch against the real KStars is in
test_mcp_ekos.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsy.topics import Topics
from obsy_mcp.ekos import SchedulerStatus
from tests.support.ekos_standin import EkosStandIn, dbus_daemon_available
from tests.support.indiserver import ROOF, IndiServer, require_indi
from tests.support.mcp_harness import (
    DRIVERS,
    Heartbeats,
    IndiRecorder,
    Inputs,
    McpProcess,
    Sky,
    mcp_config,
    of_kind,
    prepare_devices,
    states,
    wait_event,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = [
    pytest.mark.integration,
    pytest.mark.long(seconds=45),
    pytest.mark.skipif(not dbus_daemon_available(), reason="dbus-daemon is not installed"),
]
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

TOPICS = Topics()


@pytest.fixture
def ekos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EkosStandIn]:
    with EkosStandIn(tmp_path_factory.mktemp("eb")) as standin:  # short: a unix socket path
        yield standin


def observing_with_ekos(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, ekos: EkosStandIn, **settings: Any
) -> tuple[McpProcess, Heartbeats]:
    """Roof closed, dark, safe, a plan: the MCP opens and starts tonight's schedule on the stand-in."""
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    ekos_settings = {"enabled": True, "bus_address": ekos.address, "poll_interval": 0.3, "call_timeout": 2, **settings}
    config = mcp_config(tmp_path, mosquitto, indi.config(), ekos=ekos_settings)
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe(schedule=str(tmp_path / "tonight.esl"))
    beats = Heartbeats(inputs).start()
    process = McpProcess(config, Sky(-25.0)).start()
    observing = wait_state(watcher, TOPICS, lambda s: s["state"] == "observing" and s["roof"] == "open", 60)
    assert observing["ekos_scheduler"] == "running"
    assert ekos.count("Scheduler.loadScheduler") == 1 and ekos.count("Scheduler.start") == 1
    return process, beats


@pytest.mark.parametrize("finished", [SchedulerStatus.IDLE, SchedulerStatus.SHUTDOWN])
def test_a_finished_schedule_closes_for_the_night(  # noqa: PLR0917 - fixtures
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    indi: IndiServer,
    watcher: Watcher,
    ekos: EkosStandIn,
    finished: SchedulerStatus,
) -> None:
    process, beats = observing_with_ekos(tmp_path, mosquitto, indi, watcher, ekos)
    try:
        ekos.status = finished
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "standby", 60)
        assert closed["roof"] == "closed"
        assert closed["reason"] == "schedule finished"
        assert closed["mount_parked"] is True
        assert closed["night_aborted"] is True  # stays closed until START or the next observing night
        assert wait_event(watcher, "ekos_schedule_finished")["message"].startswith("the Ekos schedule has finished")
        moves = [(t["from_state"], t["to_state"], t["reason"]) for t in closed["recent_transitions"]]
        assert ("observing", "closing", "schedule finished") in moves
        assert ("closing", "standby", "schedule finished") in moves
    finally:
        process.stop()
        beats.stop()


def test_an_aborted_schedule_is_started_once_more_then_closes(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, ekos: EkosStandIn
) -> None:
    process, beats = observing_with_ekos(tmp_path, mosquitto, indi, watcher, ekos)
    try:
        ekos.status = SchedulerStatus.ABORTED
        first = wait_event(watcher, "ekos_scheduler_aborted")
        assert "starting it once more" in first["message"]
        watcher.wait_for(lambda _m: ekos.count("Scheduler.start") == 2, 20)

        def restart_done(_messages) -> bool:  # the event follows Ekos's answer: it may come a moment later
            steps = [e for e in of_kind(watcher, "device_action") if e["data"].get("step") == "restart_ekos_schedule"]
            return bool(steps) and "done" in steps[-1]["message"]

        watcher.wait_for(restart_done, 10)
        assert ekos.status is SchedulerStatus.RUNNING
        assert wait_state(watcher, TOPICS, lambda s: s["ekos_scheduler"] == "running")["state"] == "observing"

        ekos.status = SchedulerStatus.ABORTED  # and again: the retry is spent
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "standby", 60)
        assert closed["roof"] == "closed"
        assert closed["reason"] == "the Ekos scheduler aborted"
        second = wait_event(watcher, "ekos_scheduler_aborted", count=2)
        assert second["level"] == "error" and "closing" in second["message"]
        assert ekos.count("Scheduler.start") == 2
    finally:
        process.stop()
        beats.stop()


def test_an_aborted_schedule_closes_at_once_with_the_close_policy(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, ekos: EkosStandIn
) -> None:
    process, beats = observing_with_ekos(tmp_path, mosquitto, indi, watcher, ekos, on_abort="close")
    try:
        ekos.status = SchedulerStatus.ABORTED
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "standby", 60)
        assert closed["roof"] == "closed" and closed["reason"] == "the Ekos scheduler aborted"
        assert ekos.count("Scheduler.start") == 1  # not started again
    finally:
        process.stop()
        beats.stop()


def test_a_roof_parked_by_another_client_ends_the_night_without_a_fight(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, ekos: EkosStandIn
) -> None:
    """Ekos (or anyone on indiserver) parks the roof while the MCP observes: stop Ekos, park, do not reopen."""
    process, beats = observing_with_ekos(tmp_path, mosquitto, indi, watcher, ekos)
    other = IndiRecorder(indi.config())  # a second INDI client, as Ekos would be
    try:
        other.client.wait_property(ROOF, "DOME_PARK")
        other.client.set_switch(ROOF, "DOME_PARK", "PARK", wait=False)
        rest = wait_state(watcher, TOPICS, lambda s: s["state"] == "standby" and s["roof"] == "closed", 60)
        assert rest["reason"] == "roof closed outside OBSY"
        assert rest["mount_parked"] is True and rest["alarm"] is False
        moved = wait_event(watcher, "roof_moved_outside")
        assert moved["level"] == "critical" and "roof closed outside OBSY" in moved["message"]
        assert ekos.count("Scheduler.stop") == 1
        moves = [(t["from_state"], t["to_state"]) for t in rest["recent_transitions"]]
        assert moves[-2:] == [("observing", "closing"), ("closing", "standby")], moves
        # The MCP never drove the roof against the other client: no UNPARK, no abort (the definition is Idle).
        roof_reports = [r for r in other.records if r.device == ROOF]
        assert not any(r.name == "DOME_PARK" and r.values["UNPARK"] and r.state == "Busy" for r in roof_reports)
        assert not any(r.name == "DOME_ABORT_MOTION" and r.state != "Idle" for r in roof_reports), roof_reports
        # ... and it does not reopen by itself while the night is still dark, safe and planned.
        time.sleep(3)
        assert states(watcher, TOPICS)[-1]["state"] == "standby"
        assert not any(e["kind"] == "alarm" for e in of_kind(watcher, "alarm"))
        assert ekos.count("Scheduler.start") == 1
    finally:
        other.close()
        process.stop()
        beats.stop()
