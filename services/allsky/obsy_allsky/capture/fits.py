"""Decoding the FITS image an INDI camera sends as a BLOB."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits


class FitsError(ValueError):
    """The bytes are not a usable FITS image; the message says what is wrong."""


@dataclass(frozen=True)
class FitsImage:
    data: np.ndarray  # (H, W) uint16 (or float32 for float cameras), top row first as INDI sends it
    header: dict[str, Any]

    def number(self, key: str) -> float | None:
        value = self.header.get(key)
        return float(value) if isinstance(value, int | float) else None


def decode_fits(data: bytes, source: str = "BLOB") -> FitsImage:
    """The primary 2-D image of a FITS file in memory, as unsigned 16-bit (BZERO applied)."""
    if not data:
        raise FitsError(f"{source}: empty FITS data")
    if not data.startswith(b"SIMPLE"):
        raise FitsError(f"{source}: not FITS (starts with {data[:16]!r})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns about truncated files; we raise instead
            with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False) as hdus:
                hdu = hdus[0]
                image = hdu.data
                header = {k: v for k, v in hdu.header.items() if k}
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise FitsError(f"{source}: corrupt FITS ({exc})") from exc
    if image is None:
        raise FitsError(f"{source}: FITS without image data")
    if image.ndim != 2:
        raise FitsError(f"{source}: expected a 2-D image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.integer):
        image = np.clip(image, 0, 65535).astype(np.uint16)
    else:
        image = np.nan_to_num(image.astype(np.float32))
    return FitsImage(data=np.ascontiguousarray(image), header=header)
