"""A site where it is astronomical night right now, for the end-to-end test.

The test runs at any hour, so it picks its observatory instead of its clock: of the cities
KStars knows (its own city database, so that KStars can be put at the same place by
name), the one where the Sun is lowest now and still at least ``MIN_DEPTH`` below the
horizon ``HOLD`` later. Ekos enforces twilight and altitude with KStars' location, and
the OBSY services with the configured site: both must agree, hence a real KStars city.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import get_sun
from astropy.time import Time

CITY_DB = Path("/usr/share/kstars/citydb.sqlite")
MIN_DEPTH = -24.0  # degrees: well below astronomical twilight (-18°)
HOLD = timedelta(minutes=40)  # the Sun stays that low for at least this long
MAX_LATITUDE = 50.0  # higher latitudes have no astronomical night in summer


@dataclass(frozen=True)
class DarkSite:
    city: str
    province: str
    country: str
    latitude: float
    longitude: float
    elevation: float
    sun_altitude: float
    #: KStars' own UTC offset for the city (hours), when it is whole and the city has no summer time.
    tz: float | None = None

    @property
    def timezone(self) -> str:
        """A fixed-offset zone: KStars' own for the city where it has one, else near mean solar time.

        The MCP refuses to start Ekos when KStars' offset and the site's differ (every job would
        start at the wrong time), so the site takes KStars' offset where it can.
        """
        hours = int(self.tz) if self.tz is not None else round(self.longitude / 15)
        return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # POSIX sign: Etc/GMT-9 is UTC+9

    def site_config(self) -> dict[str, object]:
        return {
            "name": f"{self.city} (end-to-end test)",
            "latitude": self.latitude,
            "longitude": self.longitude,
            "elevation": self.elevation,
            "timezone": self.timezone,
        }


def _degrees(text: str) -> float:
    """KStars' ``-149° 58' 58"`` as decimal degrees."""
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)] + [0.0, 0.0]  # a few are decimal
    value = numbers[0] + numbers[1] / 60 + numbers[2] / 3600
    return -value if text.strip().startswith("-") else value


def _sun_altitudes(latitude: np.ndarray, longitude: np.ndarray, when: datetime) -> np.ndarray:
    """Geometric altitude of the Sun (degrees) at many places at once."""
    t = Time(when)
    sun = get_sun(t)
    hour_angle = np.radians(t.sidereal_time("apparent", longitude=0 * u.deg).deg + longitude - sun.ra.deg)
    lat, dec = np.radians(latitude), sun.dec.rad
    return np.degrees(np.arcsin(np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)))


def dark_site(now: datetime | None = None, city_db: Path = CITY_DB) -> DarkSite:
    """The KStars city with the darkest sky now (see the module docstring)."""
    now = now or datetime.now(UTC)
    with sqlite3.connect(f"file:{city_db}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT Name, Province, Country, Latitude, Longitude, Elevation, TZ, TZRule FROM city"
        ).fetchall()
    cities = [
        (name, province or "", country or "", _degrees(lat), _degrees(lon), max(float(elevation), 0.0), _tz(tz, rule))
        for name, province, country, lat, lon, elevation, tz, rule in rows
        if name and name.isascii()
    ]
    # setGeoLocation finds a city by name, province and country: only unambiguous ones.
    seen = Counter(c[:3] for c in cities)
    cities = [c for c in cities if abs(c[3]) <= MAX_LATITUDE and seen[c[:3]] == 1]
    # Cities whose KStars offset a fixed zone can match first (whole hours, no summer time).
    fixed = [c for c in cities if c[6] is not None]
    try:
        return _darkest(fixed, now)
    except RuntimeError:
        return _darkest(cities, now)


def _tz(tz: float | None, rule: str | None) -> float | None:
    """KStars' offset when an ``Etc/GMT`` zone is exactly it: whole hours and no summer time."""
    if tz is None or (rule or "--") != "--" or float(tz) != int(tz):
        return None
    return float(tz)


def _darkest(cities: list[tuple], now: datetime) -> DarkSite:
    if not cities:
        raise RuntimeError("no KStars city to choose from")
    latitude = np.array([c[3] for c in cities])
    longitude = np.array([c[4] for c in cities])
    now_alt = _sun_altitudes(latitude, longitude, now)
    later_alt = _sun_altitudes(latitude, longitude, now + HOLD)
    worst = np.maximum(now_alt, later_alt)
    best = int(np.argmin(worst))
    if worst[best] > MIN_DEPTH:
        raise RuntimeError(f"no KStars city has the Sun below {MIN_DEPTH}° for the next {HOLD}")
    name, province, country, lat, lon, elevation, tz = cities[best]
    return DarkSite(name, province, country, lat, lon, elevation, float(now_alt[best]), tz)
