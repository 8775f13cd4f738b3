"""The dashboard's "build masters now": a masters command to the imaging service, and its answer.

The command goes to ``<p>/imaging/masters/set`` (an :class:`~obsy.messages.ImagingMastersCommand`)
with a fresh ``request_id`` and the sender's origin; the imaging service answers on its retained
``<p>/imaging/masters/state`` repeating the ``request_id``: ``running`` at once, then ``done`` or
``failed`` with the masters built and the errors. The first answer is returned (building may
take minutes; the page follows the state topic for the rest). The sender is recorded as a
``command`` event of the web service, like the commands to the MCP.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from obsy.bus import Bus
from obsy.messages import CommandOrigin, ImagingMastersCommand
from obsy_web.commands import NoAnswerError, command_event


class MastersCommandGateway:
    def __init__(self, bus: Bus, timeout: float) -> None:
        self.bus = bus
        self.topics = bus.topics
        self.timeout = timeout
        self._answers: dict[str, dict[str, Any]] = {}
        self._waiting: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        bus.subscribe(self.topics.imaging_masters_state, self._on_state, decode="json")

    def _on_state(self, topic: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        request_id = payload.get("request_id")
        with self._lock:
            done = self._waiting.get(request_id) if isinstance(request_id, str) else None
            if done is not None and request_id not in self._answers:
                self._answers[request_id] = payload
                done.set()

    def send(self, min_frames: int | None, origin: CommandOrigin) -> dict[str, Any]:
        """Publish a masters command for ``origin``; the imaging service's first answer (raises NoAnswerError)."""
        request_id = secrets.token_hex(8)
        command = ImagingMastersCommand(min_frames=min_frames, request_id=request_id, origin=origin)
        done = threading.Event()
        with self._lock:
            self._waiting[request_id] = done
        try:
            self.bus.publish(self.topics.imaging_masters_command, command, qos=1)
            what = "build" + (f" min_frames={min_frames}" if min_frames is not None else "")
            self.bus.publish_event(command_event("imaging/masters", what, origin, request_id=request_id))
            if not done.wait(self.timeout):
                raise NoAnswerError(
                    f"the imaging service did not answer the masters command within {self.timeout:g} s "
                    "(is obsy-imaging running and connected to the broker?)"
                )
            with self._lock:
                return self._answers.pop(request_id)
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)
                self._answers.pop(request_id, None)
