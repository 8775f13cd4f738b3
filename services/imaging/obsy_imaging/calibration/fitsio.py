"""Frames as sources of row blocks, and float32 FITS output written atomically.

A stack of 30 full frames does not fit the memory budget (a Raspberry Pi with 4 GB), so the
combiners ask each frame for a band of rows at a time. A FITS file is read with positioned
reads straight into the caller's buffer (no memory map, so the process's resident memory
stays at the size of one block); the stored integers are decoded (BSCALE/BZERO) in the kernel.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np
from astropy.io import fits


class FrameError(ValueError):
    """A frame cannot be used: the message names the file and what is wrong."""


class RowSource(Protocol):
    """A 2-D frame that hands out bands of rows in its stored type, with the linear decoding to apply."""

    name: str
    shape: tuple[int, int]
    dtype: np.dtype  # native byte order
    bscale: float
    bzero: float

    def read_rows_into(self, start: int, stop: int, out: np.ndarray) -> None: ...


class ArrayFrame:
    """An in-memory frame (tests, or data already loaded)."""

    def __init__(self, data: np.ndarray, name: str = "<array>") -> None:
        data = np.asarray(data)
        if data.ndim != 2:
            raise FrameError(f"{name}: a frame must be 2-D, this one has shape {data.shape}")
        self.data = data.astype(data.dtype.newbyteorder("="), copy=False)
        self.name = name
        self.shape = data.shape
        self.dtype = self.data.dtype
        self.bscale, self.bzero = 1.0, 0.0

    def read_rows_into(self, start: int, stop: int, out: np.ndarray) -> None:
        out[...] = self.data[start:stop]


class FitsFrame:
    """The image of a FITS file, read a band of rows at a time."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = self.path.name
        try:
            with fits.open(self.path, memmap=False, lazy_load_hdus=True) as hdul:
                index = _image_hdu_index(hdul, self.name)
                hdu = hdul[index]
                self.header = hdu.header.copy()
                self._offset = hdul.fileinfo(index)["datLoc"]
        except (OSError, TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, FrameError):
                raise
            raise FrameError(f"{self.name}: not a readable FITS file ({exc})") from exc
        header = self.header
        if header.get("NAXIS") != 2:
            raise FrameError(f"{self.name}: expected a 2-D image, NAXIS is {header.get('NAXIS')}")
        self.shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
        bitpix = int(header["BITPIX"])
        if bitpix not in _BITPIX_DTYPES:
            raise FrameError(f"{self.name}: unsupported BITPIX {bitpix}")
        self._stored = np.dtype(_BITPIX_DTYPES[bitpix])
        self.dtype = self._stored.newbyteorder("=")
        self.bscale = float(header.get("BSCALE", 1.0))
        self.bzero = float(header.get("BZERO", 0.0))
        expected = self._offset + self.shape[0] * self.shape[1] * self._stored.itemsize
        size = self.path.stat().st_size
        if size < expected:
            raise FrameError(f"{self.name}: truncated, {size} bytes where the image needs {expected}")

    def read_rows_into(self, start: int, stop: int, out: np.ndarray) -> None:
        row_bytes = self.shape[1] * self._stored.itemsize
        view = out.view(np.uint8).reshape(-1)
        if out.dtype != self.dtype or not out.flags.c_contiguous or view.size != (stop - start) * row_bytes:
            raise ValueError(f"{self.name}: buffer of {out.dtype} {out.shape} does not fit rows {start}:{stop}")
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self._offset + start * row_bytes)
            got = f.readinto(view)
        if got != view.size:
            raise FrameError(f"{self.name}: short read at rows {start}:{stop}")
        if self._stored.byteorder != "=" and self._stored.itemsize > 1 and np.little_endian:
            out.byteswap(inplace=True)

    def read(self) -> np.ndarray:
        """The whole image in its stored type (native byte order), not decoded."""
        out = np.empty(self.shape, self.dtype)
        self.read_rows_into(0, self.shape[0], out)
        return out

    def read_float32(self) -> np.ndarray:
        """The whole image decoded to float32 (BSCALE/BZERO applied)."""
        data = self.read().astype(np.float32)
        if self.bscale != 1.0:
            data *= np.float32(self.bscale)
        if self.bzero != 0.0:
            data += np.float32(self.bzero)
        return data


_BITPIX_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _image_hdu_index(hdul: fits.HDUList, name: str) -> int:
    for index, hdu in enumerate(hdul):
        if isinstance(hdu, fits.CompImageHDU):
            raise FrameError(f"{name}: compressed FITS is not read in row blocks; decompress it first (funpack)")
        if isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU) and hdu.header.get("NAXIS", 0) > 0:
            return index
    raise FrameError(f"{name}: no image in this FITS file")


def as_source(frame: RowSource | str | os.PathLike | np.ndarray, name: str = "<array>") -> RowSource:
    """A path becomes a :class:`FitsFrame`, an array an :class:`ArrayFrame` called ``name``; a source stays itself."""
    if isinstance(frame, str | os.PathLike):
        return FitsFrame(frame)
    if isinstance(frame, np.ndarray):
        return ArrayFrame(frame, name)
    return frame


def write_float32_fits(path: str | os.PathLike, data: np.ndarray, header: fits.Header | None = None) -> Path:
    """Write a float32 image atomically: a temporary file in the same folder, then a rename.

    A reader never sees a half-written file, and an existing file is replaced only when the
    new one is complete.
    """
    path = Path(path)
    header = fits.Header() if header is None else header.copy()
    for key in ("BZERO", "BSCALE", "BLANK"):
        header.remove(key, ignore_missing=True, remove_all=True)
    hdu = fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=header)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            hdu.writeto(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
