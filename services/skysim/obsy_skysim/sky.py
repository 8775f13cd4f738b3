"""Sky brightness: the night sky, twilight by the Sun's altitude, and moonlight with its glow.

Brightness is linear flux per square arcsecond relative to a magnitude-0 source
(``10 ** (-0.4 * mu)`` for a surface brightness of ``mu`` mag/arcsec²), so components add and
the camera turns them into electrons with its zero point and each pixel's solid angle.

* Night: ``night_zenith`` mag/arcsec² at the zenith (21.0 is a rural-to-suburban site),
  brighter towards the horizon as airglow does (van Rhijn's law), dimmed by extinction.
* Twilight and day: the zenith brightness by Sun altitude from a table of typical clear-sky
  values (about 21.6 at -18°, 17 at -10°, 13.4 at -6° (civil dusk), 7.5 at sunset, 4 by day),
  brighter towards the Sun's azimuth and near the horizon.
* Moon: Krisciunas & Schaefer (1991, PASP 103, 1033): scattered moonlight by the Moon's phase,
  its altitude, the angle from it and the extinction, which also makes its glow (aureole).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from obsy import astro
from obsy.astro import airmass

ARCSEC2_PER_SR = (180.0 / math.pi * 3600.0) ** 2

# Zenith sky brightness (V mag/arcsec²) by Sun altitude (degrees), for interpolation.
_TWILIGHT_SUN_ALT = np.array([-90.0, -18.0, -15.0, -12.0, -9.0, -6.0, -3.0, 0.0, 5.0, 15.0, 30.0, 90.0])
_TWILIGHT_ZENITH_MAG = np.array([30.0, 21.6, 20.6, 18.8, 16.3, 13.4, 10.5, 7.5, 5.6, 4.5, 4.0, 3.5])


def flux_from_mag(mag: np.ndarray | float) -> np.ndarray:
    return np.power(10.0, -0.4 * np.asarray(mag, dtype=np.float64))


def angular_distance(alt1: np.ndarray, az1: np.ndarray, alt2: float, az2: float) -> np.ndarray:
    """Great-circle angle (degrees) between directions given by altitude and azimuth."""
    a1, a2 = np.radians(alt1), math.radians(alt2)
    cos_d = np.sin(a1) * math.sin(a2) + np.cos(a1) * math.cos(a2) * np.cos(np.radians(np.asarray(az1) - az2))
    return np.degrees(np.arccos(np.clip(cos_d, -1.0, 1.0)))


def twilight_zenith_mag(sun_alt: float) -> float:
    """Zenith brightness (mag/arcsec²) of the twilight or daylight sky alone for a Sun altitude."""
    return float(np.interp(sun_alt, _TWILIGHT_SUN_ALT, _TWILIGHT_ZENITH_MAG))


def moon_magnitude(phase_angle: float) -> float:
    """Apparent V magnitude of the Moon at phase angle (degrees, 0 = full), Krisciunas & Schaefer eq. 9."""
    a = abs(phase_angle)
    return -12.73 + 0.026 * a + 4e-9 * a**4


@dataclass(frozen=True)
class SkyConditions:
    """Where the Sun and Moon stand: everything the sky's brightness depends on besides the site's own."""

    sun_alt: float
    sun_az: float
    moon_alt: float
    moon_az: float
    moon_phase_angle: float  # degrees, 0 = full, 180 = new


def sky_conditions(site: Any, when: datetime) -> SkyConditions:
    """Where the Sun and the Moon stand for ``site`` (anything with latitude, longitude, elevation)
    at ``when``, with refraction, as they appear."""
    return sky_conditions_at(site, [when])[0]


def sky_conditions_at(site: Any, times: Sequence[datetime]) -> list[SkyConditions]:
    """:func:`sky_conditions` at each of ``times``, in one pass: astropy's transforms cost about the
    same for one time as for hundreds, so a caller rendering a night of frames asks once."""
    sun = astro.sun_altaz(site, list(times), refraction=True)
    moon = astro.moon_altaz(site, list(times), refraction=True)
    phase = astro.moon_phase_angle(list(times))
    columns = (sun.alt, sun.az, moon.alt, moon.az, phase)
    return [SkyConditions(*(float(v) for v in row)) for row in zip(*columns, strict=True)]


@dataclass(frozen=True)
class SkyBrightness:
    night_zenith: float = 21.0  # mag/arcsec²
    extinction: float = 0.25  # mag per airmass (V)
    airglow_height_km: float = 300.0

    def components(self, alt: np.ndarray, az: np.ndarray, c: SkyConditions) -> dict[str, np.ndarray]:
        """Flux per arcsec² (mag-0 units) of each light source of the sky towards ``alt``/``az``
        (degrees; the caller masks what lies below the horizon): ``night``, ``twilight``, ``moon``."""
        alt = np.clip(np.asarray(alt, dtype=np.float64), 0.0, 90.0)
        x = airmass(alt)
        dimming = np.power(10.0, -0.4 * self.extinction * (x - 1.0))
        zenith_distance = np.radians(90.0 - alt)
        earth_radius = 6371.0
        ratio = earth_radius / (earth_radius + self.airglow_height_km)
        van_rhijn = 1.0 / np.sqrt(1.0 - (ratio * np.sin(zenith_distance)) ** 2)
        night = float(flux_from_mag(self.night_zenith)) * van_rhijn * dimming

        twilight = np.zeros_like(alt)
        if c.sun_alt > -20.0:
            from_sun = angular_distance(alt, az, c.sun_alt, c.sun_az)
            towards_sun = 1.0 + 3.0 * np.exp(-from_sun / 35.0)
            low = 1.0 + 1.5 * (1.0 - np.sin(np.radians(alt))) ** 2
            twilight = float(flux_from_mag(twilight_zenith_mag(c.sun_alt))) * towards_sun * low

        moon = np.zeros_like(alt)
        if c.moon_alt > -2.0:
            moon = self._moonlight(alt, az, x, c)
        return {"night": night, "twilight": twilight, "moon": moon}

    def _moonlight(self, alt: np.ndarray, az: np.ndarray, x: np.ndarray, c: SkyConditions) -> np.ndarray:
        """Krisciunas & Schaefer's scattered moonlight, converted from nanolamberts to mag-0 flux per arcsec²."""
        rho = np.maximum(angular_distance(alt, az, c.moon_alt, c.moon_az), 0.3)
        moon_x = float(airmass(max(c.moon_alt, 0.0)))
        illuminance = 10 ** (-0.4 * (moon_magnitude(c.moon_phase_angle) + 16.57))
        scattering = 10**5.36 * (1.06 + np.cos(np.radians(rho)) ** 2) + 10 ** (6.15 - rho / 40.0)
        k = self.extinction
        nanolamberts = scattering * illuminance * 10 ** (-0.4 * k * moon_x) * (1.0 - 10 ** (-0.4 * k * x))
        # B [nL] = 34.08 exp(20.7233 - 0.92104 V): V = 20.7233 - ln(B / 34.08) / 0.92104
        mag = 20.7233 - np.log(np.maximum(nanolamberts, 1e-30) / 34.08) / 0.92104
        return flux_from_mag(mag)
