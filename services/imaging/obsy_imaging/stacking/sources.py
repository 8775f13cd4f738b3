"""Where a stack reads its frames from: a rectangle at a time, never the whole set in memory.

An uncompressed FITS image is read straight from the file at the rows' byte offset (no memory
map: a memory-mapped file's pages count towards the process's resident memory as they are
touched, and a stack of 200 frames would touch them all). Tile-compressed frames (.fz) and
arrays already in memory (tests, the live stack) are read whole.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

#: read(first_row, end_row, first_column, end_column) -> that rectangle of the frame, float32.
Reader = Callable[[int, int, int, int], np.ndarray]

_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", -32: ">f4", -64: ">f8"}


def array_reader(image: np.ndarray) -> Reader:
    return lambda r0, r1, c0, c1: image[r0:r1, c0:c1]


def fits_reader(path: Path) -> tuple[Reader, tuple[int, int]]:
    """A reader for the first 2-D image of a FITS file and its shape (height, width)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdus:
            for hdu in hdus:
                header = hdu.header
                if header.get("NAXIS") != 2:
                    continue
                shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
                if isinstance(hdu, fits.CompImageHDU) or header.get("XTENSION") == "BINTABLE":
                    image = np.asarray(hdu.data, dtype=np.float32)
                    return array_reader(image), shape
                offset = hdu.fileinfo()["datLoc"]
                dtype = np.dtype(_BITPIX[int(header["BITPIX"])])
                scale, zero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
                break
            else:
                raise ValueError(f"{path} has no 2-D image")
    width = shape[1]

    def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        with open(path, "rb") as handle:
            handle.seek(offset + r0 * width * dtype.itemsize)
            rows = np.fromfile(handle, dtype=dtype, count=(r1 - r0) * width).reshape(r1 - r0, width)
        block = rows[:, c0:c1].astype(np.float32)
        if scale != 1.0 or zero != 0.0:
            block *= np.float32(scale)
            block += np.float32(zero)
        return block

    return read, shape
