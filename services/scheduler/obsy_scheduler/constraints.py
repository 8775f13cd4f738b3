"""Observing constraints as boolean masks over (targets x night grid), with the reason each one fails.

A target's constraints are the observatory defaults (``scheduler.constraints`` in the
config) overridden key by key by the target's own ``constraints`` dict, both of the shape
:class:`obsy.messages.TargetConstraints`. Every constraint is evaluated for every target
and grid time at once; :func:`evaluate` applies them in a fixed order and remembers, per
target, the first one that left it no time at all, which becomes the reason shown to
people ("never above 30° while astronomically dark", ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from obsy import astro
from obsy.messages import TargetConstraints, validation_problems
from obsy_scheduler.sky import NightSky, TargetTracks, angular_distance

TWILIGHT_SUN_ALTITUDE = {
    "astronomical": astro.ASTRONOMICAL,
    "nautical": astro.NAUTICAL,
    "civil": astro.CIVIL,
}
#: Days in the Lorentzian formula, as ACP and N.I.N.A. Target Scheduler write it.
LORENTZIAN_MONTH_DAYS = 29.5
DEFAULT_AVOIDANCE_WIDTH_DAYS = 14.0


def lorentzian_separation(moon_age_days: np.ndarray | float, distance_deg: float, width_days: float) -> np.ndarray:
    """The Moon separation a target needs, by the Lorentzian moon avoidance of ACP and N.I.N.A.

    ``distance / (1 + ((0.5 - age / 29.5) / (width / 29.5))**2)``: the full ``distance`` at
    full Moon (age 14.75 days), half of it ``width`` days before and after, and little
    around new Moon.
    """
    age = np.asarray(moon_age_days, dtype=float)
    return distance_deg / (1.0 + ((0.5 - age / LORENTZIAN_MONTH_DAYS) / (width_days / LORENTZIAN_MONTH_DAYS)) ** 2)


def resolve(defaults: TargetConstraints, overrides: dict) -> TargetConstraints:
    """The defaults with a target's own keys on top; raises ``ValueError`` naming a bad key."""
    try:
        own = TargetConstraints.model_validate(overrides)
    except ValidationError as exc:
        raise ValueError(f"invalid constraints: {validation_problems(exc)}") from None
    merged = defaults.model_dump()
    merged.update(own.model_dump(exclude_unset=True))
    return TargetConstraints.model_validate(merged)


def horizon_altitude(points: Sequence[tuple[float, float]], azimuth: np.ndarray) -> np.ndarray:
    """Altitude of a custom horizon at the given azimuths: linear between points, around the sky."""
    pts = sorted((az % 360.0, alt) for az, alt in points)
    az = np.array([p[0] for p in pts])
    alt = np.array([p[1] for p in pts])
    return np.interp(np.asarray(azimuth) % 360.0, az, alt, period=360.0)


@dataclass
class Evaluation:
    """The result of :func:`evaluate` for N targets on a night of T grid times."""

    ok: np.ndarray  # (N, T) every constraint holds
    dark: np.ndarray  # (N, T) the Sun is below the target's twilight level
    required_moon_separation: np.ndarray  # (N, T) degrees (0 where not constrained)
    moon_separation: np.ndarray  # (N, T) degrees
    floor: np.ndarray  # (N, T) the lowest allowed altitude (min altitude, horizon, airmass)
    reasons: list[str | None]  # per target: why it has no time at all, or None


def _airmass_altitude(max_airmass: float) -> float:
    """Lowest altitude for an airmass limit, airmass = sec(zenith distance) as astroplan computes it."""
    return float(np.degrees(np.arcsin(1.0 / max_airmass)))


def evaluate(sky: NightSky, tracks: TargetTracks, constraints: Sequence[TargetConstraints]) -> Evaluation:
    """Every constraint for every target and time; the masks are (targets x grid times)."""
    n, t = tracks.alt.shape
    reasons: list[str | None] = [None] * n
    if t == 0:
        empty = np.zeros((n, 0), dtype=bool)
        zeros = np.zeros((n, 0))
        return Evaluation(empty, empty, zeros, zeros, zeros, ["the Sun never goes below -6° this night"] * n)

    def column(name: str, default: float) -> np.ndarray:
        return np.array([default if getattr(c, name) is None else float(getattr(c, name)) for c in constraints])

    # Darkness per twilight level.
    twilight = np.array([TWILIGHT_SUN_ALTITUDE[c.twilight or "astronomical"] for c in constraints], dtype=float)
    dark = sky.sun_alt[None, :] < twilight[:, None]

    # Altitude floor: the minimum altitude, the custom horizon and the airmass limit.
    floor = np.repeat(column("min_altitude", 0.0)[:, None], t, axis=1)
    for i, c in enumerate(constraints):
        if c.horizon:
            floor[i] = np.maximum(floor[i], horizon_altitude(c.horizon, tracks.az[i]))
    airmass_floor = np.array([_airmass_altitude(c.max_airmass) if c.max_airmass else -90.0 for c in constraints])
    above = tracks.alt >= floor
    within_airmass = tracks.alt >= airmass_floor[:, None]
    floor = np.maximum(floor, airmass_floor[:, None])

    # The Moon: separation (fixed and/or Lorentzian), its altitude, moon-down.
    separation = angular_distance(tracks.alt, tracks.az, sky.moon_alt[None, :], sky.moon_az[None, :])
    required = np.repeat(column("moon_separation", 0.0)[:, None], t, axis=1)
    for i, c in enumerate(constraints):
        if c.moon_avoidance_distance:
            width = c.moon_avoidance_width or DEFAULT_AVOIDANCE_WIDTH_DAYS
            lorentz = lorentzian_separation(sky.moon_age_days, c.moon_avoidance_distance, width)
            required[i] = np.maximum(required[i], lorentz)
    moon_up = sky.moon_alt >= 0.0
    when_down = np.array([bool(c.moon_avoidance_when_down) for c in constraints], dtype=bool)
    applies = moon_up[None, :] | when_down[:, None]
    moon_clear = ~applies | (separation >= required)
    max_moon_alt = column("max_moon_altitude", 90.0)
    moon_low = sky.moon_alt[None, :] <= max_moon_alt[:, None]
    moon_down = np.array([bool(c.moon_down) for c in constraints], dtype=bool)
    moon_low &= ~moon_down[:, None] | ~moon_up[None, :]

    # Meridian window: hour angle within +-window.
    window_deg = column("meridian_window_min", np.inf) / 60.0 * 15.0
    meridian = np.abs(tracks.hour_angle) <= window_deg[:, None]

    ok = np.ones((n, t), dtype=bool)
    steps = (
        (dark, lambda i, _: f"the Sun never goes below {twilight[i]:g}° ({constraints[i].twilight or 'astronomical'})"),
        (above, lambda i, before: _altitude_reason(tracks, sky.latitude, before, constraints[i], i)),
        (within_airmass, lambda i, _: f"never below airmass {constraints[i].max_airmass:g} while dark and high enough"),
        (moon_clear, lambda i, before: _moon_reason(separation[i], required[i], before[i])),
        (moon_low, lambda i, _: _moon_altitude_reason(constraints[i])),
        (meridian, lambda i, _: f"never within {constraints[i].meridian_window_min:g} min of the meridian when usable"),
    )
    for mask, reason in steps:
        before = ok.copy()
        ok &= mask
        for i in np.flatnonzero(before.any(axis=1) & ~ok.any(axis=1)):
            reasons[i] = reason(int(i), before)
    return Evaluation(ok, dark, np.where(applies, required, 0.0), separation, floor, reasons)


def _altitude_reason(tracks: TargetTracks, latitude: float, dark: np.ndarray, c: TargetConstraints, i: int) -> str:
    culmination = 90.0 - abs(latitude - float(tracks.dec[i]))
    if culmination < 0:
        return f"never rises at this latitude (culminates at {culmination:.1f}°)"
    highest = float(tracks.alt[i][dark[i]].max())
    what = "minimum altitude or custom horizon" if c.horizon else "minimum altitude"
    return f"never above the {what} ({c.min_altitude or 0:g}°) while dark: highest {highest:.1f}°"


def _moon_reason(separation: np.ndarray, required: np.ndarray, usable: np.ndarray) -> str:
    closest = float(separation[usable].min())
    needed = float(required[usable].max())
    return f"too close to the Moon: {closest:.0f}° away, {needed:.0f}° required"


def _moon_altitude_reason(c: TargetConstraints) -> str:
    if c.moon_down:
        return "the Moon is up whenever the target is usable (moon-down required)"
    return f"the Moon is above {c.max_moon_altitude:g}° whenever the target is usable"
