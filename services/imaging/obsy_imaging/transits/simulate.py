"""Scripted transit nights with a known truth, for the science tests, the bench and demos.

The transit is **not** made with batman (the fit's model) but by integrating the quadratic
limb-darkened star over the planet's disc directly (a polar grid over the disc), so a test that
fits these nights checks the model as well as the fit. The night: a target rising, culminating
and setting at the site's latitude (its airmass from the hour angle), the differential
extinction of a colour difference between the host and its comparisons (``extinction_mag`` per
airmass: Bouguer's law, exponential in the airmass), white noise of ``noise`` (relative) per point,
and optionally ``red_noise`` correlated over ``red_timescale_min`` that the stated errors omit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


def limb_darkened_occultation(
    separation: np.ndarray, rp_rs: float, u: tuple[float, float], *, radial: int = 48, angular: int = 96
) -> np.ndarray:
    """Relative flux (1 unocculted) when a planet of radius ``rp_rs`` sits ``separation`` stellar radii
    from the star's centre: the star's intensity summed over a polar grid on the planet's disc."""
    nodes, weights = np.polynomial.legendre.leggauss(radial)
    r = 0.5 * rp_rs * (nodes + 1.0)  # Gauss–Legendre in radius over [0, rp]
    w_r = 0.5 * rp_rs * weights * r  # area element r dr
    phi = (np.arange(angular) + 0.5) * 2.0 * math.pi / angular
    dx = (r[:, None] * np.cos(phi)[None, :]).ravel()
    dy = (r[:, None] * np.sin(phi)[None, :]).ravel()
    area = np.repeat(w_r, angular) * (2.0 * math.pi / angular)
    total = math.pi * (1.0 - u[0] / 3.0 - u[1] / 6.0)
    flux = np.ones_like(separation, dtype=float)
    for i, d in enumerate(separation):
        if d >= 1.0 + rp_rs:
            continue
        rr2 = (d + dx) ** 2 + dy**2
        inside = rr2 < 1.0
        mu = np.sqrt(1.0 - rr2[inside])
        intensity = 1.0 - u[0] * (1.0 - mu) - u[1] * (1.0 - mu) ** 2
        flux[i] = 1.0 - float(np.sum(intensity * area[inside])) / total
    return flux


def sky_separation(time: np.ndarray, truth: Truth) -> tuple[np.ndarray, np.ndarray]:
    """Projected planet–star distance (stellar radii) of a circular orbit, and whether the planet is in front."""
    phase = 2.0 * math.pi * (time - truth.tc) / truth.period
    inc = math.radians(truth.inc)
    x = truth.a_rs * np.sin(phase)
    y = truth.a_rs * np.cos(phase) * math.cos(inc)
    return np.hypot(x, y), np.cos(phase) > 0


def transit_flux(time: np.ndarray, truth: Truth) -> np.ndarray:
    separation, in_front = sky_separation(time, truth)
    separation = np.where(in_front, separation, np.inf)
    return limb_darkened_occultation(separation, truth.rp_rs, truth.limb_darkening)


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
    b = truth.a_rs * math.cos(math.radians(truth.inc))
    chord = math.sqrt(max(0.0, (1 + truth.rp_rs) ** 2 - b**2))
    return truth.period / math.pi * math.asin(min(1.0, chord / (truth.a_rs * math.sin(math.radians(truth.inc)))))
