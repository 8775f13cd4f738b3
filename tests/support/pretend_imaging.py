"""A stand-in for the imaging service's masters command: answers each ``imaging/masters/set``
as the service does, ``running`` then ``done``, repeating the request id and the origin."""

from __future__ import annotations

import threading

from obsy.messages import ImagingMastersCommand, ImagingMastersState
from tests.support.watcher import Watcher


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
