"""The MCP's commands: each one's checks and its answer (:data:`COMMANDS`), and the one path to the controller.

A command is answered at once on the bus thread, with an event; what it asks of the devices
goes to the controller thread through :class:`Pending`, the only way there:

- STOP, CLOSE, ABORT, OPEN (manual mode) and the end of the rest after an alarm are
  :class:`Request` s in one queue, taken in order by the controller at its next evaluation.
  A running sequence reads the same queue: a STOP waiting halts it, a CLOSE or ABORT waiting
  cuts an opening short (:meth:`Pending.stop_requested`, :meth:`Pending.close_requested`).
- While a closing runs, every command but OPEN and STOP is answered at once ("deferred") and
  kept; it is applied when the closing has finished, in the order it came, so nothing
  interrupts or repeats the closing. STOP drops what was kept: the operator takes over now.

CLOSE is always accepted; OPEN only when every condition is safe (:meth:`Commands.open_refusals`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from obsy.messages import CommandAnswer, CommandOrigin, Event, EventKind, Mode, NightAction, RoofAction
from obsy_mcp.devices import Roof
from obsy_mcp.inputs import Inputs
from obsy_mcp.statemachine import Conditions, Decision, RoofGoal, RoofPosition, State, decide

NIGHT_ENDED_BY_OPERATOR = "night ended by the operator"


class Answer:
    """The answer to one command: accepted, or rejected with reasons; ``origin`` says who sent it and
    ``request_id`` repeats the sender's. On the bus it is a :class:`~obsy.messages.CommandAnswer` event."""

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
        request_id: str | None = None,
    ) -> None:
        self.thing, self.value, self.accepted, self.reasons, self.note = thing, value, accepted, reasons, note
        self.deferred = deferred  # accepted now, applied when the running closing has finished
        self.origin = origin or CommandOrigin()
        self.request_id = request_id

    def event(self) -> Event:
        answer = CommandAnswer.of(
            self.thing,
            self.value,
            accepted=self.accepted,
            origin=self.origin,
            request_id=self.request_id,
            reasons=self.reasons,
            note=self.note,
            deferred=self.deferred,
        )
        return answer.as_event("mcp")


class Request(StrEnum):
    """What a command asks of the controller thread."""

    STOP = "stop"  # halt roof and mount where they are
    CLOSE = "close"  # the closing order (CLOSE)
    ABORT = "abort"  # the closing order, the night ended (ABORT)
    OPEN = "open"  # the opening order in manual mode (OPEN)
    RELEASE = "release"  # end the rest in alarm after an alarm (START, OPEN)


#: The requests a closing carries out.
CLOSING_REQUESTS = frozenset({Request.CLOSE, Request.ABORT})


class Pending:
    """The one path from the commands (bus thread) to the controller thread: requests, and deferred commands."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Request] = deque()
        self._closing = False
        self._deferred: list[tuple[str, str]] = []

    def push(self, request: Request) -> None:
        with self._lock:
            if request in CLOSING_REQUESTS and self._closing:
                return  # a closing started after the command was answered: it carries the request out
            self._queue.append(request)

    def stop(self) -> list[tuple[str, str]]:
        """STOP: queued before anything else is done, and the commands kept for after the closing dropped."""
        with self._lock:
            self._queue.append(Request.STOP)
            dropped, self._deferred = self._deferred, []
        return dropped

    def take(self) -> Request | None:
        """The oldest request, or None."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def stop_done(self) -> None:
        """A running sequence has carried out the STOP: every STOP waiting is done with it."""
        with self._lock:
            self._queue = deque(r for r in self._queue if r is not Request.STOP)

    def stop_requested(self) -> bool:
        with self._lock:
            return Request.STOP in self._queue

    def close_requested(self) -> bool:
        """A CLOSE or ABORT waiting: an opening running now is cut short for it."""
        with self._lock:
            return Request.CLOSE in self._queue or Request.ABORT in self._queue

    def waiting(self) -> bool:
        with self._lock:
            return bool(self._queue)

    def closing_started(self) -> None:
        """A closing starts (for a request or by the rules): it carries out every CLOSE and ABORT waiting.

        So a STOP that comes during it is the last word: no CLOSE from before it closes the roof
        again afterwards. Commands that come during the closing wait for its end (:meth:`defer`).
        """
        with self._lock:
            self._closing = True
            self._queue = deque(r for r in self._queue if r not in CLOSING_REQUESTS)

    def closing_running(self) -> bool:
        with self._lock:
            return self._closing

    def defer(self, thing: str, value: str) -> bool:
        """While a closing runs: keep the command for when it has finished (True); else False."""
        with self._lock:
            if not self._closing:
                return False
            self._deferred.append((thing, value))
            return True

    def closing_finished(self) -> list[tuple[str, str]]:
        """The closing has finished: the commands kept for it, in the order they came."""
        with self._lock:
            self._closing = False
            deferred, self._deferred = self._deferred, []
        return deferred


class Controls(Protocol):
    """What the command table reads from the controller and asks of it."""

    inputs: Inputs
    roof: Roof
    state: State
    alarm: str

    def conditions(self) -> Conditions: ...

    def end_night(self, reason: str) -> None: ...

    def event(
        self, kind: EventKind, message: str, *, level: str = "info", data: dict[str, Any] | None = None
    ) -> None: ...


def decide_if_night_resumed(conditions: Conditions) -> Decision:
    """What the rules would decide if the night had not been ended: a what-if that changes nothing."""
    return decide(replace(conditions, night_aborted=False))


@dataclass(frozen=True)
class Command:
    """One command of the table: what it does, and whether a running closing makes it wait."""

    handle: Callable[[Commands, str], Answer]
    waits_for_closing: bool


#: Each command topic: its values, how a value is normalised, and the words of a rejection.
VALUES: dict[str, tuple[type[StrEnum], Callable[[str], str], str]] = {
    "roof": (RoofAction, str.upper, "roof command {value!r} (expected OPEN, CLOSE or STOP)"),
    "mode": (Mode, str.lower, "mode {value!r} (expected auto, manual or off)"),
    "night": (NightAction, str.upper, "night command {value!r} (expected START or ABORT)"),
}


class Commands:
    """Answers commands: the checks and the answer of each (see :data:`COMMANDS`)."""

    def __init__(self, controls: Controls, pending: Pending) -> None:
        self.controls = controls
        self.inputs = controls.inputs
        self.pending = pending

    def answer(self, thing: str, value: str) -> Answer:
        """The answer to ``thing value`` (already stripped); what it asks is queued for the controller."""
        known = VALUES.get(thing)
        if known is None:
            return Answer(thing, value, False, [f"unknown command topic {thing!r}"])
        kind, normalise, unknown = known
        try:
            value = kind(normalise(value)).value
        except ValueError:
            return Answer(thing, value, False, ["unknown " + unknown.format(value=value)])
        command = COMMANDS[(thing, value)]
        if command.waits_for_closing and self.pending.defer(thing, value):
            if (thing, value) == ("roof", RoofAction.CLOSE):
                note = "a closing is already running: it is not started again"
            else:
                note = "a closing is running: this takes effect when it has finished"
            return Answer(thing, value, True, [], note, deferred=True)
        return command.handle(self, value)

    # --- the commands -------------------------------------------------------------------
    def open(self, value: str) -> Answer:
        reasons = self.open_refusals()
        if reasons:
            return Answer("roof", value, False, reasons)
        self.inputs.resume_night()
        self._release_alarm_rest()
        if self.inputs.mode is Mode.MANUAL:
            self.pending.push(Request.OPEN)
        return Answer("roof", value, True, [])

    def close(self, value: str) -> Answer:
        """Always accepted; in auto mode the night ends too (closed until OPEN or START)."""
        self._request_close(Request.CLOSE, end_night=self.inputs.mode is Mode.AUTO)
        return Answer("roof", value, True, [])

    def stop(self, value: str) -> Answer:
        """Roof and mount halted where they are; in auto mode the operator takes over (manual)."""
        self.inputs.stop_takes_over()
        dropped = self.pending.stop()
        if dropped:
            self.controls.event(
                EventKind.DEFERRED_COMMANDS_DROPPED,
                "STOP: dropped the commands waiting for the closing: "
                + ", ".join(f"{thing} {value}" for thing, value in dropped),
                level="warning",
                data={"commands": [{"thing": thing, "value": value} for thing, value in dropped]},
            )
        return Answer("roof", value, True, [], "roof halted; mode manual")

    def mode(self, value: str) -> Answer:
        self.inputs.set_mode(Mode(value))
        return Answer("mode", value, True, [])

    def start(self, value: str) -> Answer:
        if self.inputs.mode is not Mode.AUTO:
            return Answer("night", value, False, [f"mode is {self.inputs.mode.value}: switch to auto first"])
        self.inputs.resume_night()
        self._release_alarm_rest()
        decision = decide(self.controls.conditions())
        note = "opening" if decision.roof is RoofGoal.OPEN else f"waiting: {decision.reason}"
        return Answer("night", value, True, [], note)

    def abort(self, value: str) -> Answer:
        """The closing order in every mode, and the night ended: the answer says so and that is what happens."""
        self._request_close(Request.ABORT, end_night=True)
        return Answer("night", value, True, [], "closing for the night")

    # --- checks and what follows ----------------------------------------------------------
    def open_refusals(self) -> list[str]:
        """Why OPEN cannot be done now; empty when it can. Changes nothing."""
        mode = self.inputs.mode
        if mode is Mode.OFF:
            return ["mode is off"]
        conditions = self.controls.conditions()
        reasons = list(conditions.hazards) + [f"not yet known: {p}" for p in conditions.pending]
        if self.controls.alarm:
            reasons.append(f"alarm: {self.controls.alarm}")
        if self.controls.roof.position() is RoofPosition.UNKNOWN:
            reasons.append("roof state unknown")
        if mode is Mode.AUTO and not reasons:
            decision = decide_if_night_resumed(conditions)  # OPEN resumes a night that was ended
            if decision.roof is not RoofGoal.OPEN:
                reasons.append(decision.reason)
        return reasons

    def apply_deferred(self) -> None:
        """The closing has finished: apply what arrived during it, in the order it came."""
        for thing, value in self.pending.closing_finished():
            if (thing, value) == ("roof", RoofAction.CLOSE) and self.controls.roof.position() is RoofPosition.CLOSED:
                if self.inputs.mode is Mode.AUTO:  # what CLOSE means besides closing: stay closed tonight
                    self.controls.end_night(NIGHT_ENDED_BY_OPERATOR)
                answer = Answer(thing, value, True, [], "the roof is closed")
            else:
                answer = self.answer(thing, value)  # a closing that did not close: CLOSE tries again
            verb = "applied" if answer.accepted else "not applied"
            self.controls.event(
                EventKind.DEFERRED_COMMAND_APPLIED if answer.accepted else EventKind.DEFERRED_COMMAND_REJECTED,
                f"{thing} {value} {verb} after the closing: " + ("; ".join(answer.reasons) or answer.note or "done"),
                level="info" if answer.accepted else "warning",
                data={"command": {"thing": thing, "value": value}, "reasons": answer.reasons},
            )

    def _request_close(self, request: Request, *, end_night: bool) -> None:
        """CLOSE, and ABORT in every mode: the closing order runs (an opening is cut short first).

        ABORT also ends the night in manual and off mode, so that switching to auto does not
        reopen tonight.
        """
        if end_night:
            self.controls.end_night(NIGHT_ENDED_BY_OPERATOR)
        self.pending.push(request)

    def _release_alarm_rest(self) -> None:
        """START or OPEN end the rest in ``alarm`` that follows an alarm once the roof is confirmed closed.

        Without it the MCP rests there (the latch, kept across restarts) and would accept the
        command without opening: an answer that promises what is not done.
        """
        if self.controls.state is State.ALARM and not self.controls.alarm:
            self.pending.push(Request.RELEASE)


#: Every command: (topic, value) -> what it does and whether a running closing makes it wait.
#: OPEN is not kept for after a closing (it is judged now: the closing's reasons refuse it),
#: STOP never (it halts the closing).
COMMANDS: dict[tuple[str, str], Command] = {
    ("roof", RoofAction.OPEN): Command(Commands.open, waits_for_closing=False),
    ("roof", RoofAction.CLOSE): Command(Commands.close, waits_for_closing=True),
    ("roof", RoofAction.STOP): Command(Commands.stop, waits_for_closing=False),
    **{("mode", mode.value): Command(Commands.mode, waits_for_closing=True) for mode in Mode},
    ("night", NightAction.START): Command(Commands.start, waits_for_closing=True),
    ("night", NightAction.ABORT): Command(Commands.abort, waits_for_closing=True),
}
