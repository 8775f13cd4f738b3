"""A TCP proxy between INDI clients and a real indiserver that passes one property's definition on late.

A driver defines its properties one after another, and indiserver passes each on as it comes:
a client that connects while a driver starts, or while the machine is busy, can know one of a
driver's properties and not yet the next. To test that for real, the client talks to the real
server through this proxy, which holds back the definition (``def...Vector``) of the property
named ``hold`` for ``release_after`` seconds after it arrived (None: for ever), and passes
everything else on at once. ``held`` and ``released`` say when that happened (monotonic
clock), for a test that wants to show the client really waited.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time

from tests.support.indi_proxy import IndiProxy

_START_TAG = re.compile(rb'<(def(?:Number|Switch|Text|Light|BLOB)Vector)\b[^>]*\bname="([^"]*)"')


class LateDefinitionProxy(IndiProxy):
    def __init__(self, upstream_host: str, upstream_port: int, hold: str, release_after: float | None) -> None:
        super().__init__(upstream_host, upstream_port)
        self.hold = hold.encode()
        self.release_after = release_after
        self.held: list[float] = []  # when a definition of ``hold`` was held back
        self.released: list[float] = []  # when one was passed on (just before it was sent)

    def _from_server(self, buffer: bytes, sink: socket.socket, send_lock: threading.Lock) -> tuple[bytes, bytes]:
        return self._split(buffer, sink, send_lock)

    def _split(self, buffer: bytes, sink: socket.socket, send_lock: threading.Lock) -> tuple[bytes, bytes]:
        """What to pass on now, and what to keep until more arrives; held definitions go aside."""
        passed = b""
        while True:
            start = buffer.find(b"<")
            if start < 0:
                return passed + buffer, b""
            tag_end = buffer.find(b">", start)
            if tag_end < 0:  # a start tag cut in two: wait for the rest
                return passed + buffer[:start], buffer[start:]
            found = _START_TAG.match(buffer, start, tag_end + 1)
            if found is None or found.group(2) != self.hold:
                passed += buffer[: tag_end + 1]
                buffer = buffer[tag_end + 1 :]
                continue
            close = b"</" + found.group(1) + b">"
            end = buffer.find(close, tag_end)
            if end < 0:  # the definition is still on its way
                return passed + buffer[:start], buffer[start:]
            end += len(close)
            self._hold(buffer[start:end], sink, send_lock)
            passed += buffer[:start]
            buffer = buffer[end:]

    def _hold(self, definition: bytes, sink: socket.socket, send_lock: threading.Lock) -> None:
        with self._lock:
            self.held.append(time.monotonic())
        if self.release_after is None:
            return

        def release() -> None:
            time.sleep(self.release_after)
            with self._lock:  # noted before it goes: the client may act on it, and a test look, at once
                self.released.append(time.monotonic())
            with send_lock, contextlib.suppress(OSError):
                sink.sendall(definition)

        threading.Thread(target=release, daemon=True).start()
