"""A site where it is astronomical night now: the Sun's antipodal meridian.

At the longitude where the Sun's local hour angle is 180° it is local solar midnight,
the darkest moment of the night. The latitude is kept when the Sun is low enough there
(at least ``MIN_DEPTH_DEG`` below the horizon, so the night lasts a while); otherwise
(polar summer) the latitude opposite the Sun's declination, where it is at the nadir.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import astropy.units as u
from astropy.coordinates import get_sun
from astropy.time import Time

from obsy import astro

#: How far below the horizon the Sun must be at the chosen site (astronomical night is -18°).
MIN_DEPTH_DEG = -24.0


@dataclass(frozen=True)
class NightSite:
    latitude: float
    longitude: float
    timezone: str
    sun_altitude: float


def _wrap180(degrees: float) -> float:
    return (degrees + 180.0) % 360.0 - 180.0


def timezone_for(longitude: float) -> str:
    """The whole-hour IANA zone of a longitude (``Etc/GMT-3`` is UTC+3: the sign is POSIX's)."""
    offset = max(-12, min(12, round(longitude / 15.0)))
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def local_sidereal_deg(longitude: float, when: datetime) -> float:
    """Local mean sidereal time in degrees."""
    with astro._quiet():
        return float(Time(when).sidereal_time("mean", longitude=longitude * u.deg).to_value(u.deg))


def night_site(latitude: float, when: datetime) -> NightSite:
    """The site at local solar midnight at ``when``, at ``latitude`` if it is dark enough there."""
    t = Time(when)
    with astro._quiet():
        sun = get_sun(t)
        sun_ra = float(sun.ra.to_value(u.deg))
        sun_dec = float(sun.dec.to_value(u.deg))
        greenwich = float(t.sidereal_time("mean", longitude=0 * u.deg).to_value(u.deg))
    longitude = round(_wrap180(sun_ra + 180.0 - greenwich), 3)
    # Lowest altitude of the Sun at a latitude: |lat + dec| - 90 (lower culmination).
    if abs(latitude + sun_dec) - 90.0 > MIN_DEPTH_DEG:
        latitude = round(-sun_dec, 1)
    site = _Position(latitude, longitude)
    altitude = float(astro.sun_altaz(site, when).alt)
    return NightSite(latitude, longitude, timezone_for(longitude), round(altitude, 1))


@dataclass(frozen=True)
class _Position:
    latitude: float
    longitude: float
    elevation: float = 0.0


def altitude_deg(latitude: float, lst_deg: float, ra_deg: float, dec_deg: float) -> float:
    """Geometric altitude of a star from its hour angle (enough to pick targets high in the sky)."""
    lat, dec, hour_angle = (math.radians(v) for v in (latitude, dec_deg, lst_deg - ra_deg))
    sin_alt = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_alt))))
