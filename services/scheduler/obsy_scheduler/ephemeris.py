"""Sun, Moon, Earth rotation and apparent places for a night, straight from ERFA, in milliseconds.

astropy's coordinate machinery costs ~0.15 s for one night's Sun and Moon, mostly in
building frames and Time objects, while the models underneath are ERFA's C routines.
This module calls those routines directly on numpy arrays, with the same models:

- apparent places of the targets: ``erfa.apci13`` (IAU 2006/2000A precession-nutation,
  annual aberration, light deflection by the Sun) for one instant of the night, then
  ``erfa.atciq`` for every target at once: the CIRS place (the true equator).
- the Earth's rotation: the Earth rotation angle (``erfa.era00``) on the time grid; a
  CIRS right ascension gives the hour angle ``ERA + longitude - RA``. The local apparent
  sidereal time is ``ERA + longitude - EO`` with the equation of the origins EO.
- the Sun: the Earth's heliocentric position (``erfa.epv00``, VSOP2000-based, a few
  milliarcseconds) plus annual aberration; the Moon: ``erfa.moon98`` (Meeus'
  series after ELP2000-82B, good to about 10" in position). Both are geocentric GCRS
  vectors, made topocentric by subtracting the site's position (WGS84) turned by the ERA.

Simplifications, each far below what matters to a plan (the planner works on a 2-minute
grid and with whole degrees of altitude and Moon distance):

- UT1 is taken as UTC: |UT1-UTC| < 0.9 s turns the sky by < 0.004°. This keeps the plan
  free of the Earth orientation tables (and of their age).
- polar motion (< 0.5") and diurnal aberration (< 0.3") are left out;
- the precession-nutation matrix, the aberration and the equation of the origins are
  those of one instant of the night (they change by < 0.1" in 12 hours);
- the Sun is evaluated every :data:`SUN_STEP_S` (6 h) and the Moon every
  :data:`MOON_STEP_S` (1 h), and their geocentric vectors interpolated linearly in
  between: the chord of 6 h of the Sun's apparent path strays from the arc by < 0.5",
  that of 1 h of the Moon's orbit by < 3".

``tests/unit/scheduler/test_scheduler_ephemeris.py`` compares the results with astropy over a year
at several latitudes.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import erfa
import numpy as np

#: Julian Date of the Unix epoch (1970-01-01T00:00 UTC).
UNIX_EPOCH_JD = 2440587.5
#: Spacing (seconds) at which the Sun's and the Moon's geocentric positions are computed.
SUN_STEP_S = 6 * 3600.0
MOON_STEP_S = 3600.0
_WGS84 = 1
_LIGHT_AU_PER_DAY = erfa.DC


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ERFA warns ("dubious year") for dates past its leap-second table; the sky does not care."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=erfa.ErfaWarning)
        yield


def terrestrial_time(unix: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """TT as a two-part Julian Date from Unix seconds (UTC), leap seconds included."""
    unix = np.asarray(unix, dtype=float)
    with _quiet():
        tai1, tai2 = erfa.utctai(np.full(unix.shape, UNIX_EPOCH_JD), unix / 86400.0)
        return erfa.taitt(tai1, tai2)


def earth_rotation_angle(unix: np.ndarray) -> np.ndarray:
    """The Earth rotation angle (radians) at Unix seconds, with UT1 taken as UTC."""
    unix = np.asarray(unix, dtype=float)
    return erfa.era00(np.full(unix.shape, UNIX_EPOCH_JD), unix / 86400.0)


@dataclass(frozen=True)
class Epoch:
    """What one instant of the night fixes for the whole night (ERFA's ``astrom`` context)."""

    astrom: np.ndarray  # erfa's ASTROM structure: the celestial-to-intermediate matrix, Earth's velocity...
    equation_of_origins: float  # radians, ERA - GAST

    @classmethod
    def at(cls, unix: float) -> Epoch:
        tt1, tt2 = terrestrial_time(unix)
        with _quiet():
            astrom, eo = erfa.apci13(tt1, tt2)
        return cls(astrom, float(eo))

    @property
    def celestial_to_intermediate(self) -> np.ndarray:
        """The 3x3 matrix from GCRS to CIRS (frame bias, precession, nutation, CIO locator)."""
        return np.asarray(self.astrom["bpn"])

    def apparent_places(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apparent RA (true equinox) and declination (true equator) of J2000/ICRS positions, degrees."""
        ri, di = erfa.atciq(np.radians(ra_deg), np.radians(dec_deg), 0.0, 0.0, 0.0, 0.0, self.astrom)
        return np.degrees(erfa.anp(ri - self.equation_of_origins)), np.degrees(di)

    def local_sidereal_time(self, unix: np.ndarray, longitude_deg: float) -> np.ndarray:
        """Local apparent sidereal time (degrees, 0..360) at Unix seconds."""
        return (np.degrees(earth_rotation_angle(unix) - self.equation_of_origins) + longitude_deg) % 360.0


@dataclass(frozen=True)
class SunAndMoon:
    """Topocentric hour angle and declination (degrees) of the Sun and the Moon, and their elongation."""

    sun_hour_angle: np.ndarray
    sun_dec: np.ndarray
    moon_hour_angle: np.ndarray
    moon_dec: np.ndarray
    elongation: np.ndarray  # geocentric Sun-Moon angle, degrees: 0 at new Moon, 180 at full


def site_position_au(latitude_deg: float, longitude_deg: float, elevation_m: float) -> np.ndarray:
    """The site's position in the terrestrial frame (WGS84), astronomical units."""
    xyz = erfa.gd2gc(_WGS84, math.radians(longitude_deg), math.radians(latitude_deg), elevation_m)
    return np.asarray(xyz) / erfa.DAU


def sun_and_moon(
    unix: np.ndarray, latitude_deg: float, longitude_deg: float, elevation_m: float, epoch: Epoch
) -> SunAndMoon:
    """Where the Sun and the Moon stand, seen from the site, at the Unix seconds ``unix`` (sorted)."""
    unix = np.asarray(unix, dtype=float)
    to_cirs = epoch.celestial_to_intermediate
    coarse = _coarse_times(unix, SUN_STEP_S)
    with _quiet():
        heliocentric, barycentric = erfa.epv00(*terrestrial_time(coarse))
    sun = -heliocentric["p"]
    # Annual aberration to first order: the direction moves towards the Earth's velocity by v/c.
    distance = np.linalg.norm(sun, axis=1, keepdims=True)
    velocity = barycentric["v"] / _LIGHT_AU_PER_DAY
    sun = sun + distance * (velocity - np.sum(velocity * sun / distance, axis=1, keepdims=True) * sun / distance)
    sun_cirs = _interpolate_vectors(coarse, sun @ to_cirs.T, unix)
    coarse = _coarse_times(unix, MOON_STEP_S)
    with _quiet():
        moon = erfa.moon98(*terrestrial_time(coarse))["p"]
    moon_cirs = _interpolate_vectors(coarse, moon @ to_cirs.T, unix)

    # The site turns with the Earth: its CIRS position is its terrestrial one turned by the ERA.
    era = earth_rotation_angle(unix)
    x, y, z = site_position_au(latitude_deg, longitude_deg, elevation_m)
    cos_era, sin_era = np.cos(era), np.sin(era)
    site = np.stack([x * cos_era - y * sin_era, x * sin_era + y * cos_era, np.full(era.shape, z)], axis=1)
    sun_ha, sun_dec = _hour_angle_and_dec(sun_cirs - site, era, longitude_deg)
    moon_ha, moon_dec = _hour_angle_and_dec(moon_cirs - site, era, longitude_deg)
    cos_elongation = np.sum(sun_cirs * moon_cirs, axis=1) / (
        np.linalg.norm(sun_cirs, axis=1) * np.linalg.norm(moon_cirs, axis=1)
    )
    elongation = np.degrees(np.arccos(np.clip(cos_elongation, -1.0, 1.0)))
    return SunAndMoon(sun_ha, sun_dec, moon_ha, moon_dec, elongation)


def _coarse_times(unix: np.ndarray, step_s: float) -> np.ndarray:
    """Times every ``step_s`` from the first of ``unix`` to at least its last."""
    return unix[0] + np.arange(max(math.ceil((unix[-1] - unix[0]) / step_s), 1) + 1) * step_s


def _interpolate_vectors(x: np.ndarray, vectors: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(at, x, vectors[:, k]) for k in range(3)], axis=1)


def _hour_angle_and_dec(cirs: np.ndarray, era: np.ndarray, longitude_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Hour angle (-180..180) and declination (degrees) of CIRS vectors (T x 3) seen at ERA ``era``."""
    ra = np.arctan2(cirs[:, 1], cirs[:, 0])
    dec = np.arctan2(cirs[:, 2], np.hypot(cirs[:, 0], cirs[:, 1]))
    hour_angle = (np.degrees(era - ra) + longitude_deg + 180.0) % 360.0 - 180.0
    return hour_angle, np.degrees(dec)
