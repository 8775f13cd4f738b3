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

from tests.support.ports import free_port

_START_TAG = re.compile(rb'<(def(?:Number|Switch|Text|Light|BLOB)Vector)\b[^>]*\bname="([^"]*)"')


class LateDefinitionProxy:
    def __init__(self, upstream_host: str, upstream_port: int, hold: str, release_after: float | None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host, self.port = "127.0.0.1", free_port()
        self.hold = hold.encode()
        self.release_after = release_after
        self.held: list[float] = []  # when a definition of ``hold`` was held back
        self.released: list[float] = []  # when one was passed on
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        self._listener = socket.create_server((self.host, self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            sockets, self._sockets = [*self._sockets, self._listener], []
        for sock in sockets:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def __enter__(self) -> LateDefinitionProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals --------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            send_lock = threading.Lock()  # the client's socket: the stream and a late definition
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, send_lock), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, send_lock: threading.Lock | None) -> None:
        buffer = b""
        try:
            while chunk := source.recv(1 << 16):
                if send_lock is None:  # from the client: as it is
                    sink.sendall(chunk)
                    continue
                buffer += chunk
                passed, buffer = self._split(buffer, sink, send_lock)
                with send_lock:
                    sink.sendall(passed)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

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
            with send_lock, contextlib.suppress(OSError):
                sink.sendall(definition)
            with self._lock:
                self.released.append(time.monotonic())

        threading.Thread(target=release, daemon=True).start()
