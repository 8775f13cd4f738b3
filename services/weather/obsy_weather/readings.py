"""The latest reading of every quantity from every source, merged into one normalised view.

Sources put :class:`Sample` objects in; :meth:`ReadingStore.current` answers, for a given
moment, one :class:`Current` per quantity: the freshest sample that is not stale (a sample
is stale once it is older than its source's ``max_age``), or the freshest stale one when
nothing fresh is left, so the state still shows what was last known and how old it is.

Rain is the exception: any fresh source that says it rains wins (a rate above zero counts
as rain), because one dry sensor must not hide a wet one. Quantities no source supplies
are derived: dew point (Magnus), dew point margin, sky minus ambient, and rain from a rate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from obsy.messages import Reading
from obsy_weather.quantities import QUANTITIES, dew_point


@dataclass(frozen=True)
class Sample:
    """One normalised value as a source delivered it (canonical unit)."""

    quantity: str
    value: float | bool
    source: str
    measured_at: datetime
    max_age: float


@dataclass(frozen=True)
class Current:
    """What is known about one quantity at a given moment."""

    quantity: str
    value: float | bool
    source: str
    measured_at: datetime
    age_s: float
    max_age: float

    @property
    def stale(self) -> bool:
        return self.age_s > self.max_age

    def to_reading(self) -> Reading:
        return Reading(
            value=self.value,
            unit=QUANTITIES[self.quantity].unit,
            source=self.source,
            measured_at=self.measured_at,
            age_s=round(self.age_s, 1),
            stale=self.stale,
        )


def _current(sample: Sample, now: datetime) -> Current:
    age = max(0.0, (now - sample.measured_at).total_seconds())
    return Current(sample.quantity, sample.value, sample.source, sample.measured_at, age, sample.max_age)


def _freshest(candidates: Iterable[Current]) -> Current | None:
    items = list(candidates)
    fresh = [c for c in items if not c.stale]
    pool = fresh or items
    return min(pool, key=lambda c: c.age_s) if pool else None


def _combine(quantity: str, inputs: list[Current], compute: Callable[..., float]) -> Current:
    """A derived value: as old as its oldest input, stale as soon as any input is."""
    oldest = max(inputs, key=lambda c: c.age_s)
    value = round(compute(*(float(c.value) for c in inputs)), 2)
    limit = min(c.max_age - c.age_s for c in inputs) + oldest.age_s  # stale exactly when the first input is
    sources = "+".join(dict.fromkeys(c.source for c in inputs))
    return Current(quantity, value, f"computed({sources})", oldest.measured_at, oldest.age_s, limit)


def _prefer(direct: Current | None, computed: Current | None) -> Current | None:
    for candidate in (direct, computed):
        if candidate is not None and not candidate.stale:
            return candidate
    return direct or computed


class ReadingStore:
    """Thread-safe: sources put from their own threads, the service reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, str], Sample] = {}

    def put(self, sample: Sample) -> None:
        with self._lock:
            self._samples[(sample.quantity, sample.source)] = sample

    def current(self, now: datetime) -> dict[str, Current]:
        with self._lock:
            samples = list(self._samples.values())
        by_quantity: dict[str, list[Current]] = {}
        for sample in samples:
            by_quantity.setdefault(sample.quantity, []).append(_current(sample, now))
        merged: dict[str, Current] = {}
        for name, candidates in by_quantity.items():
            if name != "rain":
                chosen = _freshest(candidates)
                if chosen is not None:
                    merged[name] = chosen
        rain = self._rain(by_quantity.get("rain", []), by_quantity.get("rain_rate", []))
        if rain is not None:
            merged["rain"] = rain
        self._derive(merged)
        return {name: merged[name] for name in QUANTITIES if name in merged}

    @staticmethod
    def _rain(flags: list[Current], rates: list[Current]) -> Current | None:
        from_rates = [replace(c, quantity="rain", value=float(c.value) > 0) for c in rates]
        candidates = flags + from_rates
        wet = [c for c in candidates if c.value is True and not c.stale]
        return _freshest(wet) if wet else _freshest(candidates)

    @staticmethod
    def _derive(merged: dict[str, Current]) -> None:
        temperature, humidity = merged.get("ambient_temperature"), merged.get("humidity")
        if temperature and humidity:
            computed = _combine("dew_point", [temperature, humidity], dew_point)
            chosen = _prefer(merged.get("dew_point"), computed)
            if chosen is not None:
                merged["dew_point"] = chosen
        if temperature and "dew_point" in merged and "dew_point_margin" not in merged:
            merged["dew_point_margin"] = _combine(
                "dew_point_margin", [temperature, merged["dew_point"]], lambda t, d: t - d
            )
        sky = merged.get("sky_temperature")
        if sky and temperature:
            computed = _combine("sky_minus_ambient", [sky, temperature], lambda s, t: s - t)
            chosen = _prefer(merged.get("sky_minus_ambient"), computed)
            if chosen is not None:
                merged["sky_minus_ambient"] = chosen
