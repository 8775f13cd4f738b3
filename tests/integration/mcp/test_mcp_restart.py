"""A restart of the MCP never comes back more permissive than the operator left it.

The MCP runs in its own process and is killed with SIGKILL (a crash, an OOM kill); the new
process must take up the operator's last decision from its state file before it decides
anything. Real Mosquitto, real indiserver with the roll-off roof and telescope simulators; a
site where it is night now, everything safe and a plan for tonight: an MCP that forgot the
operator would open the roof within seconds.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from obsy.config import ObsyConfig
from obsy.topics import Topics
from obsy_mcp import operator_state
from tests.support.indiserver import ROOF, IndiServer, require_indi
from tests.support.mcp_harness import (
    DRIVERS,
    Heartbeats,
    IndiRecorder,
    Inputs,
    McpProcess,
    McpSubprocess,
    Sky,
    events,
    mcp_config,
    midnight_site,
    of_kind,
    prepare_devices,
    states,
    wait_event,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = [pytest.mark.integration, pytest.mark.long(seconds=30)]
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

TOPICS = Topics()
#: How long a restarted MCP is watched for moving anything: well past every delay of the tests' MCP
#: (startup grace 3 s, safe delay 0, a device's connect timeout 5 s, evaluated every 0.2 s), by when an
#: MCP that forgot the operator's hold or its alarm would be opening (it was 60 s: 45 s of each test
#: spent waiting for nothing the configuration could bring).
WATCH_S = 15.0


class Night:
    """Roof closed, mount parked, night at the site, a plan for tonight; rain until the test says otherwise."""

    def __init__(self, tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher) -> None:
        prepare_devices(indi.config(), roof_open=False, mount_parked=True)
        self.tmp_path, self.watcher, self.indi = tmp_path, watcher, indi
        self.config = mcp_config(
            tmp_path, mosquitto, indi.config(), site=midnight_site(), devices={"connect_timeout": 5}
        )
        self.inputs = Inputs(watcher, TOPICS, self.config)
        self.inputs.all_safe()
        self.inputs.weather(False, "rain detected")
        self.beats = Heartbeats(self.inputs).start()
        self.runs = 0
        self.mcp = self.start()

    def start(self) -> McpSubprocess:
        self.runs += 1
        return McpSubprocess(self.config, self.tmp_path / f"mcp-{self.runs}.log")

    def kill_and_restart(self) -> int:
        """SIGKILL, then a new MCP process; returns the number of MCP states published before it."""
        self.mcp.signal(signal.SIGKILL)
        assert self.mcp.wait(10) == -signal.SIGKILL
        self.mcp.kill()
        mark = len(states(self.watcher, TOPICS))
        self.mcp = self.start()
        return mark

    def close(self) -> None:
        self.beats.stop()
        self.mcp.kill()


@pytest.fixture
def night(tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher) -> Iterator[Night]:
    setup = Night(tmp_path, mosquitto, indi, watcher)
    try:
        wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed", 60)
        yield setup
    finally:
        setup.close()


def wait_new_state(
    watcher: Watcher, mark: int, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """The first MCP state published after ``mark`` that matches, waiting for it."""
    watcher.wait_for(lambda _m: any(predicate(s) for s in states(watcher, TOPICS)[mark:]), timeout)
    return next(s for s in states(watcher, TOPICS)[mark:] if predicate(s))


def assert_nothing_moves(watcher: Watcher, mark: int, recorder: IndiRecorder, seconds: float = WATCH_S) -> None:
    """For ``seconds``: no opening started, nothing sent to the roof, the roof closed in the end."""
    time.sleep(seconds)
    after = states(watcher, TOPICS)[mark:]
    assert not [s for s in after if s["state"] in ("opening", "observing") or s["roof"] in ("open", "opening")]
    assert recorder.first(lambda r: r.device == ROOF and r.name == "DOME_PARK" and r.values.get("UNPARK")) == -1
    assert recorder.first(lambda r: r.name == "DOME_PARK" and r.state == "Busy") == -1, recorder.records
    assert after[-1]["roof"] == "closed"
    starts = [e for e in events(watcher, TOPICS) if e["kind"] == "device_action" and "open_roof" in e["message"]]
    assert not starts


def test_sigkill_in_manual_mode_comes_back_manual_and_moves_nothing(night: Night, watcher: Watcher) -> None:
    night.inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
    wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and s["roof"] == "closed")
    night.inputs.weather(True)  # safe now: only the operator's manual mode keeps the roof closed
    wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and s["safe"])
    mark = night.kill_and_restart()
    recorder = IndiRecorder(night.indi.config())
    try:
        first = wait_new_state(watcher, mark, lambda s: True)
        assert first["mode"] == "manual"  # restored before the first state went out
        restored = wait_event(watcher, "state_restored", count=2)  # the first came from the first process
        assert restored["data"]["mode"] == "manual"
        wait_new_state(watcher, mark, lambda s: s["state"] == "manual" and s["roof"] == "closed")
        assert_nothing_moves(watcher, mark, recorder)
        assert {s["mode"] for s in states(watcher, TOPICS)[mark:]} == {"manual"}
    finally:
        recorder.close()


def test_sigkill_after_abort_comes_back_with_the_night_ended(night: Night, watcher: Watcher) -> None:
    night.inputs.publish(TOPICS.mcp_night_command, "ABORT", retain=False)
    wait_state(watcher, TOPICS, lambda s: s["night_aborted"] and s["roof"] == "closed")
    night.inputs.weather(True)
    wait_state(watcher, TOPICS, lambda s: s["state"] == "standby" and s["safe"])
    mark = night.kill_and_restart()
    recorder = IndiRecorder(night.indi.config())
    try:
        first = wait_new_state(watcher, mark, lambda s: True)
        assert first["night_aborted"] is True and first["mode"] == "auto"
        rest = wait_new_state(watcher, mark, lambda s: s["state"] == "standby" and s["roof"] == "closed")
        assert rest["reason"] == "night ended by the operator"
        assert_nothing_moves(watcher, mark, recorder)
        assert all(s["night_aborted"] for s in states(watcher, TOPICS)[mark:])
        # START is what reopens: the hold was the operator's ABORT, nothing else.
        night.inputs.publish(TOPICS.mcp_night_command, "START", retain=False)
        wait_new_state(watcher, mark, lambda s: s["state"] == "observing" and s["roof"] == "open", 60)
    finally:
        recorder.close()


def test_sigkill_with_a_latched_alarm_comes_back_alarmed_and_moves_nothing(night: Night, watcher: Watcher) -> None:
    # An alarm the way the drill found one: indiserver gone, the roof unknown for longer than
    # devices.connect_timeout. When indiserver is back the roof reads closed: the alarm is
    # cleared as always and the MCP rests in "alarm" (it does not reopen by itself).
    night.indi.stop()
    alarm = wait_event(watcher, "alarm", 60)
    assert "no report from the roof" in alarm["message"]
    night.inputs.weather(True)  # safe: only the alarm keeps the roof closed
    night.indi.start()
    wait_event(watcher, "alarm_cleared", 60)
    wait_state(watcher, TOPICS, lambda s: s["state"] == "alarm" and s["roof"] == "closed" and s["safe"])
    saved = operator_state.load(operator_state.state_path(night.config))
    assert "no report from the roof" in saved.alarm  # latched on disk
    mark = night.kill_and_restart()
    recorder = IndiRecorder(night.indi.config())
    try:
        first = wait_new_state(watcher, mark, lambda s: True)
        assert first["alarm"] is True and "no report from the roof" in first["alarm_reason"]
        wait_new_state(watcher, mark, lambda s: s["state"] == "alarm" and s["roof"] == "closed")
        assert_nothing_moves(watcher, mark, recorder)
        assert states(watcher, TOPICS)[-1]["state"] == "alarm"
        assert "no report from the roof" in operator_state.load(operator_state.state_path(night.config)).alarm
        # The operator ends the rest after the alarm: START is accepted and the roof opens.
        night.inputs.publish(TOPICS.mcp_night_command, "START", retain=False)
        wait_new_state(watcher, mark, lambda s: s["state"] == "observing" and s["roof"] == "open", 60)
        assert operator_state.load(operator_state.state_path(night.config)).alarm == ""
    finally:
        recorder.close()


# ---------------------------------------------------------------------- no saved decision


def fresh_night(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> tuple[ObsyConfig, Heartbeats, Inputs]:
    """Night, safe, a plan, roof closed: and no operator decision given (``decided=False``)."""
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    config = mcp_config(tmp_path, mosquitto, indi.config(), decided=False)
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    return config, Heartbeats(inputs).start(), inputs


def rests_closed_waiting_for_the_operator(watcher: Watcher, recorder: IndiRecorder) -> dict[str, Any]:
    standby = wait_state(watcher, TOPICS, lambda s: s["state"] == "standby" and s["safe"], 60)
    assert "until an operator decides" in standby["reason"] and standby["night_aborted"]
    time.sleep(10)  # well past startup_grace and safe_delay: an MCP without the hold would be opening
    assert recorder.first(lambda r: r.name == "DOME_PARK" and r.values.get("UNPARK")) == -1
    assert {s["roof"] for s in states(watcher, TOPICS)} <= {"closed", "unknown"}
    return standby


def test_without_a_state_file_nothing_opens_until_the_operator_starts_the_night(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    config, beats, inputs = fresh_night(tmp_path, mosquitto, indi, watcher)
    recorder = IndiRecorder(indi.config())
    process = McpProcess(config, Sky(-25.0)).start()
    try:
        why = wait_event(watcher, "state_file_unusable")
        assert why["level"] == "warning" and why["data"]["missing"] is True
        assert "no saved operator decision" in why["message"]
        rests_closed_waiting_for_the_operator(watcher, recorder)
        inputs.publish(TOPICS.mcp_night_command, "START", retain=False)
        wait_state(watcher, TOPICS, lambda s: s["state"] == "observing" and s["roof"] == "open", 60)
        assert operator_state.load(operator_state.state_path(config)).night_ended_for is None
    finally:
        beats.stop()
        recorder.close()
        process.stop()


def test_a_corrupt_state_file_is_kept_reported_and_nothing_opens_until_the_operator_acts(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    config, beats, inputs = fresh_night(tmp_path, mosquitto, indi, watcher)
    path = operator_state.state_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"schema_version": 1, "mode": "aut')  # cut off mid-write by another program
    recorder = IndiRecorder(indi.config())
    process = McpProcess(config, Sky(-25.0)).start()
    try:
        why = wait_event(watcher, "state_file_unusable")
        assert why["level"] == "error" and "not valid JSON" in why["message"]
        assert Path(why["data"]["set_aside"]).read_text() == '{"schema_version": 1, "mode": "aut'
        rests_closed_waiting_for_the_operator(watcher, recorder)
        assert not of_kind(watcher, "alarm")
        # A mode is an operator's decision too: manual, and the roof is the operator's.
        inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
        wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and not s["night_aborted"])
        saved = operator_state.load(path)
        assert saved.mode.value == "manual" and not saved.awaiting_operator
    finally:
        beats.stop()
        recorder.close()
        process.stop()
