"""Sends the queue's files to the centre, one at a time, oldest first, resuming where the centre stands.

Before each file the sender asks the centre how much of it it holds (``HEAD``) and sends the rest
in chunks (``PUT`` with ``Content-Range``). A restart, a cut link or a lost answer costs at most
the chunk in flight. While the centre answers 429 or 503 the sender waits (``Retry-After``, else
doubling from one second up to ``backoff_max``) and the entries stay queued; an unreachable centre
is waited for the same way. A file the centre will never take (413, or a checksum refused three
times) and a file gone from the site are dropped from the queue with an error in the log.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from obsy.upload.protocol import (
    CHECKSUM_HEADER,
    OFFSET_HEADER,
    RETRY_AFTER_HEADER,
    UPLOAD_ROUTE,
    ContentRange,
    checksum_header,
)
from obsy.upload.queue import UploadItem, UploadQueue

log = logging.getLogger("obsy.upload")
#: 422 (checksum) answers for one file before it is dropped from the queue.
MAX_CHECKSUM_REFUSALS = 3


class UploadRefusedError(Exception):
    """The centre answered something the sender cannot go on from; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str, retry_after: float | None = None, offset: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.offset = offset  # a 409's Upload-Offset: where the centre stands


@dataclass
class UploadStats:
    files_sent: int = 0
    bytes_sent: int = 0  # body bytes the centre took, resumed files counted from where they resumed
    resumed: int = 0  # files whose upload started past 0 (the centre held part of them)
    busy_answers: int = 0  # 429/503 answers
    failures: int = 0  # transport errors and other refusals
    dropped: list[str] = field(default_factory=list)  # remote paths given up (with the log saying why)
    last_error: str | None = None


class Uploader:
    """A thread sending ``queue`` to ``base_url`` as ``site`` with ``token`` (an API token)."""

    def __init__(
        self,
        queue: UploadQueue,
        base_url: str,
        site: str,
        token: str,
        *,
        chunk_bytes: int = 1 << 20,
        max_bytes_per_s: float | None = None,
        backoff_max: float = 300.0,
        timeout: float = 30.0,
    ) -> None:
        self.queue = queue
        self.base_url = base_url.rstrip("/")
        self.site = site
        self.token = token
        self.chunk_bytes = chunk_bytes
        self.max_bytes_per_s = max_bytes_per_s
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.stats = UploadStats()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._refusals: dict[str, int] = {}

    # --- the thread -------------------------------------------------------------------
    def start(self) -> Uploader:
        self._thread = threading.Thread(target=self.run, name="obsy-uploader", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop between two chunks; what the centre holds stays there, the entry stays queued."""
        self._stopping.set()
        self.queue.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            item = self.queue.peek(timeout=1.0)
            if item is None or self._stopping.is_set():
                continue
            try:
                if self.send(item):
                    self.queue.done(item)
                backoff = 1.0
            except UploadRefusedError as exc:
                wait = exc.retry_after if exc.retry_after is not None else backoff
                wait = min(wait, self.backoff_max)
                backoff = min(backoff * 2, self.backoff_max)
                if exc.status in (429, 503):
                    self.stats.busy_answers += 1
                    log.info("the centre is busy (%s): next try in %.1f s", exc, wait)
                else:
                    self.stats.failures += 1
                    self.stats.last_error = str(exc)
                    log.warning("upload of %s failed: %s; next try in %.1f s", item.remote, exc, wait)
                self._stopping.wait(wait)

    # --- one file ---------------------------------------------------------------------
    def send(self, item: UploadItem) -> bool:
        """Send one file from where the centre stands. True: sent (or gone for good: dropped); False: stopped."""
        path = item.path
        facts = self._size_and_digest(item)
        if facts is None:
            return True
        size, digest = facts
        url = self.base_url + UPLOAD_ROUTE.format(site=quote(self.site, safe=""), path=quote(item.remote))
        offset = self._offset(url)
        if offset > 0:
            self.stats.resumed += 1
            log.info("resuming %s at byte %d of %d", item.remote, offset, size)
        with path.open("rb") as source:
            while not self._stopping.is_set():
                source.seek(offset)
                chunk = source.read(min(self.chunk_bytes, size - offset))
                started = time.monotonic()
                status, offset = self._put(url, chunk, ContentRange(offset, offset + len(chunk) - 1, size), digest)
                if status == 201:
                    self.stats.files_sent += 1
                    self._refusals.pop(item.remote, None)
                    log.info("sent %s (%d bytes)", item.remote, size)
                    return True
                if status == 422:
                    refusals = self._refusals[item.remote] = self._refusals.get(item.remote, 0) + 1
                    if refusals >= MAX_CHECKSUM_REFUSALS:
                        self._drop(item, f"the centre refused its checksum {refusals} times")
                        return True
                    offset = 0
                self._pace(len(chunk), started)
        return False

    def _offset(self, url: str) -> int:
        reply = self._request("HEAD", url, None, {})
        return int(reply.headers.get(OFFSET_HEADER) or 0)

    def _put(self, url: str, chunk: bytes, span: ContentRange, digest: str) -> tuple[int, int]:
        """The status (201 complete, 204 taken, 409 elsewhere, 422 checksum) and the offset to go on from."""
        headers = {"Content-Range": span.header(), CHECKSUM_HEADER: checksum_header(digest)}
        try:
            reply = self._request("PUT", url, chunk, headers)
        except UploadRefusedError as exc:
            if exc.status == 409 and exc.offset is not None:
                return 409, exc.offset
            if exc.status == 422 and "checksum" in str(exc):
                return 422, 0
            raise
        if reply.status == 204:
            self.stats.bytes_sent += len(chunk)
            return 204, int(reply.headers.get(OFFSET_HEADER) or span.last + 1)
        self.stats.bytes_sent += len(chunk)
        return reply.status, span.total

    def _request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]):
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in headers.items():
            request.add_header(name, value)
        if body is not None:
            request.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                reply.read()
                return reply
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", errors="replace")
            if exc.code == 409 and exc.headers.get(OFFSET_HEADER) is not None:
                raise UploadRefusedError(409, detail, offset=int(exc.headers[OFFSET_HEADER])) from None
            retry = exc.headers.get(RETRY_AFTER_HEADER)
            retry_after = float(retry) if retry and retry.isdigit() else None
            raise UploadRefusedError(exc.code, f"HTTP {exc.code} from {method} {url}: {detail}", retry_after) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise UploadRefusedError(0, f"the centre {self.base_url} is not reachable: {exc}") from None

    def _pace(self, sent: int, started: float) -> None:
        """Keep under ``max_bytes_per_s`` (a slow uplink shared with the site's other traffic)."""
        if self.max_bytes_per_s:
            wait = sent / self.max_bytes_per_s - (time.monotonic() - started)
            if wait > 0:
                self._stopping.wait(wait)

    def _size_and_digest(self, item: UploadItem) -> tuple[int, str] | None:
        """The file's size and SHA-256, or None once it is dropped (unreadable or empty: sending again
        cannot help)."""
        try:
            size = item.path.stat().st_size
            digest = _sha256(item.path)
        except OSError as exc:
            self._drop(item, f"the file is not readable at the site ({exc.strerror})")
            return None
        if size == 0:
            self._drop(item, "the file is empty")
            return None
        return size, digest

    def _drop(self, item: UploadItem, why: str) -> None:
        log.error("not sending %s (%s): %s; dropped from the upload queue", item.remote, item.source, why)
        self.stats.dropped.append(item.remote)
        self.queue.done(item)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
