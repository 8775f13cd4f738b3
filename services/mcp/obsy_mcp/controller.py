"""The MCP's controller thread: decides, runs the opening and closing sequences, answers commands.

One thread owns the devices. Bus handlers only update :class:`Inputs`, answer commands
(at once, with an event) and wake the thread; STOP and a hazard during opening are seen
by a running sequence between its checks (every 50 ms).

Closing order: stop the Ekos scheduler, abort mount motion, park the mount, confirm it is
parked, close the roof, confirm it is closed. Opening order: confirm the mount is parked,
open the roof, confirm it is open, then load and start tonight's Ekos schedule. Each step
is an event; a step that fails is retried ``devices.retries`` times and then raises an
alarm. If the mount cannot be parked the roof is not closed onto it unless
``park_failure_policy`` is ``close_anyway``.

While a closing runs, commands other than STOP (a second CLOSE, a mode change, START or
ABORT) are answered at once but applied only when the closing has finished: nothing
interrupts or repeats it. While observing, the Ekos scheduler's status is read every
``ekos.poll_interval`` on a worker thread: a schedule that finishes ends the night (closing,
then standby "schedule finished"); one that aborts follows ``ekos.on_abort``.

The service stopping (SIGTERM, SIGINT) never leaves a closing half-done: :meth:`shutdown`
lets a running closing finish and, in auto mode, closes a roof that is not closed, within
``shutdown_close_timeout``; a second stop request or the limit ends it at once.

Others move the roof too (Ekos, a hand controller, an INDI panel): a roof no longer open
while observing ends the night ("roof closed outside OBSY") and is never reopened by itself;
one opened while it must be closed is closed again (see ``_roof_moved_outside``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from obsy import astro
from obsy.config import ObsyConfig
from obsy.indi import IndiClient, IndiError
from obsy.messages import CommandOrigin, Event, McpState, McpTransition, Mode, NightAction, RoofAction
from obsy_mcp import operator_state
from obsy_mcp.devices import DeviceError, Mount, Roof, RoofPosition, SendHook, StepInterrupted
from obsy_mcp.driverwatch import DriverWatch
from obsy_mcp.ekos import Ekos, EkosError, SchedulerStatus
from obsy_mcp.inputs import Clock, Inputs
from obsy_mcp.operator_state import OperatorState, StateFileError
from obsy_mcp.statemachine import (
    AFTER_CLOSING,
    AFTER_OPENING,
    Decision,
    RoofGoal,
    State,
    decide,
    next_state,
    transition_allowed,
)
from obsy_mcp.supervision import INDI, Supervisor

log = logging.getLogger("obsy.mcp")

RECENT_TRANSITIONS = 10
SUN_CACHE_S = 30.0
SCHEDULE_FINISHED = "schedule finished"
#: Why the night ended when someone else (Ekos, a hand controller, the driver's own safety,
#: an operator in an INDI panel) closed the roof while the MCP observed.
ROOF_CLOSED_OUTSIDE = "roof closed outside OBSY"
ROOF_STOPPED_OUTSIDE = "roof stopped outside OBSY"
#: The reason of the closing the MCP runs because it is being stopped.
MCP_STOPPING = "MCP stopping"
NIGHT_ENDED_BY_OPERATOR = "night ended by the operator"
#: Scheduler states that mean a schedule is being worked on.
EKOS_ACTIVE = frozenset({SchedulerStatus.STARTUP, SchedulerStatus.RUNNING, SchedulerStatus.PAUSED})


def _direction(position: RoofPosition) -> str:
    """Open, closed or stopped: a roof moving towards a position counts as that position."""
    if position in (RoofPosition.OPEN, RoofPosition.OPENING):
        return "open"
    if position in (RoofPosition.CLOSED, RoofPosition.CLOSING):
        return "closed"
    return str(position)


class Outbox(Protocol):
    """Where the controller's state and events go (the bus, in the service)."""

    def state(self, state: McpState) -> None: ...

    def event(self, event: Event) -> None: ...


class Answer:
    """The answer to one command: accepted, or rejected with reasons; ``origin`` says who sent it."""

    def __init__(
        self,
        thing: str,
        value: str,
        accepted: bool,
        reasons: list[str],
        note: str = "",
        *,
        deferred: bool = False,
        origin: CommandOrigin | None = None,
    ) -> None:
        self.thing, self.value, self.accepted, self.reasons, self.note = thing, value, accepted, reasons, note
        self.deferred = deferred  # accepted now, applied when the running closing has finished
        self.origin = origin or CommandOrigin()

    def event(self) -> Event:
        verb = "accepted" if self.accepted else "rejected"
        message = f"{self.thing} {self.value} {verb} (from {self.origin.describe()})"
        if self.reasons:
            message += ": " + "; ".join(self.reasons)
        elif self.note:
            message += ": " + self.note
        return Event(
            service="mcp",
            kind=f"command_{verb}",
            level="info" if self.accepted else "warning",
            message=message,
            data={
                "command": {"thing": self.thing, "value": self.value},
                "reasons": self.reasons,
                "note": self.note,
                "deferred": self.deferred,
                "origin": self.origin.as_data(),
            },
        )


@dataclass
class _Told:
    """What the roof and night events (``roof_*``, ``night_*``) have said so far."""

    closing_reason: str = ""  # why the running (or last) closing started: the closed event repeats it
    closing_unsafe: list[str] = field(default_factory=list)
    dark: bool | None = None  # None until the Sun's altitude is first known: a restart at night is no dusk
    night_end: bool = False  # night_ended said for this night


class Controller:
    def __init__(
        self,
        config: ObsyConfig,
        indi: IndiClient,
        outbox: Outbox,
        *,
        ekos: Ekos | None = None,
        clock: Clock = time.monotonic,
        sun_altitude: Callable[[], float] | None = None,
        on_indi_send: SendHook | None = None,
        broker_connected: Callable[[], bool] = lambda: True,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.config = config
        self.settings = config.mcp
        self.indi = indi
        self.outbox = outbox
        self.ekos = ekos
        self.clock = clock
        self._broker_connected = broker_connected
        self.inputs = Inputs(self.settings, clock)
        devices = self.settings.devices
        self.roof = Roof(indi, devices.roof, devices, on_indi_send)
        self.mount = Mount(indi, devices.mount, devices, on_indi_send) if devices.mount else None
        self._sun_altitude = sun_altitude or self._sun_from_astro
        self.supervisor = supervisor or Supervisor(self.settings.supervision, clock, self._event)
        watched = self.settings.supervision.indi.devices
        if watched is None:
            watched = [name for name in (devices.roof, devices.mount) if name]
        self.driver_watch = DriverWatch(indi, self.settings.supervision.indi, watched)
        self._sun_cache: tuple[float, float] | None = None
        self._night_cache: tuple[float, str] | None = None

        self.state = State.STARTING
        self.reason = "starting: reading the devices back"
        self.alarm = ""
        self.ekos_status: str | None = None
        self.transitions: deque[McpTransition] = deque(maxlen=RECENT_TRANSITIONS)
        self._last_published: dict[str, Any] | None = None
        self._alarm_attempt_at: float | None = None
        self._devices_unknown_since: float | None = None
        self._devices_reported = self._devices_connected = False
        self._roof_seen = RoofPosition.UNKNOWN  # where the MCP's own last evaluation or sequence left the roof
        self.state_file = operator_state.StateFile(operator_state.state_path(config))

        self._wake = threading.Event()
        self._stop_thread = threading.Event()
        self._shutting_down = threading.Event()  # the service is stopping: close (see shutdown), then exit
        self._cut_short = threading.Event()  # a second stop request, or the limit: exit now
        self._cut_short_why = ""
        self._lock = threading.RLock()
        self._requests: deque[str] = deque()  # "open", "close", "abort", "stop", "release" from commands
        self._stop_requested = threading.Event()  # STOP: halts a running sequence
        self._close_requested = threading.Event()  # CLOSE during opening
        self._thread: threading.Thread | None = None
        self._while_broker_lost: list[str] = []
        # commands that arrived while a closing ran: (thing, value), applied when it has finished
        self._closing_running = False
        self._deferred: list[tuple[str, str]] = []
        # the Ekos scheduler while observing: read on a worker thread, acted upon here
        self._ekos_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-ekos-watch")
        self._ekos_poll: Future[SchedulerStatus] | None = None
        self._ekos_polled_at: float | None = None
        self._ekos_was_running = False
        self._ekos_retried = self._ekos_unreachable = False
        self._told = _Told()  # what the roof and night events have said
        indi.on_reconnect(self._on_indi_reconnect)

    # ------------------------------------------------------------------ life cycle

    def restore_operator_state(self) -> None:
        """Take up the operator's last decision from the state file; call before the first state goes out.

        A file that is missing or cannot be used restores the most conservative state (auto
        mode, tonight ended, waiting for an operator): nothing opens until an operator decides
        (START, OPEN, a mode) or the next observing night begins. A file that cannot be used
        is set aside (``.corrupt-<time>``) and reported before a new one is written.
        """
        tonight = self._tonight_date()
        try:
            saved = self.state_file.load()
        except StateFileError as error:
            self._restore_conservatively(error, tonight)
            return
        with self.inputs.lock:
            self.inputs.mode = saved.mode
            if saved.night_ended(tonight):
                assert saved.night_ended_for is not None
                self.inputs.end_night(
                    saved.night_end_reason or NIGHT_ENDED_BY_OPERATOR,
                    saved.night_ended_for,
                    awaiting_operator=saved.awaiting_operator,
                )
        self.alarm = saved.alarm
        parts = [f"mode {saved.mode.value}"]
        if self.inputs.night_aborted:
            parts.append(f"night {saved.night_ended_for} ended ({self.inputs.night_end_reason})")
        elif saved.night_ended_for is not None:
            parts.append(f"the night {saved.night_ended_for} that was ended is over: tonight ({tonight}) goes on")
        if saved.alarm:
            parts.append(f"alarm latched: {saved.alarm}")
        self._event(
            "state_restored",
            "restored the operator's last decision: " + "; ".join(parts),
            level="warning" if saved.alarm else "info",
            data={
                "file": str(self.state_file.path),
                "mode": saved.mode.value,
                "night_aborted": self.inputs.night_aborted,
                "night_ended_for": None if saved.night_ended_for is None else saved.night_ended_for.isoformat(),
                "alarm": saved.alarm,
            },
        )

    def _restore_conservatively(self, error: StateFileError, tonight: date) -> None:
        aside: str | None = None
        if not error.missing:
            try:
                aside = str(operator_state.set_aside(self.state_file.path))
            except OSError as move_error:
                log.error("cannot set the unusable state file %s aside: %s", self.state_file.path, move_error)
        why = "no saved operator decision" if error.missing else "the saved operator decision is unusable"
        hold = f"{why}: not opening until an operator decides (START, OPEN or a mode) or the next night"
        state = operator_state.conservative(tonight, hold)
        with self.inputs.lock:
            self.inputs.mode = state.mode
            assert state.night_ended_for is not None
            self.inputs.end_night(state.night_end_reason, state.night_ended_for, awaiting_operator=True)
        kept = f"; the file was kept as {aside}" if aside else ""
        self._event(
            "state_file_unusable",
            f"{error}{kept}. Restored the most cautious state: {hold}",
            level="warning" if error.missing else "error",
            data={
                "file": str(self.state_file.path),
                "problem": error.problem,
                "missing": error.missing,
                "set_aside": aside,
            },
        )

    def _operator_state(self) -> OperatorState:
        """The decisions to keep across a restart, as they stand now."""
        latched = self.alarm or (self.reason if self.state is State.ALARM else "")
        with self.inputs.lock:
            return OperatorState(
                mode=self.inputs.mode,
                night_ended_for=self.inputs.night_ended_for if self.inputs.night_aborted else None,
                night_end_reason=self.inputs.night_end_reason if self.inputs.night_aborted else "",
                alarm=latched,
                awaiting_operator=self.inputs.awaiting_operator,
            )

    def _remember(self) -> None:
        """Write the operator's decisions to the state file when they changed (atomically, durably)."""
        file = self.state_file
        with self._lock:
            current = self._operator_state()
            if not file.changed(current):
                return
            try:
                file.save(current)
            except OSError as error:
                if not file.failing:
                    file.failing = True
                    self._event(
                        "state_file_failed",
                        f"cannot save the operator's decision to {file.path}: {error}; "
                        "a restart now would not know it (trying again on every change)",
                        level="error",
                        data={"file": str(file.path), "error": str(error)},
                    )
                return
            if file.failing:
                file.failing = False
                self._event("state_file_saved", f"the operator's decision is saved again to {file.path}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mcp-controller", daemon=True)
        self._thread.start()
        self.driver_watch.start()

    def stop(self, timeout: float = 10.0) -> None:
        # A running sequence is not interrupted: a roof half-way is worse than a slow exit.
        self._stop_thread.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.driver_watch.stop()
        self._ekos_worker.shutdown(wait=False, cancel_futures=True)
        self.supervisor.close()

    def shutdown(self, limit: float) -> bool:
        """Stop for good, but never leave a closing half-done; True when nothing was cut short.

        A closing that is running is finished, in any mode. In auto mode a roof that is not
        closed (open, stopped half-way, unknown) gets the full closing order first; a running
        opening is interrupted for it. In manual and off mode the roof stays as the operator
        has it, with a warning. All within ``limit`` seconds, or until :meth:`cut_shutdown_short`
        (a second stop request): then it exits at once, leaving the roof to what its driver does.
        """
        deadline = time.monotonic() + limit
        if self._closing_running:
            self.reason = f"{MCP_STOPPING}: finishing the closing ({self.reason})"
            self._event(
                "shutdown_closing",
                f"{MCP_STOPPING}: a closing is running; finishing it before exiting (at most {limit:g} s)",
                level="warning",
                data={"roof": str(self.roof.position()), "limit_s": limit, "running": True},
            )
            self.publish_state()
        self._shutting_down.set()
        self._wake.set()
        thread = self._thread
        while thread is not None and thread.is_alive() and not self._cut_short.is_set():
            if time.monotonic() >= deadline:
                self._cut_short_why = f"the limit of {limit:g} s (shutdown_close_timeout) was reached"
                self._cut_short.set()
                break
            thread.join(0.1)
        finished = not self._cut_short.is_set()
        if not finished:
            mount = self.mount.parked() if self.mount else "no mount"
            self._event(
                "shutdown_cut_short",
                f"{MCP_STOPPING}: closing cut short ({self._cut_short_why}); exiting now with the roof "
                f"{self.roof.position()}, mount parked: {mount}",
                level="critical",
                data={"why": self._cut_short_why, "roof": str(self.roof.position())},
            )
            if thread is not None:
                thread.join(1.0)  # it stops at its next check; a device wait in progress dies with the process
        self.stop(timeout=0)
        return finished

    def cut_shutdown_short(self, why: str = "a second stop request") -> None:
        """End :meth:`shutdown` at once; only sets flags (it runs in a signal handler)."""
        self._cut_short_why = why
        self._cut_short.set()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop_thread.is_set():
            if self._shutting_down.is_set():
                try:
                    self._close_before_exit()
                except Exception:
                    log.exception("closing before exit failed")
                return
            try:
                self.step()
            except Exception:
                log.exception("controller step failed")
                self._raise_alarm("internal error in the controller (see the log)")
            self._wake.wait(self.settings.evaluate_interval)
            self._wake.clear()

    # ------------------------------------------------------------------ inputs

    def broker_changed(self, connected: bool) -> None:
        if not connected and self.inputs.broker_connected:
            self._event("broker_lost", f"lost the broker; closing after {self.settings.broker_grace:g} s without it")
        self.inputs.set_broker(connected)
        if connected and self._while_broker_lost:
            done, self._while_broker_lost = self._while_broker_lost, []
            self._event(
                "broker_returned",
                "the broker is back; while it was gone: " + "; ".join(done),
                level="warning",
                data={"while_lost": done},
            )
        self.wake()

    def _on_indi_reconnect(self) -> None:
        self._devices_connected = False  # the drivers restarted: connect them and read them back
        self._event("indi_reconnected", "indiserver is back: reading the devices back", level="warning")
        self.wake()

    # ------------------------------------------------------------------ one evaluation

    def conditions(self) -> Any:
        return self.inputs.conditions(sun_altitude=self.sun_altitude(), tonight=self.tonight(), alarm=self.alarm)

    def step(self) -> None:
        """Look at everything once and act: the heart of the MCP."""
        try:
            self._evaluate()
        finally:
            self._roof_seen = self.roof.position()  # what the MCP's own sequences left; any change after is not ours

    def _evaluate(self) -> None:
        connected = self._broker_connected()
        if connected != self.inputs.broker_connected:
            self.broker_changed(connected)
        self._handle_requests()
        self._supervise()
        self._ensure_devices()
        self._watch_ekos()
        self._next_night_clears_night_ended()
        conditions = self.conditions()
        self._watch_night(conditions)
        decision = decide(conditions)
        position = self.roof.position()
        if position is RoofPosition.UNKNOWN:
            self._devices_unknown(decision)
            return
        self._devices_unknown_since = None
        self._devices_reported = False
        if self._roof_moved_outside(position, decision):
            decision = decide(self.conditions())  # the night has ended: the safe part of the closing order
        elif self.state is State.ALARM and self.alarm and position is RoofPosition.CLOSED:
            self._clear_alarm("the roof is closed")
            decision = decide(self.conditions())
        target = next_state(self.state, position, decision, alarm_retry_due=self._alarm_retry_due())
        if target is State.CLOSING:
            self._close(decision)
        elif target is State.OPENING:
            self._open(decision)
        elif target is not None:
            self._transition(target, decision.reason)
        elif decision.roof is RoofGoal.OPEN and position is RoofPosition.CLOSING:
            self.reason = f"the roof is closing (moved outside OBSY): not opening now; {decision.reason}"
        self.publish_state()

    def _next_night_clears_night_ended(self) -> None:
        """A night ended holds for the observing night it was ended for (local noon to noon), no longer."""
        tonight = self._tonight_date()
        with self.inputs.lock:
            ended_for = self.inputs.night_ended_for
            if not self.inputs.night_aborted or ended_for is None or ended_for >= tonight:
                return
            reason = self.inputs.night_end_reason
            self.inputs.resume_night()
        self._event(
            "night_resumed",
            f"a new observing night ({tonight}): the night {ended_for} that was ended ({reason}) is over",
            data={"night": tonight.isoformat(), "ended_for": ended_for.isoformat(), "reason": reason},
        )

    def _end_night(self, reason: str) -> None:
        """Tonight's observing is over: closed until START, OPEN, or the next observing night."""
        self.inputs.end_night(reason, self._tonight_date())
        if self._told.dark and not self._told.night_end:
            self._tell_night_ended(reason)

    def _watch_night(self, conditions: Any) -> None:
        """``night_started`` when the Sun sinks below the limit, ``night_ended`` when it rises above it.

        Once per night each: a night already ended (the schedule finished, ABORT, the roof closed
        outside OBSY) has said so then. The first altitude known after a start is no change.
        """
        altitude = conditions.sun_altitude
        if altitude is None:
            return
        dark = altitude <= conditions.sun_limit
        if self._told.dark is None or dark == self._told.dark:
            self._told.dark = dark
            return
        self._told.dark = dark
        if dark:
            self._told.night_end = False
            self._event(
                "night_started",
                f"night started: the Sun is at {altitude:.1f}°, below {conditions.sun_limit:g}°",
                data={"night": self.tonight(), "sun_altitude": round(altitude, 2)},
            )
        elif not self._told.night_end:
            self._tell_night_ended(f"the Sun rose above {conditions.sun_limit:g}°")

    def _tell_night_ended(self, reason: str) -> None:
        self._told.night_end = True
        self._event("night_ended", f"night ended: {reason}", data={"night": self.tonight(), "reason": reason})

    def _roof_moved_outside(self, position: RoofPosition, decision: Decision) -> bool:
        """React to a roof moved by someone else; True when that ended the night.

        Between two evaluations only others move the roof (the MCP's sequences run inside
        one). While observing, a roof that is no longer open ends the night: the closing
        order then stops Ekos, parks the mount and confirms the roof closed (a roof already
        closing is only waited for), and the MCP rests in ``standby`` until START or OPEN.
        A roof opened while the rules want it closed is closed again by the normal rules;
        otherwise (manual or off mode, starting) a move is only reported.
        """
        seen = self._roof_seen
        if self.state is State.OBSERVING and position is not RoofPosition.OPEN:
            closed = position in (RoofPosition.CLOSED, RoofPosition.CLOSING)
            reason = ROOF_CLOSED_OUTSIDE if closed else ROOF_STOPPED_OUTSIDE
            self._event(
                "roof_moved_outside",
                f"{reason} while observing (read back: {position}): not reopening; "
                "stopping Ekos, parking the mount, confirming the roof closed",
                level="critical",
                data={"from": str(seen), "to": str(position), "state": str(self.state), "action": "end_night"},
            )
            self._end_night(reason)
            return True
        if _direction(position) == _direction(seen) or RoofPosition.UNKNOWN in (position, seen):
            return False
        if decision.roof is RoofGoal.CLOSED and position is not RoofPosition.CLOSED:
            action, level = "close", "warning"
            moved = "opened" if _direction(position) == "open" else "moved"
            message = (
                f"roof {moved} outside OBSY while {self.state} ({decision.reason}), read back {position}: closing it"
            )
        else:
            action, level = "report", "info" if self.state in (State.MANUAL, State.OFF) else "warning"
            message = f"roof moved outside OBSY: {seen} -> {position} (state {self.state}: reported only)"
        self._event(
            "roof_moved_outside",
            message,
            level=level,
            data={"from": str(seen), "to": str(position), "state": str(self.state), "action": action},
        )
        return False

    def _devices_unknown(self, decision: Decision) -> None:
        """No report from the roof: never act blind; wait for the read-back and alarm if it does not come.

        Nothing can be moved anyway while indiserver does not answer; when it does, the
        devices are read back and the next evaluation acts on what they report.
        """
        now = self.clock()
        if self._devices_unknown_since is None:
            self._devices_unknown_since = now
        waited = now - self._devices_unknown_since
        if waited >= self.settings.devices.connect_timeout and not self._devices_reported:
            self._devices_reported = True
            self._raise_alarm(f"no report from the roof {self.roof.name} for {waited:.0f} s (indiserver down?)")
        self.reason = f"roof state unknown ({self.roof.name}): waiting for indiserver"
        self.publish_state()

    def _supervise(self) -> None:
        """Hand the supervisor every watched service's problem, and the INDI drivers' (see driverwatch)."""
        problems = self.inputs.service_problems(self.settings.supervision.services)
        if self.settings.supervision.indi.enabled and self.driver_watch.devices:
            problems[INDI] = self.driver_watch.problem()  # judged without the broker: INDI does not need it
        self.supervisor.check(problems)

    def _driver_restarted(self) -> bool:
        """True when one of our devices is defined again but not connected (indiserver restarted its driver)."""
        for device in (self.roof, self.mount):
            if device is None:
                continue
            try:
                connection = self.indi.get_property(device.name, "CONNECTION")
            except IndiError:
                continue  # not defined: nothing to connect yet
            if connection.state != "Busy" and not connection.values.get("CONNECT"):
                return True
        return False

    def _ensure_devices(self) -> None:
        if not self.indi.connected:
            self._devices_connected = False  # whatever comes back must be read back first
        elif self._devices_connected and self._driver_restarted():
            self._devices_connected = False
            self._event(
                "indi_reconnected", "a driver came back disconnected: reading the devices back", level="warning"
            )
        if self._devices_connected:
            return
        if not self.indi.connected:
            try:
                self.indi.connect(timeout=2.0)
            except IndiError as error:
                log.warning("indiserver not reachable: %s", error)
                return
        try:
            for device in (self.roof, self.mount):
                if device is not None:
                    device.connect()
            self._devices_connected = True
            position = self.roof.position()
            self._event(
                "devices_read_back",
                f"roof {position}, mount parked: {self.mount.parked() if self.mount else 'no mount'}",
                data={"roof": str(position), "mount_parked": self.mount.parked() if self.mount else None},
            )
        except DeviceError as error:
            log.warning("devices not ready: %s", error)

    # ------------------------------------------------------------------ commands

    def command(self, thing: str, value: str, origin: CommandOrigin | None = None) -> Answer:
        """Answer a command at once (and publish the answer); the work happens on the controller thread."""
        answer = self._answer(thing, value.strip())
        answer.origin = origin or CommandOrigin()
        self._remember()  # saved before the answer goes out: an accepted decision survives a restart
        self.outbox.event(answer.event())
        if answer.accepted:
            self.wake()
        return answer

    def _answer(self, thing: str, value: str) -> Answer:  # noqa: PLR0911 - one answer per case
        if thing == "roof":
            return self._roof_command(value)
        if thing == "mode":
            try:
                mode = Mode(value.lower())
            except ValueError:
                return Answer(thing, value, False, [f"unknown mode {value!r} (expected auto, manual or off)"])
            if deferred := self._defer(thing, mode.value):
                return deferred
            with self.inputs.lock:
                self.inputs.mode = mode
            self.inputs.operator_decided()
            return Answer(thing, mode.value, True, [])
        if thing == "night":
            try:
                action = NightAction(value.upper())
            except ValueError:
                return Answer(thing, value, False, [f"unknown night command {value!r} (expected START or ABORT)"])
            if deferred := self._defer(thing, action.value):
                return deferred
            if action is NightAction.ABORT:
                self._request_close("abort", end_night=True)
                return Answer(thing, action.value, True, [], "closing for the night")
            if self.inputs.mode is not Mode.AUTO:
                return Answer(thing, action.value, False, [f"mode is {self.inputs.mode.value}: switch to auto first"])
            self.inputs.resume_night()
            self._release_alarm_rest()
            decision = decide(self.conditions())
            note = "opening" if decision.roof is RoofGoal.OPEN else f"waiting: {decision.reason}"
            return Answer(thing, action.value, True, [], note)
        return Answer(thing, value, False, [f"unknown command topic {thing!r}"])

    def _defer(self, thing: str, value: str) -> Answer | None:
        """While a closing runs: keep the command for when it has finished, and say so; else None."""
        with self.inputs.lock:
            if not self._closing_running:
                return None
            self._deferred.append((thing, value))
        if (thing, value) == ("roof", "CLOSE"):
            note = "a closing is already running: it is not started again"
        else:
            note = "a closing is running: this takes effect when it has finished"
        return Answer(thing, value, True, [], note, deferred=True)

    def _apply_deferred(self) -> None:
        """Apply what arrived during the closing that has just finished, in the order it came."""
        with self.inputs.lock:
            self._closing_running = False
            deferred, self._deferred = self._deferred, []
        for thing, value in deferred:
            if (thing, value) == ("roof", "CLOSE") and self.roof.position() is RoofPosition.CLOSED:
                if self.inputs.mode is Mode.AUTO:  # what CLOSE means besides closing: stay closed tonight
                    self._end_night(NIGHT_ENDED_BY_OPERATOR)
                answer = Answer(thing, value, True, [], "the roof is closed")
            else:
                answer = self._answer(thing, value)  # a closing that did not close: CLOSE tries again
            verb = "applied" if answer.accepted else "not applied"
            self._event(
                "deferred_command_applied" if answer.accepted else "deferred_command_rejected",
                f"{thing} {value} {verb} after the closing: " + ("; ".join(answer.reasons) or answer.note or "done"),
                level="info" if answer.accepted else "warning",
                data={"command": {"thing": thing, "value": value}, "reasons": answer.reasons},
            )

    def _roof_command(self, value: str) -> Answer:
        try:
            action = RoofAction(value.upper())
        except ValueError:
            return Answer("roof", value, False, [f"unknown roof command {value!r} (expected OPEN, CLOSE or STOP)"])
        if action is RoofAction.CLOSE:  # always accepted
            if deferred := self._defer("roof", action.value):
                return deferred
            self._request_close("close", end_night=self.inputs.mode is Mode.AUTO)  # auto: closed until OPEN or START
            return Answer("roof", action.value, True, [])
        if action is RoofAction.STOP:
            with self.inputs.lock:
                if self.inputs.mode is Mode.AUTO:
                    self.inputs.mode = Mode.MANUAL  # the operator takes over where the roof stands
                self._requests.append("stop")
                dropped, self._deferred = self._deferred, []  # STOP: the operator takes over, now
            self._stop_requested.set()
            if dropped:
                self._event(
                    "deferred_commands_dropped",
                    "STOP: dropped the commands waiting for the closing: "
                    + ", ".join(f"{thing} {value}" for thing, value in dropped),
                    level="warning",
                    data={"commands": [{"thing": thing, "value": value} for thing, value in dropped]},
                )
            return Answer("roof", action.value, True, [], "roof halted; mode manual")
        reasons = self._open_refusals()
        if reasons:
            return Answer("roof", action.value, False, reasons)
        self.inputs.resume_night()
        self._release_alarm_rest()
        with self.inputs.lock:
            if self.inputs.mode is Mode.MANUAL:
                self._requests.append("open")
        return Answer("roof", action.value, True, [])

    def _release_alarm_rest(self) -> None:
        """START or OPEN end the rest in ``alarm`` that follows an alarm once the roof is confirmed closed.

        Without it the MCP rests there (the latch, kept across restarts) and would accept the
        command without opening: an answer that promises what is not done.
        """
        with self.inputs.lock:
            if self.state is State.ALARM and not self.alarm:
                self._requests.append("release")

    def _request_close(self, request: str, *, end_night: bool) -> None:
        """CLOSE, and ABORT in every mode: the closing order runs (an opening is cut short first).

        ABORT also ends the night in manual and off mode, so that switching to auto does not
        reopen tonight; its answer says "closing for the night" and that is what happens.
        """
        with self.inputs.lock:
            if end_night:
                self._end_night(NIGHT_ENDED_BY_OPERATOR)
            self._requests.append(request)
        self._close_requested.set()

    def _open_refusals(self) -> list[str]:
        """Why OPEN cannot be done now; empty when it can."""
        mode = self.inputs.mode
        if mode is Mode.OFF:
            return ["mode is off"]
        conditions = self.conditions()
        reasons = list(conditions.hazards) + [f"not yet known: {p}" for p in conditions.pending]
        if self.alarm:
            reasons.append(f"alarm: {self.alarm}")
        if self.roof.position() is RoofPosition.UNKNOWN:
            reasons.append("roof state unknown")
        if mode is Mode.AUTO and not reasons:
            with self.inputs.lock:
                aborted, self.inputs.night_aborted = self.inputs.night_aborted, False
                try:
                    decision = decide(self.conditions())
                finally:
                    self.inputs.night_aborted = aborted
            if decision.roof is not RoofGoal.OPEN:
                reasons.append(decision.reason)
        return reasons

    def _handle_requests(self) -> None:
        while True:
            with self.inputs.lock:
                if not self._requests:
                    return
                request = self._requests.popleft()
            if request == "stop":
                self._stop_requested.clear()
                self._halt()
            elif request in ("close", "abort"):
                self._close_requested.clear()
                decision = decide(self.conditions())
                if decision.roof is not RoofGoal.CLOSED:  # manual or off: close once, as asked
                    asked = "CLOSE command" if request == "close" else f"ABORT: {NIGHT_ENDED_BY_OPERATOR}"
                    decision = Decision(decision.state, RoofGoal.CLOSED, asked)
                self._close(decision)
            elif request == "release" and self.state is State.ALARM and not self.alarm:
                self._transition(State.STANDBY, "the operator ended the rest after the alarm (START or OPEN)")
            elif request == "open" and self.inputs.mode is Mode.MANUAL and not self._open_refusals():
                self._open(Decision(State.MANUAL, RoofGoal.OPEN, "OPEN command"))

    def _halt(self) -> None:
        for name, action in (("roof", self.roof.stop), ("mount", self.mount.abort if self.mount else None)):
            if action is None:
                continue
            try:
                action()
                self._event("device_action", f"{name} motion aborted (STOP)", data={"step": f"abort_{name}"})
            except DeviceError as error:
                self._raise_alarm(f"STOP: {error}")
        self._roof_seen = self.roof.position()  # halted by the MCP: not "moved outside OBSY"

    def _close_before_exit(self) -> None:
        """The service is stopping: close the roof first in auto mode; report it in the others."""
        if self._cut_short.is_set():
            return
        self._ensure_devices()
        position = self.roof.position()
        mode = self.inputs.mode
        if position is RoofPosition.CLOSED:
            log.info("%s: the roof is closed", MCP_STOPPING)
            return
        data = {"roof": str(position), "mode": mode.value}
        if mode is not Mode.AUTO:
            self._event(
                "shutdown_roof_left",
                f"{MCP_STOPPING} in {mode.value} mode: the roof is {position} and stays as the operator has it; "
                "nothing closes it while the MCP is stopped",
                level="warning",
                data=data,
            )
            return
        limit = self.settings.shutdown_close_timeout
        self._event(
            "shutdown_closing",
            f"{MCP_STOPPING} with the roof {position} in auto mode: running the closing order before exiting "
            f"(at most {limit:g} s)",
            level="warning",
            data={**data, "limit_s": limit, "running": False},
        )
        self._close(Decision(State.STANDBY, RoofGoal.CLOSED, MCP_STOPPING))
        if self._cut_short.is_set():
            return
        position = self.roof.position()
        if position is RoofPosition.CLOSED:
            log.info("%s: the roof is closed", MCP_STOPPING)
        else:
            log.critical("%s: the closing did not close the roof (%s); exiting with it so", MCP_STOPPING, position)

    # ------------------------------------------------------------------ sequences

    def _close(self, decision: Decision) -> None:
        with self.inputs.lock:
            self._closing_running = True
        try:
            self._closing_order(decision)
        finally:
            self._roof_seen = self.roof.position()  # the MCP's own move: not "moved outside OBSY"
            self._apply_deferred()

    def _closing_order(self, decision: Decision) -> None:
        self._transition(State.CLOSING, decision.reason)
        self._alarm_attempt_at = self.clock()
        if self.ekos is not None:
            # One attempt only: a hung KStars must not hold the roof open (the mount is aborted next).
            self._step("stop_ekos_scheduler", self._stop_ekos, critical=False, retry=False)
        if self.mount is not None:
            self._step("abort_mount", self.mount.abort, critical=False)
            parked = self._step("park_mount", self.mount.park) and self.mount.parked() is True
            if self._cut_short.is_set():
                return  # the MCP is exiting now (shutdown)
            if not parked:
                if self.settings.park_failure_policy == "keep_open_and_alarm":
                    self._raise_alarm(
                        f"the mount {self.mount.name} did not park: the roof stays open "
                        "(park_failure_policy keep_open_and_alarm)"
                    )
                    self._transition(State.ALARM, self.alarm)
                    return
                self._event(
                    "closing_unparked",
                    "closing the roof over an unparked mount (park_failure_policy close_anyway)",
                    level="critical",
                )
        interrupted = self._stop_requested.is_set
        closed = self._step("close_roof", lambda: self.roof.close(interrupted), interruptible=True)
        if self._stop_requested.is_set():
            self._after_stop()
            return
        if self._cut_short.is_set():
            return  # exiting now: no alarm for a roof that was still on its way
        if not closed or self.roof.position() is not RoofPosition.CLOSED:
            self._raise_alarm(f"the roof {self.roof.name} did not close ({self.roof.position()})")
            self._transition(State.ALARM, self.alarm)
            return
        if self.alarm:
            self._clear_alarm("the roof is closed")
        after = decide(self.conditions())
        target, reason = after.state, after.reason
        if after.roof is RoofGoal.OPEN or target not in AFTER_CLOSING:
            # conditions allow opening again (or are not known yet): rest closed first
            target, reason = (
                (decision.state, decision.reason)
                if decision.state in AFTER_CLOSING
                else (
                    State.STANDBY,
                    "roof closed",
                )
            )
        self._transition(target, reason)

    def _open(self, decision: Decision) -> None:
        try:
            self._opening_order(decision)
        finally:
            self._roof_seen = self.roof.position()  # the MCP's own move: not "moved outside OBSY"

    def _opening_order(self, decision: Decision) -> None:
        self._transition(State.OPENING, decision.reason)
        self._close_requested.clear()
        if self.mount is not None:
            if self.mount.parked() is not True:
                self._event("device_action", "the mount is not parked: parking before opening", level="warning")
                if not self._step("park_mount", self.mount.park) or self.mount.parked() is not True:
                    self._raise_alarm(f"the mount {self.mount.name} is not parked: not opening")
                    self._transition(State.ALARM, self.alarm)
                    return
            self._event("device_action", "mount confirmed parked", data={"step": "confirm_parked"})

        def interrupted() -> bool:
            if self._stop_requested.is_set() or self._close_requested.is_set():
                return True
            if self._shutting_down.is_set() and self.inputs.mode is Mode.AUTO:
                return True  # the MCP is stopping: it closes instead
            now = decide(self.conditions())
            return now.roof is RoofGoal.CLOSED or (decision.state is State.OBSERVING and now.roof is not RoofGoal.OPEN)

        opened = self._step("open_roof", lambda: self.roof.open(interrupted), interruptible=True)
        if self._stop_requested.is_set():
            self._after_stop()
            return
        if not opened:
            if self.roof.position() is RoofPosition.OPEN or interrupted():
                return  # the next step decides (closing, most likely)
            self._raise_alarm(f"the roof {self.roof.name} did not open ({self.roof.position()})")
            self._transition(State.ALARM, self.alarm)
            return
        if decision.state is State.OBSERVING and self.ekos is not None:
            self._ekos_retried = False
            schedule = self.inputs.schedule_path()
            if schedule and not self._step("start_ekos_schedule", lambda: self._start_ekos(schedule), critical=False):
                self._raise_alarm("the Ekos schedule did not start")
                self._transition(State.ALARM, self.alarm)
                return
        target = decision.state if decision.state in (State.OBSERVING, State.MANUAL) else State.MANUAL
        if self.inputs.mode is Mode.OFF:
            target = State.OFF
        self._transition(target, decision.reason)

    def _after_stop(self) -> None:
        self._stop_requested.clear()
        with self.inputs.lock:
            self._requests = deque(r for r in self._requests if r != "stop")
        self._halt()
        self._transition(State.MANUAL, "STOP: roof halted by the operator")

    def _step(
        self,
        name: str,
        action: Callable[[], None],
        *,
        critical: bool = True,
        interruptible: bool = False,
        retry: bool = True,
    ) -> bool:
        """Run one device step with retries; an event for each attempt; True when it succeeded."""
        attempts = 1 + (self.settings.devices.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            data = {"step": name, "attempt": attempt}
            self._event("device_action", f"{name}: started (attempt {attempt})", data=data)
            self.publish_state()
            try:
                action()
            except StepInterrupted as error:
                self._event("device_action", f"{name}: interrupted ({error})", level="warning", data={"step": name})
                return False
            except (DeviceError, EkosError) as error:
                if self._cut_short.is_set():
                    return False  # the MCP is exiting: the step was cut off, it did not fail
                level = "error" if attempt == attempts and critical else "warning"
                self._event(
                    "step_failed",
                    f"{name} failed (attempt {attempt} of {attempts}): {error}",
                    level=level,
                    data={"step": name, "attempt": attempt, "error": str(error)},
                )
                if attempt < attempts and not (interruptible and self._stop_requested.is_set()):
                    self._cut_short.wait(self.settings.devices.retry_delay)
                    continue
                return False
            self._event("device_action", f"{name}: done", data={"step": name, "attempt": attempt})
            return True
        return False

    def _stop_ekos(self) -> None:
        assert self.ekos is not None
        self.ekos.stop_scheduler()
        self.ekos_status = self.ekos.scheduler_status().name.lower()

    def _start_ekos(self, schedule: str) -> None:
        assert self.ekos is not None
        self.ekos.start_night(schedule)
        status = self.ekos.scheduler_status()
        self.ekos_status = status.name.lower()
        self._ekos_was_running = True  # from now on, idle means the schedule has finished
        self._ekos_polled_at = self.clock()

    # ------------------------------------------------------------------ the Ekos scheduler while observing

    def _watch_ekos(self) -> None:
        """Read the scheduler's status while observing (on a worker thread) and act on what it says."""
        if self.ekos is None or self.state is not State.OBSERVING:
            self._ekos_poll = None  # a reading from before the closing means nothing now
            return
        poll = self._ekos_poll
        if poll is not None and poll.done():
            self._ekos_poll = None
            try:
                status = poll.result()
            except EkosError as error:
                if not self._ekos_unreachable:
                    self._ekos_unreachable = True
                    self._event("ekos_unreachable", f"cannot read the Ekos scheduler: {error}", level="warning")
            else:
                self._ekos_unreachable = False
                self._ekos_status_seen(status)
        now = self.clock()
        due = self._ekos_polled_at is None or now - self._ekos_polled_at >= self.settings.ekos.poll_interval
        if self._ekos_poll is None and due:
            self._ekos_polled_at = now
            self._ekos_poll = self._ekos_worker.submit(self.ekos.scheduler_status)

    def _ekos_status_seen(self, status: SchedulerStatus) -> None:
        name = status.name.lower()
        if name != self.ekos_status:
            self._event("ekos_scheduler", f"Ekos scheduler: {name}", data={"status": name, "was": self.ekos_status})
            self.ekos_status = name
        if status in EKOS_ACTIVE:
            self._ekos_was_running = True
        elif status is SchedulerStatus.SHUTDOWN or (status is SchedulerStatus.IDLE and self._ekos_was_running):
            self._ekos_was_running = False
            self._event("ekos_schedule_finished", f"the Ekos schedule has finished ({name}): closing for the night")
            self._end_night(SCHEDULE_FINISHED)
        elif status is SchedulerStatus.ABORTED:
            self._ekos_aborted()

    def _ekos_aborted(self) -> None:
        policy = self.settings.ekos.on_abort
        schedule = self.inputs.schedule_path()
        retry = bool(policy == "retry_then_close" and not self._ekos_retried and schedule)
        if policy == "keep_open":
            what = "reported only (on_abort keep_open)"
        else:
            what = "starting it once more" if retry else "closing for the night"
        self._event(
            "ekos_scheduler_aborted",
            f"the Ekos scheduler aborted: {what}",
            level="warning" if retry or policy == "keep_open" else "error",
            data={"policy": policy, "retried": self._ekos_retried},
        )
        if policy == "keep_open":
            return
        if retry:
            self._ekos_retried = True
            restart = lambda: self._start_ekos(schedule or "")  # noqa: E731
            if self._step("restart_ekos_schedule", restart, critical=False, retry=False):
                return
        self._ekos_was_running = False
        self._end_night("the Ekos scheduler aborted")

    # ------------------------------------------------------------------ alarms, transitions, state

    def _alarm_retry_due(self) -> bool:
        return (
            self._alarm_attempt_at is None
            or self.clock() - self._alarm_attempt_at >= self.settings.alarm_retry_interval
            or bool(self._requests)
        )

    def _raise_alarm(self, reason: str) -> None:
        self.alarm = reason
        self._event("alarm", reason, level="critical", data={"alarm": reason})
        self.publish_state()

    def _clear_alarm(self, why: str) -> None:
        self._event("alarm_cleared", f"alarm cleared: {why} (was: {self.alarm})", data={"was": self.alarm})
        self.alarm = ""

    def _transition(self, target: State, reason: str) -> None:
        if target is self.state:
            if reason != self.reason:
                self.reason = reason
                self.publish_state()
            return
        if not transition_allowed(self.state, target):
            message = f"transition {self.state} -> {target} is not in the transition table"
            log.error(message)
            self.alarm = self.alarm or message
            target, reason = State.ALARM, message
            if not transition_allowed(self.state, target):
                return
        record = McpTransition(at=datetime.now(UTC), from_state=self.state, to_state=target, reason=reason)
        self.transitions.append(record)
        previous, self.state, self.reason = self.state, target, reason
        self._event(
            "transition",
            f"{previous} -> {target}: {reason}",
            data={"from": str(previous), "to": str(target), "reason": reason},
        )
        if not self.inputs.broker_connected:
            self._while_broker_lost.append(f"{previous} -> {target} ({reason})")
        self._roof_event(previous, target, reason)
        self.publish_state()

    def _roof_event(self, previous: State, target: State, reason: str) -> None:
        """``roof_closing`` (with the unsafe reasons, if any), ``roof_closed``, ``roof_opened``: what people
        are told about and automate on; the closing's reasons go with the closed event too."""
        if target is State.CLOSING:
            self._told.closing_reason = reason
            self._told.closing_unsafe = list(self.conditions().unsafe_reasons)
            unsafe = self._told.closing_unsafe
            self._event(
                "roof_closing",
                f"closing the roof: {reason}",
                level="warning" if unsafe else "info",
                data={"reason": reason, "unsafe_reasons": unsafe},
            )
        elif previous is State.CLOSING and self.roof.position() is RoofPosition.CLOSED:
            self._event(
                "roof_closed",
                f"roof closed: {self._told.closing_reason}",
                data={"reason": self._told.closing_reason, "unsafe_reasons": self._told.closing_unsafe},
            )
        elif previous is State.OPENING and target in AFTER_OPENING and self.roof.position() is RoofPosition.OPEN:
            self._event("roof_opened", f"roof open: {reason}", data={"reason": reason})

    def snapshot(self) -> McpState:
        conditions = self.conditions()
        return McpState(
            state=self.state,
            reason=self.reason,
            mode=conditions.mode,
            roof=self.roof.position().value,
            mount_parked=self.mount.parked() if self.mount else None,
            safe=not conditions.unsafe_reasons and not conditions.pending,
            alarm=bool(self.alarm),
            alarm_reason=self.alarm,
            unsafe_reasons=list(conditions.unsafe_reasons),
            recent_transitions=list(self.transitions),
            sun_altitude=None if conditions.sun_altitude is None else round(conditions.sun_altitude, 2),
            ekos_scheduler=self.ekos_status,
            night_aborted=conditions.night_aborted,
        )

    def publish_state(self) -> None:
        """Publish the state when it changed; the operator's decisions are saved first (see _remember)."""
        self._remember()
        with self._lock:
            state = self.snapshot()
            content = state.model_dump(exclude={"timestamp", "sun_altitude"})
            if content == self._last_published:
                return
            self._last_published = content
        self.outbox.state(state)

    def _event(self, kind: str, message: str, *, level: str = "info", data: dict[str, Any] | None = None) -> None:
        log.log(logging.getLevelName(level.upper()) if level != "critical" else logging.CRITICAL, message)
        self.outbox.event(Event(service="mcp", kind=kind, level=level, message=message, data=data or {}))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ time and sky

    def sun_altitude(self) -> float:
        return float(self._sun_altitude())

    def _sun_from_astro(self) -> float:
        now = time.monotonic()  # astropy is not free: once every SUN_CACHE_S is plenty
        if self._sun_cache is None or now - self._sun_cache[0] > SUN_CACHE_S:
            self._sun_cache = (now, astro.sun_altitude_now(self.config.site))
        return self._sun_cache[1]

    def tonight(self) -> str:
        """The observing night's date (the plan's ``night``); cached: it is asked on every evaluation."""
        now = time.monotonic()
        if self._night_cache is None or now - self._night_cache[0] > SUN_CACHE_S:
            self._night_cache = (now, astro.night_of(self.config.site, datetime.now(UTC)).isoformat())
        return self._night_cache[1]

    def _tonight_date(self) -> date:
        return date.fromisoformat(self.tonight())
