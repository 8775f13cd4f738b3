"""The night planner: visibility for every target at once, then a greedy, scored timeline.

1. :mod:`obsy_scheduler.sky` puts the Sun, the Moon and every target on one time grid
   (the Sun/Moon part is cached per night).
2. :mod:`obsy_scheduler.constraints` turns the constraints into one (targets x times)
   mask and a reason for every target left without any time.
3. The dispatcher walks through the night. At each decision time it scores every target
   that may start now and can stay at least its minimum time on target, with the rules
   of :mod:`obsy_scheduler.scoring` (N.I.N.A. Target Scheduler style), takes the best,
   gives it a block (until it sets or violates a constraint, is complete, or the block
   reaches ``max_block_min``), and decides again at the block's end. Every decision is a
   numpy operation over all candidates, so 1,000 targets cost little more than 10.

A block's exposures come from the target's exposure plans in their order, each plan
taking as many of its remaining frames as fit; ``exposure_overhead_s`` is added to every
exposure and ``switch_overhead_s`` to every change of target. A block of another target
starts no earlier than ``switch_gap_s`` after the previous block: Ekos rejects a job that
starts less than its "lead time" (5 minutes by default) after the previous one ends.

Exoplanet transits (:mod:`obsy_scheduler.transits`) go first: a target named after a planet
in the ephemerides is planned only at its transits, each as one uninterrupted block that
outranks every ordinary target. The time of those blocks, and ``switch_gap_s`` before and
after them, is taken from every other target before the dispatcher runs, so ordinary blocks
are planned around them.

Time-series targets (variable stars, :mod:`obsy_scheduler.series`) come next: a visit every
cadence within their window, fixed in time like transits and around them; the ordinary targets
fill the time between visits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from obsy import astro
from obsy.messages import ExposurePlan, PlannedBlock, PlanSite, SchedulerPlan, Target, TargetConstraints
from obsy.transits.ephemeris import Ephemeris
from obsy_scheduler import scoring
from obsy_scheduler import series as series_rules
from obsy_scheduler import transits as transit_rules
from obsy_scheduler.calibration import unavailable_reason
from obsy_scheduler.config import SchedulerConfig
from obsy_scheduler.constraints import TWILIGHT_SUN_ALTITUDE, Evaluation, evaluate, resolve
from obsy_scheduler.filters import FilterNames, UnknownFilterError
from obsy_scheduler.sky import NightSky, TargetTracks, night_sky


@dataclass
class Block:
    """One stretch of the night on one target."""

    target: Target
    constraints: TargetConstraints
    start: datetime
    end: datetime
    exposures: list[tuple[ExposurePlan, int]]  # (plan, frames to take in this block)
    expected_altitude: float
    min_altitude: float
    required_moon_separation: float  # the largest separation the constraints ask for during the block
    score: float
    transit: transit_rules.PredictedTransit | None = None  # set for the block of an exoplanet transit
    time_series: bool = False  # a visit of a time-series target: a fixed time, like a transit

    @property
    def exposure_count(self) -> int:
        return sum(count for _, count in self.exposures)


@dataclass
class Plan:
    """A planned night: the timeline, why others were left out, and the numbers behind it."""

    night: date
    blocks: list[Block]
    excluded: dict[str, str]
    dark_start: datetime | None
    dark_end: datetime | None
    dark_hours: float
    filled_fraction: float
    moon_illumination: float
    windows: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    transits: list[transit_rules.PredictedTransit] = field(default_factory=list)  # every transit of the night

    def to_message(
        self, trigger: str = "", schedule_path: str | None = None, site: astro.SiteLike | None = None
    ) -> SchedulerPlan:
        """The plan as the bus payload (``<prefix>/scheduler/plan``), naming ``site``'s position when given."""
        where = None
        if site is not None:
            elevation = float(getattr(site, "elevation", 0.0) or 0.0)
            zone = getattr(site, "timezone", None)
            where = PlanSite(latitude=site.latitude, longitude=site.longitude, elevation=elevation, timezone=zone)
        return SchedulerPlan(
            night=self.night.isoformat(),
            site=where,
            dark_start=self.dark_start,
            dark_end=self.dark_end,
            blocks=[
                PlannedBlock(
                    target_id=b.target.id,
                    target_name=b.target.name,
                    start=b.start,
                    end=b.end,
                    exposures=b.exposure_count,
                    expected_altitude=round(b.expected_altitude, 2),
                    min_altitude=round(b.min_altitude, 2),
                    score=round(b.score, 4),
                    transit=b.transit.planet if b.transit else None,
                    transit_partial=bool(b.transit and b.transit.status == transit_rules.PARTIAL),
                    time_series=b.time_series,
                )
                for b in self.blocks
            ],
            excluded=self.excluded,
            dark_hours=round(self.dark_hours, 3),
            filled_fraction=round(min(max(self.filled_fraction, 0.0), 1.0), 4),
            moon_illumination=round(self.moon_illumination, 3),
            trigger=trigger,
            ekos_schedule_path=schedule_path,
        )


@dataclass
class _Candidates:
    """The targets that take part in the dispatch, as parallel arrays."""

    targets: list[Target]
    constraints: list[TargetConstraints]
    remaining: list[list[list]]  # per target: [plan, frames still wanted] in plan order
    ra: np.ndarray
    dec: np.ndarray

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per target: frames wanted, frames acquired, minimum time (s), priority, shortest exposure (s)."""
        wanted = np.array([sum(p.count for p in t.exposure_plans) for t in self.targets], dtype=float)
        done = np.array([sum(p.acquired for p in t.exposure_plans) for t in self.targets], dtype=float)
        min_time_s = np.array([(c.min_time_on_target_min or 0.0) * 60.0 for c in self.constraints])
        priority = np.array([t.priority for t in self.targets], dtype=float)
        shortest = np.array([min(p.exposure_s for p, _ in plans) for plans in self.remaining])
        return wanted, done, min_time_s, priority, shortest

    def remaining_seconds(self, overhead_s: float) -> np.ndarray:
        return np.array([self.seconds_left(i, overhead_s) for i in range(len(self.remaining))])

    def seconds_left(self, i: int, overhead_s: float) -> float:
        """The time target ``i``'s remaining frames take."""
        return float(sum(n * (p.exposure_s + overhead_s) for p, n in self.remaining[i]))


@dataclass
class _NightState:
    """Everything the dispatcher and the summary share for one planning run."""

    night: date
    sky: NightSky
    tracks: TargetTracks
    evaluation: Evaluation
    ok: np.ndarray
    candidates: _Candidates
    excluded: dict[str, str]
    exposure_overhead_s: float
    fixed_starts: tuple[float, ...] = ()  # Unix times of transits and visits: the telescope leaves then


class Planner:
    """Plans nights for one site with one scheduler configuration."""

    def __init__(self, site: astro.SiteLike, settings: SchedulerConfig) -> None:
        self.site = site
        self.settings = settings

    def sky(self, night: date) -> NightSky:
        return night_sky(self.site, night, self.settings.grid_step_s)

    def plan(
        self,
        targets: Sequence[Target],
        night: date | None = None,
        now: datetime | None = None,
        filters: FilterNames | None = None,
        ephemerides: Mapping[str, Ephemeris] | None = None,
    ) -> Plan:
        """Plan ``night`` (default: the current one). With ``now``, nothing starts before it.

        With ``filters`` (the wheel's names), every exposure plan's filter is mapped onto the
        wheel, a plan without one gets ``ekos.default_filter``, and a target with a filter
        the wheel does not have is excluded with the reason. With ``ephemerides`` (planet name
        -> ephemeris), a target named after a planet is planned at its transits only.
        """
        if night is None:
            night = astro.night_of(self.site, now or datetime.now(UTC))
        sky = self.sky(night)
        excluded: dict[str, str] = {}
        ordinary: list[Target] = []
        series: list[Target] = []
        exoplanets: list[tuple[Target, Ephemeris]] = []
        keyed = transit_rules.by_key(ephemerides or {})
        for target in targets:
            eph = transit_rules.ephemeris_for(target, keyed) if keyed else None
            if eph is not None:
                exoplanets.append((target, eph))
            elif target.time_series is not None:
                series.append(target)
            else:
                ordinary.append(target)
        transit_blocks, predicted = self._transits(sky, exoplanets, excluded, filters, now)
        fixed_blocks = transit_blocks + self._series(
            sky, series, excluded, filters=filters, now=now, transit_blocks=transit_blocks
        )
        candidates = self._candidates(ordinary, excluded, filters)
        tracks = sky.targets(candidates.ra, candidates.dec)
        evaluation = evaluate(sky, tracks, candidates.constraints)
        for target, reason in zip(candidates.targets, evaluation.reasons, strict=True):
            if reason is not None:
                excluded[target.id] = reason
        ok = evaluation.ok
        if now is not None and sky.size:
            ok = ok & (sky.unix >= now.timestamp())[None, :]
        gap = self.settings.switch_gap_s
        for block in fixed_blocks:  # nothing else runs during a transit or visit, nor within the lead time around it
            start, end = block.start.timestamp(), block.end.timestamp()
            ok = ok & ~((sky.unix > start - gap - sky.step_s) & (sky.unix < end + gap))[None, :]
        state = _NightState(
            night,
            sky,
            tracks,
            evaluation,
            ok,
            candidates,
            excluded,
            self.settings.exposure_overhead_s,
            tuple(b.start.timestamp() for b in fixed_blocks),
        )
        blocks = sorted(self._dispatch(state) + fixed_blocks, key=lambda b: b.start)
        plan = self._summary(state, blocks)
        plan.transits = predicted
        return plan

    # ----------------------------------------------------------------- transits

    def _transits(
        self,
        sky: NightSky,
        exoplanets: list[tuple[Target, Ephemeris]],
        excluded: dict[str, str],
        filters: FilterNames | None,
        now: datetime | None,
    ) -> tuple[list[Block], list[transit_rules.PredictedTransit]]:
        """The night's transits judged at the site, and a block for each one planned."""
        if not exoplanets:
            return [], []
        ephemerides = {target.id: eph for target, eph in exoplanets}
        # Frames already taken do not matter: every transit is a new observation.
        fresh = [
            target.model_copy(
                update={"exposure_plans": [p.model_copy(update={"acquired": 0}) for p in target.exposure_plans]}
            )
            for target, _ in exoplanets
        ]
        candidates = self._candidates(fresh, excluded, filters)
        tracks = sky.targets(candidates.ra, candidates.dec)
        evaluation = evaluate(sky, tracks, candidates.constraints)
        ok = evaluation.ok
        if now is not None and sky.size:
            ok = ok & (sky.unix >= now.timestamp())[None, :]
        s = self.settings
        where = transit_rules.site_location(self.site)
        predicted: list[transit_rules.PredictedTransit] = []
        index: dict[int, int] = {}  # id(predicted transit) -> candidate index
        for i, target in enumerate(candidates.targets):
            exposure = candidates.remaining[i][0][0]
            windows = transit_rules.windows_tonight(
                sky,
                ephemerides[target.id],
                where,
                baseline_min=s.transits.baseline_min,
                timing_sigmas=s.transits.timing_sigmas,
            )
            if not windows:
                excluded[target.id] = f"no transit of {ephemerides[target.id].name} this night"
            for window in windows:
                transit = transit_rules.judge(
                    sky,
                    tracks,
                    evaluation,
                    ok,
                    i,
                    target=target,
                    constraints=candidates.constraints[i],
                    window=window,
                    exposure=exposure,
                    exposure_overhead_s=s.exposure_overhead_s,
                    switch_overhead_s=s.switch_overhead_s,
                )
                predicted.append(transit)
                index[id(transit)] = i
        chosen = transit_rules.choose(predicted, s.switch_gap_s, s.transits.partial == "plan")
        blocks = [
            b
            for b in (
                self._transit_block(sky, tracks, evaluation, candidates, i=index[id(t)], transit=t) for t in chosen
            )
            if b
        ]
        planned = {b.target.id for b in blocks}
        for transit in predicted:
            target_id = transit.target.id
            if target_id in planned or transit.planned:
                continue
            why = transit.note or transit.reason or transit.status
            at = transit.window.tc_utc.to_datetime(timezone=UTC).strftime("%H:%M")
            excluded[target_id] = "; ".join(
                filter(None, [excluded.get(target_id), f"transit at {at} UTC ({transit.status}): {why}"])
            )
        return blocks, predicted

    def _transit_block(
        self,
        sky: NightSky,
        tracks: TargetTracks,
        evaluation: Evaluation,
        candidates: _Candidates,
        *,
        i: int,
        transit: transit_rules.PredictedTransit,
    ) -> Block | None:
        """The block of a chosen transit: the whole window, or the usable stretch of a partial one."""
        s = self.settings
        per_frame = transit.exposure.exposure_s + s.exposure_overhead_s
        start, frames = transit.start.timestamp(), transit.frames
        if transit.status == transit_rules.PARTIAL and transit.usable_start and transit.usable_end:
            start = transit.usable_start.timestamp()
            frames = math.floor((transit.usable_end.timestamp() - start - s.switch_overhead_s) / per_frame + 1e-9)
            if frames < 1:
                transit.planned = False
                transit.note = "its observable part is too short for one frame"
                return None
        end = start + s.switch_overhead_s + frames * per_frame
        return _fixed_block(
            sky, tracks, evaluation, candidates, i=i, start=start, end=end, exposures=[(transit.exposure, frames)],
            transit=transit,
        )  # fmt: skip

    # ----------------------------------------------------------------- time series

    def _series(
        self,
        sky: NightSky,
        targets: list[Target],
        excluded: dict[str, str],
        *,
        filters: FilterNames | None,
        now: datetime | None,
        transit_blocks: list[Block],
    ) -> list[Block]:
        """The visits of the time-series targets, higher priority first, around the transits and
        each other."""
        if not targets:
            return []
        s = self.settings
        # A time series is never complete: the frames already taken do not count.
        fresh = [
            t.model_copy(update={"exposure_plans": [p.model_copy(update={"acquired": 0}) for p in t.exposure_plans]})
            for t in sorted(targets, key=lambda t: -t.priority)
        ]
        candidates = self._candidates(fresh, excluded, filters)
        tracks = sky.targets(candidates.ra, candidates.dec)
        evaluation = evaluate(sky, tracks, candidates.constraints)
        ok = evaluation.ok
        if now is not None and sky.size:
            ok = ok & (sky.unix >= now.timestamp())[None, :]
        busy = [(b.start.timestamp(), b.end.timestamp()) for b in transit_blocks]
        blocks: list[Block] = []
        for i, target in enumerate(candidates.targets):
            series = target.time_series
            assert series is not None
            exposures = series_rules.visit_exposures(candidates.remaining[i], series)
            if not exposures:
                excluded[target.id] = "a time series needs a Light exposure plan"
                continue
            round_s = sum(n * (p.exposure_s + s.exposure_overhead_s) for p, n in exposures)
            free = series_rules.free_mask(sky.unix, ok[i], series, busy=busy, gap_s=s.switch_gap_s, step_s=sky.step_s)
            visits = series_rules.plan_visits(
                sky.unix,
                free,
                series,
                visit_s=s.switch_overhead_s + round_s,
                round_s=round_s,
                switch_overhead_s=s.switch_overhead_s,
                switch_gap_s=s.switch_gap_s,
            )
            if not visits:
                excluded[target.id] = excluded.get(target.id) or (
                    "time series: no usable time in its window tonight" if ok[i].any() else "no usable time tonight"
                )
                continue
            for visit in visits:
                busy.append((visit.start, visit.end))
                taken = [(plan, n * visit.rounds) for plan, n in exposures]
                blocks.append(
                    _fixed_block(sky, tracks, evaluation, candidates, i=i, start=visit.start, end=visit.end,
                                 exposures=taken)
                )  # fmt: skip
        return blocks

    # ----------------------------------------------------------------- preparation

    def _candidates(
        self, targets: Sequence[Target], excluded: dict[str, str], filters: FilterNames | None
    ) -> _Candidates:
        chosen: list[Target] = []
        resolved: list[TargetConstraints] = []
        remaining: list[list[list]] = []
        seen: dict[str, int] = {}
        for target in targets:
            if target.id in seen:  # keyed apart, so that the first one's entry stays true
                seen[target.id] += 1
                excluded[f"{target.id} (duplicate {seen[target.id]})"] = (
                    "duplicate target id: only the first is planned"
                )
                continue
            seen[target.id] = 1
            if not target.enabled:
                excluded[target.id] = "disabled"
                continue
            if not target.exposure_plans:
                excluded[target.id] = "no exposure plans"
                continue
            wanted = [
                [plan, plan.count - plan.acquired] for plan in target.exposure_plans if plan.count > plan.acquired
            ]
            if not wanted:
                excluded[target.id] = "complete: every exposure plan has all its frames"
                continue
            missing = unavailable_reason({plan.frame_type for plan, _ in wanted}, self.settings.ekos.calibration)
            if missing:
                excluded[target.id] = missing
                continue
            if filters is not None:
                try:
                    wanted = [[self._on_wheel(plan, filters), frames] for plan, frames in wanted]
                except UnknownFilterError as exc:
                    excluded[target.id] = str(exc)
                    continue
            try:
                constraints = resolve(self.settings.constraints, target.constraints)
            except ValueError as exc:
                excluded[target.id] = str(exc)
                continue
            chosen.append(target)
            resolved.append(constraints)
            remaining.append(wanted)
        return _Candidates(
            chosen,
            resolved,
            remaining,
            np.array([t.ra_deg for t in chosen], dtype=float),
            np.array([t.dec_deg for t in chosen], dtype=float),
        )

    def _on_wheel(self, plan: ExposurePlan, filters: FilterNames) -> ExposurePlan:
        """The plan with its filter as the wheel names it (the default filter when it names none)."""
        name = filters.resolve(plan.filter or self.settings.ekos.default_filter)
        return plan if name == plan.filter else plan.model_copy(update={"filter": name})

    # ----------------------------------------------------------------- dispatch

    def _dispatch(self, state: _NightState) -> list[Block]:
        sky, tracks, evaluation, candidates = state.sky, state.tracks, state.evaluation, state.candidates
        ok = state.ok
        n, size = ok.shape
        if n == 0 or size == 0:
            return []
        step = sky.step_s
        s = self.settings
        overhead, switch = s.exposure_overhead_s, s.switch_overhead_s
        ok = ok.copy()
        remaining_s = candidates.remaining_seconds(overhead)
        wanted_total, done, min_time_s, priority, shortest_exposure = candidates.arrays()
        run_end = _run_ends(ok)
        visible_left = np.cumsum(ok[:, ::-1], axis=1)[:, ::-1]
        rules = scoring.Rules.from_config(s.weights)

        # Between blocks, a target that cannot start at t cannot start later in the same usable
        # run either (less time is left in it), so the next decision worth making is at the
        # start of some target's next run, or when the lead time after the last block is over.
        run_starts = np.flatnonzero((ok & ~np.pad(ok, ((0, 0), (1, 0)))[:, :-1]).any(axis=0))

        blocks: list[Block] = []
        current = -1
        others_from = -np.inf  # when a block of another target may start
        t = int(run_starts[0]) if run_starts.size else size
        while t < size:
            current = _after_fixed_blocks(state, current, others_from - s.switch_gap_s, float(sky.unix[t]))
            idx = np.flatnonzero(ok[:, t] & (remaining_s > 0))
            waiting = sky.unix[t] < others_from
            if waiting:  # Ekos needs its lead time before a job of another target
                idx = idx[idx == current]
            switch_cost = np.where(idx == current, 0.0, switch)
            available = (run_end[idx, t] - t) * step - switch_cost
            needed = np.maximum(np.minimum(min_time_s[idx], remaining_s[idx]), shortest_exposure[idx] + overhead)
            idx = idx[available >= needed]
            if idx.size == 0:
                later = run_starts[np.searchsorted(run_starts, t, side="right") :]
                t = int(later[0]) if later.size else size
                if waiting:
                    t = min(t, int(np.searchsorted(sky.unix, others_from)))
                continue
            scores = rules.score(
                priority=priority[idx],
                visible_fraction_left=visible_left[idx, t] / (size - t),
                complete_fraction=np.minimum(done[idx] / np.maximum(wanted_total[idx], 1.0), 1.0),
                hour_angle=tracks.hour_angle[idx, t],
                is_current=idx == current,
                moon_up=bool(sky.moon_alt[t] >= 0),
                moon_separation=evaluation.moon_separation[idx, t],
                required_separation=evaluation.required_moon_separation[idx, t],
            )
            best = int(idx[int(np.argmax(scores))])
            start_cost = 0.0 if best == current else switch
            budget = min((run_end[best, t] - t) * step - start_cost, s.max_block_min * 60.0 - start_cost)
            taken = _take_exposures(candidates.remaining[best], budget, overhead)
            if not taken:
                ok[best, t] = False  # not even one exposure fits from here
                continue
            block = _make_block(state, best, t, start_cost=start_cost, taken=taken, score=float(scores.max()))
            blocks.append(block)
            frames = sum(count for _, count in taken)
            done[best] += frames
            remaining_s[best] = candidates.seconds_left(best, overhead)
            current = best
            others_from = block.end.timestamp() + s.switch_gap_s
            t = max(t + 1, int(np.searchsorted(sky.unix, block.end.timestamp() - 1e-6)))
        return blocks

    # ----------------------------------------------------------------- summary

    def _summary(self, state: _NightState, blocks: list[Block]) -> Plan:
        sky, candidates, ok, excluded = state.sky, state.candidates, state.ok, state.excluded
        step = sky.step_s
        planned_ids = {b.target.id for b in blocks}
        windows: dict[str, list[tuple[datetime, datetime]]] = {}
        for i, target in enumerate(candidates.targets):
            runs = _runs(ok[i])
            windows[target.id] = [
                (sky.datetime_at(sky.unix[a]), sky.datetime_at(sky.unix[b - 1] + step)) for a, b in runs
            ]
            if target.id in planned_ids or target.id in excluded:
                continue
            longest = max(((b - a) * step for a, b in runs), default=0.0)
            minimum = candidates.constraints[i].min_time_on_target_min or 0.0
            if longest == 0:
                excluded[target.id] = "no usable time left tonight"
            elif longest < minimum * 60.0 + self.settings.switch_overhead_s:
                excluded[target.id] = (
                    f"usable for at most {longest / 60:.0f} min at a time, less than the minimum time on target "
                    f"({minimum:g} min) plus the target switch"
                )
            else:
                total = sum((b - a) * step for a, b in runs) / 3600.0
                excluded[target.id] = f"usable {total:.1f} h, but that time went to higher-scoring targets"

        darkest = min(
            (TWILIGHT_SUN_ALTITUDE[c.twilight or "astronomical"] for c in candidates.constraints),
            default=TWILIGHT_SUN_ALTITUDE[self.settings.constraints.twilight or "astronomical"],
        )
        dark = sky.sun_alt < darkest
        dark_runs = _runs(dark)
        dark_start = sky.datetime_at(sky.unix[dark_runs[0][0]]) if dark_runs else None
        dark_end = sky.datetime_at(sky.unix[dark_runs[-1][1] - 1] + step) if dark_runs else None
        dark_hours = float(dark.sum()) * step / 3600.0
        planned_hours = sum((b.end - b.start).total_seconds() for b in blocks) / 3600.0
        return Plan(
            night=state.night,
            blocks=blocks,
            excluded=excluded,
            dark_start=dark_start,
            dark_end=dark_end,
            dark_hours=dark_hours,
            filled_fraction=planned_hours / dark_hours if dark_hours else 0.0,
            moon_illumination=sky.moon_illumination,
            windows=windows,
        )


def _make_block(
    state: _NightState, best: int, t: int, *, start_cost: float, taken: list[tuple[ExposurePlan, int]], score: float
) -> Block:
    """The block for target ``best`` starting at grid index ``t`` with the frames ``taken``."""
    sky, alt = state.sky, state.tracks.alt[best]
    per_frame = state.exposure_overhead_s
    start = float(sky.unix[t])
    end = start + start_cost + sum(count * (plan.exposure_s + per_frame) for plan, count in taken)
    span = (sky.unix >= start) & (sky.unix <= end)
    return Block(
        target=state.candidates.targets[best],
        constraints=state.candidates.constraints[best],
        start=sky.datetime_at(start),
        end=sky.datetime_at(end),
        exposures=list(taken),
        expected_altitude=float(np.interp((start + end) / 2, sky.unix, alt)),
        min_altitude=float(alt[span].min() if span.any() else alt[t]),
        required_moon_separation=float(state.evaluation.required_moon_separation[best][span].max(initial=0.0)),
        score=score,
    )


def _fixed_block(
    sky: NightSky,
    tracks: TargetTracks,
    evaluation: Evaluation,
    candidates: _Candidates,
    *,
    i: int,
    start: float,
    end: float,
    exposures: list[tuple[ExposurePlan, int]],
    transit: transit_rules.PredictedTransit | None = None,
) -> Block:
    """A block at a fixed time: a transit's (with ``transit``), else a time series' visit."""
    span = (sky.unix >= start) & (sky.unix <= end)
    alt = tracks.alt[i]
    return Block(
        target=candidates.targets[i],
        constraints=candidates.constraints[i],
        start=sky.datetime_at(start),
        end=sky.datetime_at(end),
        exposures=exposures,
        expected_altitude=float(np.interp((start + end) / 2, sky.unix, alt)),
        min_altitude=float(alt[span].min() if span.any() else np.interp(start, sky.unix, alt)),
        required_moon_separation=float(evaluation.required_moon_separation[i][span].max(initial=0.0)),
        score=1.0,
        transit=transit,
        time_series=transit is None,
    )


def _after_fixed_blocks(state: _NightState, current: int, last_end: float, now: float) -> int:
    """The current target, or -1 when a transit or a visit began since its last block ended at
    ``last_end``: the telescope has left it, so coming back costs a slew again."""
    if current >= 0 and any(last_end <= start <= now for start in state.fixed_starts):
        return -1
    return current


def _run_ends(ok: np.ndarray) -> np.ndarray:
    """For every (target, time): the index one past the end of the usable run containing it."""
    n, size = ok.shape
    index = np.broadcast_to(np.arange(size), (n, size))
    first_bad = np.where(ok, size, index)
    return np.minimum.accumulate(first_bad[:, ::-1], axis=1)[:, ::-1]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs (end exclusive) of the True runs of a 1-D mask."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _take_exposures(remaining: list[list], budget_s: float, overhead_s: float) -> list[tuple[ExposurePlan, int]]:
    """Frames that fit into ``budget_s``, from the plans in order; updates ``remaining``."""
    taken: list[tuple[ExposurePlan, int]] = []
    for entry in remaining:
        plan, left = entry
        if left <= 0 or budget_s <= 0:
            continue
        per = plan.exposure_s + overhead_s
        count = min(left, math.floor(budget_s / per + 1e-9))
        if count <= 0:
            continue
        taken.append((plan, count))
        entry[1] -= count
        budget_s -= count * per
    return taken
