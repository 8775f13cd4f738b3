"""The barycentric light-travel-time correction, computed directly (about 100× faster than astropy's).

astropy's ``Time.light_travel_time`` takes about 10 ms per frame, almost all of it in placing
the observatory in the GCRS with full Earth orientation. The observatory's offset from the
geocentre moves the result by at most 21 ms, so a rotation by the Earth rotation angle alone
(no precession, nutation or polar motion: ≤ 40 km, 0.14 ms) serves; the Earth's barycentric
position comes from ERFA's ``epv00`` (as astropy's built-in ephemeris). Agreement with astropy
is tested to 1 ms (tests/unit/imaging/test_imaging_headers.py); exoplanet timing needs seconds.
"""

from __future__ import annotations

import math

import astropy.units as u
import erfa
from astropy.coordinates import EarthLocation
from astropy.time import Time

AU_M = 149_597_870_700.0
C_M_S = 299_792_458.0


def light_travel_time_s(
    t_tdb: Time, ra_deg: float, dec_deg: float, where: EarthLocation, *, heliocentric: bool = False
) -> float:
    """Seconds to add to ``t_tdb`` for the arrival time at the solar-system barycentre (or, with
    ``heliocentric``, at the Sun's centre: the HJD that AAVSO reports accept)."""
    helio, barycentric = erfa.epv00(t_tdb.jd1, t_tdb.jd2)
    earth = (helio if heliocentric else barycentric)["p"] * AU_M
    utc = t_tdb.utc  # as UT1: |UT1 - UTC| < 0.9 s turns the Earth by 0.4 km at most
    angle = erfa.era00(utc.jd1, utc.jd2)
    x, y, z = (float(c.to_value(u.m)) for c in (where.x, where.y, where.z))
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    observer = (earth[0] + cos_a * x - sin_a * y, earth[1] + sin_a * x + cos_a * y, earth[2] + z)
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    direction = (math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec))
    return sum(o * d for o, d in zip(observer, direction, strict=True)) / C_M_S
