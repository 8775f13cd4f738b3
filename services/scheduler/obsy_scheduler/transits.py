"""Exoplanet transits at the site for one night: which are observable, partly or not at all, and why.

A target is an exoplanet target when its name is a planet's ``pl_name`` in the ephemeris file
(``scheduler.transits.ephemeris_file``, a NASA Exoplanet Archive CSV export), compared without
case, blanks and punctuation ("WASP-12 b" = "wasp12b"). Its exposure plans give the exposure,
filter, binning, gain and offset of the transit frames; their counts are not used (every transit
is a new observation).

Each transit's window runs from ingress (T1) less the baseline to egress (T4) plus the baseline,
widened by ``timing_sigmas`` of the ephemeris at that epoch (:func:`obsy.transits.predict.transits_between`);
the block that observes it starts ``switch_overhead_s`` earlier (slew, plate solve, guiding) and
takes ``ceil(window / (exposure + exposure_overhead_s))`` frames. The block is judged on the
planner's night grid with the target's constraints (:func:`obsy_scheduler.constraints.evaluate`:
darkness, altitude floor, airmass, Moon): every grid time from the last one at or before its
start to the first one at or after its end must be usable for it to be *observable*; if only
some are, it is *partial*; if none, *unobservable*. The grid (``grid_step_s``, 2 min) makes the
judgement conservative by at most one step at each end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation
from astropy.time import Time

from obsy import astro
from obsy.messages import ExposurePlan, FrameType, Target, TargetConstraints
from obsy.transits.ephemeris import Ephemeris, EphemerisError, EphemerisTable, read_archive_csv
from obsy.transits.predict import TransitWindow, transits_between
from obsy_scheduler.constraints import TWILIGHT_SUN_ALTITUDE, Evaluation
from obsy_scheduler.sky import NightSky, TargetTracks

OBSERVABLE = "observable"
PARTIAL = "partial"
UNOBSERVABLE = "unobservable"


def planet_key(name: str) -> str:
    """A planet or target name compared without case, blanks and punctuation."""
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


def by_key(ephemerides: Mapping[str, Ephemeris]) -> dict[str, Ephemeris]:
    """The ephemerides keyed by :func:`planet_key` of their planet's name."""
    return {planet_key(name): eph for name, eph in ephemerides.items()}


def ephemeris_for(target: Target, keyed: Mapping[str, Ephemeris]) -> Ephemeris | None:
    """The ephemeris (from :func:`by_key`) of the planet the target is named after, with the
    target's coordinates where the table has none; None for an ordinary target."""
    eph = keyed.get(planet_key(target.name))
    if eph is None:
        return None
    if eph.ra is None or eph.dec is None:
        eph = replace(eph, ra=target.ra_deg, dec=target.dec_deg)
    return eph


def transit_exposure(target: Target) -> ExposurePlan | None:
    """The exposure plan transit frames are taken with: the target's first Light plan."""
    return next((p for p in target.exposure_plans if p.frame_type == FrameType.LIGHT), None)


@dataclass
class PredictedTransit:
    """One transit of one planet in the night, judged at the site.

    ``start``/``end`` are the block that observes it (the slew before the window included,
    frames to the end of the window); ``usable_start``/``usable_end`` the longest stretch of
    it where every constraint holds (None when there is none).
    """

    target: Target
    window: TransitWindow
    status: str  # OBSERVABLE, PARTIAL or UNOBSERVABLE
    reason: str | None
    start: datetime
    end: datetime
    frames: int
    exposure: ExposurePlan
    usable_start: datetime | None = None
    usable_end: datetime | None = None
    min_altitude: float | None = None
    planned: bool = False
    note: str | None = None  # why an observable transit was not planned (an overlap, partial skipped)

    @property
    def planet(self) -> str:
        return self.window.planet


@dataclass
class EphemerisFile:
    """The ephemeris file, read again only when it changes (size or modification time)."""

    path: Path
    _stamp: tuple[int, int] | None = field(default=None, init=False)
    _table: EphemerisTable | None = field(default=None, init=False)

    def table(self) -> EphemerisTable:
        """The ephemerides by planet name; ``EphemerisError`` when the file cannot be read or used."""
        try:
            stat = self.path.expanduser().stat()
        except OSError as exc:
            raise EphemerisError(f"cannot read the ephemeris file {self.path}: {exc.strerror or exc}") from None
        stamp = (stat.st_size, stat.st_mtime_ns)
        if self._table is None or stamp != self._stamp:
            self._table = read_archive_csv(self.path.expanduser())
            self._stamp = stamp
        return self._table


def site_location(site: astro.SiteLike) -> EarthLocation:
    return EarthLocation.from_geodetic(
        float(site.longitude) * u.deg, float(site.latitude) * u.deg, float(site.elevation) * u.m
    )


def judge(
    sky: NightSky,
    tracks: TargetTracks,
    evaluation: Evaluation,
    ok: np.ndarray,
    index: int,
    *,
    target: Target,
    constraints: TargetConstraints,
    window: TransitWindow,
    exposure: ExposurePlan,
    exposure_overhead_s: float,
    switch_overhead_s: float,
) -> PredictedTransit:
    """One transit window judged on the grid for candidate ``index`` (``ok``: its usable times)."""
    window_start = float(window.start_utc.unix)
    window_end = float(window.end_utc.unix)
    per_frame = exposure.exposure_s + exposure_overhead_s
    frames = max(1, math.ceil((window_end - window_start) / per_frame - 1e-9))
    start = window_start - switch_overhead_s
    end = window_start + frames * per_frame
    span = _span(sky, start, end)
    usable = ok[index, span]
    alt = tracks.alt[index, span]
    result = PredictedTransit(
        target=target,
        window=window,
        status=UNOBSERVABLE,
        reason=None,
        start=sky.datetime_at(start),
        end=sky.datetime_at(end),
        frames=frames,
        exposure=exposure,
        min_altitude=float(alt.min()) if alt.size else None,
    )
    if not usable.size:
        result.reason = "outside this night"
    elif usable.all():
        result.status = OBSERVABLE
    else:
        result.status = PARTIAL if usable.any() else UNOBSERVABLE
        result.reason = _why(sky, tracks, evaluation, index, span, constraints=constraints)
    if usable.any():
        a, b = _longest_run(usable)
        first = span.start + a
        last = span.start + b - 1
        result.usable_start = sky.datetime_at(max(float(sky.unix[first]), start))
        result.usable_end = sky.datetime_at(min(float(sky.unix[last]), end))
    return result


def _span(sky: NightSky, start: float, end: float) -> slice:
    """Grid indices from the last time at or before ``start`` to the first at or after ``end``."""
    first = max(int(np.searchsorted(sky.unix, start, side="right")) - 1, 0)
    last = min(int(np.searchsorted(sky.unix, end, side="left")), sky.size - 1)
    if sky.size == 0 or end < sky.unix[0] or start > sky.unix[-1]:
        return slice(0, 0)
    return slice(first, last + 1)


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs = list(zip(edges[::2], edges[1::2], strict=True))
    a, b = max(runs, key=lambda r: r[1] - r[0])
    return int(a), int(b)


def _why(
    sky: NightSky,
    tracks: TargetTracks,
    evaluation: Evaluation,
    i: int,
    span: slice,
    *,
    constraints: TargetConstraints,
) -> str:
    """What fails during the window, first cause first."""
    reasons = []
    if not evaluation.dark[i, span].all():
        reasons.append(
            f"the Sun is above {_twilight(constraints)} for part of the window (up to {sky.sun_alt[span].max():.1f}°)"
        )
    low = tracks.alt[i, span] < evaluation.floor[i, span]
    if low.any():
        reasons.append(
            f"the target is below its altitude limit for part of the window (lowest {tracks.alt[i, span].min():.1f}°)"
        )
    close = evaluation.moon_separation[i, span] < evaluation.required_moon_separation[i, span]
    if close.any():
        reasons.append(
            f"the Moon is closer than {evaluation.required_moon_separation[i, span].max():.0f}° "
            f"(down to {evaluation.moon_separation[i, span].min():.0f}°)"
        )
    if not reasons and not evaluation.ok[i, span].all():
        reasons.append("a constraint of the target (Moon altitude, meridian window) fails for part of the window")
    if not reasons:
        reasons.append("part of the window is already past")
    return "; ".join(reasons)


def _twilight(constraints: TargetConstraints) -> str:
    level = constraints.twilight or "astronomical"
    return f"{TWILIGHT_SUN_ALTITUDE[level]:g}° ({level})"


def windows_tonight(
    sky: NightSky,
    ephemeris: Ephemeris,
    where: EarthLocation,
    *,
    baseline_min: float,
    timing_sigmas: float,
) -> list[TransitWindow]:
    """The planet's transits with any part in the night's grid (local noon to noon)."""
    if sky.size == 0:
        return []
    start = Time(float(sky.unix[0]), format="unix", scale="utc")
    end = Time(float(sky.unix[-1]) + sky.step_s, format="unix", scale="utc")
    return transits_between(
        ephemeris, start, end, where, baseline_days=baseline_min / 1440.0, timing_sigmas=timing_sigmas
    )


def choose(transits: Sequence[PredictedTransit], gap_s: float, plan_partial: bool) -> list[PredictedTransit]:
    """The transits to plan: observable ones (and partial ones with ``plan_partial``), higher
    priority first, then earlier; one that would come within ``gap_s`` of a chosen one is left out
    with a note. A partial transit is planned over its longest usable stretch, and only when that
    stretch holds ingress or egress."""
    candidates = []
    for transit in transits:
        if transit.status == OBSERVABLE:
            candidates.append(transit)
        elif transit.status == PARTIAL:
            if not plan_partial:
                transit.note = "partial transits are not planned (scheduler.transits.partial: skip)"
            elif _holds_a_contact(transit):
                candidates.append(transit)
            else:
                transit.note = "its observable part holds neither ingress nor egress"
    chosen: list[PredictedTransit] = []
    for transit in sorted(candidates, key=lambda t: (-t.target.priority, t.start)):
        start, end = _planned_span(transit)
        clash = next(
            (
                other
                for other in chosen
                if start.timestamp() < _planned_span(other)[1].timestamp() + gap_s
                and _planned_span(other)[0].timestamp() < end.timestamp() + gap_s
            ),
            None,
        )
        if clash is not None:
            transit.note = f"overlaps the transit of {clash.planet}, which goes first (priority, then time)"
            continue
        transit.planned = True
        chosen.append(transit)
    return sorted(chosen, key=lambda t: t.start)


def _holds_a_contact(transit: PredictedTransit) -> bool:
    if transit.usable_start is None or transit.usable_end is None:
        return False
    a, b = transit.usable_start.timestamp(), transit.usable_end.timestamp()
    contacts = (float(transit.window.ingress_utc.unix), float(transit.window.egress_utc.unix))
    return any(a <= c <= b for c in contacts)


def _planned_span(transit: PredictedTransit) -> tuple[datetime, datetime]:
    """The block a chosen transit gets: the whole of it, or for a partial one its usable stretch."""
    if transit.status == PARTIAL and transit.usable_start is not None and transit.usable_end is not None:
        return transit.usable_start, transit.usable_end
    return transit.start, transit.end
