"""The night on a time grid: Sun, Moon and every target at once.

:class:`NightSky` holds what does not depend on the targets (the grid, the Sun's and the
Moon's altitude and azimuth, the Moon's age, the local apparent sidereal time); it costs
a few astropy calls and is cached per (site, night, step). :meth:`NightSky.targets` then
places any number of targets on that grid in one go: astropy converts their J2000
(ICRS) coordinates to the true equator and equinox of the night (precession, nutation,
annual aberration) once, and numpy turns hour angles into altitudes and azimuths for
the whole (targets x times) array. Over one night the apparent place of a star moves by
well under an arcsecond, so one conversion per night is exact enough; polar motion and
diurnal aberration (< 0.5") are left out. Altitudes are geometric (no refraction), like
everywhere in :mod:`obsy.astro`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import astropy.units as u
import erfa
import numpy as np
from astropy.coordinates import TETE, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from scipy.interpolate import CubicSpline

from obsy import astro

SYNODIC_MONTH_DAYS = 29.530588853
#: The loosest darkness anyone plans for: the grid spans the time the Sun is below it.
GRID_SUN_LIMIT = astro.CIVIL
_COARSE_STEP_S = 600.0


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
    moon_illumination: float  # at the middle of the grid
    lst_deg: np.ndarray  # local apparent sidereal time

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
        ra_app, dec_app = _apparent_places(ra_deg, dec_deg, float(np.median(self.unix)))
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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence astropy's degraded-accuracy warnings past the bundled IERS tables (see obsy.astro)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=iers.IERSDegradedAccuracyWarning)
        warnings.filterwarnings("ignore", category=iers.IERSStaleWarning)
        warnings.filterwarnings("ignore", category=erfa.ErfaWarning)
        yield


def _apparent_places(ra_deg: np.ndarray, dec_deg: np.ndarray, unix: float) -> tuple[np.ndarray, np.ndarray]:
    with _quiet():
        when = Time(unix, format="unix", scale="utc")
        apparent = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame="icrs").transform_to(TETE(obstime=when))
        return apparent.ra.to_value(u.deg), apparent.dec.to_value(u.deg)


def night_sky(site: astro.SiteLike, night: date, step_s: float = 120.0) -> NightSky:
    """The (cached) :class:`NightSky` of the night that begins on the local evening ``night``."""
    key = _Site(
        float(site.latitude),
        float(site.longitude),
        float(getattr(site, "elevation", 0.0) or 0.0),
        getattr(site, "timezone", None) or "UTC",
    )
    return _night_sky(key, night, float(step_s))


def _interpolate(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    return CubicSpline(x, y)(at)


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
    # The Sun and the Moon are computed every _COARSE_STEP_S and interpolated (cubic for
    # altitude, which keeps the error below 0.01°); the sidereal time is exact on the grid.
    coarse = start + np.arange(int((end - start) // _COARSE_STEP_S) + 2) * _COARSE_STEP_S
    coarse_times = Time(coarse, format="unix", scale="utc")
    sun_position = astro.sun_altaz(site, coarse_times)
    sun_coarse = np.asarray(sun_position.alt)
    full = start + np.arange(int((end - start) // step_s) + 1) * step_s
    sun_full = _interpolate(coarse, sun_coarse, full)
    below = np.flatnonzero(sun_full < GRID_SUN_LIMIT)
    if below.size == 0:
        unix = sun_alt = moon_alt = moon_az = moon_age = lst = np.zeros(0)
        illumination = float(astro.moon_illumination(Time(start + 43200.0, format="unix", scale="utc")))
    else:
        first, last = max(below[0] - 1, 0), min(below[-1] + 1, full.size - 1)
        unix, sun_alt = full[first : last + 1], sun_full[first : last + 1]
        inside = (coarse >= unix[0] - 2 * _COARSE_STEP_S) & (coarse <= unix[-1] + 2 * _COARSE_STEP_S)
        moon_times = coarse_times[inside]
        moon = astro.moon_altaz(site, moon_times)
        moon_alt = _interpolate(coarse[inside], np.asarray(moon.alt), unix)
        moon_az = np.degrees(_interpolate(coarse[inside], np.unwrap(np.radians(moon.az)), unix)) % 360.0
        # The Moon's age from its elongation (the Sun-Moon angle, topocentric: within a
        # degree of the geocentric one), folded onto 0..half a month: the Lorentzian
        # avoidance is symmetric about full Moon, so waxing or waning does not matter.
        elongation = angular_distance(
            np.asarray(moon.alt),
            np.asarray(moon.az),
            sun_coarse[inside],
            np.asarray(sun_position.az)[inside],
        )
        moon_age = _interpolate(coarse[inside], elongation / 360.0 * SYNODIC_MONTH_DAYS, unix)
        illumination = float(
            (1.0 - np.cos(np.radians(np.interp(unix[unix.size // 2], coarse[inside], elongation)))) / 2
        )
        with _quiet():
            grid = Time(unix, format="unix", scale="utc")
            lst = grid.sidereal_time("apparent", longitude=site.longitude * u.deg).to_value(u.deg)
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
        lst_deg=np.asarray(lst, dtype=float),
    )
