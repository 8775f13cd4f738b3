"""Exposure control: damped auto-exposure towards a target brightness, day and night settings by sun altitude.

The brightness is measured as the median of the raw frame inside the image circle (stars and
the Moon barely move a median), as a fraction of full scale. The next exposure moves towards
the one that would hit the target, by a fraction ``damping`` of the way in log space and
never more than ``max_step`` times per frame, so a passing cloud or car light does not make it
oscillate. Between the night and day sun altitudes the limits and the gain ramp linearly,
so twilight is a smooth transition rather than a switch.

Moon mode: while the Moon stands above ``moon.min_altitude`` with at least
``moon.min_illumination`` of its disc lit, the moon profile (lower gain, shorter exposures)
takes the night profile's place, so the Moon does not bloom across the frame. It is left
only ``moon.hysteresis_deg`` below that altitude, so a Moon at the limit does not flap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from obsy import astro
from obsy_allsky.config import AllskyExposureConfig, AllskyExposureProfile, AllskyMoonConfig


@dataclass(frozen=True)
class ExposureSetting:
    exposure_s: float
    gain: float
    mode: str  # "day", "night", "twilight" or "moon"


@dataclass(frozen=True)
class Sky:
    """What decides the exposure profile: where the Sun and the Moon are, and how much of the Moon is lit."""

    sun_altitude: float
    moon_altitude: float | None = None
    moon_illumination: float | None = None

    @classmethod
    def at(cls, site: astro.SiteLike, when: datetime) -> Sky:
        return cls(
            sun_altitude=float(astro.sun_altaz(site, when).alt),
            moon_altitude=float(astro.moon_altaz(site, when).alt),
            moon_illumination=float(astro.moon_illumination(when)),
        )


def moon_is_bright(sky: Sky, cfg: AllskyMoonConfig, active: bool = False) -> bool:
    """Whether moon mode applies; ``active``: it applied to the last frame (then the hysteresis counts)."""
    if not cfg.enabled or sky.moon_altitude is None or sky.moon_illumination is None:
        return False
    threshold = cfg.min_altitude - (cfg.hysteresis_deg if active else 0.0)
    return sky.moon_altitude >= threshold and sky.moon_illumination >= cfg.min_illumination


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
        self.moon_mode = False

    def next(self, measured: float | None, last_exposure_s: float | None, sky: Sky | float) -> ExposureSetting:
        """The setting for the next frame; ``measured`` is the last frame's brightness (None: none yet).

        ``sky`` may be just the sun altitude (no moon mode then).
        """
        cfg = self.config
        if not isinstance(sky, Sky):
            sky = Sky(sun_altitude=float(sky))
        self.moon_mode = moon_is_bright(sky, cfg.moon, self.moon_mode)
        night = cfg.moon.profile if self.moon_mode else cfg.night
        mode, gain, low, high, target = blend(night, cfg.day, sky.sun_altitude, cfg)
        if mode == "night" and self.moon_mode:
            mode = "moon"
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
