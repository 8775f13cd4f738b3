"""The bridged sites' files, received by HTTP (protocol: :mod:`obsy.upload.protocol`).

A finished file lies at ``<data_dir>/sites/<site>/<path>``, ``<path>`` being where the site keeps
it under its own data directory (``allsky/<night>/<frame id>.jpg``), so the routes that serve a
site's frames find it from the frame's metadata. An unfinished one is staged in
``<data_dir>/sites/<site>/.uploads/`` (a ``.part`` with the bytes so far and a ``.json`` with the
size and checksum it must reach); it survives a restart of this service, so a site resumes it.

Admission (back-pressure): at most ``web.uploads.max_concurrent`` uploads at a time and
``max_staging_bytes`` of unfinished ones; past either a site is answered 503 with Retry-After.
An unfinished upload untouched for ``stale_hours`` is dropped at the next admission, so a site
that never comes back cannot hold the staging space for ever.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlparse

from obsy_web.config import WebUploadsConfig

SITES_FOLDER = "sites"
STAGING_FOLDER = ".uploads"


class BusyError(Exception):
    """No upload slot or no staging room now; the message says which."""


@dataclass(frozen=True)
class Staged:
    part: Path
    meta: Path

    def offset(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def expected(self) -> tuple[int, str] | None:
        """(total size, sha256) the upload under way must reach; None when none is under way."""
        try:
            data = json.loads(self.meta.read_text(encoding="utf-8"))
            return int(data["total"]), str(data["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def begin(self, total: int, sha256: str, path: str) -> None:
        """Start over for a file of this size and checksum (what was held of another version is dropped)."""
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self.part.write_bytes(b"")
        self.meta.write_text(json.dumps({"total": total, "sha256": sha256, "path": path}), encoding="utf-8")

    def drop(self) -> None:
        self.part.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)


class UploadStore:
    def __init__(self, data_dir: Path, settings: WebUploadsConfig) -> None:
        self.root = Path(data_dir) / SITES_FOLDER
        self.settings = settings
        self._lock = threading.Lock()
        self._active: set[tuple[str, str]] = set()
        #: Body bytes taken per (site, path) since this service started (what a resume saved shows here).
        self.received: Counter[tuple[str, str]] = Counter()

    def final_path(self, site: str, parts: tuple[str, ...]) -> Path:
        return self.root.joinpath(site, *parts)

    def staged(self, site: str, path: str) -> Staged:
        key = hashlib.sha256(path.encode()).hexdigest()[:32]
        folder = self.root / site / STAGING_FOLDER
        return Staged(folder / f"{key}.part", folder / f"{key}.json")

    def staging_bytes(self) -> int:
        """Bytes of unfinished uploads, after dropping those untouched for ``stale_hours`` (a site gone for good)."""
        oldest = time.time() - self.settings.stale_hours * 3600
        held = 0
        for part in self.root.glob(f"*/{STAGING_FOLDER}/*.part"):
            try:
                facts = part.stat()
            except FileNotFoundError:
                continue
            if facts.st_mtime < oldest:
                Staged(part, part.with_suffix(".json")).drop()
            else:
                held += facts.st_size
        return held

    def admit(self, site: str, path: str) -> None:
        """Take an upload slot for (site, path) or raise :class:`BusyError`; give it back with :meth:`release`."""
        with self._lock:
            if (site, path) in self._active:
                raise BusyError(f"{path} of {site} is being uploaded already")
            if len(self._active) >= self.settings.max_concurrent:
                raise BusyError(f"{len(self._active)} uploads under way (web.uploads.max_concurrent)")
            staging = self.staging_bytes()
            if staging >= self.settings.max_staging_bytes:
                raise BusyError(f"{staging} bytes of unfinished uploads held (web.uploads.max_staging_bytes)")
            self._active.add((site, path))

    @property
    def active(self) -> int:
        """Uploads under way now."""
        with self._lock:
            return len(self._active)

    def release(self, site: str, path: str) -> None:
        with self._lock:
            self._active.discard((site, path))

    def finish(self, site: str, parts: tuple[str, ...], staged: Staged, sha256: str) -> bool:
        """Check the whole file's checksum and move it into place; False (and dropped) when it does not match."""
        digest = hashlib.sha256()
        with staged.part.open("rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != sha256:
            staged.drop()
            return False
        final = self.final_path(site, parts)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.part, final)
        staged.meta.unlink(missing_ok=True)
        return True


def allsky_picture_url(data_dir: Path, site: str, *, local: bool, frame_id: str, night: str, url: str) -> str | None:
    """Where this service serves an allsky frame's picture (``/allsky/images/{id}/file``), or None.

    A bridged site's link carries ``site=`` and is given only once its uploader has sent the
    picture (never a file of this site's that happens to have its name).
    """
    if local:
        return f"/api/v1/allsky/images/{quote(frame_id, safe='')}/file"
    relative = bridged_frame_path(site, night, urlparse(url).path)
    if relative is None or not (data_dir / relative).is_file():
        return None
    return f"/api/v1/allsky/images/{quote(frame_id, safe='')}/file?site={quote(site, safe='')}"


def bridged_frame_path(site: str, night: str, url_path: str) -> str | None:
    """Where a bridged site's frame picture lies here, relative to the data directory.

    The site keeps it as ``<its data_dir>/allsky/<night>/<name>`` and its uploader sends it as
    ``allsky/<night>/<name>``, kept here under ``sites/<site>/``.
    """
    name = PurePosixPath(unquote(url_path)).name
    if not name or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", night):
        return None
    return f"{SITES_FOLDER}/{site}/allsky/{night}/{name}"
