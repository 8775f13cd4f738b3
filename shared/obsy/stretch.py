"""An automatic stretch in the manner of PixInsight's screen transfer function (STF).

A linear stack keeps nearly all its pixels within a few per cent of its range: on a screen it is
black with a few white stars. The STF stretch, from the image's own statistics, as PixInsight's
AutoSTF script (and Siril's autostretch) computes it:

1. the image is brought to 0..1 (its lowest and highest finite values: a float stack has no fixed
   range such as a 16-bit frame's 0..65535);
2. **shadows**: the black point ``c0 = median + shadows_clip x MADN`` (MADN = 1.4826 x the median
   absolute deviation; ``shadows_clip`` -2.8 by default), clamped to 0..1, cuts the noise floor;
3. **midtones**: ``m = MTF(target_background, median - c0)`` (``target_background`` 0.25), with the
   midtones transfer function ``MTF(m, x) = (m - 1) x / ((2m - 1) x - m)``, which puts the sky on
   the target (``MTF(MTF(t, x), x) = t``);
4. every pixel: ``MTF(m, (x - c0) / (1 - c0))``, clipped to 0..1. NaN (no data) becomes black.

Colour (h x w x 3): **linked** (the default, for a neutralised image: one c0 and m from the
channels' mean median and mean c0, as AutoSTF's "linked" mode, so colours keep their balance) or
per channel (each its own, which also neutralises the sky but shifts star colours).

Shared by the imaging service (stack previews and samples) and the web service (a light's preview,
drawn on demand from its calibrated FITS), so both stretch alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAD_TO_SIGMA = 1.4826
SAMPLE_PIXELS = 500_000


@dataclass(frozen=True)
class StretchParameters:
    low: float  # the image value that becomes 0 before the shadows cut (its lowest)
    high: float  # the image value that becomes 1 (its highest)
    shadows: float  # c0, on the 0..1 scale
    midtones: float  # m


def midtones_transfer(m: float, x: np.ndarray | float) -> np.ndarray | float:
    """PixInsight's midtones transfer function: 0 -> 0, m -> 0.5, 1 -> 1."""
    return (m - 1.0) * x / ((2.0 * m - 1.0) * x - m)


def _range(image: np.ndarray) -> tuple[float, float] | None:
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return None
    return float(finite.min()), float(finite.max())


def _median_madn(image: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """Median and MADN of the image on its 0..1 scale, from a grid sample of about 500,000 pixels."""
    step = max(1, int(np.sqrt(image.size / SAMPLE_PIXELS)))
    sample = image[::step, ::step].astype(np.float64).ravel()
    sample = (sample[np.isfinite(sample)] - low) / (high - low)
    median = float(np.median(sample))
    return median, MAD_TO_SIGMA * float(np.median(np.abs(sample - median)))


def _shadows_midtones(medians, madns, shadows_clip: float, target_background: float) -> tuple[float, float]:
    """AutoSTF's c0 and m from the (mean of the) channels' medians and MADNs."""
    c0 = float(np.mean([m + shadows_clip * d if d > 0 else 0.0 for m, d in zip(medians, madns, strict=True)]))
    median = float(np.mean(medians))
    c0 = min(max(0.0, c0), median)
    sky = median - c0
    midtones = 0.5 if sky <= 0.0 else float(midtones_transfer(target_background, sky))
    return c0, float(np.clip(midtones, 1e-6, 1.0 - 1e-6))


def stretch_parameters(
    image: np.ndarray, *, shadows_clip: float = -2.8, target_background: float = 0.25
) -> StretchParameters:
    """The STF parameters of a mono image."""
    if image.ndim != 2:
        raise ValueError(f"autostretch needs a 2-D image, not shape {image.shape}")
    bounds = _range(image)
    if bounds is None:
        return StretchParameters(0.0, 1.0, 0.0, 0.5)
    low, high = bounds
    if high <= low:
        return StretchParameters(low, low + 1.0, 0.0, 0.5)
    median, madn = _median_madn(image, low, high)
    shadows, midtones = _shadows_midtones([median], [madn], shadows_clip, target_background)
    return StretchParameters(low, high, shadows, midtones)


def apply_stretch(image: np.ndarray, p: StretchParameters) -> np.ndarray:
    """The image through the parameters: float32 0..1, NaN -> 0."""
    x = (image.astype(np.float32) - np.float32(p.low)) / np.float32(p.high - p.low)
    x = np.clip((x - np.float32(p.shadows)) / np.float32(1.0 - p.shadows), 0.0, 1.0)
    m = np.float32(p.midtones)
    out = (m - 1.0) * x / ((2.0 * m - 1.0) * x - m)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32)  # float32 rounding: 1.0000001


def autostretch(image: np.ndarray, *, shadows_clip: float = -2.8, target_background: float = 0.25) -> np.ndarray:
    """The stretched image, float32 0..1 (NaN -> 0)."""
    p = stretch_parameters(image, shadows_clip=shadows_clip, target_background=target_background)
    return apply_stretch(image, p)


def colour_stretch_parameters(
    rgb: np.ndarray,
    *,
    bounds: tuple[float, float] | None = None,
    shadows_clip: float = -2.8,
    target_background: float = 0.25,
) -> StretchParameters | None:
    """The linked STF parameters of a colour image (h x w x 3); None when it has no range. ``bounds``:
    the whole image's lowest and highest value when ``rgb`` is a grid sample of it (an image too
    large to stretch at once is stretched a band at a time with these)."""
    bounds = bounds or _range(rgb)
    if bounds is None or bounds[1] <= bounds[0]:
        return None
    low, high = bounds
    stats = [_median_madn(rgb[..., i], low, high) for i in range(3)]
    shadows, midtones = _shadows_midtones([s[0] for s in stats], [s[1] for s in stats], shadows_clip, target_background)
    return StretchParameters(low, high, shadows, midtones)


def autostretch_colour(
    rgb: np.ndarray, *, linked: bool = True, shadows_clip: float = -2.8, target_background: float = 0.25
) -> np.ndarray:
    """A colour image (h x w x 3, linear) stretched, float32 0..1: linked (one stretch for all three
    channels, on their common 0..1 range) or each channel on its own."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"a colour stretch needs an h x w x 3 image, not shape {rgb.shape}")
    channels = [rgb[..., i] for i in range(3)]
    if not linked:
        return np.stack(
            [autostretch(c, shadows_clip=shadows_clip, target_background=target_background) for c in channels], axis=2
        )
    parameters = colour_stretch_parameters(rgb, shadows_clip=shadows_clip, target_background=target_background)
    if parameters is None:
        return np.zeros(rgb.shape, dtype=np.float32)
    return apply_stretch(rgb, parameters)
