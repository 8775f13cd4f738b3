"""Time-binning of a night's observations, as AAVSO observers bin a fast series before reporting it.

Consecutive observations of one filter, measured against the same comparison star(s), check star
and chart (and equally transformed or not) are grouped by a number of frames or by a time span
from the group's first frame. A bin is reported as one line:

* DATE: the mean of its dates (the bin's mid-time);
* MAG: the mean weighted by 1/σ²; MERR: the propagated error ``1/sqrt(Σ 1/σ²)`` (σ/sqrt(n) for
  equal errors). Not the points' scatter: a variable changes within a bin (0.1 mag in 10 minutes is
  common), and that change is no error of the mean at the mean time. Where a point has no error,
  the plain mean and its standard error ``s/sqrt(n)``. A bin smooths what the star does within it:
  bin over a span short against its variation;
* CMAG, KMAG, AMASS: the means;
* NOTES: ``|BINNED=n`` (how many frames it holds), the points' own notes kept where they agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from obsy_imaging.photometry.aavso import Observation

SECONDS_PER_DAY = 86400.0


def bin_observations(
    observations: Iterable[Observation], *, frames: int | None = None, minutes: float | None = None
) -> list[Observation]:
    """The observations in bins of ``frames`` consecutive frames, or of the frames within ``minutes``
    of each bin's first; unchanged when neither is given. Sorted by date."""
    ordered = sorted(observations, key=lambda o: o.date)
    if frames is None and minutes is None:
        return ordered
    if frames is not None and frames < 1:
        raise ValueError(f"a bin holds at least one frame, not {frames}")
    if minutes is not None and minutes <= 0:
        raise ValueError(f"a bin spans a positive time, not {minutes} minutes")
    groups: list[list[Observation]] = []
    for o in ordered:
        current = groups[-1] if groups else None
        if current is not None and _same_series(current[0], o) and _fits(current, o, frames, minutes):
            current.append(o)
        else:
            groups.append([o])
    return sorted((mean_observation(g) for g in groups), key=lambda o: o.date)


def _same_series(a: Observation, b: Observation) -> bool:
    """Whether two observations may share a bin (one filter, comparison, check star, chart, system)."""
    if a.fainter_than or b.fainter_than:  # a limit is no measurement to average
        return False
    return (a.name, a.filter, a.comparison, a.check, a.chart, a.transformed, a.mtype, a.group) == (
        b.name,
        b.filter,
        b.comparison,
        b.check,
        b.chart,
        b.transformed,
        b.mtype,
        b.group,
    )


def _fits(group: list[Observation], o: Observation, frames: int | None, minutes: float | None) -> bool:
    if frames is not None and len(group) >= frames:
        return False
    return minutes is None or (o.date - group[0].date) * SECONDS_PER_DAY / 60.0 <= minutes


def mean_observation(group: list[Observation]) -> Observation:
    """One line for a bin of observations (the observation itself when it is alone)."""
    if len(group) == 1:
        return group[0]
    n = len(group)
    mags = np.array([o.mag for o in group])
    errors = [o.mag_err for o in group]
    if all(e is not None and e > 0 for e in errors):
        w = 1.0 / np.array(errors, dtype=float) ** 2
        mag = float(np.sum(w * mags) / np.sum(w))
        error = float(1.0 / math.sqrt(np.sum(w)))
    else:  # a point without an error: the plain mean, and the scatter alone says how good it is
        mag = float(np.mean(mags))
        error = float(np.std(mags, ddof=1) / math.sqrt(n))
    notes = {
        key: value
        for key, value in (group[0].notes or {}).items()
        if all((o.notes or {}).get(key) == value for o in group)
    }
    notes["BINNED"] = str(n)
    return replace(
        group[0],
        date=float(np.mean([o.date for o in group])),
        mag=mag,
        mag_err=error,
        comparison_instrumental=_mean([o.comparison_instrumental for o in group]),
        check_instrumental=_mean([o.check_instrumental for o in group]),
        airmass=_mean([o.airmass for o in group]),
        notes=notes,
    )


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(known)) if len(known) == len(values) else None
