"""A stand-in Hydreon RG-15 on the master side of a pseudo-terminal.

The source under test opens the slave side (``self.port``) with pyserial, exactly as it
would open /dev/ttyUSB0; this class answers its commands the way the gauge does: ``R``
gets the configured reading line, other commands their lower-case echo.
"""

from __future__ import annotations

import os
import select
import threading
import tty


class FakeRG15:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing: bytes pass as on a real serial line
        self.port = os.ttyname(self.slave)
        self.reading = b"Acc 0.00 mm, EventAcc 0.00 mm, TotalAcc 0.00 mm, RInt 0.00 mmph"
        self.silent = False
        self.commands: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def set_reading(self, acc: float, event: float, total: float, rate: float, *, metric: bool = True) -> None:
        length, intensity = ("mm", "mmph") if metric else ("in", "iph")
        self.reading = (
            f"Acc {acc:.2f} {length}, EventAcc {event:.2f} {length}, TotalAcc {total:.2f} {length},"
            f" RInt {rate:.2f} {intensity}"
        ).encode()

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                continue
            try:
                buffer += os.read(self.master, 256)
            except OSError:
                return
            while b"\n" in buffer:
                command, buffer = buffer.split(b"\n", 1)
                command = command.strip()
                self.commands.append(command)
                if self.silent:
                    continue
                answer = self.reading if command == b"R" else command.lower()
                os.write(self.master, answer + b"\r\n")

    def __enter__(self) -> FakeRG15:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)
