"""Colour neutralisation: the sky brought to a neutral grey, the stars (or the average) to white.

Each filter passes a different share of the sky glow and of the stars' light, and the cameras
differ in sensitivity, so the channels of a fresh combination have unequal backgrounds (a tinted
sky) and unequal scales (tinted stars).

- **Background**: each channel's sky level (the median of the pixels that are sky in every
  channel: stars masked as in :mod:`obsy_imaging.colour.background`) is moved to the channels'
  mean level: ``c' = c - sky_c + mean(sky)``. The sky becomes grey; the stars keep their light.
- **White balance** scales each channel about its sky level, ``c' = sky_c + k_c x (c - sky_c)``,
  with ``k`` relative to the middle channel (G, k = 1):
  ``stars``: the median over the stars of each channel's aperture sum over the middle channel's
  (stars found by sep on the channels' sum), so a typical star becomes white (PixInsight's
  photometric-free ColorCalibration on stars); ``average``: the mean light above the sky of the
  whole image per channel (the "grey world": right for a field of many stars, wrong for a big
  red nebula); ``none``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import sep

from obsy_imaging.colour.background import MAD_TO_SIGMA, star_mask
from obsy_imaging.registration import detect_stars

WhiteBalance = Literal["stars", "average", "none"]
WHITE_BALANCES = ("stars", "average", "none")


def _sky(channels: list[np.ndarray]) -> np.ndarray:
    """True where every channel is sky (no star, no NaN)."""
    mask = np.zeros(channels[0].shape, dtype=bool)
    for channel in channels:
        mask |= star_mask(channel)
    return ~mask


def background_levels(channels: list[np.ndarray]) -> np.ndarray:
    """Each channel's sky level: the median of the pixels that are sky in all channels."""
    sky = _sky(channels)
    if sky.sum() < 100:
        raise ValueError("fewer than 100 sky pixels free of stars in every channel: no background level")
    return np.array([float(np.median(channel[sky])) for channel in channels])


def background_noise(channels: list[np.ndarray]) -> np.ndarray:
    """Each channel's sky noise (1.4826 x MAD of those sky pixels)."""
    sky = _sky(channels)
    out = []
    for channel in channels:
        values = channel[sky]
        out.append(MAD_TO_SIGMA * float(np.median(np.abs(values - np.median(values)))))
    return np.array(out)


def neutralise_background(channels: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The channels with their sky levels made equal (the mean of them); and the levels before."""
    levels = background_levels(channels)
    common = float(np.mean(levels))
    return [
        (c - np.float32(level - common)).astype(np.float32) for c, level in zip(channels, levels, strict=True)
    ], levels


def white_balance(
    channels: list[np.ndarray], method: WhiteBalance = "stars", *, aperture_px: float = 6.0, max_stars: int = 100
) -> tuple[list[np.ndarray], np.ndarray]:
    """The channels scaled about their sky levels so that the stars (or the average) are white; and ``k``."""
    if method not in WHITE_BALANCES:
        raise ValueError(f"unknown white balance {method!r} (one of {', '.join(WHITE_BALANCES)})")
    if method == "none":
        return channels, np.ones(len(channels))
    levels = background_levels(channels)
    middle = len(channels) // 2
    if method == "average":
        signal = np.array([float(np.nanmean(c - np.float32(level))) for c, level in zip(channels, levels, strict=True)])
        if np.any(signal <= 0):
            raise ValueError("a channel has no light above its sky: no average to balance on")
        factors = signal[middle] / signal
    else:
        factors = _star_factors(channels, levels, middle, aperture_px, max_stars)
    balanced = [
        (np.float32(level) + np.float32(k) * (c - np.float32(level))).astype(np.float32)
        for c, level, k in zip(channels, levels, factors, strict=True)
    ]
    return balanced, factors


def _star_factors(channels, levels, middle: int, aperture_px: float, max_stars: int) -> np.ndarray:
    total = np.nan_to_num(sum(c - np.float32(level) for c, level in zip(channels, levels, strict=True)))
    stars = detect_stars(np.ascontiguousarray(total, dtype=np.float32), max_stars=max_stars)
    if len(stars) < 3:
        raise ValueError(f"{len(stars)} star(s) found in the channels' sum, at least 3 are needed to balance on stars")
    sums = []
    for channel, level in zip(channels, levels, strict=True):
        data = np.ascontiguousarray(np.nan_to_num(channel - np.float32(level)), dtype=np.float32)
        flux, _err, _flag = sep.sum_circle(data, stars.x, stars.y, aperture_px)
        sums.append(flux)
    sums = np.array(sums)
    good = np.all(sums > 0, axis=0)
    if good.sum() < 3:
        raise ValueError("fewer than 3 stars with light in every channel: no white balance on stars")
    ratios = sums[:, good] / sums[middle, good]
    return 1.0 / np.median(ratios, axis=1)
