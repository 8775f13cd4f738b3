"""The site's queue of files to send to the centre: one small JSON file per entry, on disk.

An entry names a file the site keeps anyway (an allsky picture in its data directory): the queue
holds no copy, only what to send and where. Entries survive a restart of the service; the oldest
is sent first. The queue is bounded (``max_files``): when it is full a new entry is refused with
:class:`QueueFullError` (the file stays at the site, nothing held is dropped), and the caller logs it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from obsy.files import write_atomic

ENTRY_SUFFIX = ".json"


class QueueFullError(Exception):
    """The queue holds ``max_files`` entries already; the message says which file was not queued."""


@dataclass(frozen=True)
class UploadItem:
    source: str  # the file at the site (absolute)
    remote: str  # its path at the centre, relative to the site's data directory (POSIX)
    enqueued: float  # Unix time
    entry: str = ""  # the entry's file name in the queue folder (set when read back)

    @property
    def path(self) -> Path:
        return Path(self.source)


class UploadQueue:
    def __init__(self, folder: Path, max_files: int = 10_000) -> None:
        self.folder = Path(folder)
        self.max_files = max_files
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def put(self, source: Path, remote: str) -> UploadItem:
        """Queue ``source`` to be sent as ``remote``; the same ``remote`` queued again is one entry."""
        parts = PurePosixPath(remote).parts
        if not parts or remote.startswith("/") or any(p in ("..", ".") or p.startswith(".") for p in parts):
            raise ValueError(f"the remote path {remote!r} must be relative, without '..' or hidden parts")
        key = hashlib.sha256(remote.encode()).hexdigest()[:16]
        with self._lock:
            existing = [p for p in self.folder.glob(f"*-{key}{ENTRY_SUFFIX}")]
            if not existing and self._count() >= self.max_files:
                raise QueueFullError(
                    f"the upload queue {self.folder} is full ({self.max_files} files): {source} not queued"
                )
            item = UploadItem(str(Path(source).resolve()), remote, time.time())
            name = existing[0].name if existing else f"{time.time_ns():020d}-{key}{ENTRY_SUFFIX}"
            write_atomic(self.folder / name, json.dumps(asdict(item) | {"entry": ""}))
            self._changed.notify_all()
        return UploadItem(item.source, item.remote, item.enqueued, name)

    def peek(self, timeout: float | None = None) -> UploadItem | None:
        """The oldest entry (None when the queue stays empty for ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                for path in sorted(self.folder.glob(f"*{ENTRY_SUFFIX}")):
                    item = self._read(path)
                    if item is not None:
                        return item
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._changed.wait(left)

    def done(self, item: UploadItem) -> None:
        """Drop an entry once sent (or once its file is gone for good)."""
        with self._lock:
            (self.folder / item.entry).unlink(missing_ok=True)

    def wake(self) -> None:
        """End a waiting :meth:`peek` early (on stop)."""
        with self._lock:
            self._changed.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    def items(self) -> list[UploadItem]:
        with self._lock:
            found = (self._read(p) for p in sorted(self.folder.glob(f"*{ENTRY_SUFFIX}")))
            return [item for item in found if item is not None]

    def _count(self) -> int:
        return sum(1 for _ in self.folder.glob(f"*{ENTRY_SUFFIX}"))

    def _read(self, path: Path) -> UploadItem | None:
        """One entry; a damaged one (a crash mid-write cannot make one: entries are renamed into place) is set aside."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return UploadItem(str(data["source"]), str(data["remote"]), float(data["enqueued"]), path.name)
        except (OSError, ValueError, KeyError, TypeError):
            path.replace(path.with_suffix(".damaged"))
            return None
