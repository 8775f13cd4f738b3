"""A planet crossing a limb-darkened star, integrated directly over the planet's disc.

This is the physical light curve of a transit without batman (the fit's model): the sky
simulator's scripted transit hosts shine by it, and the imaging service's simulated nights are
made with it, so a fit of either checks the model as well as the fit. Circular orbit, quadratic
limb darkening ``I(μ) = 1 − u1 (1 − μ) − u2 (1 − μ)²``.
"""

from __future__ import annotations

import math

import numpy as np


def limb_darkened_occultation(
    separation: np.ndarray, rp_rs: float, u: tuple[float, float], *, radial: int = 48, angular: int = 96
) -> np.ndarray:
    """Relative flux (1 unocculted) when a planet of radius ``rp_rs`` sits ``separation`` stellar radii
    from the star's centre: the star's intensity summed over a polar grid on the planet's disc."""
    separation = np.atleast_1d(np.asarray(separation, dtype=float))
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


def sky_separation(
    time: np.ndarray, *, tc: float, period: float, a_rs: float, inc: float
) -> tuple[np.ndarray, np.ndarray]:
    """Projected planet–star distance (stellar radii) of a circular orbit, and whether the planet is
    in front of the star. ``time``, ``tc`` and ``period`` in the same unit (days)."""
    phase = 2.0 * math.pi * (np.asarray(time, dtype=float) - tc) / period
    cos_i = math.cos(math.radians(inc))
    x = a_rs * np.sin(phase)
    y = a_rs * np.cos(phase) * cos_i
    return np.hypot(x, y), np.cos(phase) > 0


def transit_flux(
    time: np.ndarray,
    *,
    tc: float,
    period: float,
    rp_rs: float,
    a_rs: float,
    inc: float,
    limb_darkening: tuple[float, float],
) -> np.ndarray:
    """The star's flux relative to out of transit at each ``time`` (days, as ``tc`` and ``period``)."""
    separation, in_front = sky_separation(time, tc=tc, period=period, a_rs=a_rs, inc=inc)
    separation = np.where(in_front, separation, np.inf)
    return limb_darkened_occultation(separation, rp_rs, limb_darkening)
