"""Hot and cold pixels from a master dark (and the master bias, when there is one).

A pixel is hot when its dark current (the dark with the bias taken off) is more than
``hot_sigma`` robust standard deviations (the MAD scaled to σ) above the median; cold when
the dark itself reads more than ``cold_sigma`` below its median (a dead pixel reads low in
every frame, bias included, so it would vanish from dark − bias). A pixel without a finite
value has no data. The map is a uint8 image: bit 1 hot, bit 2 cold, bit 4 no data.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from .fitsio import FrameError
from .kernels import MAD_TO_STD

HOT, COLD, NO_DATA = 1, 2, 4


@dataclass
class BadPixelMap:
    flags: np.ndarray = field(repr=False)  # uint8, HOT | COLD | NO_DATA
    median: float  # the dark signal's median (ADU)
    sigma: float  # its robust standard deviation
    hot_sigma: float
    cold_sigma: float

    @property
    def mask(self) -> np.ndarray:
        return self.flags != 0

    def count(self, flag: int) -> int:
        return int(np.count_nonzero(self.flags & flag))

    def summary(self) -> dict[str, float | int]:
        return {
            "hot": self.count(HOT),
            "cold": self.count(COLD),
            "no_data": self.count(NO_DATA),
            "median": round(self.median, 4),
            "sigma": round(self.sigma, 4),
            "hot_sigma": self.hot_sigma,
            "cold_sigma": self.cold_sigma,
        }

    def write(self, path: str | os.PathLike, header: fits.Header | None = None) -> Path:
        header = fits.Header() if header is None else header.copy()
        header["IMAGETYP"] = "Bad Pixel Map"
        header["BPMHOT"], header["BPMCOLD"] = self.count(HOT), self.count(COLD)
        header["BPMSIGH"], header["BPMSIGL"] = self.hot_sigma, self.cold_sigma
        header.add_history("OBSY bad-pixel map: bit 1 hot, bit 2 cold, bit 4 no data")
        path = Path(path)
        fits.PrimaryHDU(self.flags, header=header).writeto(path, overwrite=True)
        return path


def find_bad_pixels(
    dark: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    hot_sigma: float = 5.0,
    cold_sigma: float = 5.0,
) -> BadPixelMap:
    """The bad-pixel map of a master dark (and the master bias under it, when there is one)."""
    dark = np.asarray(dark, dtype=np.float32)
    signal = dark
    if bias is not None:
        if bias.shape != dark.shape:
            raise FrameError(f"the bias is {bias.shape[1]}×{bias.shape[0]}, the dark {dark.shape[1]}×{dark.shape[0]}")
        signal = dark - bias
    finite = np.isfinite(signal)
    if not finite.any():
        raise FrameError("the dark has no finite pixel")
    median, sigma = _robust(signal[finite])
    dark_median, dark_sigma = _robust(dark[finite])
    flags = np.zeros(dark.shape, np.uint8)
    with np.errstate(invalid="ignore"):
        flags[signal > median + hot_sigma * sigma] |= HOT
        flags[dark < dark_median - cold_sigma * dark_sigma] |= COLD
    flags[~finite] |= NO_DATA
    return BadPixelMap(flags=flags, median=median, sigma=sigma, hot_sigma=hot_sigma, cold_sigma=cold_sigma)


def _robust(values: np.ndarray) -> tuple[float, float]:
    """Median and the MAD scaled to a standard deviation."""
    median = float(np.median(values))
    return median, float(np.median(np.abs(values - median))) * MAD_TO_STD


def repair_bad_pixels(image: np.ndarray, bad: np.ndarray, *, step: int = 1) -> tuple[int, int]:
    """Replace each bad pixel of ``image`` (in place) by the median of its good neighbours.

    The neighbours are the 8 around it at distance ``step``: 1 on a monochrome sensor, 2 on a
    Bayer sensor (the nearest pixels of the same colour). A neighbour that is bad itself or not
    finite does not count; a pixel without a good neighbour becomes NaN. Returns how many
    bad pixels got a value, and the change in the image's count of NaN pixels.
    """
    bad = np.asarray(bad) != 0
    if bad.shape != image.shape:
        raise FrameError(
            f"the bad-pixel map is {bad.shape[1]}×{bad.shape[0]}, the image {image.shape[1]}×{image.shape[0]}"
        )
    rows, cols = np.nonzero(bad)
    if rows.size == 0:
        return 0, 0
    height, width = image.shape
    offsets = [(dy * step, dx * step) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    values = np.full((len(offsets), rows.size), np.nan, np.float32)
    for k, (dy, dx) in enumerate(offsets):
        y, x = rows + dy, cols + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        neighbour = image[y[inside], x[inside]].astype(np.float32)
        neighbour[bad[y[inside], x[inside]]] = np.nan
        values[k, inside] = neighbour
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pixel whose neighbours are all bad: NaN
        repaired = np.nanmedian(values, axis=0)
    nan_before = int(np.count_nonzero(~np.isfinite(image[rows, cols])))
    image[rows, cols] = repaired
    fixed = int(np.count_nonzero(np.isfinite(repaired)))
    return fixed, (rows.size - fixed) - nan_before
