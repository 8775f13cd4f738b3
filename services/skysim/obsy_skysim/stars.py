"""Point sources on the image: pixel-integrated Gaussian stamps, coloured by the star's B-V.

Each star is a Gaussian of its own width integrated over each pixel's area (differences of
the normal CDF, separable in x and y), so the light-weighted centroid of a star's pixels is
its true position: the truth the position tests compare with.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

#: Effective wavelengths (µm) of the red, green and blue channels of a colour sensor.
CHANNEL_WAVELENGTHS_UM = np.array([0.60, 0.53, 0.46])


def temperature_from_bv(bv: np.ndarray) -> np.ndarray:
    """Effective temperature (K) of a star of colour index B-V (Ballesteros 2012)."""
    bv = np.clip(np.asarray(bv, dtype=np.float64), -0.4, 2.0)
    return 4600.0 * (1.0 / (0.92 * bv + 1.7) + 1.0 / (0.92 * bv + 0.62))


def channel_weights(bv: np.ndarray) -> np.ndarray:
    """(N, 3) share of a star's V-band light seen in the red, green and blue channels: a black
    body of the star's temperature, normalised to green = 1 (the V band's neighbour)."""
    t = temperature_from_bv(bv)[:, None]
    wl = CHANNEL_WAVELENGTHS_UM[None, :] * 1e-6
    planck = 1.0 / (wl**5 * np.expm1(0.014388 / (wl * t)))
    return planck / planck[:, 1:2]


def add_point_sources(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    sigma: np.ndarray,
    *,
    channel_map: np.ndarray | None = None,
    colour: np.ndarray | None = None,
) -> None:
    """Add Gaussian stars (``flux`` electrons each, width ``sigma`` pixels) to ``image`` in place.

    With ``channel_map`` (each pixel's colour channel, a Bayer sensor) ``colour`` (N, 3) scales
    each star's light per channel. Stars whose stamp leaves the image are clipped at its edge.
    """
    if len(x) == 0:
        return
    height, width = image.shape
    half = max(1, math.ceil(4.0 * float(np.max(sigma))))
    offsets = np.arange(-half, half + 1)
    xi = np.floor(x + 0.5).astype(np.int64)
    yi = np.floor(y + 0.5).astype(np.int64)
    px = xi[:, None] + offsets[None, :]  # (N, S) pixel columns of each stamp
    py = yi[:, None] + offsets[None, :]
    s = sigma[:, None]
    # Pixel p covers [p - 0.5, p + 0.5] (pixel centres at integers).
    wx = ndtr((px + 0.5 - x[:, None]) / s) - ndtr((px - 0.5 - x[:, None]) / s)
    wy = ndtr((py + 0.5 - y[:, None]) / s) - ndtr((py - 0.5 - y[:, None]) / s)
    stamps = (flux[:, None, None] * wy[:, :, None] * wx[:, None, :]).astype(np.float32)  # (N, S, S)
    rows = np.broadcast_to(py[:, :, None], stamps.shape)
    cols = np.broadcast_to(px[:, None, :], stamps.shape)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    rows, cols = rows[inside], cols[inside]
    if channel_map is not None and colour is not None:
        star = np.broadcast_to(np.arange(len(x))[:, None, None], stamps.shape)[inside]
        values = stamps[inside] * colour[star, channel_map[rows, cols]].astype(np.float32)
    else:
        values = stamps[inside]
    np.add.at(image.reshape(-1), rows * width + cols, values)
