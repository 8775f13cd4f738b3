"""The night on a time grid: Sun, Moon and every target at once.

:class:`NightSky` holds what does not depend on the targets (the grid, the Sun's and the
Moon's altitude and azimuth, the Moon's age, the local apparent sidereal time); it costs
about a millisecond of ERFA calls (:mod:`obsy_scheduler.ephemeris`) and is cached per
(site, night, step). :meth:`NightSky.targets` then places any number of targets on that
grid in one go: their J2000 (ICRS) coordinates become apparent places of the night
(precession, nutation, annual aberration) in one vectorised ERFA call, and numpy turns
hour angles into altitudes and azimuths for the whole (targets x times) array. Over one
night the apparent place of a star moves by well under an arcsecond, so one conversion
per night is exact enough. Altitudes are geometric (no refraction), like everywhere in
:mod:`obsy.astro`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from obsy import astro
from obsy_scheduler.ephemeris import Epoch, sun_and_moon

SYNODIC_MONTH_DAYS = 29.530588853
#: The loosest darkness anyone plans for: the grid spans the time the Sun is below it.
GRID_SUN_LIMIT = astro.CIVIL


@dataclass(frozen=True)
class TargetTracks:
    """Altitude, azimuth and hour angle (degrees; hour angle -180..180) of N targets at T times."""

    alt: np.ndarray  # (N, T)
    az: np.ndarray  # (N, T)
    hour_angle: np.ndarray  # (N, T)
    dec: np.ndarray  # (N,) apparent declination of the night


@dataclass(frozen=True)
class NightSky:
    """Sun and Moon over one night, on a regular grid of ``step_s`` seconds.

    The grid covers the part of the night (local noon to local noon) in which the Sun is
    below civil twilight (-6°), padded by one step on each side; it is empty in polar
    summer when the Sun never gets that low.
    """

    night: date
    latitude: float
    longitude: float
    step_s: float
    unix: np.ndarray  # (T,) seconds
    sun_alt: np.ndarray
    moon_alt: np.ndarray
    moon_az: np.ndarray
    moon_age_days: np.ndarray  # days from new Moon, folded: 0 (new) .. 14.77 (full) for waxing and waning
    moon_illumination: float  # at the middle of the night (local noon to noon)
    lst_deg: np.ndarray  # local apparent sidereal time
    epoch: Epoch = field(compare=False, repr=False)  # the night's precession-nutation and aberration

    @property
    def size(self) -> int:
        return int(self.unix.size)

    @staticmethod
    def datetime_at(unix_seconds: float) -> datetime:
        return datetime.fromtimestamp(round(float(unix_seconds), 3), UTC)

    def targets(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> TargetTracks:
        """Altitude, azimuth and hour angle of targets given by J2000 RA/Dec (degrees)."""
        ra_deg = np.atleast_1d(np.asarray(ra_deg, dtype=float))
        dec_deg = np.atleast_1d(np.asarray(dec_deg, dtype=float))
        if ra_deg.size == 0 or self.size == 0:
            empty = np.zeros((ra_deg.size, self.size))
            return TargetTracks(empty, empty, empty, dec_deg)
        ra_app, dec_app = self.epoch.apparent_places(ra_deg, dec_deg)
        hour_angle = (self.lst_deg[None, :] - ra_app[:, None] + 180.0) % 360.0 - 180.0
        alt, az = equatorial_to_horizontal(hour_angle, dec_app[:, None], self.latitude)
        return TargetTracks(alt, az, hour_angle, dec_app)


def equatorial_to_horizontal(
    hour_angle_deg: np.ndarray, dec_deg: np.ndarray, latitude_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Altitude and azimuth (north through east) from hour angle and declination, degrees."""
    h = np.radians(hour_angle_deg)
    d = np.radians(dec_deg)
    phi = np.radians(latitude_deg)
    sin_alt = np.sin(phi) * np.sin(d) + np.cos(phi) * np.cos(d) * np.cos(h)
    alt = np.degrees(np.arcsin(np.clip(sin_alt, -1.0, 1.0)))
    az = np.degrees(np.arctan2(-np.cos(d) * np.sin(h), np.sin(d) * np.cos(phi) - np.cos(d) * np.cos(h) * np.sin(phi)))
    return alt, az % 360.0


def angular_distance(alt1: np.ndarray, az1: np.ndarray, alt2: np.ndarray, az2: np.ndarray) -> np.ndarray:
    """Great-circle distance (degrees) between two alt/az positions (broadcasting)."""
    a1, a2 = np.radians(alt1), np.radians(alt2)
    daz = np.radians(az1 - az2)
    cos_d = np.sin(a1) * np.sin(a2) + np.cos(a1) * np.cos(a2) * np.cos(daz)
    return np.degrees(np.arccos(np.clip(cos_d, -1.0, 1.0)))


def night_sky(site: astro.SiteLike, night: date, step_s: float = 120.0) -> NightSky:
    """The (cached) :class:`NightSky` of the night that begins on the local evening ``night``."""
    key = _Site(
        float(site.latitude),
        float(site.longitude),
        float(getattr(site, "elevation", 0.0) or 0.0),
        getattr(site, "timezone", None) or "UTC",
    )
    return _night_sky(key, night, float(step_s))


@dataclass(frozen=True)
class _Site:
    latitude: float
    longitude: float
    elevation: float
    timezone: str


@lru_cache(maxsize=8)
def _night_sky(site: _Site, night: date, step_s: float) -> NightSky:
    zone = ZoneInfo(site.timezone)
    start = datetime.combine(night, time(12), tzinfo=zone).timestamp()
    end = datetime.combine(night + timedelta(days=1), time(12), tzinfo=zone).timestamp()
    full = start + np.arange(int((end - start) // step_s) + 1) * step_s
    epoch = Epoch.at((start + end) / 2)
    bodies = sun_and_moon(full, site.latitude, site.longitude, site.elevation, epoch)
    sun_alt, _ = equatorial_to_horizontal(bodies.sun_hour_angle, bodies.sun_dec, site.latitude)
    # Illumination from the geocentric Sun-Moon angle at local midnight.
    illumination = float((1.0 - np.cos(np.radians(bodies.elongation[full.size // 2]))) / 2)
    # The grid: the Sun below GRID_SUN_LIMIT, one step more on each side (none in polar summer).
    below = np.flatnonzero(sun_alt < GRID_SUN_LIMIT)
    first, last = (max(below[0] - 1, 0), min(below[-1] + 1, full.size - 1)) if below.size else (0, -1)
    night_part = slice(first, last + 1)
    unix = full[night_part]
    moon_alt, moon_az = equatorial_to_horizontal(
        bodies.moon_hour_angle[night_part], bodies.moon_dec[night_part], site.latitude
    )
    # The Moon's age from its elongation, folded onto 0..half a month: the Lorentzian
    # avoidance is symmetric about full Moon, so waxing or waning does not matter.
    moon_age = bodies.elongation[night_part] / 360.0 * SYNODIC_MONTH_DAYS
    sun_alt = sun_alt[night_part]
    lst = epoch.local_sidereal_time(unix, site.longitude)
    for array in (unix, sun_alt, moon_alt, moon_az, moon_age, lst):
        array.setflags(write=False)
    return NightSky(
        night=night,
        latitude=site.latitude,
        longitude=site.longitude,
        step_s=step_s,
        unix=unix,
        sun_alt=sun_alt,
        moon_alt=moon_alt,
        moon_az=moon_az,
        moon_age_days=moon_age,
        moon_illumination=illumination,
        lst_deg=lst,
        epoch=epoch,
    )
