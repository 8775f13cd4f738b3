"""Exposure control: damped auto-exposure towards a target brightness, day and night settings by sun altitude.

The brightness is measured as the median of the raw frame inside the image circle (stars and
the Moon barely move a median), as a fraction of full scale. The next exposure moves towards
the one that would hit the target, by a fraction ``damping`` of the way in log space and
never more than ``max_step`` times per frame, so a passing cloud or car light does not make it
oscillate. Between the night and day sun altitudes the limits and the gain ramp linearly,
so twilight is a smooth transition rather than a switch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from obsy.config import AllskyExposureConfig, AllskyExposureProfile


@dataclass(frozen=True)
class ExposureSetting:
    exposure_s: float
    gain: float
    mode: str  # "day", "night" or "twilight"


def measure_brightness(raw: np.ndarray, full_scale: float, mask: np.ndarray | None = None) -> float:
    """Median of the frame inside the mask (every 4th pixel), as a fraction of full scale."""
    sample = raw[::4, ::4]
    if mask is not None:
        sample = sample[mask[::4, ::4]]
    return float(np.median(sample)) / full_scale


def blend(night: AllskyExposureProfile, day: AllskyExposureProfile, sun_altitude: float, cfg: AllskyExposureConfig):
    """Night settings below ``night_altitude``, day above ``day_altitude``, linear in between."""
    span = cfg.day_altitude - cfg.night_altitude
    w = min(1.0, max(0.0, (sun_altitude - cfg.night_altitude) / span))
    mode = "night" if w == 0 else "day" if w == 1 else "twilight"

    def mix(a: float, b: float, log: bool = False) -> float:
        if log:
            return math.exp((1 - w) * math.log(a) + w * math.log(b))
        return (1 - w) * a + w * b

    return (
        mode,
        mix(night.gain, day.gain),
        mix(night.min_exposure_s, day.min_exposure_s, log=True),
        mix(night.max_exposure_s, day.max_exposure_s, log=True),
        mix(night.target_brightness, day.target_brightness),
    )


class AutoExposure:
    """Chooses each frame's exposure and gain from the last frame's brightness and the sun altitude."""

    def __init__(self, config: AllskyExposureConfig) -> None:
        self.config = config
        self.exposure_s = config.night.max_exposure_s / 4

    def next(self, measured: float | None, last_exposure_s: float | None, sun_altitude: float) -> ExposureSetting:
        """The setting for the next frame; ``measured`` is the last frame's brightness (None: none yet)."""
        cfg = self.config
        mode, gain, low, high, target = blend(cfg.night, cfg.day, sun_altitude, cfg)
        exposure = last_exposure_s if last_exposure_s is not None else self.exposure_s
        if measured is not None and cfg.auto:
            ideal = exposure * target / max(measured, 1e-5)
            step = cfg.damping * math.log(ideal / exposure)
            step = max(-math.log(cfg.max_step), min(math.log(cfg.max_step), step))
            exposure = exposure * math.exp(step)
        elif not cfg.auto:
            exposure = cfg.fixed_exposure_s
        self.exposure_s = min(high, max(low, exposure))
        return ExposureSetting(exposure_s=self.exposure_s, gain=gain, mode=mode)
