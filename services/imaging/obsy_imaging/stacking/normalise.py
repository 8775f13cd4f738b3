"""Normalisation: each frame brought to the reference frame's background level and spread
before rejection, so a frame taken through thin haze or a brighter sky is not rejected wholesale.

For each frame, from its pixels (a grid sample of about 250,000): the location (median) and
the scale (1.4826 x the median absolute deviation, the noise for a frame that is mostly sky).
``value' = (value - location) * scale_ref / scale + location_ref`` is Siril's "additive with
scaling"; ``additive`` leaves out the scale, ``multiplicative`` uses ``location_ref / location``.
Statistics come from the frames before resampling: interpolation smooths the noise of shifted
frames but not of the reference, which would bias the scales by a few per cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from obsy_imaging.stacking.sources import Reader

Normalisation = Literal["none", "additive", "multiplicative", "additive_scaling"]
NORMALISATIONS = ("none", "additive", "multiplicative", "additive_scaling")
SAMPLE_PIXELS = 250_000
ROWS_PER_READ = 256


@dataclass(frozen=True)
class FrameStatistics:
    location: float
    scale: float


def frame_statistics(read: Reader, shape: tuple[int, int]) -> FrameStatistics:
    """Median and MAD-based spread from a regular grid sample, read a band of rows at a time."""
    height, width = shape
    step = max(1, int(np.sqrt(height * width / SAMPLE_PIXELS)))
    samples = []
    for r0 in range(0, height, ROWS_PER_READ):
        block = read(r0, min(height, r0 + ROWS_PER_READ), 0, width)
        samples.append(block[(-r0) % step :: step, ::step].ravel())
    values = np.concatenate(samples)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("the frame has no finite pixels to measure its level on")
    location = float(np.median(values))
    scale = 1.4826 * float(np.median(np.abs(values - location)))
    return FrameStatistics(location, scale)


def normalisation_coefficients(
    stats: list[FrameStatistics], reference: int, kind: Normalisation
) -> tuple[np.ndarray, np.ndarray]:
    """(gain, offset) per frame: ``normalised = gain * value + offset``."""
    if kind not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {kind!r} (one of {', '.join(NORMALISATIONS)})")
    ref = stats[reference]
    gains, offsets = np.ones(len(stats)), np.zeros(len(stats))
    for i, s in enumerate(stats):
        if kind == "additive":
            offsets[i] = ref.location - s.location
        elif kind == "multiplicative":
            if s.location <= 0:
                raise ValueError(
                    f"frame {i} has a level of {s.location:g}: multiplicative normalisation needs a positive one"
                )
            gains[i] = ref.location / s.location
        elif kind == "additive_scaling":
            if s.scale <= 0:
                raise ValueError(f"frame {i} has no spread (a constant frame?): it cannot be scaled")
            gains[i] = ref.scale / s.scale
            offsets[i] = ref.location - gains[i] * s.location
    return gains, offsets
