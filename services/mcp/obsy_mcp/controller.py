"""The MCP's controller thread: evaluates, runs the sequences, and owns the life cycle.

One thread owns the devices. Bus handlers only update :class:`Inputs`, answer commands (at
once, with an event: :mod:`obsy_mcp.commands`) and wake the thread; what a command asks of
the devices reaches it through one queue (:class:`~obsy_mcp.commands.Pending`), which a
running sequence also reads between its checks (every 50 ms).

The controller wires the parts and turns what they report into states:

- :mod:`obsy_mcp.statemachine`: the rules and transitions (pure);
- :mod:`obsy_mcp.commands`: each command's checks and answer, and the one path to this thread;
- :mod:`obsy_mcp.sequences` (with :mod:`obsy_mcp.steps`): the closing and opening orders;
- :mod:`obsy_mcp.ekos_watch`: the Ekos scheduler started, stopped and watched while observing;
- :mod:`obsy_mcp.publishing`: the state and the events, the roof and night announcements.

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
from datetime import UTC, date, datetime

from obsy import astro
from obsy.config import ObsyConfig
from obsy.indi import IndiClient, IndiError
from obsy.messages import CommandOrigin, EventKind, McpState, McpTransition, Mode
from obsy_mcp import operator_state
from obsy_mcp.commands import NIGHT_ENDED_BY_OPERATOR, Answer, Commands, Pending, Request
from obsy_mcp.devices import DeviceError, Mount, Roof, RoofPosition, SendHook
from obsy_mcp.driverwatch import DriverWatch
from obsy_mcp.ekos import Ekos
from obsy_mcp.ekos_watch import EkosWatch
from obsy_mcp.inputs import Clock, Inputs
from obsy_mcp.publishing import Announcements, Outbox, Publisher
from obsy_mcp.sequences import Outcome, Result, Sequences
from obsy_mcp.statemachine import (
    AFTER_CLOSING,
    Conditions,
    Decision,
    RoofGoal,
    State,
    decide,
    next_state,
    transition_allowed,
)
from obsy_mcp.steps import Steps
from obsy_mcp.supervision import INDI, Supervisor

log = logging.getLogger("obsy.mcp")

RECENT_TRANSITIONS = 10
SUN_CACHE_S = 30.0
#: Why the night ended when someone else (Ekos, a hand controller, the driver's own safety,
#: an operator in an INDI panel) closed the roof while the MCP observed.
ROOF_CLOSED_OUTSIDE = "roof closed outside OBSY"
ROOF_STOPPED_OUTSIDE = "roof stopped outside OBSY"
#: The reason of the closing the MCP runs because it is being stopped.
MCP_STOPPING = "MCP stopping"


def _direction(position: RoofPosition) -> str:
    """Open, closed or stopped: a roof moving towards a position counts as that position."""
    if position in (RoofPosition.OPEN, RoofPosition.OPENING):
        return "open"
    if position in (RoofPosition.CLOSED, RoofPosition.CLOSING):
        return "closed"
    return str(position)


class Controller:
    """The MCP's one thread that moves devices; bus handlers call :meth:`command` and the inputs' setters."""

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
        self.clock = clock
        self._broker_connected = broker_connected
        self.inputs = Inputs(self.settings, clock)
        devices = self.settings.devices
        self.roof = Roof(indi, devices.roof, devices, on_indi_send)
        self.mount = Mount(indi, devices.mount, devices, on_indi_send) if devices.mount else None
        self._sun_altitude = sun_altitude or self._sun_from_astro
        self._sun_cache: tuple[float, float] | None = None
        self._night_cache: tuple[float, str] | None = None

        self.state = State.STARTING
        self.reason = "starting: reading the devices back"
        self.alarm = ""
        self.transitions: deque[McpTransition] = deque(maxlen=RECENT_TRANSITIONS)
        self._alarm_attempt_at: float | None = None
        self._devices_unknown_since: float | None = None
        self._devices_reported = self._devices_connected = False
        self._roof_seen = RoofPosition.UNKNOWN  # where the MCP's own last evaluation or sequence left the roof
        self._while_broker_lost: list[str] = []

        # life cycle
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop_thread = threading.Event()
        self._shutting_down = threading.Event()  # the service is stopping: close (see shutdown), then exit
        self._exiting = threading.Event()  # shutdown cut short (a second stop request, or the limit): exit now
        self._exiting_why = ""

        # the parts
        self.publisher = Publisher(outbox)
        self.event = self.publisher.event
        self.announcements = Announcements(self.event)
        self.decision = operator_state.Keeper(
            operator_state.state_path(config), self.inputs, self.event, default_reason=NIGHT_ENDED_BY_OPERATOR
        )
        self.pending = Pending()
        self.commands = Commands(self, self.pending)
        steps = Steps(devices, self.event, self.publish_state, self.pending.stop_requested, self._exiting)
        self.ekos = ekos
        self.ekos_watch = (
            EkosWatch(
                ekos,
                settings=self.settings.ekos,
                clock=clock,
                event=self.event,
                steps=steps,
                schedule_path=self.inputs.schedule_path,
            )
            if ekos is not None
            else None
        )
        self.sequences = Sequences(
            self.settings,
            roof=self.roof,
            mount=self.mount,
            ekos=self.ekos_watch,
            steps=steps,
            pending=self.pending,
            event=self.event,
            exiting=self._exiting,
            schedule_path=self.inputs.schedule_path,
        )
        self.supervisor = supervisor or Supervisor(self.settings.supervision, clock, self.event)
        watched = self.settings.supervision.indi.devices
        if watched is None:
            watched = [name for name in (devices.roof, devices.mount) if name]
        self.driver_watch = DriverWatch(indi, self.settings.supervision.indi, watched)
        indi.on_reconnect(self._on_indi_reconnect)

    # ------------------------------------------------------------------ the operator's last decision

    def restore_operator_state(self) -> None:
        """Take up the operator's last decision from the state file; call before the first state goes out."""
        self.alarm = self.decision.restore(self._tonight_date())

    def _remember(self) -> None:
        """Save the operator's decisions when they changed; an alarm, and the rest in ``alarm`` after it, latch."""
        self.decision.remember(alarm=self.alarm or (self.reason if self.state is State.ALARM else ""))

    # ------------------------------------------------------------------ life cycle

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
        if self.ekos_watch is not None:
            self.ekos_watch.close()
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
        if self.pending.closing_running():
            self.reason = f"{MCP_STOPPING}: finishing the closing ({self.reason})"
            self.event(
                EventKind.SHUTDOWN_CLOSING,
                f"{MCP_STOPPING}: a closing is running; finishing it before exiting (at most {limit:g} s)",
                level="warning",
                data={"roof": str(self.roof.position()), "limit_s": limit, "running": True},
            )
            self.publish_state()
        self._shutting_down.set()
        self._wake.set()
        thread = self._thread
        while thread is not None and thread.is_alive() and not self._exiting.is_set():
            if time.monotonic() >= deadline:
                self._exiting_why = f"the limit of {limit:g} s (shutdown_close_timeout) was reached"
                self._exiting.set()
                break
            thread.join(0.1)
        finished = not self._exiting.is_set()
        if not finished:
            mount = self.mount.parked() if self.mount else "no mount"
            self.event(
                EventKind.SHUTDOWN_CUT_SHORT,
                f"{MCP_STOPPING}: closing cut short ({self._exiting_why}); exiting now with the roof "
                f"{self.roof.position()}, mount parked: {mount}",
                level="critical",
                data={"why": self._exiting_why, "roof": str(self.roof.position())},
            )
            if thread is not None:
                thread.join(1.0)  # it stops at its next check; a device wait in progress dies with the process
        self.stop(timeout=0)
        return finished

    def cut_shutdown_short(self, why: str = "a second stop request") -> None:
        """End :meth:`shutdown` at once; only sets flags (it runs in a signal handler)."""
        self._exiting_why = why
        self._exiting.set()

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

    def _close_before_exit(self) -> None:
        """The service is stopping: close the roof first in auto mode; report it in the others."""
        if self._exiting.is_set():
            return
        self._ensure_devices()
        position = self.roof.position()
        mode = self.inputs.mode
        if position is RoofPosition.CLOSED:
            log.info("%s: the roof is closed", MCP_STOPPING)
            return
        data = {"roof": str(position), "mode": mode.value}
        if mode is not Mode.AUTO:
            self.event(
                EventKind.SHUTDOWN_ROOF_LEFT,
                f"{MCP_STOPPING} in {mode.value} mode: the roof is {position} and stays as the operator has it; "
                "nothing closes it while the MCP is stopped",
                level="warning",
                data=data,
            )
            return
        limit = self.settings.shutdown_close_timeout
        self.event(
            EventKind.SHUTDOWN_CLOSING,
            f"{MCP_STOPPING} with the roof {position} in auto mode: running the closing order before exiting "
            f"(at most {limit:g} s)",
            level="warning",
            data={**data, "limit_s": limit, "running": False},
        )
        self._close(Decision(State.STANDBY, RoofGoal.CLOSED, MCP_STOPPING))
        if self._exiting.is_set():
            return
        position = self.roof.position()
        if position is RoofPosition.CLOSED:
            log.info("%s: the roof is closed", MCP_STOPPING)
        else:
            log.critical("%s: the closing did not close the roof (%s); exiting with it so", MCP_STOPPING, position)

    # ------------------------------------------------------------------ inputs and commands

    def broker_changed(self, connected: bool) -> None:
        if not connected and self.inputs.broker_connected:
            self.event(
                EventKind.BROKER_LOST, f"lost the broker; closing after {self.settings.broker_grace:g} s without it"
            )
        self.inputs.set_broker(connected)
        if connected and self._while_broker_lost:
            done, self._while_broker_lost = self._while_broker_lost, []
            self.event(
                EventKind.BROKER_RETURNED,
                "the broker is back; while it was gone: " + "; ".join(done),
                level="warning",
                data={"while_lost": done},
            )
        self.wake()

    def _on_indi_reconnect(self) -> None:
        self._devices_connected = False  # the drivers restarted: connect them and read them back
        self.event(EventKind.INDI_RECONNECTED, "indiserver is back: reading the devices back", level="warning")
        self.wake()

    def command(
        self, thing: str, value: str, origin: CommandOrigin | None = None, request_id: str | None = None
    ) -> Answer:
        """Answer a command at once (and publish the answer); the work happens on the controller thread."""
        answer = self.commands.answer(thing, value.strip())
        answer.origin = origin or CommandOrigin()
        answer.request_id = request_id
        self._remember()  # saved before the answer goes out: an accepted decision survives a restart
        self.publisher.send(answer.event())
        if answer.accepted:
            self.wake()
        return answer

    def end_night(self, reason: str) -> None:
        """Tonight's observing is over: closed until START, OPEN, or the next observing night."""
        self.inputs.end_night(reason, self._tonight_date())
        self.announcements.night_ended_early(reason, self.tonight())

    # ------------------------------------------------------------------ one evaluation

    def conditions(self) -> Conditions:
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
        if self.ekos_watch is not None and (ends := self.ekos_watch.check(self.state is State.OBSERVING)):
            self.end_night(ends)
        self._next_night_clears_night_ended()
        conditions = self.conditions()
        self.announcements.dusk_and_dawn(conditions, self.tonight())
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

    def _handle_requests(self) -> None:
        """Carry out what the commands asked, in the order they came."""
        while (request := self.pending.take()) is not None:
            if request is Request.STOP:
                self._halt()
            elif request in (Request.CLOSE, Request.ABORT):
                decision = decide(self.conditions())
                if decision.roof is not RoofGoal.CLOSED:  # manual or off: close once, as asked
                    asked = "CLOSE command" if request is Request.CLOSE else f"ABORT: {NIGHT_ENDED_BY_OPERATOR}"
                    decision = Decision(decision.state, RoofGoal.CLOSED, asked)
                self._close(decision)
            elif request is Request.RELEASE and self.state is State.ALARM and not self.alarm:
                self._transition(State.STANDBY, "the operator ended the rest after the alarm (START or OPEN)")
            elif request is Request.OPEN and self.inputs.mode is Mode.MANUAL and not self.commands.open_refusals():
                self._open(Decision(State.MANUAL, RoofGoal.OPEN, "OPEN command"))

    def _next_night_clears_night_ended(self) -> None:
        """A night ended holds for the observing night it was ended for (local noon to noon), no longer."""
        tonight = self._tonight_date()
        resumed = self.inputs.resume_if_ended_before(tonight)
        if resumed is None:
            return
        ended_for, reason = resumed
        self.event(
            EventKind.NIGHT_RESUMED,
            f"a new observing night ({tonight}): the night {ended_for} that was ended ({reason}) is over",
            data={"night": tonight.isoformat(), "ended_for": ended_for.isoformat(), "reason": reason},
        )

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
            self.event(
                EventKind.ROOF_MOVED_OUTSIDE,
                f"{reason} while observing (read back: {position}): not reopening; "
                "stopping Ekos, parking the mount, confirming the roof closed",
                level="critical",
                data={"from": str(seen), "to": str(position), "state": str(self.state), "action": "end_night"},
            )
            self.end_night(reason)
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
        self.event(
            EventKind.ROOF_MOVED_OUTSIDE,
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
            self.event(
                EventKind.INDI_RECONNECTED, "a driver came back disconnected: reading the devices back", level="warning"
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
            self.event(
                EventKind.DEVICES_READ_BACK,
                f"roof {position}, mount parked: {self.mount.parked() if self.mount else 'no mount'}",
                data={"roof": str(position), "mount_parked": self.mount.parked() if self.mount else None},
            )
        except DeviceError as error:
            log.warning("devices not ready: %s", error)

    # ------------------------------------------------------------------ running the sequences

    def _close(self, decision: Decision) -> None:
        """The closing order, then the resting state; commands that came meanwhile are applied after it."""
        self.pending.closing_started()
        try:
            self._transition(State.CLOSING, decision.reason)
            self._alarm_attempt_at = self.clock()
            if self._ended_otherwise(self.sequences.close()):
                return
            if self.alarm:
                self._clear_alarm("the roof is closed")
            after = decide(self.conditions())
            target, reason = after.state, after.reason
            if after.roof is RoofGoal.OPEN or target not in AFTER_CLOSING:
                # conditions allow opening again (or are not known yet): rest closed first
                in_order = decision.state in AFTER_CLOSING
                target, reason = (decision.state, decision.reason) if in_order else (State.STANDBY, "roof closed")
            self._transition(target, reason)
        finally:
            self._roof_seen = self.roof.position()  # the MCP's own move: not "moved outside OBSY"
            self.commands.apply_deferred()

    def _open(self, decision: Decision) -> None:
        """The opening order, then observing (auto) or manual; cut short when it is no longer wanted."""
        try:
            self._transition(State.OPENING, decision.reason)
            result = self.sequences.open(
                start_ekos=decision.state is State.OBSERVING, unwanted=lambda: self._opening_unwanted(decision)
            )
            if self._ended_otherwise(result):
                return
            target = decision.state if decision.state in (State.OBSERVING, State.MANUAL) else State.MANUAL
            if self.inputs.mode is Mode.OFF:
                target = State.OFF
            self._transition(target, decision.reason)
        finally:
            self._roof_seen = self.roof.position()  # the MCP's own move: not "moved outside OBSY"

    def _opening_unwanted(self, decision: Decision) -> bool:
        """The MCP is stopping (auto mode: it closes instead), or the conditions no longer call for an open roof."""
        if self._shutting_down.is_set() and self.inputs.mode is Mode.AUTO:
            return True
        now = decide(self.conditions())
        return now.roof is RoofGoal.CLOSED or (decision.state is State.OBSERVING and now.roof is not RoofGoal.OPEN)

    def _ended_otherwise(self, result: Result) -> bool:
        """Act on a sequence that did not end as planned (alarm, STOP); True unless it is DONE."""
        if result.outcome is Outcome.FAILED:
            self._raise_alarm(result.alarm)
            self._transition(State.ALARM, self.alarm)
        elif result.outcome is Outcome.STOPPED:
            self.pending.stop_done()
            self._halt()
            self._transition(State.MANUAL, "STOP: roof halted by the operator")
        return result.outcome is not Outcome.DONE

    def _halt(self) -> None:
        self.sequences.halt(on_error=lambda error: self._raise_alarm(f"STOP: {error}"))
        self._roof_seen = self.roof.position()  # halted by the MCP: not "moved outside OBSY"

    # ------------------------------------------------------------------ alarms, transitions, state

    def _alarm_retry_due(self) -> bool:
        return (
            self._alarm_attempt_at is None
            or self.clock() - self._alarm_attempt_at >= self.settings.alarm_retry_interval
            or self.pending.waiting()
        )

    def _raise_alarm(self, reason: str) -> None:
        self.alarm = reason
        self.event(EventKind.ALARM, reason, level="critical", data={"alarm": reason})
        self.publish_state()

    def _clear_alarm(self, why: str) -> None:
        self.event(EventKind.ALARM_CLEARED, f"alarm cleared: {why} (was: {self.alarm})", data={"was": self.alarm})
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
        self.event(
            EventKind.TRANSITION,
            f"{previous} -> {target}: {reason}",
            data={"from": str(previous), "to": str(target), "reason": reason},
        )
        if not self.inputs.broker_connected:
            self._while_broker_lost.append(f"{previous} -> {target} ({reason})")
        self.announcements.transition(
            previous,
            target,
            reason,
            roof=self.roof.position,
            unsafe_reasons=lambda: self.conditions().unsafe_reasons,
        )
        self.publish_state()

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
            ekos_scheduler=self.ekos_watch.status if self.ekos_watch is not None else None,
            night_aborted=conditions.night_aborted,
        )

    def publish_state(self) -> None:
        """Publish the state when it changed; the operator's decisions are saved first (see _remember)."""
        self._remember()
        self.publisher.state(self.snapshot)

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
