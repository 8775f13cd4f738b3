"""Finding targets by name, offline: OpenNGC (through pyongc) and PyEphem's bright stars.

pyongc ships the OpenNGC database (NGC, IC, Messier and common names such as
"Andromeda Galaxy"; CC-BY-SA 4.0, github.com/mattiaverga/OpenNGC) inside its wheel;
PyEphem ships a catalogue of 115 bright named stars (J2000, from XEphem). Nothing is
downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ephem
import ephem.stars
from pyongc import ongc
from pyongc.exceptions import InvalidCoordinates, ObjectNotFound, UnknownIdentifier

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9 .'-]{3,60}$")
_COMPACT = re.compile(r"^(M|NGC|IC)\s*0*(\d+)\s*([A-Z]?)$", re.IGNORECASE)


@dataclass(frozen=True)
class CatalogueEntry:
    catalogue_id: str
    name: str
    ra_deg: float
    dec_deg: float
    kind: str
    magnitude: float | None = None
    common_names: tuple[str, ...] = ()


def _normalise(name: str) -> str:
    text = " ".join(name.split())
    match = _COMPACT.match(text)
    if match:
        prefix, number, suffix = match.group(1).upper(), match.group(2), match.group(3).upper()
        if prefix == "M":
            return f"M{int(number):03d}"
        return f"{prefix}{int(number):04d}{suffix}"
    return text


def _from_ongc(dso: ongc.Dso, asked: str) -> CatalogueEntry:
    ra_deg, dec_deg = dso.rad_coords * 180.0 / 3.141592653589793
    identifiers = dso.identifiers
    messier = identifiers[0] if identifiers and identifiers[0] else None
    commons = tuple(identifiers[3] or ()) if len(identifiers) > 3 else ()
    magnitudes = [m for m in (dso.magnitudes or ()) if m is not None]
    display = asked.strip()
    return CatalogueEntry(
        catalogue_id=dso.name,
        name=display or (messier or dso.name),
        ra_deg=float(ra_deg) % 360.0,
        dec_deg=float(dec_deg),
        kind=dso.type,
        magnitude=float(magnitudes[1] if len(magnitudes) > 1 else magnitudes[0]) if magnitudes else None,
        common_names=commons,
    )


def _star(name: str) -> CatalogueEntry | None:
    wanted = name.strip().lower()
    for star_name in ephem.stars.stars:
        if star_name.lower() == wanted:
            star = ephem.star(star_name)
            star.compute("2000/1/1")
            return CatalogueEntry(
                catalogue_id=f"star:{star_name}",
                name=star_name,
                ra_deg=float(star._ra) * 180.0 / 3.141592653589793,
                dec_deg=float(star._dec) * 180.0 / 3.141592653589793,
                kind="Star",
                magnitude=float(star.mag),
            )
    return None


def lookup(name: str) -> CatalogueEntry | None:
    """The object called ``name`` ("M 31", "NGC 7000", "IC 434", "Vega", ...), or None."""
    if not name or not name.strip() or len(name) > 100:
        return None
    star = _star(name)
    if star is not None:
        return star
    key = _normalise(name)
    try:
        return _from_ongc(ongc.Dso(key), name)
    except (ObjectNotFound, UnknownIdentifier, InvalidCoordinates, ValueError):
        pass
    # A common name ("Andromeda Galaxy"). pyongc builds this query as text, so only plain
    # names are passed on.
    if not _PLAIN_NAME.match(name.strip()):
        return None
    matches = ongc.listObjects(cname=name.strip())
    return _from_ongc(matches[0], name) if matches else None
