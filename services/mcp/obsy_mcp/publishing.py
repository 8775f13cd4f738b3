"""What the MCP tells the world: its state (only when it changed) and its events.

:class:`Publisher` sends each event (logged too) and the state when its content changed.
:class:`Announcements` says the roof and night events people are told about and automate on
(``roof_closing``, ``roof_closed``, ``roof_opened``, ``night_started``, ``night_ended``), each
once: it remembers what it has said (:class:`Told`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from obsy.messages import Event, EventKind, McpState
from obsy_mcp.statemachine import AFTER_OPENING, Conditions, RoofPosition, State

log = logging.getLogger("obsy.mcp")


class Outbox(Protocol):
    """Where the controller's state and events go (the bus, in the service)."""

    def state(self, state: McpState) -> None: ...

    def event(self, event: Event) -> None: ...


class EventSink(Protocol):
    """``event(kind, message, level=..., data=...)``: one MCP event, logged and sent."""

    def __call__(
        self, kind: EventKind, message: str, *, level: str = "info", data: dict[str, Any] | None = None
    ) -> None: ...


class Publisher:
    """Sends the MCP's events, and its state when the content changed (not the timestamp or the Sun)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None

    def event(self, kind: EventKind, message: str, *, level: str = "info", data: dict[str, Any] | None = None) -> None:
        log.log(logging.getLevelName(level.upper()) if level != "critical" else logging.CRITICAL, message)
        self.outbox.event(Event(service="mcp", kind=kind, level=level, message=message, data=data or {}))  # type: ignore[arg-type]

    def send(self, event: Event) -> None:
        """An event made elsewhere (a command's answer)."""
        self.outbox.event(event)

    def state(self, snapshot: Callable[[], McpState]) -> None:
        """Publish ``snapshot()`` when its content differs from the last state published."""
        with self._lock:
            state = snapshot()
            content = state.model_dump(exclude={"timestamp", "sun_altitude"})
            if content == self._last:
                return
            self._last = content
        self.outbox.state(state)


@dataclass
class Told:
    """What the roof and night events (``roof_*``, ``night_*``) have said so far."""

    closing_reason: str = ""  # why the running (or last) closing started: the closed event repeats it
    closing_unsafe: list[str] = field(default_factory=list)
    dark: bool | None = None  # None until the Sun's altitude is first known: a restart at night is no dusk
    night_end: bool = False  # night_ended said for this night


class Announcements:
    """The roof and night events, each said once: what people are told about and automate on."""

    def __init__(self, event: EventSink) -> None:
        self._event = event
        self.told = Told()

    def transition(
        self,
        previous: State,
        target: State,
        reason: str,
        *,
        roof: Callable[[], RoofPosition],
        unsafe_reasons: Callable[[], tuple[str, ...]],
    ) -> None:
        """``roof_closing`` (with the unsafe reasons, if any), ``roof_closed``, ``roof_opened``; the closing's
        reasons go with the closed event too."""
        told = self.told
        if target is State.CLOSING:
            told.closing_reason = reason
            told.closing_unsafe = list(unsafe_reasons())
            unsafe = told.closing_unsafe
            self._event(
                EventKind.ROOF_CLOSING,
                f"closing the roof: {reason}",
                level="warning" if unsafe else "info",
                data={"reason": reason, "unsafe_reasons": unsafe},
            )
        elif previous is State.CLOSING and roof() is RoofPosition.CLOSED:
            self._event(
                EventKind.ROOF_CLOSED,
                f"roof closed: {told.closing_reason}",
                data={"reason": told.closing_reason, "unsafe_reasons": told.closing_unsafe},
            )
        elif previous is State.OPENING and target in AFTER_OPENING and roof() is RoofPosition.OPEN:
            self._event(EventKind.ROOF_OPENED, f"roof open: {reason}", data={"reason": reason})

    def dusk_and_dawn(self, conditions: Conditions, night: str) -> None:
        """``night_started`` when the Sun sinks below the limit, ``night_ended`` when it rises above it.

        Once per night each: a night already ended (the schedule finished, ABORT, the roof closed
        outside OBSY) has said so then. The first altitude known after a start is no change.
        """
        altitude = conditions.sun_altitude
        if altitude is None:
            return
        told = self.told
        dark = altitude <= conditions.sun_limit
        if told.dark is None or dark == told.dark:
            told.dark = dark
            return
        told.dark = dark
        if dark:
            told.night_end = False
            self._event(
                EventKind.NIGHT_STARTED,
                f"night started: the Sun is at {altitude:.1f}°, below {conditions.sun_limit:g}°",
                data={"night": night, "sun_altitude": round(altitude, 2)},
            )
        elif not told.night_end:
            self._night_ended(f"the Sun rose above {conditions.sun_limit:g}°", night)

    def night_ended_early(self, reason: str, night: str) -> None:
        """The night was ended before dawn (the operator, Ekos, the roof closed outside OBSY): said once."""
        if self.told.dark and not self.told.night_end:
            self._night_ended(reason, night)

    def _night_ended(self, reason: str, night: str) -> None:
        self.told.night_end = True
        self._event(EventKind.NIGHT_ENDED, f"night ended: {reason}", data={"night": night, "reason": reason})
