"""The closing and opening orders: the device steps, in order, each with its timeout and retries.

Closing order: stop the Ekos scheduler (one attempt: a hung KStars must not hold the roof
open), abort mount motion, park the mount, confirm it is parked, close the roof, confirm it is
closed. If the mount cannot be parked the roof is not closed onto it unless
``park_failure_policy`` is ``close_anyway``. Opening order: confirm the mount is parked (park
it if not), open the roof, confirm it is open, then load and start tonight's Ekos schedule.

A sequence moves devices and says what happened (:class:`Result`); the controller turns that
into states and alarms. A STOP waiting (:class:`~obsy_mcp.commands.Pending`) halts either
sequence's roof motion; a CLOSE or ABORT waiting, or a change that no longer calls for an open
roof, cuts an opening short (the roof is aborted). A closing is cut short only by STOP, or by
the MCP exiting now (``exiting``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from obsy.messages import EventKind
from obsy_mcp.commands import Pending
from obsy_mcp.config import McpConfig
from obsy_mcp.devices import DeviceError, Mount, Roof
from obsy_mcp.ekos_watch import EkosWatch
from obsy_mcp.publishing import EventSink
from obsy_mcp.statemachine import RoofPosition
from obsy_mcp.steps import Steps


class Outcome(StrEnum):
    DONE = "done"  # the roof is where the sequence was to leave it (confirmed)
    STOPPED = "stopped"  # a STOP halted it: the operator takes over where the roof stands
    INTERRUPTED = "interrupted"  # an opening cut short (CLOSE, ABORT, the conditions): the next evaluation decides
    EXITING = "exiting"  # the MCP is exiting now: no alarm for a step that was cut off
    FAILED = "failed"  # a step failed after its retries: ``alarm`` says which


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    alarm: str = ""


class Sequences:
    """The closing and opening orders over the roof, the mount and the Ekos scheduler."""

    def __init__(
        self,
        settings: McpConfig,
        *,
        roof: Roof,
        mount: Mount | None,
        ekos: EkosWatch | None,
        steps: Steps,
        pending: Pending,
        event: EventSink,
        exiting: threading.Event,
        schedule_path: Callable[[], str | None],
    ) -> None:
        self.settings = settings
        self.roof, self.mount, self.ekos = roof, mount, ekos
        self.steps = steps
        self.pending = pending
        self._event = event
        self._exiting = exiting
        self._schedule_path = schedule_path

    def close(self) -> Result:
        """The closing order; DONE only with the roof confirmed closed."""
        run = self.steps.run
        if self.ekos is not None:
            # One attempt only: a hung KStars must not hold the roof open (the mount is aborted next).
            run("stop_ekos_scheduler", self.ekos.stop_scheduler, critical=False, retry=False)
        if self.mount is not None:
            run("abort_mount", self.mount.abort, critical=False)
            parked = run("park_mount", self.mount.park) and self.mount.parked() is True
            if self._exiting.is_set():
                return Result(Outcome.EXITING)
            if not parked:
                if self.settings.park_failure_policy == "keep_open_and_alarm":
                    return Result(
                        Outcome.FAILED,
                        f"the mount {self.mount.name} did not park: the roof stays open "
                        "(park_failure_policy keep_open_and_alarm)",
                    )
                self._event(
                    EventKind.CLOSING_UNPARKED,
                    "closing the roof over an unparked mount (park_failure_policy close_anyway)",
                    level="critical",
                )
        stop = self.pending.stop_requested
        closed = run("close_roof", lambda: self.roof.close(stop), interruptible=True)
        if stop():
            return Result(Outcome.STOPPED)
        if self._exiting.is_set():
            return Result(Outcome.EXITING)  # no alarm for a roof that was still on its way
        if not closed or self.roof.position() is not RoofPosition.CLOSED:
            return Result(Outcome.FAILED, f"the roof {self.roof.name} did not close ({self.roof.position()})")
        return Result(Outcome.DONE)

    def open(self, *, start_ekos: bool, unwanted: Callable[[], bool]) -> Result:  # noqa: PLR0911 - one per outcome
        """The opening order; ``unwanted()`` says the conditions (or the MCP stopping) no longer want it open.

        DONE with the roof confirmed open (and, with ``start_ekos``, tonight's schedule started).
        """
        run = self.steps.run
        if self.mount is not None:
            if self.mount.parked() is not True:
                self._event(EventKind.DEVICE_ACTION, "the mount is not parked: parking before opening", level="warning")
                if not run("park_mount", self.mount.park) or self.mount.parked() is not True:
                    return Result(Outcome.FAILED, f"the mount {self.mount.name} is not parked: not opening")
            self._event(EventKind.DEVICE_ACTION, "mount confirmed parked", data={"step": "confirm_parked"})

        def interrupted() -> bool:
            return self.pending.stop_requested() or self.pending.close_requested() or unwanted()

        if interrupted():  # cut short before the roof moved (while the mount parked): the roof is not sent
            return Result(Outcome.STOPPED if self.pending.stop_requested() else Outcome.INTERRUPTED)
        opened = run("open_roof", lambda: self.roof.open(interrupted), interruptible=True)
        if self.pending.stop_requested():
            return Result(Outcome.STOPPED)
        if not opened:
            if self.roof.position() is RoofPosition.OPEN or interrupted():
                return Result(Outcome.INTERRUPTED)
            return Result(Outcome.FAILED, f"the roof {self.roof.name} did not open ({self.roof.position()})")
        if start_ekos and self.ekos is not None:
            ekos = self.ekos
            ekos.night_opens()
            schedule = self._schedule_path()
            if schedule and not run("start_ekos_schedule", lambda: ekos.start_schedule(schedule), critical=False):
                return Result(Outcome.FAILED, "the Ekos schedule did not start")
        return Result(Outcome.DONE)

    def halt(self, on_error: Callable[[DeviceError], None]) -> None:
        """STOP: abort the roof's and the mount's motion where they are."""
        for name, action in (("roof", self.roof.stop), ("mount", self.mount.abort if self.mount else None)):
            if action is None:
                continue
            try:
                action()
                self._event(EventKind.DEVICE_ACTION, f"{name} motion aborted (STOP)", data={"step": f"abort_{name}"})
            except DeviceError as error:
                on_error(error)
