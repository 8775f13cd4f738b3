"""Roof and mount over INDI, with a timeout on every step and the real state read back.

The roof is any INDI dome or roll-off roof: ``DOME_PARK`` PARK means closed, UNPARK open
(indi_rolloff_dome, indi_simulator_dome). Its position is always read from the driver's
last report, never remembered: after a restart of the MCP or of indiserver it is what
the driver says it is.

A wait can be cut short by ``interrupted()`` (a STOP, or a hazard while opening): the
motion is aborted and :class:`StepInterrupted` raised.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from obsy.indi import IndiClient, IndiError, PropertySnapshot
from obsy_mcp.config import McpDevicesConfig
from obsy_mcp.statemachine import RoofPosition

log = logging.getLogger("obsy.mcp.devices")

Interrupted = Callable[[], bool]
SendHook = Callable[[str, str, str], None]

_POLL = 0.05  # seconds between checks of a wait's interruption flag


class DeviceError(Exception):
    """A device step failed; the message says which device, which step and why."""


class StepInterrupted(DeviceError):  # noqa: N818 - an outcome, not an error
    """The wait was cut short on purpose; the motion was aborted."""


class _AlreadyThere(Exception):  # noqa: N818 - an outcome, not an error
    """The driver refused to move the roof because it is already where it was sent."""


def roof_position(park: PropertySnapshot | None) -> RoofPosition:
    """Interpret a DOME_PARK report."""
    if park is None:
        return RoofPosition.UNKNOWN
    parked, unparked = bool(park.values.get("PARK")), bool(park.values.get("UNPARK"))
    if park.state == "Busy":
        return RoofPosition.CLOSING if parked else RoofPosition.OPENING if unparked else RoofPosition.STOPPED
    if park.state == "Alert":
        return RoofPosition.STOPPED
    if parked or unparked:
        return RoofPosition.CLOSED if parked else RoofPosition.OPEN
    # Neither: Idle is indi_rolloff_dome after an abort with the roof at rest; Ok is a driver
    # still loading its park data.
    return RoofPosition.STOPPED if park.state == "Idle" else RoofPosition.UNKNOWN


class _Device:
    def __init__(self, indi: IndiClient, name: str, config: McpDevicesConfig, on_send: SendHook | None) -> None:
        self.indi = indi
        self.name = name
        self.config = config
        self.on_send = on_send

    def _prop(self, prop: str) -> PropertySnapshot | None:
        try:
            return self.indi.get_property(self.name, prop)
        except IndiError:
            return None

    def connect(self) -> None:
        """Connect the driver to its hardware if it is not yet (idempotent)."""
        try:
            self.indi.connect_device(self.name, timeout=self.config.connect_timeout)
        except IndiError as error:
            raise DeviceError(f"{self.name}: cannot connect: {error}") from error

    def read_back(self, prop: str, known: Callable[[PropertySnapshot], bool]) -> None:
        """Wait until the driver has reported ``prop`` in a known state (after a (re)connect)."""
        try:
            self.indi.wait_for(self.name, prop, known, timeout=self.config.connect_timeout, what="state known")
        except IndiError as error:
            raise DeviceError(f"{self.name}: cannot read the state back: {error}") from error

    def _send(self, prop: str, element: str) -> None:
        if self.on_send is not None:
            self.on_send(self.name, prop, element)
        if self._prop(prop) is None:
            # A driver defines its properties one by one after connecting: a command sent in the
            # first moments (the MCP's start-up closing) waits for its property, as long as a
            # connection may take, rather than fail the step while the driver is still coming up.
            with contextlib.suppress(IndiError):  # still undefined: set_switch names it below
                self.indi.wait_for(
                    self.name, prop, lambda _p: True, timeout=self.config.connect_timeout, what="defined"
                )
        try:
            self.indi.set_switch(self.name, prop, element, wait=False)
        except IndiError as error:
            raise DeviceError(f"{self.name}: cannot send {prop}={element}: {error}") from error

    def _wait(
        self,
        prop: str,
        *,
        done: Callable[[PropertySnapshot], bool],
        failed: Callable[[PropertySnapshot, bool], str | None],
        timeout: float,
        what: str,
        interrupted: Interrupted | None = None,
        on_interrupt: Callable[[], None] | None = None,
    ) -> PropertySnapshot:
        """Wait until ``done``; raise when ``failed`` names a problem, on timeout, or when interrupted.

        ``failed(snapshot, seen_busy)`` sees whether the driver has reported Busy since the
        command, so that a stale Ok before the driver reacted is not taken as a stop.
        """
        deadline = time.monotonic() + timeout
        seen_busy = False
        while True:
            snapshot = self._prop(prop)
            if snapshot is not None:
                seen_busy = seen_busy or snapshot.state == "Busy"
                if done(snapshot):
                    return snapshot
                problem = failed(snapshot, seen_busy)
                if problem:
                    raise DeviceError(f"{self.name}: {what} failed: {problem}")
            if not self.indi.connected:
                raise DeviceError(f"{self.name}: {what} failed: the connection to indiserver is lost")
            if interrupted is not None and interrupted():
                if on_interrupt is not None:
                    on_interrupt()
                raise StepInterrupted(f"{self.name}: {what} interrupted")
            if time.monotonic() >= deadline:
                state = "undefined" if snapshot is None else f"{snapshot.state} {dict(snapshot.values)}"
                raise DeviceError(f"{self.name}: {what} did not finish within {timeout:g} s (last report: {state})")
            last_seq = -1 if snapshot is None else snapshot.seq
            with contextlib.suppress(IndiError):  # no news within the poll interval: check the flags again
                self.indi.wait_for(self.name, prop, lambda p, seq=last_seq: p.seq > seq, timeout=_POLL)


class Roof(_Device):
    def __init__(self, indi: IndiClient, name: str, config: McpDevicesConfig, on_send: SendHook | None) -> None:
        super().__init__(indi, name, config, on_send)
        # (seq of the DOME_PARK report, position): a refusal that means "already there" (see _move)
        self._refused_at: tuple[int, RoofPosition] | None = None

    def position(self) -> RoofPosition:
        park = self._prop("DOME_PARK")
        if park is not None and self._refused_at is not None and park.seq == self._refused_at[0]:
            return self._refused_at[1]  # no report since the driver said it is already there
        return roof_position(park)

    def connect(self) -> None:
        super().connect()
        self.read_back("DOME_PARK", lambda p: roof_position(p) is not RoofPosition.UNKNOWN)

    def close(self, interrupted: Interrupted | None = None) -> None:
        self._move("PARK", RoofPosition.CLOSED, "closing", interrupted)

    def open(self, interrupted: Interrupted | None = None) -> None:
        self._move("UNPARK", RoofPosition.OPEN, "opening", interrupted)

    def abort(self) -> None:
        self._send("DOME_ABORT_MOTION", "ABORT")

    def _move(self, element: str, goal: RoofPosition, what: str, interrupted: Interrupted | None) -> None:
        """Drive the roof to ``goal``; the state is read back first, so a roof already there is not commanded.

        A roof already moving towards ``goal`` (someone else drives it) is only waited for. A
        driver that answers the command at once with Alert, the goal element on and no motion
        (indi_rolloff_dome after an abort of a closed roof: "Roof is already fully closed")
        refuses because the roof is already there: that counts as arrived.
        """
        position = self.position()
        if position is goal:
            return
        if position is (RoofPosition.OPENING if goal is RoofPosition.CLOSED else RoofPosition.CLOSING):
            self.stop()  # drivers ignore a reversal while they move (indi_rolloff_dome finishes the motion it is in)
            position = self.position()
        before = self._prop("DOME_PARK")
        sent_after = -1 if before is None else before.seq  # reports up to this one predate the command
        moving_there = RoofPosition.CLOSING if goal is RoofPosition.CLOSED else RoofPosition.OPENING
        if position is not moving_there:
            self._send("DOME_PARK", element)

        def failed(snapshot: PropertySnapshot, seen_busy: bool) -> str | None:
            if snapshot.seq <= sent_after and position is not moving_there:
                return None  # the driver has not answered yet: an Alert from before is no answer
            if snapshot.state == "Alert" and not seen_busy and snapshot.values.get(element):
                log.warning("%s: the driver refused %s with Alert: the roof is already %s", self.name, element, goal)
                self._refused_at = (snapshot.seq, goal)
                raise _AlreadyThere
            if snapshot.state == "Alert":
                return f"the driver reports Alert: roof stopped {roof_position(snapshot)} (half-way?)"
            if seen_busy and snapshot.state != "Busy":
                return f"the roof stopped half-way (DOME_PARK {snapshot.state} {dict(snapshot.values)})"
            return None

        def abort() -> None:
            try:
                self.stop()
            except DeviceError:
                log.exception("abort after interruption failed")

        try:
            self._wait(
                "DOME_PARK",
                done=lambda p: roof_position(p) is goal,
                failed=failed,
                timeout=self.config.roof_timeout,
                what=what,
                interrupted=interrupted,
                on_interrupt=abort,
            )
        except _AlreadyThere:
            return
        except StepInterrupted:
            raise
        except DeviceError:
            if self.position() not in (RoofPosition.OPEN, RoofPosition.CLOSED):
                abort()  # a roof that did not arrive must not keep driving
            raise

    def stop(self) -> None:
        """Abort the roof's motion and wait until the driver reports it at rest.

        Then its position is the one the abort left (``stopped``, or where it had arrived), so
        that a report coming in later is not taken for someone else moving the roof, nor for
        the answer to the next command.
        """
        acknowledged = self._prop("DOME_ABORT_MOTION")
        self.abort()
        # The driver reports DOME_PARK (Idle, then Alert) before it acknowledges the abort: wait for
        # both, so that none of those reports is taken for the answer to the command that follows.
        self._wait(
            "DOME_ABORT_MOTION",
            done=lambda p, seq=-1 if acknowledged is None else acknowledged.seq: p.seq > seq and p.state != "Busy",
            failed=lambda p, _: None,
            timeout=self.config.abort_timeout,
            what="stopping the roof",
        )
        self._wait(
            "DOME_PARK",
            done=lambda p: p.state != "Busy",
            failed=lambda p, _: None,
            timeout=self.config.abort_timeout,
            what="stopping the roof",
        )


class Mount(_Device):
    def connect(self) -> None:
        super().connect()
        self.read_back("TELESCOPE_PARK", lambda p: p.state != "Busy" and any(p.values.values()))

    def parked(self) -> bool | None:
        """True/False as the driver reports; None when unknown (no report, Busy or Alert)."""
        park = self._prop("TELESCOPE_PARK")
        if park is None or park.state in ("Busy", "Alert"):
            return None
        if park.values.get("PARK"):
            return True
        if park.values.get("UNPARK"):
            return False
        return None

    def abort(self) -> None:
        self._send("TELESCOPE_ABORT_MOTION", "ABORT")
        self._wait(
            "TELESCOPE_ABORT_MOTION",
            done=lambda p: p.state in ("Ok", "Idle"),
            failed=lambda p, _: "the driver reports Alert" if p.state == "Alert" else None,
            timeout=self.config.abort_timeout,
            what="abort",
        )

    def park(self) -> None:
        if self.parked() is True:
            return
        self._send("TELESCOPE_PARK", "PARK")
        self._wait(
            "TELESCOPE_PARK",
            done=lambda p: p.state == "Ok" and bool(p.values.get("PARK")),
            failed=lambda p, _: f"the driver reports Alert {dict(p.values)}" if p.state == "Alert" else None,
            timeout=self.config.park_timeout,
            what="parking",
        )
