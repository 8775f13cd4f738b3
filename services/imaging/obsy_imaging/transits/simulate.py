"""Scripted transit nights with a known truth, for the science tests, the bench and demos.

The transit is **not** made with batman (the fit's model) but by integrating the quadratic
limb-darkened star over the planet's disc directly (:mod:`obsy.transits.occultation`, which the
sky simulator's transit hosts shine by too), so a test that fits these nights checks the model as
well as the fit. The night: a target rising, culminating
and setting at the site's latitude (its airmass from the hour angle), the differential
extinction of a colour difference between the host and its comparisons (``extinction_mag`` per
airmass: Bouguer's law, exponential in the airmass), white noise of ``noise`` (relative) per point,
and optionally ``red_noise`` correlated over ``red_timescale_min`` that the stated errors omit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from obsy.transits import occultation
from obsy.transits.ephemeris import transit_duration
from obsy_imaging.transits.lightcurve import LightCurve


@dataclass(frozen=True)
class Truth:
    tc: float  # BJD_TDB
    period: float
    rp_rs: float
    a_rs: float
    inc: float
    limb_darkening: tuple[float, float]

    @property
    def depth(self) -> float:
        return self.rp_rs**2


def sky_separation(time: np.ndarray, truth: Truth) -> tuple[np.ndarray, np.ndarray]:
    """Projected planet–star distance (stellar radii), and whether the planet is in front."""
    return occultation.sky_separation(time, tc=truth.tc, period=truth.period, a_rs=truth.a_rs, inc=truth.inc)


def transit_flux(time: np.ndarray, truth: Truth) -> np.ndarray:
    """The host's flux relative to out of transit (:func:`obsy.transits.occultation.transit_flux`)."""
    return occultation.transit_flux(
        time,
        tc=truth.tc,
        period=truth.period,
        rp_rs=truth.rp_rs,
        a_rs=truth.a_rs,
        inc=truth.inc,
        limb_darkening=truth.limb_darkening,
    )


def airmass(hour_angle_h: np.ndarray, latitude_deg: float, dec_deg: float) -> np.ndarray:
    """Plane-parallel airmass (sec z) of a target at hour angle ``hour_angle_h``."""
    lat, dec = math.radians(latitude_deg), math.radians(dec_deg)
    cos_z = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * np.cos(np.radians(15.0 * hour_angle_h))
    return 1.0 / cos_z


def simulate_night(
    truth: Truth,
    seed: int,
    *,
    points: int = 300,
    span_days: float | None = None,
    start_offset_days: float | None = None,
    noise: float = 0.0025,
    red_noise: float = 0.0,
    red_timescale_min: float = 15.0,
    extinction_mag: float = 0.02,
    latitude_deg: float = 48.0,
    dec_deg: float = 30.0,
    meridian_offset_h: float = 0.5,
    exposure_s: float = 0.0,
    filter_code: str = "R",
) -> LightCurve:
    """A night of ``points`` equally spaced exposures around ``truth.tc``.

    By default the night spans the transit plus an hour of baseline on either side; the
    target culminates ``meridian_offset_h`` after mid-transit. ``seed`` fixes the noise (and
    a jitter of the time sampling). ``start_offset_days`` (from Tc) and ``span_days`` script
    partial nights.
    """
    rng = np.random.default_rng(seed)
    duration = _t14(truth)
    span = span_days if span_days is not None else duration + 2.0 / 24.0
    start = truth.tc + (start_offset_days if start_offset_days is not None else -span / 2.0)
    step = span / (points - 1)
    time = start + np.arange(points) * step + rng.uniform(-0.1, 0.1, points) * step
    hour_angle = (time - truth.tc) * 24.0 - meridian_offset_h
    x = airmass(hour_angle, latitude_deg, dec_deg)
    extinction = 10.0 ** (-0.4 * extinction_mag * (x - 1.0))
    clean = transit_flux(time, truth) * extinction
    white = noise * rng.standard_normal(points)
    flux = clean * (1.0 + white + red_noise * correlated_noise(time, red_timescale_min / 1440.0, rng))
    return LightCurve(
        time=time,
        flux=flux,
        flux_err=np.full(points, noise) * clean,
        airmass=x,
        filter=filter_code,
        exposure_s=exposure_s,
    )


def correlated_noise(time: np.ndarray, timescale_days: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise correlated as exp(−Δt/τ) (an Ornstein–Uhlenbeck process): seeing,
    guiding and flat-field errors that the given errors do not describe."""
    out = np.empty(len(time))
    out[0] = rng.standard_normal()
    for i in range(1, len(time)):
        rho = np.exp(-(time[i] - time[i - 1]) / timescale_days)
        out[i] = rho * out[i - 1] + np.sqrt(1 - rho**2) * rng.standard_normal()
    return out


def _t14(truth: Truth) -> float:
    return transit_duration(truth.period, truth.rp_rs, truth.a_rs, truth.inc)
