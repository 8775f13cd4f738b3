"""Images too large to hold several of at once, a band of rows at a time.

A colour image of 26 MP stacks is 100 MB per plane in float32; aligned, gradient-free, combined
and stretched copies of four filters would hold 1.5-2 GB. The colour chain instead keeps each
plane in a :class:`Plane`, a raw float32 file in a scratch folder read and written a band of rows
at a time with plain file I/O (no memory map: a memory-mapped file's pages count towards the
process's resident memory as they are touched, as :mod:`obsy_imaging.stacking.sources` explains),
and takes its statistics (sky levels, background fits, star colours) from a binned copy of at most
:data:`BINNED_PIXELS` pixels that it fills on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

#: Statistics are taken on a copy binned to at most this many pixels (a 26 MP stack: 3 x 3).
BINNED_PIXELS = 4_000_000
#: Bytes of one plane's band of rows (float32).
BAND_BYTES = 8 * 1024 * 1024

#: read(first_row, end_row, first_column, end_column) -> that rectangle, float32 (as stacking's Reader).
Reader = Callable[[int, int, int, int], np.ndarray]
#: An image: in memory, or a reader and its shape (height, width) (``stacking.fits_reader``'s answer).
Source = np.ndarray | tuple[Reader, tuple[int, int]]


def as_reader(source: Source) -> tuple[Reader, tuple[int, int]]:
    if isinstance(source, np.ndarray):
        if source.ndim != 2:
            raise ValueError(f"a stack is a 2-D image, not shape {source.shape}")
        return (lambda r0, r1, c0, c1: source[r0:r1, c0:c1]), (int(source.shape[0]), int(source.shape[1]))
    read, shape = source
    return read, (int(shape[0]), int(shape[1]))


def binning_for(shape: tuple[int, int], limit: int | None = None) -> int:
    """The smallest block size that brings ``shape`` to at most ``limit`` (:data:`BINNED_PIXELS`) pixels."""
    limit = BINNED_PIXELS if limit is None else limit
    factor = 1
    while (shape[0] // factor) * (shape[1] // factor) > limit:
        factor += 1
    return factor


def band_rows(shape: tuple[int, int], binning: int, band_bytes: int = BAND_BYTES) -> int:
    """Rows per band: about ``band_bytes`` of float32, a multiple of ``binning``."""
    rows = max(binning, band_bytes // (4 * max(shape[1], 1)))
    return min(shape[0], max(binning, rows - rows % binning)) if shape[0] >= binning else shape[0]


def bands(height: int, rows: int) -> Iterator[tuple[int, int]]:
    for r0 in range(0, height, rows):
        yield r0, min(height, r0 + rows)


def bin_rows(block: np.ndarray, binning: int, width: int) -> np.ndarray:
    """The block's whole ``binning`` x ``binning`` cells averaged (the rows and columns past the last
    whole cell dropped)."""
    if binning == 1:
        return block[:, :width]
    rows = block.shape[0] - block.shape[0] % binning
    cols = (width // binning) * binning
    cells = block[:rows, :cols].reshape(rows // binning, binning, cols // binning, binning)
    return cells.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


class Plane:
    """A float32 image of ``shape`` in a raw file, written and read a band of rows at a time."""

    def __init__(self, path: Path, shape: tuple[int, int]) -> None:
        self.path = path
        self.shape = shape
        with open(path, "wb") as handle:
            handle.truncate(shape[0] * shape[1] * 4)

    def write(self, first_row: int, block: np.ndarray) -> None:
        with open(self.path, "r+b") as handle:
            handle.seek(first_row * self.shape[1] * 4)
            np.ascontiguousarray(block, dtype=np.float32).tofile(handle)

    def read(self, r0: int, r1: int, c0: int = 0, c1: int | None = None) -> np.ndarray:
        width = self.shape[1]
        with open(self.path, "rb") as handle:
            handle.seek(r0 * width * 4)
            rows = np.fromfile(handle, dtype=np.float32, count=(r1 - r0) * width).reshape(r1 - r0, width)
        return rows if c0 == 0 and c1 in (None, width) else np.ascontiguousarray(rows[:, c0:c1])

    def whole(self) -> np.ndarray:
        return self.read(0, self.shape[0])
