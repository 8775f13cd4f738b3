"""Commands to the services over the bus, and their answers: the one command contract.

A command goes to ``<prefix>/<service>/<thing>/set`` with a fresh ``request_id`` and the sender's
origin (docs/topics.md, "Commands"). The service answers with an event of kind ``command_accepted``
or ``command_rejected`` on ``<prefix>/<service>/events`` whose ``data`` is a
:class:`~obsy.messages.CommandAnswer` repeating the ``request_id``. :meth:`CommandGateway.send`
publishes the command and returns:

- the answer event for this command, as soon as it comes; where what the command did is
  published on a state topic that repeats the ``request_id`` (``result_state``: the imaging
  masters), an acceptance waits for that state, which is returned (a rejection ends the wait);
- nothing in ``timeout`` seconds raises :class:`NoAnswerError` (an acceptance without its state
  by then is returned as it is).

Services from before the contract are still understood: an MCP that answers without a
``request_id`` (its command event for the same thing is taken), an MCP that only echoes its
state (``echo_state``: the first state after the command, once ``STATE_GRACE_S`` has passed
without a command event), a weather service that answers with ``simulation_applied`` /
``simulation_refused`` events repeating the ``request_id``.

A gateway sends its commands one at a time, so that an answer without a ``request_id`` belongs
to the command before it. The sender is also recorded as a ``command`` event of the web service
(the audit log).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from obsy.bus import Bus
from obsy.messages import Command, CommandAnswer, CommandOrigin, Event, EventKind, Message, OriginKind
from obsy.topics import Topics

COMMAND_THINGS = ("roof", "mode", "night")
#: How long a state echo waits for the command event that may follow it (an MCP before the contract).
STATE_GRACE_S = 1.0
#: The answers of a weather service from before the one contract, accepted first.
_OLD_SIMULATION_ANSWERS = {EventKind.SIMULATION_APPLIED: True, EventKind.SIMULATION_REFUSED: False}
#: How each service is named in a "did not answer" error.
_NAMES = {"mcp": "the MCP", "imaging": "the imaging service", "weather": "the weather service"}


class NoAnswerError(TimeoutError):
    pass


@dataclass
class Answer:
    """What answered a command: an answer event, a state repeating the request id, or a bare state echo."""

    topic: str
    payload: Any

    @property
    def accepted(self) -> bool | None:
        """The verdict of an answer event; None for a state."""
        if not isinstance(self.payload, dict):
            return None
        kind = self.payload.get("kind")
        if kind in _OLD_SIMULATION_ANSWERS:
            return _OLD_SIMULATION_ANSWERS[kind]
        answer = CommandAnswer.from_event(self.payload)
        return None if answer is None else answer.accepted

    @property
    def reasons(self) -> list[str]:
        """Why it was rejected (an answer event's ``data.reasons``, or an old weather service's ``data.reason``)."""
        data = self.payload.get("data") if isinstance(self.payload, dict) else None
        if not isinstance(data, dict):
            return []
        reasons = data.get("reasons") or ([data["reason"]] if data.get("reason") else [])
        return [str(r) for r in reasons] if isinstance(reasons, list) else [str(reasons)]


@dataclass
class _Pending:
    thing: str
    request_id: str
    done: threading.Event
    final: Answer | None = None
    accepted: Answer | None = None  # an acceptance while the result state is awaited
    echo: Answer | None = None  # a bare state echo (an MCP before the contract)
    echo_at: float = 0.0


class CommandGateway:
    """Sends the commands of one service (``service``) and waits for each one's answer."""

    def __init__(
        self,
        bus: Bus,
        timeout: float,
        topics: Topics | None = None,
        site: str | None = None,
        *,
        service: str = "mcp",
        things: Collection[str] = COMMAND_THINGS,
        result_state: str | None = None,
        echo_state: bool | None = None,
    ) -> None:
        """``topics``/``site``: a bridged site's service, reached under its prefix on this broker (``web.sites``).

        ``things``: the command topics this gateway sends to; ``result_state``: the state topic
        (``<service>/<result_state>/state``) whose message repeating the request id is the answer;
        ``echo_state``: take the service's state as the answer of a service that sends no answer
        event (the MCP's default).
        """
        self.bus = bus
        self.topics = topics or bus.topics
        self.site = site
        self.service = service
        self.things = tuple(things)
        self.result_state = result_state
        self.timeout = timeout
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        bus.subscribe(self.topics.events(service), self._on_event, decode="json")
        if result_state is not None:
            bus.subscribe(self.topics.state(service, result_state), self._on_result, decode="json")
        if echo_state if echo_state is not None else service == "mcp":
            bus.subscribe(self.topics.state(service), self._on_echo, decode="json")

    def _short(self, topic: str) -> str:
        return topic[len(self.topics.prefix) + 1 :]

    def _finish(self, pending: _Pending, answer: Answer) -> None:
        if pending.final is None:
            pending.final = answer
            pending.done.set()

    def _on_echo(self, topic: str, payload: Any) -> None:
        with self._lock:
            pending = self._pending
            if pending is not None and pending.echo is None:
                pending.echo = Answer(self._short(topic), payload)
                pending.echo_at = time.monotonic()

    def _on_result(self, topic: str, payload: Any) -> None:
        with self._lock:
            pending = self._pending
            if pending is not None and isinstance(payload, dict) and payload.get("request_id") == pending.request_id:
                self._finish(pending, Answer(self._short(topic), payload))

    def _on_event(self, topic: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        kind = payload.get("kind")
        with self._lock:
            pending = self._pending
            if pending is None:
                return
            answer = Answer(self._short(topic), payload)
            if kind in _OLD_SIMULATION_ANSWERS:
                if data.get("request_id") == pending.request_id:
                    self._finish(pending, answer)
                return
            if kind not in (EventKind.COMMAND_ACCEPTED, EventKind.COMMAND_REJECTED):
                return
            request_id = data.get("request_id")
            if request_id is None:  # a service from before the contract: the command's thing says it
                command = data.get("command") if isinstance(data.get("command"), dict) else {}
                if command.get("thing", pending.thing) != pending.thing:
                    return
            elif request_id != pending.request_id:
                return
            if kind == EventKind.COMMAND_ACCEPTED and self.result_state is not None:
                pending.accepted = answer
            else:
                self._finish(pending, answer)

    def send(self, thing: str, command: Message | str, origin: CommandOrigin, *, what: str | None = None) -> Answer:
        """Publish ``command`` (a value such as ``OPEN``: a :class:`Command`) on ``thing`` for ``origin``, with a
        fresh ``request_id``; its answer, or :class:`NoAnswerError`. ``what`` says it in the audit event."""
        if thing not in self.things:
            raise ValueError(f"unknown command {thing!r} (known: {', '.join(self.things)})")
        request_id = secrets.token_hex(8)
        if isinstance(command, str):
            what = what or command
            command = Command(value=command)
        sent = command.model_copy(update={"request_id": request_id, "origin": origin})
        with self._send_lock:
            pending = _Pending(thing, request_id, threading.Event())
            with self._lock:
                self._pending = pending
            try:
                self.bus.publish(self.topics.command(self.service, thing), sent, qos=1)
                extra: dict[str, Any] = {"request_id": request_id}
                if self.site:
                    extra["site"] = self.site
                audit_thing = thing if self.service == "mcp" else f"{self.service}/{thing}"
                self.bus.publish_event(command_event(audit_thing, what or thing, origin, **extra))
                return self._wait(pending, thing)
            finally:
                with self._lock:
                    self._pending = None

    def _wait(self, pending: _Pending, thing: str) -> Answer:
        deadline = time.monotonic() + self.timeout
        while True:
            now = time.monotonic()
            if pending.final is not None:
                return pending.final
            if pending.echo is not None and now >= pending.echo_at + STATE_GRACE_S:
                return pending.echo
            if now >= deadline:
                late = pending.accepted or pending.echo
                if late is not None:
                    return late
                name = _NAMES.get(self.service, f"the {self.service} service")
                raise NoAnswerError(
                    f"{name} did not answer the {thing} command within {self.timeout:g} s "
                    f"(is obsy-{self.service} running and connected to the broker?)"
                )
            wake = min(deadline, pending.echo_at + STATE_GRACE_S if pending.echo else deadline)
            pending.done.wait(max(0.0, min(wake - now, 0.1)))


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
