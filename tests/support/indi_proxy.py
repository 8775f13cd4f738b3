"""A TCP proxy between INDI clients and a real indiserver that can damage the next images it passes on.

A camera image that arrives broken (a bad USB transfer, a driver writing a short file) is a
fault of one frame, not of the camera. To test that for real, the client talks INDI's XML
protocol to the real server through this proxy; ``damage_next("truncate", "garbage")``
rewrites the next BLOBs: ``truncate`` keeps the first third of the FITS file, ``garbage``
replaces it with bytes of the same length that are no FITS at all. The ``size`` and
``enclen`` attributes are rewritten to match, so the INDI client decodes the BLOB normally
and hands the damaged bytes on, as it would with a damaged file from a driver.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import threading
from collections import deque
from typing import Self

from tests.support.ports import free_port

_OPEN, _CLOSE = b"<oneBLOB", b"</oneBLOB>"


class IndiProxy:
    """Passes INDI's XML stream between clients and a real indiserver, one upstream connection per
    client. What the client sends goes on as it is; what the server sends goes through
    :meth:`_from_server`, which subclasses override to change it (the base passes it on)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host, self.port = "127.0.0.1", free_port()
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _from_server(self, buffer: bytes, sink: socket.socket, send_lock: threading.Lock) -> tuple[bytes, bytes]:
        """What of ``buffer`` (the server's bytes not yet passed on) to pass on now, and what to keep
        until more arrives. ``send_lock`` guards ``sink`` for anything sent to it later."""
        return buffer, b""

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
            send_lock = threading.Lock()  # the client's socket: the stream and anything sent later
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, send_lock), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, send_lock: threading.Lock | None) -> None:
        buffer = b""
        try:
            while chunk := source.recv(1 << 16):
                if send_lock is None:  # from the client: as it is
                    sink.sendall(chunk)
                    continue
                passed, buffer = self._from_server(buffer + chunk, sink, send_lock)
                with send_lock:
                    sink.sendall(passed)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class BlobDamagingProxy(IndiProxy):
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        super().__init__(upstream_host, upstream_port)
        self.damaged: list[str] = []  # kinds applied so far, in order
        self._pending: deque[str] = deque()

    def damage_next(self, *kinds: str) -> None:
        for kind in kinds:
            if kind not in ("truncate", "garbage"):
                raise ValueError(f"unknown damage {kind!r}")
        with self._lock:
            self._pending.extend(kinds)

    def _from_server(self, buffer: bytes, sink: socket.socket, send_lock: threading.Lock) -> tuple[bytes, bytes]:
        passed = b""
        while True:
            start = buffer.find(_OPEN)
            if start < 0:  # hold back only a tail that may be the start of a BLOB
                keep = next((k for k in range(len(_OPEN) - 1, 0, -1) if buffer.endswith(_OPEN[:k])), 0)
                return passed + buffer[: len(buffer) - keep], buffer[len(buffer) - keep :]
            passed += buffer[:start]
            buffer = buffer[start:]
            end = buffer.find(_CLOSE)
            if end < 0:
                return passed, buffer  # the rest of the BLOB is still on its way
            end += len(_CLOSE)
            passed += self._rewrite(buffer[:end])
            buffer = buffer[end:]

    def _rewrite(self, element: bytes) -> bytes:
        head_end = element.find(b">") + 1
        head, body = element[:head_end], element[head_end : -len(_CLOSE)]
        if re.search(rb'size="0"', head):
            return element
        with self._lock:
            if not self._pending:
                return element
            kind = self._pending.popleft()
        data = base64.b64decode(b"".join(body.split()))
        damaged = (
            data[: len(data) // 3] if kind == "truncate" else (bytes(range(251)) * (len(data) // 251 + 1))[: len(data)]
        )
        encoded = base64.b64encode(damaged)
        head = re.sub(rb'size="\d+"', f'size="{len(damaged)}"'.encode(), head)
        head = re.sub(rb'enclen="\d+"', f'enclen="{len(encoded)}"'.encode(), head)
        with self._lock:
            self.damaged.append(kind)
        return head + b"\n" + encoded + b"\n" + _CLOSE
