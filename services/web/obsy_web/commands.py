"""Commands to the MCP over the bus, and the MCP's answer.

A command goes to ``<prefix>/mcp/<thing>/set``. The MCP answers each one with an event
of kind ``command_accepted`` or ``command_rejected`` whose ``data.command`` names the
command (with the reasons of a refusal), and echoes the result on its state topic.
:meth:`CommandGateway.send` publishes the command and returns:

- the MCP's command event for this command (``thing`` matches), as soon as it comes;
- otherwise the first MCP state after the command, once ``STATE_GRACE_S`` has passed
  without a command event (an MCP that only echoes its state);
- nothing in ``timeout`` seconds raises :class:`NoAnswerError`.

Commands go one at a time, so that an answer belongs to the command before it. Each
command carries its origin (the web account and its role, a :class:`~obsy.messages.Command`),
which the MCP repeats in its answer; the sender is also recorded as a ``command`` event of
the web service (the audit log).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from obsy.bus import Bus
from obsy.messages import Command, CommandOrigin, Event, EventKind, OriginKind
from obsy.topics import Topics

COMMAND_THINGS = ("roof", "mode", "night")
#: How long a state echo waits for the command event that may follow it.
STATE_GRACE_S = 1.0


class NoAnswerError(TimeoutError):
    pass


@dataclass
class Answer:
    topic: str
    payload: Any


@dataclass
class _Pending:
    thing: str
    done: threading.Event
    event: Answer | None = None
    state: Answer | None = None
    state_at: float = 0.0


class CommandGateway:
    def __init__(self, bus: Bus, timeout: float, topics: Topics | None = None, site: str | None = None) -> None:
        """``topics``/``site``: a bridged site's MCP, reached under its prefix on this broker (``web.sites``)."""
        self.bus = bus
        self.topics = topics or bus.topics
        self.site = site
        self.timeout = timeout
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        bus.subscribe(self.topics.mcp_state, self._on_state, decode="json")
        bus.subscribe(self.topics.events("mcp"), self._on_event, decode="json")

    def _short(self, topic: str) -> str:
        return topic[len(self.topics.prefix) + 1 :]

    def _on_state(self, topic: str, payload: Any) -> None:
        with self._lock:
            pending = self._pending
            if pending is not None and pending.state is None:
                pending.state = Answer(self._short(topic), payload)
                pending.state_at = time.monotonic()

    def _on_event(self, topic: str, payload: Any) -> None:
        if not isinstance(payload, dict) or not str(payload.get("kind", "")).startswith("command_"):
            return
        command = (payload.get("data") or {}).get("command") or {}
        with self._lock:
            pending = self._pending
            if pending is not None and command.get("thing", pending.thing) == pending.thing:
                pending.event = Answer(self._short(topic), payload)
                pending.done.set()

    def send(self, thing: str, value: str, origin: CommandOrigin) -> Answer:
        if thing not in COMMAND_THINGS:
            raise ValueError(f"unknown command {thing!r}")
        with self._send_lock:
            pending = _Pending(thing, threading.Event())
            with self._lock:
                self._pending = pending
            try:
                self.bus.publish(self.topics.command("mcp", thing), Command(value=value, origin=origin), qos=1)
                extra = {"site": self.site} if self.site else {}
                self.bus.publish_event(command_event(thing, value, origin, **extra))
                return self._wait(pending, thing)
            finally:
                with self._lock:
                    self._pending = None

    def _wait(self, pending: _Pending, thing: str) -> Answer:
        deadline = time.monotonic() + self.timeout
        while True:
            now = time.monotonic()
            if pending.event is not None:
                return pending.event
            if pending.state is not None and now >= pending.state_at + STATE_GRACE_S:
                return pending.state
            if now >= deadline:
                if pending.state is not None:
                    return pending.state
                raise NoAnswerError(
                    f"the MCP did not answer the {thing} command within {self.timeout:g} s "
                    "(is obsy-mcp running and connected to the broker?)"
                )
            wake = min(deadline, pending.state_at + STATE_GRACE_S if pending.state else deadline)
            pending.done.wait(max(0.0, min(wake - now, 0.1)))


class AnswersByRequestId:
    """Requests that carry a fresh ``request_id``, each waiting for the first answer repeating it.

    For the services that answer by request id (the imaging service's masters state, the weather
    service's simulation events); the subscriber hands every answer to :meth:`answered`.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._answers: dict[str, dict[str, Any]] = {}
        self._waiting: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def answered(self, request_id: object, payload: dict[str, Any]) -> None:
        """An answer naming ``request_id``: kept when someone waits for it (the first one only)."""
        with self._lock:
            done = self._waiting.get(request_id) if isinstance(request_id, str) else None
            if done is not None and request_id not in self._answers:
                self._answers[request_id] = payload
                done.set()

    def ask(self, send: Callable[[str], None], silence: str) -> dict[str, Any]:
        """``send(request_id)`` with a fresh id; the first answer, or :class:`NoAnswerError` (``silence``)."""
        request_id = secrets.token_hex(8)
        done = threading.Event()
        with self._lock:
            self._waiting[request_id] = done
        try:
            send(request_id)
            if not done.wait(self.timeout):
                raise NoAnswerError(silence)
            with self._lock:
                return self._answers.pop(request_id)
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)
                self._answers.pop(request_id, None)


def command_event(thing: str, value: str, origin: CommandOrigin, **data: Any) -> Event:
    """The web service's audit record of a command it sent for one of its users."""
    return Event(
        service="web",
        kind=EventKind.COMMAND,
        message=f"{origin.describe()} sent {thing.replace('/', ' ')} {value}",
        data={
            "thing": thing,
            "value": value,
            "user": origin.user,
            "origin": origin.as_data(),
            **data,
        },
    )


def web_origin(username: str, role: str) -> CommandOrigin:
    """The origin of a command a web user sent."""
    return CommandOrigin(kind=OriginKind.WEB, user=username, role=role)
