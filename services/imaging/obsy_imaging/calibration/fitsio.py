"""Frames as sources of row blocks, and float32 FITS output written atomically.

A stack of 30 full frames does not fit the memory budget (a Raspberry Pi with 4 GB), so the
combiners ask each frame for a band of rows at a time. A FITS file is read with positioned
reads straight into the caller's buffer (no memory map, so the process's resident memory
stays at the size of one block); the stored integers are decoded (BSCALE/BZERO) in the kernel.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from astropy.io import fits

from obsy.files import atomic_replacement


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
            found = _primary_image_header(self.path)
            if found is None:  # the image is in an extension, or something unusual: astropy finds it
                with fits.open(self.path, memmap=False, lazy_load_hdus=True) as hdul:
                    index = _image_hdu_index(hdul, self.name)
                    found = hdul[index].header.copy(), hdul.fileinfo(index)["datLoc"]
            self.header, self._offset = found
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
        if out.dtype != self.dtype:
            raise ValueError(f"{self.name}: a buffer of {out.dtype} for {self.dtype} pixels")
        self._read_bytes(start, stop, out)
        if self._stored.byteorder != "=" and self._stored.itemsize > 1 and np.little_endian:
            out.byteswap(inplace=True)

    @property
    def big_endian_int16(self) -> bool:
        """True when the kernels can take this file's bytes as they are (BITPIX 16 on a little-endian machine)."""
        return self._stored == np.dtype(">i2") and np.little_endian

    def read_rows_file_order(self, start: int, stop: int, out: np.ndarray) -> None:
        """A band of rows as the file stores them, bytes not swapped (``out`` of any 2-byte type for BITPIX 16)."""
        self._read_bytes(start, stop, out)

    @property
    def file_dtype(self) -> np.dtype:
        """The pixels' type as stored (big-endian)."""
        return self._stored

    def read_file_order(self, out: np.ndarray | None = None) -> np.ndarray:
        """The whole image as stored in the file (big-endian), without converting anything (into ``out``)."""
        out = np.empty(self.shape, self._stored) if out is None else out.view(self._stored)
        self._read_bytes(0, self.shape[0], out)
        return out

    def _read_bytes(self, start: int, stop: int, out: np.ndarray) -> None:
        row_bytes = self.shape[1] * self._stored.itemsize
        if not out.flags.c_contiguous or out.nbytes != (stop - start) * row_bytes:
            raise ValueError(f"{self.name}: a buffer of shape {out.shape} does not fit rows {start}:{stop}")
        view = out.view(np.uint8).reshape(-1)
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self._offset + start * row_bytes)
            got = f.readinto(view)
        if got != view.size:
            raise FrameError(f"{self.name}: short read at rows {start}:{stop}")

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


def _primary_image_header(path: Path) -> tuple[fits.Header, int] | None:
    """The primary header and where its data starts, when the primary HDU holds the image (as cameras write).

    Reads the header's 2880-byte blocks directly: a tenth of the time of opening the file
    with astropy, which counts when lights arrive by the hundred.
    """
    with open(path, "rb") as f:
        text = b""
        while True:
            block = f.read(_BLOCK)
            if len(block) < _BLOCK:
                return None
            text += block
            if any(block[i : i + 8] == b"END     " for i in range(0, _BLOCK, 80)):
                break
            if len(text) > 400 * _BLOCK:
                return None
    if not text.startswith(b"SIMPLE  ="):
        return None
    header = fits.Header.fromstring(text.decode("ascii", "replace"))
    if header.get("NAXIS", 0) == 0 or header.get("GROUPS"):
        return None
    return header, len(text)


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


def write_float32_fits(
    path: str | os.PathLike,
    data: np.ndarray,
    header: fits.Header | None = None,
    extra_cards: Sequence[fits.Card] = (),
) -> Path:
    """Write a float32 image atomically: a temporary file in the same folder, then a rename.

    A reader never sees a half-written file, and an existing file is replaced only when the
    new one is complete. The file is put together here (card images, big-endian pixels,
    padding to FITS's 2880-byte blocks) rather than by astropy's ``writeto``, which swaps
    the bytes of the array in place and back and checks every card: most of the time of
    calibrating a light went there. ``header``'s cards are copied as they are (less the ones
    that describe the data, which are written anew), then ``extra_cards``.
    """
    path = Path(path)
    data = np.asarray(data)
    if data.ndim != 2:
        raise FrameError(f"{path.name}: only 2-D images are written, not shape {data.shape}")
    if data.dtype != np.dtype(">f4") or not data.flags.c_contiguous:
        data = np.ascontiguousarray(data, dtype=">f4")
    rows, cols = data.shape
    structure = (("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", cols), ("NAXIS2", rows), ("EXTEND", True))
    images = [_card(key, value) for key, value in structure]
    if header is not None:
        images += [card.image for card in header.cards if card.keyword not in _STRUCTURAL]
    images += [card.image for card in extra_cards]
    text = "".join(images) + "END".ljust(80)
    text += " " * (-len(text) % _BLOCK)
    with atomic_replacement(path) as temporary, temporary.open("wb", buffering=0) as f:
        f.write(text.encode("ascii"))
        f.write(memoryview(data).cast("B"))
        f.write(b"\0" * (-data.nbytes % _BLOCK))
    return path


@functools.lru_cache(maxsize=4096)
def _card(keyword: str, value) -> str:
    return fits.Card(keyword, value).image


_BLOCK = 2880
_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "BZERO", "BSCALE", "BLANK"}
_STRUCTURAL |= {"PCOUNT", "GCOUNT", "XTENSION", "END", "CHECKSUM", "DATASUM"}
