"""Replacing a file atomically: readers (a web request, another service, the next start) see the
old content or the new one, whole, never a half-written file.

The new content goes to a hidden temporary file beside the target (the same folder, so the same
file system) which is then renamed over it (:func:`os.replace`, atomic on POSIX). A write that fails
leaves the old file as it was and removes the temporary one. The temporary file is made with the
permissions a plain ``open(path, "w")`` gives (``0o666`` less the umask), not ``mkstemp``'s
``0o600``: what a service writes is read by the others and by the web server.

``durable=True`` also survives a power cut: the file is fsynced before the rename and its folder
after it. That costs a disk flush per write, so it is for state that must not be lost (the MCP's
operator state, the allsky pictures), not for files rewritten every few seconds (heartbeats).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

#: Longest part of the target's name kept in the temporary file's name (names are at most 255 bytes).
_NAME_KEPT = 200


@contextlib.contextmanager
def atomic_replacement(path: Path | str, *, durable: bool = False) -> Iterator[Path]:
    """A fresh, empty temporary file beside ``path`` for a writer that wants a file name (astropy,
    ffmpeg); when the block ends without an exception it replaces ``path``, otherwise it is removed
    and ``path`` is left alone. The writer may also delete and recreate the temporary file."""
    path = Path(path)
    temporary = _reserve(path)
    try:
        yield temporary
        if durable:
            _fsync(temporary, os.O_RDONLY)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)


def write_atomic(path: Path | str, data: bytes | str, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` (a ``str`` is written as UTF-8) through :func:`atomic_replacement`."""
    content = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_replacement(path, durable=durable) as temporary:
        temporary.write_bytes(content)


def _reserve(path: Path) -> Path:
    """Create ``.<name>.<random>.tmp`` beside ``path``; hidden, so folder watchers and listings skip it."""
    while True:
        temporary = path.with_name(f".{path.name[:_NAME_KEPT]}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary


def _fsync(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
