"""Sun and Moon for the dashboard, from obsy.astro, recomputed at most once a minute."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from obsy import astro
from obsy.config import SiteConfig

log = logging.getLogger("obsy.web.sky")


class SkyNow:
    def __init__(self, site: SiteConfig, max_age_s: float = 60.0) -> None:
        self.site = site
        self.max_age_s = max_age_s
        self._value: dict[str, Any] | None = None
        self._computed_at = 0.0
        self._lock = threading.Lock()

    def compute(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        sun = astro.sun_altaz(self.site, now)
        moon = astro.moon_altaz(self.site, now)
        phase = astro.moon_phase(now)
        night = astro.twilight(self.site, astro.night_of(self.site, now))

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "time": now.isoformat(),
            "sun": {"altitude": round(float(sun.alt), 2), "azimuth": round(float(sun.az), 2)},
            "moon": {
                "altitude": round(float(moon.alt), 2),
                "azimuth": round(float(moon.az), 2),
                "illumination": round(float(phase.illumination), 3),
                "phase": str(phase.name),
                "waxing": bool(phase.waxing),
            },
            "night": {
                "date": night.night.isoformat(),
                "sunset": iso(night.sunset),
                "astronomical_dusk": iso(night.astronomical_dusk),
                "astronomical_dawn": iso(night.astronomical_dawn),
                "sunrise": iso(night.sunrise),
            },
        }

    def current(self) -> dict[str, Any] | None:
        """The cached value (None before the first computation); refreshed in the background when old."""
        if time.monotonic() - self._computed_at > self.max_age_s and self._lock.acquire(blocking=False):
            self._computed_at = time.monotonic()
            threading.Thread(target=self._refresh, name="web-sky", daemon=True).start()
        return self._value

    def _refresh(self) -> None:
        try:
            self._value = self.compute()
        except Exception:  # astronomy must never break the status page
            log.exception("cannot compute the sun and moon positions")
        finally:
            self._lock.release()


def altitude_curves(
    site: astro.SiteLike,
    start: datetime,
    end: datetime,
    targets: Iterable[tuple[str, str, float, float]],
    step_min: int = 10,
) -> dict[str, Any]:
    """Altitudes (degrees) of ``(id, name, ra_deg, dec_deg)`` targets from ``start`` to ``end``."""
    from astropy import units as u
    from astropy.coordinates import AltAz, SkyCoord

    if start.tzinfo is None or end.tzinfo is None or end <= start or (end - start).total_seconds() > 2 * 86400:
        raise ValueError("start and end must be aware times less than two days apart, start first")
    times = astro.time_grid(start, end, step_min * 60.0)
    frame = AltAz(obstime=times, location=astro.location(site))
    result: dict[str, Any] = {"times": [t.isoformat() for t in times.to_datetime(timezone=UTC)], "targets": []}
    for target_id, name, ra, dec in targets:
        altitudes = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame).alt.deg
        result["targets"].append({"id": target_id, "name": name, "altitudes": np.round(altitudes, 2).tolist()})
    return result
