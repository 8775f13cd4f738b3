"""The transit windows of a night: which transits fall between two times, with their contacts
and the baseline to observe before and after.

An ephemeris counts in BJD_TDB (arrival at the solar-system barycentre); a night is clock time
(UTC) at the site. The two differ by the light travel time across the Earth's orbit (up to
±8.3 min, towards the target) and TDB − UTC (69 s now), so each window is given in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import astropy.units as u
from astropy.coordinates import EarthLocation
from astropy.time import Time, TimeDelta

from obsy.barycentre import light_travel_time_s
from obsy.transits.ephemeris import Ephemeris, EphemerisError

DAY_S = 86_400.0
GEOCENTRE = EarthLocation.from_geocentric(0.0, 0.0, 0.0, unit=u.m)


@dataclass(frozen=True)
class TransitWindow:
    """One predicted transit. ``*_bjd`` are BJD_TDB; the astropy times are UTC at the site."""

    planet: str
    epoch: int
    tc_bjd: float
    tc_err_days: float | None  # the ephemeris' uncertainty carried to this epoch
    ingress_bjd: float  # first contact (T1)
    egress_bjd: float  # fourth contact (T4)
    baseline_days: float  # observed before T1 and after T4
    tc_utc: Time
    ingress_utc: Time
    egress_utc: Time
    start_utc: Time  # T1 − baseline (and the timing uncertainty)
    end_utc: Time  # T4 + baseline (and the timing uncertainty)
    ingress_observed: bool  # T1 lies within the night asked about
    egress_observed: bool

    @property
    def complete(self) -> bool:
        """Both contacts fall in the night (the baseline may not)."""
        return self.ingress_observed and self.egress_observed


def bjd_tdb(t: Time, ra_deg: float, dec_deg: float, where: EarthLocation = GEOCENTRE) -> float:
    """BJD_TDB (a float JD) of a clock time at ``where`` for a target at ``ra_deg``, ``dec_deg``."""
    tdb = t.tdb
    return float(tdb.jd) + light_travel_time_s(tdb, ra_deg, dec_deg, where) / DAY_S


def utc_of_bjd(bjd: float, ra_deg: float, dec_deg: float, where: EarthLocation = GEOCENTRE) -> Time:
    """The UTC at ``where`` when light that reaches the barycentre at ``bjd`` (TDB) arrives."""
    t = Time(bjd, format="jd", scale="tdb")
    for _ in range(2):  # the light travel time changes by < 1 ms over its own size: two passes suffice
        t = Time(bjd, format="jd", scale="tdb") - TimeDelta(
            light_travel_time_s(t, ra_deg, dec_deg, where), format="sec"
        )
    return t.utc


def transits_between(
    ephemeris: Ephemeris,
    start: Time,
    end: Time,
    where: EarthLocation = GEOCENTRE,
    *,
    baseline_days: float = 1.0 / 24.0,
    timing_sigmas: float = 3.0,
) -> list[TransitWindow]:
    """Every transit with any part (T1 to T4) between ``start`` and ``end`` (UTC), in order.

    ``start_utc``/``end_utc`` of a window widen T1 and T4 by ``baseline_days`` and by
    ``timing_sigmas`` times the ephemeris' uncertainty at that epoch (a stale ephemeris drifts).
    Needs the target's coordinates (``ra``/``dec``) in the ephemeris.
    """
    if ephemeris.ra is None or ephemeris.dec is None:
        raise EphemerisError(f"{ephemeris.name}: no coordinates (ra, dec) to convert BJD_TDB to the site's time")
    if end <= start:
        return []
    ra, dec = ephemeris.ra, ephemeris.dec
    half = ephemeris.model_duration() / 2.0
    first_bjd = bjd_tdb(start, ra, dec, where)
    last_bjd = bjd_tdb(end, ra, dec, where)
    first = math.ceil((first_bjd - half - ephemeris.t0) / ephemeris.period)
    last = math.floor((last_bjd + half - ephemeris.t0) / ephemeris.period)
    windows = []
    for epoch in range(first, last + 1):
        tc, tc_err = ephemeris.predicted(epoch)
        ingress, egress = tc - half, tc + half
        if egress < first_bjd or ingress > last_bjd:
            continue
        pad = baseline_days + timing_sigmas * (tc_err or 0.0)
        windows.append(
            TransitWindow(
                planet=ephemeris.name,
                epoch=epoch,
                tc_bjd=tc,
                tc_err_days=tc_err,
                ingress_bjd=ingress,
                egress_bjd=egress,
                baseline_days=baseline_days,
                tc_utc=utc_of_bjd(tc, ra, dec, where),
                ingress_utc=utc_of_bjd(ingress, ra, dec, where),
                egress_utc=utc_of_bjd(egress, ra, dec, where),
                start_utc=utc_of_bjd(ingress - pad, ra, dec, where),
                end_utc=utc_of_bjd(egress + pad, ra, dec, where),
                ingress_observed=first_bjd <= ingress <= last_bjd,
                egress_observed=first_bjd <= egress <= last_bjd,
            )
        )
    return windows
