"""The MCP fails safe: real Mosquitto, real indiserver with the roll-off roof and telescope simulators."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.topics import Topics
from tests.support.indiserver import ROOF, TELESCOPE, IndiServer, require_indi
from tests.support.mcp_harness import (
    DRIVERS,
    OBSERVING_AT_START,
    Heartbeats,
    IndiRecorder,
    Inputs,
    McpProcess,
    Sky,
    events,
    mcp_config,
    mcp_observing,
    observing_mcp,
    of_kind,
    prepare_devices,
    states,
    wait_event,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

TOPICS = Topics()


@OBSERVING_AT_START
def test_rain_while_observing_runs_the_full_closing_order(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher) as (_process, inputs):
        # No blind action on start: the roof was open and stays so, nothing was sent to it.
        assert recorder.first(lambda r: r.name == "DOME_PARK" and r.state == "Busy") == -1
        recorder.clear()
        inputs.weather(False, "rain detected")
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed")
        assert closed["mount_parked"] is True
        assert any("rain detected" in r for r in closed["unsafe_reasons"])

        # The order, as the drivers reported it.
        roof_closed = recorder.wait(lambda r: r.name == "DOME_PARK" and r.state == "Ok" and r.values["PARK"])
        abort = recorder.first(lambda r: r.name == "TELESCOPE_ABORT_MOTION" and r.state == "Ok")
        parking = recorder.first(lambda r: r.name == "TELESCOPE_PARK" and r.state == "Busy")
        parked = recorder.first(lambda r: r.name == "TELESCOPE_PARK" and r.state == "Ok" and r.values["PARK"])
        roof_moving = recorder.first(lambda r: r.name == "DOME_PARK" and r.state == "Busy" and r.values["PARK"])
        assert -1 < abort < parked < roof_moving < roof_closed, recorder.records
        assert parking == -1 or abort < parking < parked  # an instant park may skip Busy

        # ... and as the MCP told it on the bus.
        steps = [e["data"]["step"] for e in events(watcher, TOPICS) if e["kind"] == "device_action"]
        done = [
            e["data"]["step"]
            for e in events(watcher, TOPICS)
            if e["kind"] == "device_action" and "done" in e["message"]
        ]
        assert steps.index("abort_mount") < steps.index("park_mount") < steps.index("close_roof"), steps
        assert done  # each step is reported
        transitions = [(t["from_state"], t["to_state"]) for t in closed["recent_transitions"]]
        assert ("observing", "closing") in transitions
        assert ("closing", "closed_unsafe") in transitions


@OBSERVING_AT_START
def test_weather_service_last_will_closes(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher) as (_process, inputs):
        inputs.publish(TOPICS.availability("weather"), "offline")  # what the broker sends as the Last Will
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed")
        assert "weather is offline" in closed["unsafe_reasons"]
        assert recorder.wait(lambda r: r.name == "DOME_PARK" and r.state == "Ok" and r.values["PARK"]) >= 0


@OBSERVING_AT_START
def test_silent_weather_service_closes(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    process, _inputs = observing_mcp(tmp_path, mosquitto, indi, watcher)
    try:
        # No more heartbeats: after 3 x 2 s the weather service counts as silent.
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed", 60)
        assert any(r.startswith("weather silent for") for r in closed["unsafe_reasons"]), closed["unsafe_reasons"]
    finally:
        process.stop()


def test_open_while_unsafe_is_rejected_with_reasons(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    config = mcp_config(tmp_path, mosquitto, indi.config())
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    inputs.weather(False, "wind gusts 20 m/s")
    inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
    process = McpProcess(config, Sky(-25.0)).start()
    beats = Heartbeats(inputs).start()
    try:
        wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" or s["state"] == "manual")
        recorder.clear()
        for value in ("OPEN", "banana"):
            inputs.publish(TOPICS.mcp_roof_command, value, retain=False)
        watcher.wait_for(lambda _m: len([e for e in events(watcher, TOPICS) if e["kind"] == "command_rejected"]) >= 2)
        rejected = [e for e in events(watcher, TOPICS) if e["kind"] == "command_rejected"]
        assert rejected[0]["data"]["command"] == {"thing": "roof", "value": "OPEN"}
        assert any("wind gusts 20 m/s" in r for r in rejected[0]["data"]["reasons"])
        assert "unknown roof command 'banana'" in rejected[1]["data"]["reasons"][0]
        # CLOSE is always accepted.
        inputs.publish(TOPICS.mcp_roof_command, "CLOSE", retain=False)
        watcher.wait_for(lambda _m: any(e["kind"] == "command_accepted" for e in events(watcher, TOPICS)))
        time.sleep(1.0)
        assert recorder.first(lambda r: r.name == "DOME_PARK" and r.values["UNPARK"] and r.state == "Busy") == -1
        assert states(watcher, TOPICS)[-1]["roof"] == "closed"
    finally:
        beats.stop()
        process.stop()


def test_manual_mode_still_closes_on_rain(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    config = mcp_config(tmp_path, mosquitto, indi.config())
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    process = McpProcess(config, Sky(10.0)).start()  # daytime: only an operator opens now
    beats = Heartbeats(inputs).start()
    try:
        wait_state(watcher, TOPICS, lambda s: s["state"] == "day")
        inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
        wait_state(watcher, TOPICS, lambda s: s["state"] == "manual")
        inputs.publish(TOPICS.mcp_roof_command, "OPEN", retain=False)
        wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and s["roof"] == "open", 40)
        inputs.weather(False, "rain detected")
        closed = wait_state(
            watcher, TOPICS, lambda s: s["roof"] == "closed" and any("rain" in r for r in s["unsafe_reasons"]), 40
        )
        assert closed["mode"] == "manual"
        assert closed["state"] == "manual"
    finally:
        beats.stop()
        process.stop()


@OBSERVING_AT_START
def test_broker_lost_while_open_closes_after_the_grace_period_and_reports(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    process, _inputs = observing_mcp(tmp_path, mosquitto, indi, watcher)
    # A persistent session: what the MCP says right after the broker returns is queued for this
    # watcher even if the MCP reconnects first.
    persistent = Watcher(mosquitto.port, [TOPICS.events("mcp")], client_id="mcp-broker-test", clean_session=False)
    try:
        recorder.clear()
        mosquitto.stop()
        lost_at = time.monotonic()
        recorder.client.wait_for(
            ROOF, "DOME_PARK", lambda p: p.state == "Ok" and p.values["PARK"], timeout=60, what="roof closed"
        )
        closing_sent = recorder.records[recorder.first(lambda r: r.name == "TELESCOPE_ABORT_MOTION")].at
        assert closing_sent - lost_at >= 3.0  # not before the grace period
        assert recorder.client.get_switch(TELESCOPE, "TELESCOPE_PARK")["PARK"]
        mosquitto.start()
        persistent.wait_for(lambda _m: any(e["kind"] == "broker_returned" for e in events(persistent, TOPICS)), 30)
        returned = next(e for e in events(persistent, TOPICS) if e["kind"] == "broker_returned")
        assert any("closing" in line for line in returned["data"]["while_lost"]), returned
        final = wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed")
        assert final["state"] in ("closed_unsafe", "waiting_for_safe", "observing", "opening", "closing")
    finally:
        persistent.close()
        process.stop()


@OBSERVING_AT_START
def test_mcp_restarted_while_open_and_unsafe_closes(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    process, inputs = observing_mcp(tmp_path, mosquitto, indi, watcher)
    process.stop()
    inputs.weather(False, "rain detected")  # retained: what the new MCP finds
    restarted = McpProcess(mcp_config(tmp_path, mosquitto, indi.config()), Sky(-25.0)).start()
    beats = Heartbeats(inputs).start()
    try:
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed", 60)
        assert closed["mount_parked"] is True
        read_back = [e for e in events(watcher, TOPICS) if e["kind"] == "devices_read_back"]
        assert read_back[-1]["data"]["roof"] == "open"  # it read the roof back before acting
    finally:
        beats.stop()
        restarted.stop()


@OBSERVING_AT_START
def test_indiserver_restart_mid_night_reads_back_and_acts_not_blind(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher) as (_process, _inputs):
        count = len(events(watcher, TOPICS))
        indi.restart()
        recorder = IndiRecorder(indi.config())
        try:
            watcher.wait_for(
                lambda _m: any(e["kind"] == "devices_read_back" for e in events(watcher, TOPICS)[count:]), 30
            )
            time.sleep(2.0)
            later = events(watcher, TOPICS)[count:]
            assert not [e for e in later if e["kind"] == "device_action"], later  # nothing was moved
            assert recorder.first(lambda r: r.name == "DOME_PARK" and r.state == "Busy") == -1
            assert states(watcher, TOPICS)[-1]["state"] == "observing"
            assert states(watcher, TOPICS)[-1]["roof"] == "open"
        finally:
            recorder.close()


def alarms(watcher: Watcher) -> list[dict]:
    return [e for e in events(watcher, TOPICS) if e["kind"] == "alarm"]


@OBSERVING_AT_START
def test_a_mount_that_does_not_park_keeps_the_roof_open_and_alarms(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    # Parking takes the simulator some 15 s; the MCP allows 1 s: the park fails (twice).
    devices = {"park_timeout": 1}
    with mcp_observing(tmp_path, mosquitto, indi, watcher, fast_park=False, devices=devices) as (_process, inputs):
        recorder.clear()
        inputs.weather(False, "rain detected")
        alarm = wait_state(watcher, TOPICS, lambda s: s["state"] == "alarm")
        assert alarm["alarm"] is True
        assert "did not park" in alarm["alarm_reason"]
        assert alarm["roof"] == "open"
        assert recorder.first(lambda r: r.name == "DOME_PARK" and r.state == "Busy") == -1  # roof never moved
        failures = [e for e in events(watcher, TOPICS) if e["kind"] == "step_failed"]
        assert [e["data"]["attempt"] for e in failures if e["data"]["step"] == "park_mount"] == [1, 2]
        assert any("did not park" in a["message"] for a in alarms(watcher))
        # CLOSE retries at once; by now the slow park has finished: the closing completes.
        recorder.client.wait_for(
            TELESCOPE, "TELESCOPE_PARK", lambda p: p.state == "Ok" and p.values["PARK"], timeout=40, what="parked"
        )
        inputs.publish(TOPICS.mcp_roof_command, "CLOSE", retain=False)
        closed = wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed" and not s["alarm"], 40)
        assert closed["state"] == "closed_unsafe"
        assert any(e["kind"] == "alarm_cleared" for e in events(watcher, TOPICS))


@OBSERVING_AT_START
def test_close_anyway_policy_closes_over_an_unparked_mount(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    with mcp_observing(
        tmp_path,
        mosquitto,
        indi,
        watcher,
        fast_park=False,
        devices={"park_timeout": 1, "retries": 0},
        park_failure_policy="close_anyway",
    ) as (_process, inputs):
        inputs.weather(False, "rain detected")
        closed = wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed", 40)
        assert closed["state"] == "closed_unsafe"
        assert any(e["kind"] == "closing_unparked" for e in events(watcher, TOPICS))


@OBSERVING_AT_START
def test_a_roof_stopped_half_way_is_detected_and_closed_again(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher, devices={"retry_delay": 1}) as (_process, inputs):
        inputs.weather(False, "rain detected")
        recorder.client.wait_for(ROOF, "DOME_PARK", lambda p: p.state == "Busy", timeout=30, what="roof closing")
        time.sleep(2)
        recorder.client.set_switch(ROOF, "DOME_ABORT_MOTION", "ABORT")  # something stops the roof half-way
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed", 60)
        assert closed["alarm"] is False
        failed = [
            e for e in events(watcher, TOPICS) if e["kind"] == "step_failed" and e["data"]["step"] == "close_roof"
        ]
        assert failed, events(watcher, TOPICS)
        assert "half-way" in failed[0]["message"]
        attempts = [
            e["data"]["attempt"]
            for e in events(watcher, TOPICS)
            if e["kind"] == "device_action" and e["data"].get("step") == "close_roof" and "done" in e["message"]
        ]
        assert attempts == [2]


@OBSERVING_AT_START
def test_stop_halts_the_roof_and_hands_over_to_the_operator(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher) as (_process, inputs):
        inputs.publish(TOPICS.mcp_night_command, "ABORT", retain=False)  # the night ends: closing starts
        recorder.client.wait_for(ROOF, "DOME_PARK", lambda p: p.state == "Busy", timeout=30, what="roof closing")
        inputs.publish(TOPICS.mcp_roof_command, "STOP", retain=False)
        stopped = wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and s["roof"] == "stopped", 20)
        assert stopped["mode"] == "manual"
        accepted = [e for e in events(watcher, TOPICS) if e["kind"] == "command_accepted"]
        assert [e["data"]["command"] for e in accepted] == [
            {"thing": "night", "value": "ABORT"},
            {"thing": "roof", "value": "STOP"},
        ]
        time.sleep(1.5)
        assert states(watcher, TOPICS)[-1]["roof"] == "stopped"  # and it stays where it is


@OBSERVING_AT_START
def test_an_unreachable_ekos_does_not_hold_the_roof_open(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    gone = {"enabled": True, "bus_address": f"unix:path={tmp_path / 'no-session-bus'}", "call_timeout": 2}
    with mcp_observing(tmp_path, mosquitto, indi, watcher, ekos=gone) as (_process, inputs):
        inputs.weather(False, "rain detected")
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed", 40)
        assert closed["mount_parked"] is True
        failed = [e for e in events(watcher, TOPICS) if e["kind"] == "step_failed"]
        assert [e["data"]["step"] for e in failed] == ["stop_ekos_scheduler"]  # one attempt, then on
        assert "D-Bus call" in failed[0]["message"]


@OBSERVING_AT_START
def test_a_second_close_and_a_mode_change_during_a_closing_wait_until_it_has_finished(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher) as (_process, inputs):
        inputs.weather(False, "rain detected")
        recorder.client.wait_for(ROOF, "DOME_PARK", lambda p: p.state == "Busy", timeout=30, what="roof closing")
        inputs.publish(TOPICS.mcp_roof_command, "CLOSE", retain=False)
        inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
        watcher.wait_for(lambda _m: len(of_kind(watcher, "command_accepted")) >= 2)
        close, mode = of_kind(watcher, "command_accepted")
        assert close["data"]["command"] == {"thing": "roof", "value": "CLOSE"} and close["data"]["deferred"]
        assert "already running" in close["data"]["note"]
        assert mode["data"]["command"] == {"thing": "mode", "value": "manual"} and mode["data"]["deferred"]
        assert "when it has finished" in mode["data"]["note"]

        final = wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and s["roof"] == "closed", 60)
        assert final["mode"] == "manual"
        # One closing, neither interrupted nor repeated ...
        moves = [(e["data"]["from"], e["data"]["to"]) for e in of_kind(watcher, "transition")]
        assert [m for m in moves if "closing" in m] == [("observing", "closing"), ("closing", "closed_unsafe")]
        started = [e for e in of_kind(watcher, "device_action") if "close_roof: started" in e["message"]]
        assert len(started) == 1
        assert not [e for e in of_kind(watcher, "device_action") if "interrupted" in e["message"]]
        # ... and the commands applied only after it: the mode stayed auto while it ran.
        assert {s["mode"] for s in states(watcher, TOPICS) if s["state"] == "closing"} == {"auto"}
        kinds = [e["kind"] for e in events(watcher, TOPICS)]
        closed_at = next(
            i for i, e in enumerate(events(watcher, TOPICS)) if e.get("data", {}).get("to") == "closed_unsafe"
        )
        applied = [i for i, kind in enumerate(kinds) if kind == "deferred_command_applied"]
        assert len(applied) == 2 and min(applied) > closed_at
        assert recorder.first(lambda r: r.name == "DOME_PARK" and r.state == "Busy" and r.values["UNPARK"]) == -1


@contextlib.contextmanager
def closed_in_the_rain(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> Iterator[McpProcess]:
    """Roof closed, mount parked, rain: the MCP rests in closed_unsafe (stopped on leaving)."""
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    config = mcp_config(tmp_path, mosquitto, indi.config())
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    inputs.weather(False, "rain detected")
    beats = Heartbeats(inputs).start()
    process = McpProcess(config, Sky(-25.0)).start()
    try:
        wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed")
        yield process
    finally:
        beats.stop()
        process.stop()


def test_a_roof_unparked_by_another_client_while_unsafe_is_closed_again(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    with closed_in_the_rain(tmp_path, mosquitto, indi, watcher):
        recorder.clear()
        recorder.client.set_switch(ROOF, "DOME_PARK", "UNPARK", wait=False)  # an operator in an INDI panel
        moved = wait_event(watcher, "roof_moved_outside")
        assert moved["data"]["action"] == "close" and "roof opened outside OBSY" in moved["message"]
        recorder.wait(lambda r: r.name == "DOME_PARK" and r.state == "Busy" and r.values["UNPARK"])
        closed = recorder.wait(lambda r: r.name == "DOME_PARK" and r.state == "Ok" and r.values["PARK"], 60)
        stopped = recorder.first(lambda r: r.name == "DOME_ABORT_MOTION" and r.state == "Ok")
        parking = recorder.first(lambda r: r.name == "DOME_PARK" and r.state == "Busy" and r.values["PARK"])
        assert -1 < stopped < parking < closed  # stopped on its way open, then driven closed

        def closed_again(s: dict) -> bool:
            last = s["recent_transitions"][-1:]
            return s["roof"] == "closed" and [(t["from_state"], t["to_state"]) for t in last] == [
                ("closing", "closed_unsafe")
            ]

        rest = wait_state(watcher, TOPICS, closed_again, 60)
        assert rest["alarm"] is False, recorder.records
        moves = [(t["from_state"], t["to_state"]) for t in rest["recent_transitions"]]
        assert moves[-2:] == [("closed_unsafe", "closing"), ("closing", "closed_unsafe")], moves


def test_a_parked_roof_whose_driver_refuses_park_with_alert_counts_as_closed(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    """indi_rolloff_dome after an ABORT of a closed roof answers PARK with Alert ("already fully closed")."""
    with closed_in_the_rain(tmp_path, mosquitto, indi, watcher):
        recorder.client.set_switch(ROOF, "DOME_ABORT_MOTION", "ABORT")
        recorder.client.set_switch(ROOF, "DOME_PARK", "PARK", wait=False)  # e.g. Ekos parks it once more
        recorder.wait(lambda r: r.name == "DOME_PARK" and r.state == "Alert" and r.values["PARK"])

        # The MCP reads a stopped roof and closes it: the driver refuses at once, the roof is already closed.
        def close_done(_messages: object) -> bool:
            steps = of_kind(watcher, "device_action")
            return any(e["data"].get("step") == "close_roof" and "done" in e["message"] for e in steps)

        watcher.wait_for(close_done, 30)
        rest = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed")
        assert rest["alarm"] is False
        assert not of_kind(watcher, "step_failed") and not of_kind(watcher, "alarm")
        steps = [e for e in of_kind(watcher, "device_action") if e["data"].get("step") == "close_roof"]
        assert [e["data"]["attempt"] for e in steps if "done" in e["message"]] == [1]


def test_a_roof_opened_by_another_client_in_manual_mode_is_only_reported(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    config = mcp_config(tmp_path, mosquitto, indi.config())
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    inputs.sky(False)  # clouds: closed in auto mode, no opening before the mode is manual
    beats = Heartbeats(inputs).start()
    process = McpProcess(config, Sky(-25.0)).start()
    try:
        wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe")
        inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
        wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and s["roof"] == "closed")
        recorder.clear()
        recorder.client.set_switch(ROOF, "DOME_PARK", "UNPARK", wait=False)  # the operator, from an INDI panel
        moved = wait_event(watcher, "roof_moved_outside")
        assert moved["data"]["action"] == "report" and "reported only" in moved["message"]
        wait_state(watcher, TOPICS, lambda s: s["roof"] == "open", 30)
        assert states(watcher, TOPICS)[-1]["state"] == "manual"
        # The MCP sent nothing to the roof: no PARK and no abort after the operator's UNPARK.
        assert recorder.first(lambda r: r.name == "DOME_PARK" and r.values["PARK"]) == -1, recorder.records
        assert recorder.first(lambda r: r.name == "DOME_ABORT_MOTION" and r.state == "Ok") == -1
    finally:
        beats.stop()
        process.stop()
