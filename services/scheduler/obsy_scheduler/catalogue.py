"""Find J2000 coordinates by name, offline.

Deep-sky objects come from OpenNGC through pyongc (NGC, IC, Messier and common
identifiers such as "M31", "NGC 7000", "IC 434", "Messier 45"; the database ships inside
the pyongc package). Bright stars come from the 115-star catalogue that ships with
PyEphem (``ephem.stars``: Hipparcos positions, J2000), by proper name ("Vega").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache


class UnknownObjectError(LookupError):
    """No catalogue knows the name."""


@dataclass(frozen=True)
class CatalogueEntry:
    name: str  # the catalogue's own designation
    ra_deg: float  # J2000
    dec_deg: float
    kind: str
    source: str  # "OpenNGC" or "PyEphem bright stars"


_MESSIER = re.compile(r"^\s*(?:messier|m)\s*0*(\d{1,3})\s*$", re.IGNORECASE)


def lookup(name: str) -> CatalogueEntry:
    """The object called ``name``; raises :class:`UnknownObjectError` with the name when none is."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise UnknownObjectError("empty object name")
    star = _bright_stars().get(cleaned.casefold())
    if star is not None:
        return star
    messier = _MESSIER.match(cleaned)
    query = f"M{int(messier.group(1))}" if messier else cleaned
    return _openngc(query, name)


def _openngc(query: str, original: str) -> CatalogueEntry:
    from pyongc import ongc

    try:
        dso = ongc.Dso(query)
    except Exception as exc:  # pyongc raises its own exceptions for unknown or malformed names
        raise UnknownObjectError(f"{original!r} is not in OpenNGC or the bright-star list ({exc})") from None
    ra_rad, dec_rad = (float(v) for v in dso.rad_coords)
    return CatalogueEntry(dso.name, math.degrees(ra_rad) % 360.0, math.degrees(dec_rad), str(dso.type), "OpenNGC")


@lru_cache(maxsize=1)
def _bright_stars() -> dict[str, CatalogueEntry]:
    import ephem
    import ephem.stars

    stars = {}
    for star_name in ephem.stars.stars:
        body = ephem.star(star_name)
        stars[star_name.casefold()] = CatalogueEntry(
            star_name, math.degrees(body._ra) % 360.0, math.degrees(body._dec), "Star", "PyEphem bright stars"
        )
    return stars
