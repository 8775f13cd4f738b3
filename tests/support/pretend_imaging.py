"""A stand-in for the imaging service's masters command: answers each ``imaging/masters/set``
as the service does, ``running`` then ``done``, repeating the request id and the origin; a build
with ``min_frames`` 999 is rejected as a full queue is (a ``command_rejected`` event, no state)."""

from __future__ import annotations

import threading

from obsy.messages import CommandAnswer, ImagingMastersCommand, ImagingMastersState
from tests.support.watcher import Watcher

#: A build command with this ``min_frames`` is refused.
REFUSED_MIN_FRAMES = 999


class PretendImaging:
    def __init__(self, port: int, prefix: str = "obsy") -> None:
        self.prefix = prefix
        self.commands: list[ImagingMastersCommand] = []
        self._stop = threading.Event()
        self._watcher = Watcher(port, [f"{prefix}/imaging/masters/set"])
        self._thread = threading.Thread(target=self._answer, name="pretend-imaging", daemon=True)
        self._thread.start()

    def _answer(self) -> None:
        answered = 0
        while not self._stop.is_set():
            received = self._watcher.on(f"{self.prefix}/imaging/masters/set")
            for message in received[answered:]:
                try:
                    command = ImagingMastersCommand.model_validate_json(message.payload)
                except ValueError:
                    continue
                self.commands.append(command)
                if command.min_frames == REFUSED_MIN_FRAMES:
                    reasons = ["too many masters commands waiting"]
                    answer = CommandAnswer.of(
                        "masters",
                        "build",
                        accepted=False,
                        origin=command.origin,
                        request_id=command.request_id,
                        reasons=reasons,
                    )
                    self._watcher.publish(f"{self.prefix}/imaging/events", answer.as_event("imaging").to_json())
                    continue
                for status in ("running", "done"):
                    reply = ImagingMastersState(
                        status=status,
                        request_id=command.request_id,
                        origin=command.origin,
                        built=["bias-pretend"] if status == "done" else [],
                    )
                    self._watcher.publish(f"{self.prefix}/imaging/masters/state", reply.to_json(), retain=True)
            answered = len(received)
            self._stop.wait(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._watcher.close()
