"""Time-series targets (variable stars): a visit every cadence within a window, not a number of frames.

A target with ``time_series`` (:class:`obsy.messages.TimeSeries`) is planned before the ordinary
targets and after the exoplanet transits, higher priority first:

* a **visit** takes ``frames_per_visit`` frames of each Light plan (``switch_overhead_s`` for the slew
  first); the first starts at the first grid time that is free (window open, every constraint of the
  target holding for the whole visit, no transit or earlier visit within ``switch_gap_s``), the next
  one ``cadence_min`` after that start, or at the first free time after it (a visit that cannot be
  made on time slips, and the cadence counts from when it was made);
* a cadence shorter than a visit plus Ekos's lead time (``switch_gap_s``) leaves no time to do
  anything else between visits: the frames then **follow one another** in one block per usable
  stretch of the window.

Visits are fixed-time blocks, like transits: the time of each and ``switch_gap_s`` around it is taken
from the ordinary targets, which fill the gaps between visits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from obsy.messages import ExposurePlan, FrameType, TimeSeries


@dataclass(frozen=True)
class Visit:
    """One stretch of a time series on the night grid (Unix seconds); ``rounds`` visits' worth of frames."""

    start: float
    end: float
    rounds: int


def visit_exposures(remaining: list[list], series: TimeSeries) -> list[tuple[ExposurePlan, int]]:
    """The frames of one visit: ``frames_per_visit`` of each Light plan, in plan order."""
    return [(plan, series.frames_per_visit) for plan, _ in remaining if plan.frame_type == FrameType.LIGHT]


def _unix(moment: datetime | None, default: float) -> float:
    return default if moment is None else moment.timestamp()


def free_mask(
    unix: np.ndarray,
    ok: np.ndarray,
    series: TimeSeries,
    *,
    busy: list[tuple[float, float]],
    gap_s: float,
    step_s: float,
) -> np.ndarray:
    """Grid times where a visit may run: the target usable, inside its window, clear of busy blocks."""
    free = ok & (unix >= _unix(series.window_start, -math.inf)) & (unix <= _unix(series.window_end, math.inf))
    for start, end in busy:
        free &= ~((unix > start - gap_s - step_s) & (unix < end + gap_s))
    return free


def plan_visits(
    unix: np.ndarray,
    free: np.ndarray,
    series: TimeSeries,
    *,
    visit_s: float,
    round_s: float,
    switch_overhead_s: float,
    switch_gap_s: float,
) -> list[Visit]:
    """The visits of one night on the grid ``unix`` where ``free`` holds.

    ``visit_s``: one visit with its slew; ``round_s``: one visit's frames alone (what each further
    round of a continuous block adds).
    """
    if unix.size == 0 or not free.any():
        return []
    step = float(unix[1] - unix[0]) if unix.size > 1 else 0.0
    window_end = min(_unix(series.window_end, math.inf), float(unix[-1]) + step)
    cadence_s = series.cadence_min * 60.0
    if cadence_s < visit_s + switch_gap_s:
        return _continuous(unix, free, window_end, round_s=round_s, switch_overhead_s=switch_overhead_s)
    visits = []
    t = -math.inf
    while True:
        start = _first_fit(unix, free, t, visit_s, window_end)
        if start is None:
            return visits
        visits.append(Visit(start, start + visit_s, 1))
        t = start + cadence_s


def _fits(unix: np.ndarray, free: np.ndarray, start: float, end: float) -> bool:
    """Every grid time from the last at or before ``start`` to the first at or after ``end`` is free."""
    a = int(np.searchsorted(unix, start, side="right")) - 1
    b = int(np.searchsorted(unix, end, side="left"))
    return a >= 0 and b < unix.size and bool(free[a : b + 1].all())


def _first_fit(unix: np.ndarray, free: np.ndarray, after: float, length: float, window_end: float) -> float | None:
    for k in np.flatnonzero(free & (unix >= after)):
        start = float(unix[k])
        if start + length > window_end:
            return None
        if _fits(unix, free, start, start + length):
            return start
    return None


def _continuous(
    unix: np.ndarray, free: np.ndarray, window_end: float, *, round_s: float, switch_overhead_s: float
) -> list[Visit]:
    """One block per free stretch, as many rounds of the visit's frames as fit after the slew."""
    padded = np.concatenate([[False], free, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    blocks = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        start, end = float(unix[a]), min(float(unix[b - 1]), window_end)
        rounds = math.floor((end - start - switch_overhead_s) / round_s + 1e-9)
        if rounds >= 1:
            blocks.append(Visit(start, start + switch_overhead_s + rounds * round_s, rounds))
    return blocks
