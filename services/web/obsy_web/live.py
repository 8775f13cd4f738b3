"""What the bus says right now, and the live feed of changes to the dashboards.

:class:`LatestStates` keeps the last payload of every topic (decoded JSON or text) for
the status API. :class:`LiveHub` forwards each message to every connected browser
(Server-Sent Events); it is fed on the bus's dispatch thread and hands over to the
event loop of each listener. A listener follows one site: this one (the default), or a
bridged site whose messages arrive here under its prefix (``web.sites``); the topics it is
given are relative to that site's prefix either way, so a page reads a bridged site's feed
as it reads this site's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from obsy.topics import Topics

#: Topics that are not forwarded to browsers: binary or of no use there.
_NOT_LIVE_SUFFIXES = ("/allsky/image", "/imaging/livestack/image", "/set")


def decode(payload: bytes) -> Any:
    """JSON when it parses, text when it is UTF-8, otherwise None (binary)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


class LatestStates:
    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._raw: dict[str, bytes] = {}
        self._decoded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def update(self, topic: str, payload: bytes) -> None:
        key = topic[len(self.topics.prefix) + 1 :]
        with self._lock:
            if payload:
                self._raw[key] = payload
            else:
                self._raw.pop(key, None)
            self._decoded.pop(key, None)

    def items(self) -> list[tuple[str, Any]]:
        """Every key with its latest value, decoded."""
        with self._lock:
            keys = list(self._raw)
        return [(key, self.get(key)) for key in keys]

    def raw(self, key: str) -> bytes | None:
        """The latest payload on ``<prefix>/<key>`` as it came (a JPEG stays bytes), or None."""
        with self._lock:
            return self._raw.get(key)

    def get(self, key: str) -> Any:
        """The latest value on ``<prefix>/<key>``, decoded, or None."""
        with self._lock:
            if key in self._decoded:
                return self._decoded[key]
            raw = self._raw.get(key)
        value = decode(raw) if raw is not None else None
        with self._lock:
            if self._raw.get(key) is raw:
                self._decoded[key] = value
        return value


#: Put into a listener's queue by :meth:`LiveHub.close`: its stream ends.
_CLOSED: dict[str, Any] = {}


@dataclass(eq=False)  # compared and hashed by identity: kept in a set
class _Listener:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any] | None]
    #: The bridged site it follows; None: this site.
    site: str | None = None


class LiveHub:
    def __init__(self, topics: Topics, max_backlog: int = 1000) -> None:
        self.topics = topics
        self.max_backlog = max_backlog
        self._listeners: set[_Listener] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def publish(self, topic: str, payload: bytes, site: str | None = None, prefix: str | None = None) -> None:
        """One bus message to the listeners of its site: this site's (``site`` None) or a bridged
        one's, whose ``prefix`` (``web.sites``) is cut off its topics as this site's is."""
        if not self._listeners or topic.endswith(_NOT_LIVE_SUFFIXES):
            return
        value = decode(payload)
        if value is None and payload:
            return
        cut = len(prefix if site is not None and prefix else self.topics.prefix) + 1
        self.send(topic[cut:], value, site)

    def send(self, key: str, value: Any, site: str | None = None) -> None:
        """``{"topic": key, "payload": value}`` to the listeners of ``site`` (None: this site)."""
        message = {"topic": key, "payload": value}
        with self._lock:
            listeners = [listener for listener in self._listeners if listener.site == site]
        for listener in listeners:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                listener.loop.call_soon_threadsafe(self._offer, listener, message)

    def _offer(self, listener: _Listener, message: dict[str, Any]) -> None:
        if listener.queue.qsize() < self.max_backlog:  # a stalled browser loses updates, not memory
            listener.queue.put_nowait(message)

    def close(self) -> None:
        """End every listener's stream: the service is stopping, and an open stream would hold
        the HTTP server's graceful shutdown until it gives up and cancels it with a traceback."""
        with self._lock:
            self._closed = True
            listeners = list(self._listeners)
        for listener in listeners:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                listener.loop.call_soon_threadsafe(listener.queue.put_nowait, _CLOSED)

    async def listen(self, keepalive_s: float = 15.0, site: str | None = None) -> AsyncIterator[dict[str, Any] | None]:
        """Messages of ``site`` (None: this site) as they come; None every ``keepalive_s`` seconds of
        silence; ends on :meth:`close`."""
        listener = _Listener(asyncio.get_running_loop(), asyncio.Queue(), site)
        with self._lock:
            if self._closed:
                return
            self._listeners.add(listener)
        try:
            while True:
                try:
                    message = await asyncio.wait_for(listener.queue.get(), keepalive_s)
                except TimeoutError:
                    message = None
                if message is _CLOSED:
                    return
                yield message
        finally:
            with self._lock:
                self._listeners.discard(listener)
