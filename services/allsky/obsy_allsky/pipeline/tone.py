"""Colour and tone stages of the finishing chain: white balance, stretch, tone curve, median, saturation, mask.

White balance, stretch, saturation and mask work **in place** on the (H, W, 3) float32 image
they are given and return it: at 8–12 MP each full-size temporary costs tens of milliseconds
on the CPU. The chain owns the image it passes; callers who need the input afterwards pass a copy.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from obsy_allsky.backend import Backend
from obsy_allsky.pipeline.stars import star_colour_gains

log = logging.getLogger("obsy.allsky.pipeline")

#: Rec. 709 luminance weights (linear RGB).
LUMA = (0.2126, 0.7152, 0.0722)


def luminance(image: Any, be: Backend | None = None) -> Any:
    """Rec. 709 luminance of an (H, W, 3) image; through the backend's channel mixer when given (faster)."""
    if be is not None:
        return be.mix_channels(image, np.asarray([LUMA], np.float32))
    return LUMA[0] * image[:, :, 0] + LUMA[1] * image[:, :, 1] + LUMA[2] * image[:, :, 2]


def multiply_channels(image: Any, plane: Any) -> Any:
    """Each channel of an (H, W, 3) image times the (H, W) plane; in place.

    Channel by channel: NumPy is several times slower over a broadcast trailing axis of 3.
    """
    for channel in range(image.shape[2]):
        image[:, :, channel] *= plane
    return image


def add_to_channels(image: Any, plane: Any) -> Any:
    """The (H, W) plane added to each channel of an (H, W, 3) image; in place."""
    for channel in range(image.shape[2]):
        image[:, :, channel] += plane
    return image


def circle_mask(be: Backend, height: int, width: int, center: tuple[float, float], radius: float) -> Any:
    """Boolean (H, W) mask of the image circle; centre in fractions of W, H, radius in fractions of min(W, H)."""
    key = f"circle:{height}:{width}:{center}:{radius}"
    cached = be._cache.get(key)
    if cached is None:
        xp = be.xp
        cx, cy = center[0] * width, center[1] * height
        r = radius * min(width, height)
        ys = (xp.arange(height, dtype=xp.float32) + 0.5 - cy)[:, None]
        xs = (xp.arange(width, dtype=xp.float32) + 0.5 - cx)[None, :]
        cached = be._cache[key] = ys * ys + xs * xs <= r * r
    return cached


def sample(values: Any, mask: Any | None, step: int = 4) -> Any:
    """Every ``step``-th pixel in both directions (inside the mask): cheap, unbiased statistics."""
    sub = values[::step, ::step]
    if mask is not None:
        sub = sub[mask[::step, ::step]]
    return sub.ravel()


def white_balance(
    be: Backend,
    image: Any,
    method: str,
    gains=(1.0, 1.0, 1.0),
    mask: Any | None = None,
    *,
    stars: Any | None = None,
    min_stars: int = 20,
) -> Any:
    """Multiply the channels by ``gains`` (manual), by gray-world gains, or by star-colour gains.

    Gray world makes the channels' medians inside the mask match green; medians, not means, so
    that stars, the Moon and lit clouds do not tint the sky. ``stars`` (star positions, x and y
    in pixels) makes the stars white on average (:func:`~obsy_allsky.pipeline.stars.star_colour_gains`),
    which keeps the colour of the sky glow; with fewer than ``min_stars`` measurable stars
    (twilight, clouds) it falls back to gray world and logs why.
    """
    xp = be.xp
    if method == "manual":
        factors = xp.asarray(gains, dtype=xp.float32)
    elif method == "stars":
        found = star_colour_gains(be, image, stars, min_stars=min_stars)
        if found is None:
            count = 0 if stars is None else len(stars)
            log.info("star white balance: too few measurable stars of %d; gray world instead", count)
            return white_balance(be, image, "gray_world", mask=mask)
        factors = xp.asarray(found, dtype=xp.float32)
    elif method == "gray_world":
        medians = [xp.median(sample(image[:, :, c], mask)) for c in range(3)]
        factors = xp.stack([medians[1] / xp.maximum(m, np.float32(1e-6)) for m in medians]).astype(xp.float32)
    else:
        raise ValueError(f"unknown white balance method {method!r}; use manual, gray_world or stars")
    for channel in range(3):  # channel by channel: NumPy is slow over a trailing axis of 3
        image[:, :, channel] *= factors[channel]
    return image


def mtf(midtones: float | Any, x: Any) -> Any:
    """PixInsight's midtones transfer function: 0→0, midtones→0.5, 1→1."""
    return (midtones - 1) * x / ((2 * midtones - 1) * x - midtones)


def stretch(
    be: Backend,
    image: Any,
    method: str,
    *,
    target_background: float = 0.2,
    shadows_sigma: float = 2.8,
    shadows: float = 0.0,
    midtones: float = 0.5,
    mask: Any | None = None,
) -> Any:
    """Non-linear stretch of linear data into [0, 1], the same curve on all three channels.

    ``auto`` (PixInsight's screen transfer function): black point ``shadows_sigma`` MADs below
    the luminance median, midtones chosen so that the median lands on ``target_background``.
    ``mtf``: the given black point and midtones balance.
    """
    xp = be.xp
    if method == "auto":
        # Two numbers from the statistics, as Python floats (a CuPy 0-d array would not mix with NumPy scalars).
        step = 4  # statistics from every 4th pixel: the luminance of 1/16 of the image
        values = sample(luminance(image[::step, ::step], be), None if mask is None else mask[::step, ::step], step=1)
        median = float(xp.median(values))
        mad = float(xp.median(xp.abs(values - median))) * 1.4826
        black = min(max(median - shadows_sigma * mad, 0.0), 0.999)
        x = min(max((median - black) / (1 - black), 1e-6), 1.0)
        b = target_background
        mid = x * (1 - b) / (x + b - 2 * b * x)  # solves mtf(mid, x) == b
    elif method == "mtf":
        black, mid = shadows, midtones
    else:
        raise ValueError(f"unknown stretch method {method!r}; use auto or mtf")
    black, mid = np.float32(black), np.float32(mid)

    def curve(block: Any) -> None:
        xp.subtract(block, black, out=block)
        xp.multiply(block, np.float32(1) / (1 - black), out=block)
        xp.clip(block, 0.0, 1.0, out=block)
        denominator = block * (2 * mid - 1)
        denominator -= mid
        block *= mid - 1
        block /= denominator

    return be.in_row_blocks(curve, image)


def tone_map(be: Backend, image: Any, method: str, strength: float = 2.0, white: float = 1.0) -> Any:
    """A global tone curve on luminance, every pixel's colour ratios kept; in place.

    ``asinh``: asinh(k·L)/asinh(k), the astronomers' stretch (faint light lifted, star colours
    kept); ``reinhard``: Reinhard's extended operator on k·L with ``white`` mapped to 1 (bright
    areas compressed); ``gamma``: L^(1/k). All map 0 to 0 and are monotonic.
    """
    xp = be.xp
    lum = luminance(image, be)
    xp.maximum(lum, np.float32(0), out=lum)
    k = np.float32(strength)
    if method == "asinh":
        curve = xp.arcsinh(lum * k) * np.float32(1 / np.arcsinh(strength))
    elif method == "reinhard":
        x = lum * k
        w2 = np.float32((strength * white) ** 2)
        curve = x * (1 + x / w2) / (1 + x)
    elif method == "gamma":
        curve = xp.power(lum, np.float32(1 / strength))
    else:
        raise ValueError(f"unknown tone mapping {method!r}; use asinh, reinhard or gamma")
    # Each pixel scaled by curve(L)/L: hue and saturation stay, brightness follows the curve.
    ratio = xp.divide(curve, xp.maximum(lum, np.float32(1e-9)), out=curve)
    multiply_channels(image, ratio)
    return xp.clip(image, 0.0, 1.0, out=image)


def median_filter(be: Backend, image: Any, size: int) -> Any:
    return be.median3(image, size)


def saturate(be: Backend, image: Any, factor: float) -> Any:
    """Scale the colour about each pixel's luminance (1 = unchanged, 0 = grey)."""
    # out = lum + factor·(c − lum) for each channel c: one 3×3 matrix on every pixel.
    luma = np.asarray(LUMA, np.float32)
    matrix = np.float32(factor) * np.eye(3, dtype=np.float32) + np.float32(1 - factor) * np.outer(np.ones(3), luma)
    out = be.mix_channels(image, matrix.astype(np.float32), out=image)
    return be.xp.clip(out, 0.0, 1.0, out=out)


def apply_mask(be: Backend, image: Any, mask: Any) -> Any:
    """Black outside the image circle."""
    return be.zero_outside(image, mask)
