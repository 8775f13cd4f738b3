"""An automatic stretch in the manner of PixInsight's screen transfer function (STF).

A linear stack keeps nearly all its pixels within a few per cent of its range: on a screen it is
black with a few white stars. The STF stretch, from the image's own statistics:

1. the image is brought to 0..1 (its lowest and highest finite values);
2. **shadows**: the black point ``c0 = median + shadows_clip x MADn`` (MADn = 1.4826 x the median
   absolute deviation; ``shadows_clip`` -2.8 by default) cuts the noise floor below the sky;
3. **midtones**: the midtones balance ``m`` is chosen so that the sky (the median, after the
   shadows cut) lands on ``target_background`` (0.25): ``m = MTF(target, median')``, since the
   midtones transfer function ``MTF(m, x) = (m - 1) x / ((2m - 1) x - m)`` is its own inverse in
   that sense (``MTF(MTF(t, x), x) = t``);
4. every pixel: ``MTF(m, (x - c0) / (1 - c0))``, clipped to 0..1. NaN (no data) becomes black.

Shared by the imaging service (stack previews) and the web service (a light's preview, drawn on
demand from its calibrated FITS), so both stretch alike.
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


def stretch_parameters(
    image: np.ndarray, *, shadows_clip: float = -2.8, target_background: float = 0.25
) -> StretchParameters:
    """The STF parameters of an image (from a grid sample of about 500,000 of its finite pixels)."""
    if image.ndim != 2:
        raise ValueError(f"autostretch needs a 2-D image, not shape {image.shape}")
    step = max(1, int(np.sqrt(image.size / SAMPLE_PIXELS)))
    sample = image[::step, ::step].astype(np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return StretchParameters(0.0, 1.0, 0.0, 0.5)
    low, high = float(np.min(image[np.isfinite(image)])), float(np.max(image[np.isfinite(image)]))
    if high <= low:
        return StretchParameters(low, low + 1.0, 0.0, 0.5)
    scaled = (sample - low) / (high - low)
    median = float(np.median(scaled))
    mad = MAD_TO_SIGMA * float(np.median(np.abs(scaled - median)))
    shadows = min(max(0.0, median + shadows_clip * mad), median) if mad > 0 else 0.0
    sky = (median - shadows) / (1.0 - shadows)
    midtones = 0.5 if sky <= 0.0 else float(midtones_transfer(target_background, sky))
    return StretchParameters(low, high, shadows, float(np.clip(midtones, 1e-6, 1.0 - 1e-6)))


def autostretch(image: np.ndarray, *, shadows_clip: float = -2.8, target_background: float = 0.25) -> np.ndarray:
    """The stretched image, float32 0..1 (NaN -> 0)."""
    p = stretch_parameters(image, shadows_clip=shadows_clip, target_background=target_background)
    x = (image.astype(np.float32) - np.float32(p.low)) / np.float32(p.high - p.low)
    x = np.clip((x - np.float32(p.shadows)) / np.float32(1.0 - p.shadows), 0.0, 1.0)
    m = np.float32(p.midtones)
    out = (m - 1.0) * x / ((2.0 * m - 1.0) * x - m)
    return np.nan_to_num(out, nan=0.0).astype(np.float32)
