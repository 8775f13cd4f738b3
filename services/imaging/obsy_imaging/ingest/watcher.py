"""Watching the capture folders: a file is taken once it is complete, within seconds of being written.

watchdog (inotify on Linux) reports creations, writes, renames and - on Linux - the close after
a write. A file closed after writing is taken at once; otherwise it is taken when its size and
modification time have not changed for ``settle_time`` seconds (programs that keep files open,
platforms without close events). A file that inspection finds unfinished (a partial header, data
shorter than the header promises) is tried again until it stays unfinished for
``incomplete_timeout`` seconds; then it is quarantined. On start the folders are scanned, so frames
written while the service was down are taken too (the repository skips those it has).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from obsy_imaging.ingest.ingestor import Ingestor, Outcome, Result

log = logging.getLogger("obsy.imaging.watcher")

STORAGE_RETRY_S = 30.0


def frame_files(folder: Path, suffixes: Iterable[str]) -> Iterator[Path]:
    """Frame files under ``folder`` (recursively), in name order; hidden and partial files skipped."""
    endings = tuple(s.lower() for s in suffixes)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and is_frame_name(path.name, endings):
            yield path


def is_frame_name(name: str, suffixes: tuple[str, ...]) -> bool:
    return not name.startswith(".") and name.lower().endswith(suffixes)


@dataclass
class _Pending:
    first_seen: float
    last_change: float
    size: int = -1
    mtime_ns: int = -1
    closed: bool = False
    retry_after: float = 0.0
    reason: str = field(default="")
    #: The route that named the file first (``watch``, ``post_capture``, ``dbus``): it is registered under it.
    route: str = "watch"
    #: Called once with the outcome (a post-capture script or D-Bus signal waiting for its answer).
    replies: list[Callable[[Result], None]] = field(default_factory=list)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: CaptureWatcher) -> None:
        self.watcher = watcher

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher.notice(Path(str(event.src_path)))

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher.notice(Path(str(event.src_path)))

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher.notice(Path(str(event.src_path)), closed=True)

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher.notice(Path(str(event.dest_path)), closed=True)


def _changed_since(path: Path, result: Result) -> bool:
    """Whether the file was written again while it was being taken (then it is taken once more)."""
    if result.inspected is None:
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    return (stat.st_size, stat.st_mtime_ns) != (result.inspected.size, result.inspected.mtime_ns)


class CaptureWatcher:
    """Watches folders and feeds complete files to the :class:`Ingestor` on its own thread."""

    def __init__(
        self,
        ingestor: Ingestor,
        folders: list[Path],
        *,
        suffixes: Iterable[str],
        settle_time: float,
        incomplete_timeout: float,
        on_result: Callable[[Result], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ingestor = ingestor
        self.folders = folders
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.settle_time = settle_time
        self.incomplete_timeout = incomplete_timeout
        self.on_result = on_result
        self.clock = clock
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._thread: threading.Thread | None = None
        self.watching: list[Path] = []
        self.missing: list[Path] = []
        self.storage_error: str | None = None
        #: Why files are not taken now (the disk watch at critical), or None: they wait, nothing is lost.
        self.paused: str | None = None

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._observer = Observer()
        self._observer.daemon = True
        self.attach_folders()
        self._observer.start()
        self._thread = threading.Thread(target=self._run, name="imaging-watcher", daemon=True)
        self._thread.start()

    def attach_folders(self) -> None:
        """Watch every configured folder that exists (and scan it); the others are retried later."""
        assert self._observer is not None
        missing = []
        for folder in self.folders:
            if folder in self.watching:
                continue
            if not folder.is_dir():
                missing.append(folder)
                continue
            self._observer.schedule(_Handler(self), str(folder), recursive=True)
            self.watching.append(folder)
            log.info("watching %s", folder, extra={"event": "watching"})
            for path in frame_files(folder, self.suffixes):
                self.notice(path)
        if missing and missing != self.missing:
            log.warning("capture folders missing: %s", ", ".join(map(str, missing)), extra={"event": "folder_missing"})
        self.missing = missing

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def queue_depth(self) -> int:
        with self._lock:
            return len(self._pending)

    # --- events ---------------------------------------------------------------------------
    def notice(
        self,
        path: Path,
        *,
        closed: bool = False,
        route: str = "watch",
        reply: Callable[[Result], None] | None = None,
    ) -> bool:
        """Take ``path`` once it is complete; False when its name is not a frame's (``suffixes``).

        Another route naming a file the watch has seen (or the reverse) joins the same entry, so a
        file is taken once; ``reply`` is called with the outcome.
        """
        if not is_frame_name(path.name, self.suffixes):
            return False
        now = self.clock()
        with self._lock:
            pending = self._pending.get(path)
            if pending is None:
                pending = self._pending[path] = _Pending(first_seen=now, last_change=now, route=route)
            pending.last_change = now
            pending.closed = pending.closed or closed
            if reply is not None:
                pending.replies.append(reply)
        self._wake.set()
        return True

    def scan(self) -> int:
        """Look at every frame file in the watched folders again (a route that names no file); how many."""
        count = 0
        for folder in list(self.watching):
            for path in frame_files(folder, self.suffixes):
                count += self.notice(path)
        return count

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            if self.paused is not None:
                continue
            for path in self._due():
                if self._stopping.is_set():
                    return
                self._take(path)

    def _due(self) -> list[Path]:
        """Files whose writing looks finished: closed, or unchanged for settle_time."""
        now = self.clock()
        due = []
        with self._lock:
            items = list(self._pending.items())
        for path, pending in items:
            if now < pending.retry_after:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                with self._lock:
                    self._pending.pop(path, None)
                self._answer(pending, Result(Outcome.VANISHED, path))
                continue
            except OSError:
                due.append(path)
                continue
            if (stat.st_size, stat.st_mtime_ns) != (pending.size, pending.mtime_ns):
                pending.size, pending.mtime_ns = stat.st_size, stat.st_mtime_ns
                if not pending.closed:
                    pending.last_change = now
                    continue
            if pending.closed or now - pending.last_change >= self.settle_time:
                due.append(path)
        return due

    def _take(self, path: Path) -> None:
        with self._lock:
            pending = self._pending.get(path)
        if pending is None:
            return
        now = self.clock()
        final = now - pending.first_seen >= self.incomplete_timeout
        try:
            result = self.ingestor.ingest(path, pending.route, final=final)
        except Exception:  # a bug must not end the watcher; the file stays where it is
            log.exception("ingesting %s failed; trying again later", path)
            pending.retry_after = now + STORAGE_RETRY_S
            return
        if result.outcome is Outcome.WAITING:
            pending.closed = False  # wait for the next change or settle_time
            pending.last_change = now
            pending.reason = result.reason or ""
            return
        if result.outcome is Outcome.STORAGE_FULL:
            self.storage_error = result.reason
            pending.retry_after = now + STORAGE_RETRY_S
            self._report(result)
            self._answer(pending, result)  # it waits in the folder: nothing is lost
            return
        if result.outcome in (Outcome.REGISTERED, Outcome.DUPLICATE):
            self.storage_error = None
        with self._lock:
            if self._pending.get(path) is pending and not _changed_since(path, result):
                del self._pending[path]
        if result.outcome is not Outcome.KNOWN:
            self._report(result)
        self._answer(pending, result)

    def _answer(self, pending: _Pending, result: Result) -> None:
        with self._lock:
            replies, pending.replies = pending.replies, []
        for reply in replies:
            try:
                reply(result)
            except Exception:  # an answer that cannot go out must not end the watcher
                log.exception("answering for %s failed", result.path)

    def _report(self, result: Result) -> None:
        try:
            self.on_result(result)
        except Exception:  # the frame is in the repository; a failed report must not end the watcher
            log.exception("reporting %s failed", result.path)
