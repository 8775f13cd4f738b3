"""Point sources on the image: pixel-integrated Gaussian stamps, coloured by the star's B-V.

Each star is a Gaussian of its own width integrated over each pixel's area (differences of
the normal CDF, separable in x and y), so the light-weighted centroid of a star's pixels is
its true position: the truth the position tests compare with.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
    """Add Gaussian stars (``flux`` electrons each, width ``sigma`` pixels) to ``image`` (float32) in place.

    With ``channel_map`` (each pixel's colour channel, a Bayer sensor) ``colour`` (N, 3) scales
    each star's light per channel. Stars whose stamp leaves the image are clipped at its edge;
    stars at no finite place add nothing. One star after another (numba), each a square stamp of
    the widest star's reach, 4 sigma.
    """
    if len(x) == 0:
        return
    if image.dtype != np.float32 or image.ndim != 2:
        raise ValueError(f"the image must be a float32 2-d array, not {image.dtype} {image.shape}")
    half = max(1, math.ceil(4.0 * float(np.max(sigma))))
    coloured = channel_map is not None and colour is not None
    _add_stamps(
        image,
        np.ascontiguousarray(x, dtype=np.float64),
        np.ascontiguousarray(y, dtype=np.float64),
        np.ascontiguousarray(flux, dtype=np.float64),
        np.ascontiguousarray(sigma, dtype=np.float64),
        half,
        np.ascontiguousarray(channel_map, dtype=np.int64) if coloured else _NO_CHANNELS,
        np.ascontiguousarray(colour, dtype=np.float64) if coloured else _NO_COLOUR,
    )


_NO_CHANNELS = np.zeros((0, 0), dtype=np.int64)
_NO_COLOUR = np.zeros((0, 3))


@njit(nogil=True, cache=True)
def _ndtr(z):
    """The standard normal CDF (scipy's ndtr)."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


@njit(nogil=True, cache=True)
def _add_stamps(image, x, y, flux, sigma, half, channel_map, colour):  # noqa: PLR0917 - a numba kernel takes its arrays positionally
    height, width = image.shape
    size = 2 * half + 1
    wx = np.empty(size)
    wy = np.empty(size)
    coloured = colour.shape[0] > 0
    for n in range(x.size):
        if not (math.isfinite(x[n]) and math.isfinite(y[n])):
            continue
        xi = math.floor(x[n] + 0.5) - half
        yi = math.floor(y[n] + 0.5) - half
        if xi >= width or yi >= height or xi + size <= 0 or yi + size <= 0:
            continue
        # Pixel p covers [p - 0.5, p + 0.5] (pixel centres at integers): the Gaussian integrated over it,
        # the CDF at each edge computed once for the pixels on both sides of it.
        s = sigma[n]
        left, top = _ndtr((xi - 0.5 - x[n]) / s), _ndtr((yi - 0.5 - y[n]) / s)
        for k in range(size):
            right, bottom = _ndtr((xi + k + 0.5 - x[n]) / s), _ndtr((yi + k + 0.5 - y[n]) / s)
            wx[k], wy[k] = right - left, bottom - top
            left, top = right, bottom
        for a in range(max(0, -yi), min(size, height - yi)):
            row = yi + a
            line = flux[n] * wy[a]
            for b in range(max(0, -xi), min(size, width - xi)):
                col = xi + b
                value = np.float32(line * wx[b])
                if coloured:
                    value *= np.float32(colour[n, channel_map[row, col]])
                image[row, col] += value


def warm_up() -> None:
    """Compile the stamp kernel now (or load it from numba's cache)."""
    add_point_sources(np.zeros((8, 8), dtype=np.float32), np.array([3.0]), np.array([4.0]), np.ones(1), np.ones(1))
    channels = np.zeros((8, 8), dtype=np.int64)
    add_point_sources(
        np.zeros((8, 8), dtype=np.float32),
        np.array([3.0]),
        np.array([4.0]),
        np.ones(1),
        np.ones(1),
        channel_map=channels,
        colour=np.ones((1, 3)),
    )
