"""Stretched JPEG previews of FITS images of the imaging repository, drawn on demand and cached.

The imaging service writes a preview for each live stack, not for each light nor for a night's
stack of record; the target page's frame grid and downloads need them. The web service reads the
FITS on the shared data volume, shrinks it by an area average and stretches it as the imaging
service's previews are (``obsy.stretch``), and keeps the JPEG in ``<data_dir>/web/previews``
under a name made from the file's path, size, modification time and the width asked: a light
calibrated again (its file replaced) gets a fresh preview. The folder is bounded
(``MAX_CACHE_BYTES``): when a new preview takes it over, the least recently used are removed
(a preview read from the cache counts as used: its modification time is refreshed).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image

from obsy.files import write_atomic
from obsy.stretch import autostretch

log = logging.getLogger("obsy.web.previews")

#: Widths a caller may ask for: a thumbnail for the grid up to a full-size sample.
MIN_WIDTH, MAX_WIDTH = 64, 4096
JPEG_QUALITY = 85
#: The preview folder's bound, and the share of it kept when it is pruned (so that, once the
#: folder is full, not every new preview removes old ones).
MAX_CACHE_BYTES = 512 * 1024 * 1024
PRUNE_TO = 0.8


class PreviewError(ValueError):
    """A file that cannot be drawn (not FITS, no 2-D image in it), with the reason in words."""


def read_image(path: Path) -> np.ndarray:
    """The first 2-D image of a FITS file (the first plane of a cube), as float32."""
    try:
        with fits.open(path, memmap=True, lazy_load_hdus=True) as hdus:
            for hdu in hdus:
                if hdu.is_image and hdu.data is not None and hdu.data.ndim >= 2:
                    data = hdu.data
                    while data.ndim > 2:
                        data = data[0]
                    return np.array(data, dtype=np.float32)
    except (OSError, ValueError, TypeError) as error:
        raise PreviewError(f"{path.name} is not a readable FITS file: {error}") from None
    raise PreviewError(f"{path.name} holds no 2-D image")


def shrink(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` averaged over square blocks so that it is at most ``width`` wide (NaN left out)."""
    factor = -(-image.shape[1] // width)  # ceil
    if factor <= 1:
        return image
    height, wide = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:height, :wide].reshape(height // factor, factor, wide // factor, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a block of NaN only stays NaN (black)
        return np.nanmean(blocks, axis=(1, 3)).astype(np.float32)


def render_jpeg(path: Path, width: int) -> bytes:
    """The stretched grey JPEG of the FITS at ``path``, at most ``width`` pixels wide."""
    small = shrink(read_image(path), width)
    pixels = np.rint(autostretch(small) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


class PreviewCache:
    """JPEG previews kept on disk by source file and width (see the module's docstring)."""

    def __init__(self, folder: Path, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        #: The folder's size: counted once (at the first new preview), then kept by adding what is
        #: written, so a page of thumbnails does not list the folder for each one.
        self._bytes: int | None = None

    def jpeg(self, source: Path, width: int) -> bytes:
        """The preview of ``source`` at ``width``: from the cache, else drawn and kept."""
        try:
            stat = source.stat()
        except OSError as error:
            raise PreviewError(f"{source.name} cannot be read: {error.strerror}") from None
        key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{width}"
        cached = self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.jpg"
        try:
            jpeg = cached.read_bytes()
        except OSError:
            pass
        else:
            with contextlib.suppress(OSError):  # used now: the last to be pruned
                os.utime(cached)
            return jpeg
        jpeg = render_jpeg(source, width)
        self._keep(cached, jpeg)
        return jpeg

    def _keep(self, cached: Path, jpeg: bytes) -> None:
        """Writes the preview atomically; a cache that cannot be written only costs drawing it again."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(cached, jpeg)
        except OSError as error:
            log.warning("preview cache not written: %s", error, extra={"event": "preview_cache_failed"})
            return
        with self._lock:
            self._bytes = self._listed()[1] if self._bytes is None else self._bytes + len(jpeg)
            if self._bytes > self.max_bytes:
                self._bytes = self._prune()

    def _listed(self) -> tuple[list[tuple[float, int, Path]], int]:
        """The previews (modification time, size, path) and their total size."""
        files: list[tuple[float, int, Path]] = []
        for path in self.folder.glob("*.jpg"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        return files, sum(size for _, size, _ in files)

    def _prune(self) -> int:
        """Removes the least recently used previews down to ``PRUNE_TO`` of ``max_bytes``; the bytes
        left. Another process pruning at the same time only makes a file vanish twice."""
        files, total = self._listed()
        removed = 0
        for _, size, path in sorted(files):
            if total <= self.max_bytes * PRUNE_TO:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
            total -= size
        log.info("preview cache pruned: %d previews removed, %d bytes left", removed, total)
        return total
