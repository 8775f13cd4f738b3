"""Reading header values written in the many ways capture programs write them.

Angles come as numbers (degrees) or as sexagesimal strings ('-0 25 14.95', '+33:02:02',
'51 3 0.000'). The sign of a sexagesimal angle belongs to the whole angle and is read from
the text: ``float('-0')`` is 0.0, so a declination of '-0 25 14.95' parsed field by field
would land north of the equator.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

_SEXAGESIMAL = re.compile(
    r"^\s*(?P<sign>[+-])?\s*(?P<a>\d+(?:\.\d*)?)(?:[\s:hdD°]+(?P<b>\d+(?:\.\d*)?))?"
    r"(?:[\s:m'′]+(?P<c>\d+(?:\.\d*)?))?[\s\"s″]*$"
)


def number(value: Any) -> float | None:
    """A finite float from a number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip().replace(",", "."))
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def text(value: Any) -> str | None:
    """A stripped, non-empty string (FITS pads strings with blanks)."""
    if value is None or isinstance(value, bool):
        return None
    result = str(value).strip()
    return result or None


def sexagesimal(value: str) -> float | None:
    """'-0 25 14.95' -> -0.4208...: units of the first field, sign of the whole text."""
    match = _SEXAGESIMAL.match(value)
    if not match:
        return None
    a, b, c = (float(match.group(name) or 0.0) for name in ("a", "b", "c"))
    if b >= 60 or c >= 60:
        return None
    magnitude = a + b / 60 + c / 3600
    return -magnitude if match.group("sign") == "-" else magnitude


def angle_degrees(value: Any) -> float | None:
    """An angle in degrees: a number, or a sexagesimal string in degrees."""
    if isinstance(value, str):
        plain = number(value)
        return plain if plain is not None else sexagesimal(value)
    return number(value)


def right_ascension_degrees(value: Any) -> float | None:
    """RA in degrees: numbers are degrees (INDI, N.I.N.A., SGP ``RA``); strings are hours ('05 35 17')."""
    if isinstance(value, str):
        if number(value) is not None:
            return number(value)
        hours = sexagesimal(value)
        return None if hours is None or not 0 <= hours < 24 else hours * 15.0
    degrees = number(value)
    return None if degrees is None or not 0 <= degrees <= 360 else degrees % 360.0


def longitude_east(value: Any) -> float | None:
    """A longitude in degrees east, in -180..180 (INDI may write 0..360)."""
    degrees = angle_degrees(value)
    if degrees is None or not -360 <= degrees <= 360:
        return None
    return (degrees + 180.0) % 360.0 - 180.0


_OLD_DATE = re.compile(r"^(?P<d>\d{2})/(?P<m>\d{2})/(?P<y>\d{2})$")


def utc_datetime(date_value: Any, time_value: Any = None) -> datetime | None:
    """A UTC datetime from DATE-OBS (ISO 8601, any number of decimals) and, for the old
    split form, TIME-OBS/UT ('13:44:52'). Old 'dd/mm/yy' dates are read as 19yy before 1999."""
    date_text = text(date_value)
    if date_text is None:
        return None
    old = _OLD_DATE.match(date_text)
    if old:
        year = int(old.group("y"))
        date_text = f"{1900 + year if year >= 99 else 2000 + year}-{old.group('m')}-{old.group('d')}"
    if "T" not in date_text:
        clock = text(time_value)
        date_text = f"{date_text}T{clock}" if clock else f"{date_text}T00:00:00"
    date_text = date_text.removesuffix("Z")
    try:
        moment = datetime.fromisoformat(date_text)  # any number of decimals (truncated to microseconds)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    return moment.replace(tzinfo=UTC)
