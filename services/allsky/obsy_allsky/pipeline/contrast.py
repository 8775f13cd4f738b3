"""Contrast stages of the finishing chain: dehaze (dark-channel prior) and clarity (local contrast).

Both work on smooth quantities (the haze's transmission, the large-scale brightness), so they
are computed on a reduced copy (image pyramids) and brought back up: a few full-size
operations per stage instead of large-window filters at full size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from obsy_allsky.backend import Backend
from obsy_allsky.pipeline.denoise import guided_coefficients
from obsy_allsky.pipeline.tone import add_to_channels, luminance, sample

#: Halvings before the dark channel and the transmission are computed (4× smaller each way).
_DEHAZE_LEVELS = 2


def _pyramid_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    shapes = [(height, width)]
    for _ in range(levels):
        shapes.append(((shapes[-1][0] + 1) // 2, (shapes[-1][1] + 1) // 2))
    return shapes


def _reduce(be: Backend, image: Any, levels: int) -> Any:
    for _ in range(levels):
        image = be.pyr_down(image)
    return image


def _expand(be: Backend, image: Any, shapes: list[tuple[int, int]]) -> Any:
    """Back up through the pyramid ``shapes`` (as made by :func:`_pyramid_shapes`), smallest first."""
    for height, width in reversed(shapes[:-1]):
        image = be.pyr_up(image, height, width)
    return image


def veil_colour(be: Backend, small: Any, dark: Any, mask: Any | None) -> Any:
    """The veil's (airlight's) colour: the median colour of the haziest 1 % inside the circle.

    He et al. take the brightest 0.1 % of the dark channel; on an allsky frame those are the
    Moon and lit clouds, so clipped pixels are left out and a wider, robust share is taken.
    """
    xp = be.xp
    values = sample(dark, mask, step=1)
    pixels = sample(small, mask, step=1).reshape(-1, 3) if mask is not None else small.reshape(-1, 3)
    unclipped = pixels.max(axis=1) < np.float32(0.95)
    level = xp.percentile(values[unclipped], 99.0)
    hazy = unclipped & (values >= level)
    return xp.maximum(xp.median(pixels[hazy], axis=0), np.float32(1e-3)).astype(xp.float32)


def dehaze(
    be: Backend,
    image: Any,
    *,
    strength: float = 0.8,
    patch_px: int = 15,
    min_transmission: float = 0.2,
    mask: Any | None = None,
) -> Any:
    """Remove a veil of uniform colour (sky glow, thin haze) with the dark-channel prior; in place.

    Model: ``I = J·t + A·(1 − t)``. The dark channel (minimum over colours and a patch) of
    ``I/A`` estimates ``1 − t``; ``strength`` of it is removed. The transmission is refined with
    a guided filter on a 4× reduced copy and applied at full size through the guide's
    coefficients, so it follows the full-resolution edges (horizon, trees) without halos.
    """
    xp = be.xp
    height, width = image.shape[:2]
    levels = _DEHAZE_LEVELS if min(height, width) >= 64 else 0
    shapes = _pyramid_shapes(height, width, levels)
    small = _reduce(be, image, levels)
    small_mask = None if mask is None else _reduce(be, mask.astype(xp.float32), levels) > np.float32(0.5)
    patch = max(3, (patch_px >> levels) | 1)
    dark = be.minimum_filter(xp.min(small, axis=2), patch)
    veil = veil_colour(be, small, dark, small_mask)
    normalised = small / veil[None, None, :]
    transmission = 1 - np.float32(strength) * be.minimum_filter(xp.min(normalised, axis=2), patch)
    grey = luminance(small, be)
    a, b = guided_coefficients(be, grey, transmission, radius=max(2, patch), eps=1e-3)
    a, b = _expand(be, a, shapes), _expand(be, b, shapes)
    t = a * luminance(image, be)
    t += b
    xp.clip(t, np.float32(min_transmission), np.float32(1), out=t)
    if mask is not None:
        t = xp.where(mask, t, np.float32(1))  # beyond the horizon: leave as it is
    # J = (I − A)/t + A = I·r + A·(1 − r) with r = 1/t, channel by channel.
    r = xp.divide(np.float32(1), t, out=t)
    for channel in range(3):
        plane = image[:, :, channel]
        plane *= r
        plane += (1 - r) * veil[channel]
    return xp.clip(image, 0.0, 1.0, out=image)


def clarity(be: Backend, image: Any, *, amount: float = 0.4, levels: int = 5) -> Any:
    """Boost local contrast on a scale of ``2**levels`` px, mostly in the midtones; in place.

    The detail is luminance minus its large-scale blur (down and up the pyramid), added to all
    three channels with weight ``amount · (1 − (2L − 1)²)``, so black sky and bright
    highlights are not pushed into clipping.
    """
    xp = be.xp
    height, width = image.shape[:2]
    levels = max(0, min(levels, int(np.log2(max(min(height, width), 2))) - 1))
    lum = luminance(image, be)
    blur = _expand(be, _reduce(be, lum, levels), _pyramid_shapes(height, width, levels))
    detail = xp.subtract(lum, blur, out=blur)
    weight = lum * 2 - 1
    weight *= weight
    weight = xp.subtract(np.float32(1), weight, out=weight)
    xp.maximum(weight, 0, out=weight)
    detail *= weight
    detail *= np.float32(amount)
    add_to_channels(image, detail)
    return xp.clip(image, 0.0, 1.0, out=image)
