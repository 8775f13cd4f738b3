"""The safety verdict: limits with hysteresis, required data, and a delay before "safe".

* A limit trips (unsafe) as soon as a fresh value passes ``unsafe_above``/``unsafe_below``
  (or equals ``unsafe_if``) and clears only once a fresh value is back past
  ``safe_below``/``safe_above``. Between the two thresholds it keeps its state, so a value
  wobbling around one threshold cannot flap the verdict.
* A required quantity that is missing or stale is unsafe, with the reason. An optional
  one that goes missing keeps its last state: a tripped limit stays tripped until a fresh
  value clears it.
* Unsafe is immediate. Safe is said only after every condition has been fine for
  ``safe_delay`` seconds without interruption; any reason restarts the wait. The verdict's
  ``fine_since`` says when that wait began, so the MCP's own safe delay can overlap it
  instead of starting after it.

The evaluator keeps no clock of its own: every call passes ``now``, so tests drive time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from obsy.messages import SafetyReason, SafetyVerdict
from obsy_weather.config import WeatherLimitConfig
from obsy_weather.quantities import QUANTITIES
from obsy_weather.readings import Current


def _fmt(quantity: str, value: float | bool | None) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    unit = QUANTITIES[quantity].unit
    return f"{value:g} {unit}".rstrip()


class SafetyEvaluator:
    def __init__(self, limits: Mapping[str, WeatherLimitConfig], safe_delay: float) -> None:
        self.limits = dict(limits)
        self.safe_delay = safe_delay
        self._tripped: dict[str, SafetyReason] = {}
        self._fine_since: datetime | None = None
        self._verdict: SafetyVerdict | None = None

    @property
    def verdict(self) -> SafetyVerdict | None:
        return self._verdict

    def evaluate(self, readings: Mapping[str, Current], now: datetime) -> SafetyVerdict:
        reasons: list[SafetyReason] = []
        for quantity, limit in self.limits.items():
            reason = self._check(quantity, limit, readings.get(quantity))
            if reason is not None:
                reasons.append(reason)
        if reasons:
            self._fine_since = None
            safe = False
        else:
            if self._fine_since is None:
                self._fine_since = now
            waited = (now - self._fine_since).total_seconds()
            safe = waited >= self.safe_delay
            if not safe:
                reasons.append(
                    SafetyReason(
                        quantity="safe_delay",
                        message=f"conditions safe for {waited:.0f} s; {self.safe_delay:.0f} s needed before safe",
                        value=round(waited, 1),
                        limit=self.safe_delay,
                    )
                )
        previous = self._verdict
        since = previous.since if previous is not None and previous.safe == safe else now
        self._verdict = SafetyVerdict(
            safe=safe, reasons=reasons, since=since, fine_since=self._fine_since, timestamp=now
        )
        return self._verdict

    def _check(self, quantity: str, limit: WeatherLimitConfig, reading: Current | None) -> SafetyReason | None:
        if reading is None or reading.stale:
            if limit.required:
                return self._unknown(quantity, reading)
            tripped = self._tripped.get(quantity)
            if tripped is None:
                return None
            return tripped.model_copy(update={"message": f"{tripped.message} (last known; no fresh reading)"})
        value = reading.value
        trip = self._trips(limit, value)
        if trip is not None:
            self._tripped[quantity] = SafetyReason(
                quantity=quantity, message=f"{quantity} {_fmt(quantity, value)} {trip[0]}", value=value, limit=trip[1]
            )
        elif quantity in self._tripped:
            holding = self._holds(limit, value)
            if holding is None:
                del self._tripped[quantity]
            else:
                self._tripped[quantity] = SafetyReason(
                    quantity=quantity,
                    message=f"{quantity} {_fmt(quantity, value)}: {holding[0]} (hysteresis)",
                    value=value,
                    limit=holding[1],
                )
        return self._tripped.get(quantity)

    @staticmethod
    def _trips(limit: WeatherLimitConfig, value: float | bool) -> tuple[str, float | bool] | None:
        """(explanation, limit) when ``value`` makes the limit unsafe."""
        if limit.unsafe_if is not None:
            return ("is unsafe", limit.unsafe_if) if bool(value) == limit.unsafe_if else None
        number = float(value)
        if limit.unsafe_above is not None and number > limit.unsafe_above:
            return f"is above the limit {limit.unsafe_above:g}", limit.unsafe_above
        if limit.unsafe_below is not None and number < limit.unsafe_below:
            return f"is below the limit {limit.unsafe_below:g}", limit.unsafe_below
        return None

    @staticmethod
    def _holds(limit: WeatherLimitConfig, value: float | bool) -> tuple[str, float] | None:
        """(explanation, threshold) while a tripped limit has not yet cleared."""
        if limit.unsafe_if is not None:
            return None
        number = float(value)
        if limit.safe_below is not None and limit.unsafe_above is not None and number > limit.safe_below:
            return f"unsafe until at most {limit.safe_below:g}", limit.safe_below
        if limit.safe_above is not None and limit.unsafe_below is not None and number < limit.safe_above:
            return f"unsafe until at least {limit.safe_above:g}", limit.safe_above
        return None

    @staticmethod
    def _unknown(quantity: str, reading: Current | None) -> SafetyReason:
        if reading is None:
            return SafetyReason(quantity=quantity, message=f"{quantity}: no reading from any source (required)")
        return SafetyReason(
            quantity=quantity,
            message=(
                f"{quantity}: last reading from {reading.source} is {reading.age_s:.0f} s old,"
                f" older than its limit {reading.max_age:g} s (stale)"
            ),
            value=reading.value,
            limit=reading.max_age,
        )
