"""The observing night a time belongs to, without astropy.

:func:`night_of` needs only the site's time zone; it lives apart from :mod:`obsy.astro` (which
loads astropy's coordinates, about a second of CPU) so that a small command (``obsy-mcp
decision``) or the frame ingest can name tonight without paying for the sky. :mod:`obsy.astro`
re-exports it. An astropy ``Time`` is accepted as before: if one is passed, astropy is loaded
already.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from astropy.time import Time


def site_zone(site: Any) -> ZoneInfo:
    """The site's time zone (UTC for objects without one)."""
    return ZoneInfo(getattr(site, "timezone", None) or "UTC")


def aware_timestamp(value: datetime) -> float:
    """Unix seconds of an aware datetime; ``ValueError`` for a naive one."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"naive datetime {value.isoformat()} has no time zone; pass an aware datetime such as datetime.now(UTC)"
        )
    return value.timestamp()


def _time_class() -> type | None:
    """astropy's ``Time`` if astropy.time is loaded (a value can be a Time only then), else None."""
    module = sys.modules.get("astropy.time")
    return None if module is None else module.Time


def _night_of_one(zone: ZoneInfo, when: Any) -> date:
    time_class = _time_class()
    if isinstance(when, datetime):
        aware_timestamp(when)  # rejects naive datetimes
        local = when.astimezone(zone)
    elif time_class is not None and isinstance(when, time_class) and when.isscalar:
        local = when.utc.to_datetime(timezone=UTC).astimezone(zone)
    else:
        raise TypeError(f"expected an aware datetime or astropy Time, got {type(when).__name__}")
    return local.date() - timedelta(days=1) if local.hour < 12 else local.date()


@overload
def night_of(site: Any, when: datetime | Time) -> date: ...
@overload
def night_of(site: Any, when: Sequence[datetime | Time]) -> list[date]: ...
def night_of(site: Any, when: Any) -> date | list[date]:
    """The local date of the evening that begins the observing night containing ``when``.

    Nights run from local noon to local noon in the site's time zone, so times before
    local noon belong to the previous evening's night.
    """
    zone = site_zone(site)
    time_class = _time_class()
    if isinstance(when, datetime) or (time_class is not None and isinstance(when, time_class) and when.isscalar):
        return _night_of_one(zone, when)
    if time_class is not None and isinstance(when, time_class):
        return [_night_of_one(zone, item) for item in when.ravel()]
    return [_night_of_one(zone, item) for item in when]
