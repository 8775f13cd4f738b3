"""Commands to the MCP over the bus, answered by what the MCP says next.

The bus contract: a command goes to ``<prefix>/mcp/<thing>/set`` and its result is
echoed on the MCP's state topic; a refusal comes as an event. :meth:`CommandGateway.send`
publishes the command and waits for the first MCP state or event that arrives after it,
up to ``timeout`` seconds. No answer in time raises :class:`NoAnswerError`. The sender is
recorded as a ``command`` event of the web service, so the audit log shows who did what.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from obsy.bus import Bus
from obsy.messages import Event

COMMAND_THINGS = ("roof", "mode", "night")


class NoAnswerError(TimeoutError):
    pass


@dataclass
class Answer:
    topic: str
    payload: Any


class CommandGateway:
    def __init__(self, bus: Bus, timeout: float) -> None:
        self.bus = bus
        self.topics = bus.topics
        self.timeout = timeout
        self._waiters: list[tuple[threading.Event, list[Answer]]] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        bus.subscribe(self.topics.mcp_state, self._on_answer, decode="json")
        bus.subscribe(self.topics.events("mcp"), self._on_answer, decode="json")

    def _on_answer(self, topic: str, payload: Any) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for done, box in waiters:
            box.append(Answer(topic[len(self.topics.prefix) + 1 :], payload))
            done.set()

    def send(self, thing: str, value: str, sender: str) -> Answer:
        if thing not in COMMAND_THINGS:
            raise ValueError(f"unknown command {thing!r}")
        done, box = threading.Event(), []
        # One command at a time, so that an answer belongs to the command before it.
        with self._send_lock:
            with self._lock:
                self._waiters.append((done, box))
            self.bus.publish(self.topics.command("mcp", thing), value, qos=1)
            self.bus.publish_event(
                Event(
                    service="web",
                    kind="command",
                    message=f"{sender} sent {thing} {value}",
                    data={"thing": thing, "value": value, "user": sender},
                )
            )
            answered = done.wait(self.timeout)
            if not answered:
                with self._lock:
                    self._waiters = [w for w in self._waiters if w[0] is not done]
        if not answered:
            raise NoAnswerError(
                f"the MCP did not answer the {thing} command within {self.timeout:g} s "
                "(is obsy-mcp running and connected to the broker?)"
            )
        return box[0]
