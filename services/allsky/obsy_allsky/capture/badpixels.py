"""The bad-pixel map: hot pixels found in master darks, replaced in every raw frame before debayering.

A pixel is hot when its value in a master dark lies more than ``k`` robust sigmas
(1.4826 · MAD) above the median of its Bayer colour plane (the four colours of a sensor can
have different offsets). The map of a camera is the union over its masters of one binning
and size. In a raw frame each bad pixel is replaced by the median of its neighbours of the
same Bayer colour (two pixels away in a colour mosaic, one in a mono frame), leaving out
neighbours that are bad themselves, so the debayer never spreads a hot pixel into a
coloured cross. The darks are corrected the same way, so dark subtraction stays consistent.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

#: Robust sigma of normally distributed noise from its median absolute deviation.
MAD_TO_SIGMA = 1.4826
#: Noise floor in ADU: a perfectly flat dark (MAD 0) must not make every pixel above the median hot.
MIN_SIGMA_ADU = 1.0


def colour_step(bayer_pattern: str) -> int:
    """Distance to the nearest pixel of the same colour: 2 in a Bayer mosaic, 1 in a mono frame."""
    return 1 if bayer_pattern.upper() == "MONO" else 2


def hot_pixels(dark: np.ndarray, k: float, step: int) -> np.ndarray:
    """Boolean mask of the pixels more than ``k`` robust sigmas above their colour plane's median."""
    hot = np.zeros(dark.shape, bool)
    for dy in range(step):
        for dx in range(step):
            plane = dark[dy::step, dx::step].astype(np.float32)
            median = float(np.median(plane))
            sigma = max(MAD_TO_SIGMA * float(np.median(np.abs(plane - median))), MIN_SIGMA_ADU)
            hot[dy::step, dx::step] = plane > median + k * sigma
    return hot


class BadPixelMap:
    """The positions of a sensor's bad pixels, and their repair in a frame of the same size."""

    def __init__(self, mask: np.ndarray, step: int) -> None:
        if mask.ndim != 2:
            raise ValueError(f"a bad-pixel map is 2-D, got shape {mask.shape}")
        self.mask = mask.astype(bool, copy=False)
        self.step = step
        self.rows, self.cols = np.nonzero(self.mask)

    @classmethod
    def from_darks(cls, darks: Iterable[np.ndarray], k: float, step: int) -> BadPixelMap:
        """The union of the hot pixels of the given master darks (all of one size)."""
        mask: np.ndarray | None = None
        for dark in darks:
            hot = hot_pixels(dark, k, step)
            if mask is not None and hot.shape != mask.shape:
                raise ValueError(f"master darks of different sizes: {mask.shape} and {hot.shape}")
            mask = hot if mask is None else mask | hot
        if mask is None:
            raise ValueError("no master darks to build a bad-pixel map from")
        return cls(mask, step)

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def __len__(self) -> int:
        return len(self.rows)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """A copy of ``frame`` with every bad pixel replaced by the median of its good same-colour neighbours."""
        if frame.shape != self.shape:
            raise ValueError(f"frame of shape {frame.shape} does not fit the bad-pixel map's {self.shape}")
        out = frame.copy()
        if not len(self):
            return out
        s = self.step
        dy = np.array([-s, -s, -s, 0, 0, s, s, s])
        dx = np.array([-s, 0, s, -s, s, -s, 0, s])
        rows = self.rows[:, None] + dy[None, :]
        cols = self.cols[:, None] + dx[None, :]
        height, width = self.shape
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        rows, cols = np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)
        values = frame[rows, cols].astype(np.float32)
        values[~inside | self.mask[rows, cols]] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a pixel without a good neighbour stays as it is
            repaired = np.nanmedian(values, axis=1)
        good = ~np.isnan(repaired)
        if np.issubdtype(out.dtype, np.integer):
            repaired = np.rint(repaired)
        out[self.rows[good], self.cols[good]] = repaired[good].astype(out.dtype)
        return out
