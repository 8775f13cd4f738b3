"""The dashboard's "build masters now" and pins: a masters command to the imaging service, and its answer.

The command goes to ``<p>/imaging/masters/set`` (an :class:`~obsy.messages.ImagingMastersCommand`)
with a fresh ``request_id`` and the sender's origin; the imaging service answers on its retained
``<p>/imaging/masters/state`` repeating the ``request_id``: ``running`` at once, then ``done`` or
``failed`` with the masters built and the errors. The first answer is returned (building may
take minutes; the page follows the state topic for the rest). The sender is recorded as a
``command`` event of the web service, like the commands to the MCP.
"""

from __future__ import annotations

from typing import Any

from obsy.bus import Bus
from obsy.messages import CommandOrigin, ImagingMastersCommand
from obsy_web.commands import AnswersByRequestId, command_event


class MastersCommandGateway:
    def __init__(self, bus: Bus, timeout: float) -> None:
        self.bus = bus
        self.topics = bus.topics
        self.timeout = timeout
        self._answers = AnswersByRequestId(timeout)
        bus.subscribe(self.topics.imaging_masters_state, self._on_state, decode="json")

    def _on_state(self, topic: str, payload: Any) -> None:
        if isinstance(payload, dict):
            self._answers.answered(payload.get("request_id"), payload)

    def send(
        self, min_frames: int | None, origin: CommandOrigin, *, action: str = "build", master_id: str | None = None
    ) -> dict[str, Any]:
        """Publish a masters command for ``origin``; the imaging service's first answer (raises NoAnswerError)."""

        def publish(request_id: str) -> None:
            command = ImagingMastersCommand(
                action=action, master_id=master_id, min_frames=min_frames, request_id=request_id, origin=origin
            )
            self.bus.publish(self.topics.imaging_masters_command, command, qos=1)
            if action == "build":
                what = "build" + (f" min_frames={min_frames}" if min_frames is not None else "")
            else:
                what = f"{action} {master_id}"
            self.bus.publish_event(command_event("imaging/masters", what, origin, request_id=request_id))

        return self._answers.ask(
            publish,
            f"the imaging service did not answer the masters command within {self.timeout:g} s "
            "(is obsy-imaging running and connected to the broker?)",
        )
