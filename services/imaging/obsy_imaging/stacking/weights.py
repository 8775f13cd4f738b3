"""Frame weights for the mean, from the grades.

- ``equal``: every frame counts the same;
- ``noise``: inverse variance of the frame's background noise after normalisation, which
  favours dark skies and long exposures (the background enters through its noise);
- ``grades``: ``(SNR / FWHM)^2`` from the grading: the median star's SNR already falls with a
  brighter background, and a bloated star spreads that signal over more sky, so frames with
  sharp, strong stars lead. Frames without a usable grade fall back to their noise weight,
  scaled to the graded frames' mean.

Weights are scaled to a mean of 1 (only their ratios matter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from obsy_imaging.grading.measure import FrameQuality

Weighting = Literal["equal", "noise", "grades"]
WEIGHTINGS = ("equal", "noise", "grades")


def frame_weights(
    weighting: Weighting,
    noise: Sequence[float],
    gains: Sequence[float],
    grades: Sequence[FrameQuality | None] | None = None,
) -> np.ndarray:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r} (one of {', '.join(WEIGHTINGS)})")
    count = len(noise)
    if weighting == "equal":
        return np.ones(count)
    normalised_noise = np.asarray(noise, float) * np.asarray(gains, float)
    if np.any(normalised_noise <= 0):
        raise ValueError("a frame has no background noise: noise weights need a positive one")
    by_noise = 1.0 / normalised_noise**2
    by_noise /= by_noise.mean()
    if weighting == "noise":
        return by_noise
    if grades is None or len(grades) != count:
        raise ValueError(
            f"grade weighting needs one grade per frame ({count}), got {0 if grades is None else len(grades)}"
        )
    graded = np.array([g is not None and bool(g.snr) and bool(g.fwhm_px) for g in grades])
    weights = by_noise.copy()
    if graded.any():
        quality = np.array([(g.snr / g.fwhm_px) ** 2 if ok else 0.0 for g, ok in zip(grades, graded, strict=True)])
        quality[graded] /= quality[graded].mean()
        weights[graded] = quality[graded]
        weights[~graded] = by_noise[~graded] / by_noise[graded].mean()
    return weights / weights.mean()
