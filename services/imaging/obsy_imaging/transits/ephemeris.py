"""Transit ephemerides: the scheduler plans with them too, so they live in the core library
(:mod:`obsy.transits.ephemeris`); this module keeps the imaging service's import path."""

from obsy.transits.ephemeris import (
    BJD_TDB,
    GEOMETRY_FIELDS,
    REQUIRED,
    Ephemeris,
    EphemerisError,
    EphemerisTable,
    UnusableRowError,
    parse_archive_csv,
    read_archive_csv,
    transit_duration,
)

__all__ = [
    "BJD_TDB",
    "GEOMETRY_FIELDS",
    "REQUIRED",
    "Ephemeris",
    "EphemerisError",
    "EphemerisTable",
    "UnusableRowError",
    "parse_archive_csv",
    "read_archive_csv",
    "transit_duration",
]
