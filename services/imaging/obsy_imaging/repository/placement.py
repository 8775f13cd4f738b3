"""Putting a raw frame into the repository without rewriting it, overwriting anything or losing it.

Frames are **hard-linked** into the layout: no bytes are copied, the capture program's own
folder stays as it was (Ekos counts the frames in its capture folders to resume a job, so
moving them away would make it take them again), and the repository's link keeps the frame
if the original is deleted. Where a link is impossible (another file system, a file system
without links) the frame is **copied**: into a hidden temporary name in the target folder,
flushed to disk, then linked to its final name, which fails rather than replaces when the
name exists. A name that exists holds another frame: the new one gets the next free
``name_2.fits``, ``name_3.fits``...
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

LINK_IMPOSSIBLE = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


class StorageFullError(OSError):
    """No space left where the frame should go: nothing was lost, try again later."""


def _candidates(folder: Path, name: str):
    base, dot, suffix = name.partition(".")
    yield folder / name
    for number in range(2, 10_000):
        yield folder / f"{base}_{number}{dot}{suffix}"


def place(source: Path, folder: Path) -> tuple[Path, str]:
    """Link (or copy) ``source`` into ``folder`` under a free name; returns (path, 'hardlink'|'copy')."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for candidate in _candidates(folder, source.name):
            try:
                os.link(source, candidate)
                return candidate, "hardlink"
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno in LINK_IMPOSSIBLE:
                    return _copy(source, folder), "copy"
                raise
        raise OSError(errno.EEXIST, f"no free name for {source.name} in {folder}")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(exc.errno, f"no space left in {folder}: {exc.strerror}") from exc
        raise


def _copy(source: Path, folder: Path) -> Path:
    temporary = folder / f".{source.name}.{uuid.uuid4().hex}.part"
    try:
        with source.open("rb") as reader, temporary.open("xb") as writer:
            shutil.copyfileobj(reader, writer, length=1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, temporary)
        for candidate in _candidates(folder, source.name):
            try:
                os.link(temporary, candidate)  # never replaces an existing name, unlike rename
                return candidate
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno not in LINK_IMPOSSIBLE:
                    raise
            # No links at all here (FAT, some network shares): reserve the name, then replace our reservation.
            try:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            os.replace(temporary, candidate)
            return candidate
        raise OSError(errno.EEXIST, f"no free name for {source.name} in {folder}")
    finally:
        temporary.unlink(missing_ok=True)
