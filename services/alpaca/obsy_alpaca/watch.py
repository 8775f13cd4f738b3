"""What the Alpaca devices know of OBSY: the weather verdict, the readings, and how fresh they are.

The verdict counts as safe only while all of these hold (anything else is unsafe, as the
design's safety principles ask of every program that watches OBSY's verdict):

- the bus is connected;
- the weather service's availability is ``online``;
- a verdict has arrived and says safe;
- it is younger than ``max_age``. Its age is taken from the older of its own timestamp and
  the moment it arrived, so neither a retained verdict from long ago nor a weather host
  whose clock runs behind can pass for fresh.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from obsy.messages import Reading, SafetyVerdict, WeatherState, utc_now
from obsy.topics import ONLINE


@dataclass(frozen=True)
class Safety:
    safe: bool
    why: str
    """One line for people: the first reason it is unsafe, or "safe"."""


class VerdictWatch:
    """Thread-safe holder of the latest verdict, readings and weather availability."""

    def __init__(
        self, max_age: float, bus_connected: Callable[[], bool], clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.max_age = max_age
        self.bus_connected = bus_connected
        self.clock = clock
        self._lock = threading.Lock()
        self._verdict: SafetyVerdict | None = None
        self._verdict_received: datetime | None = None
        self._state: WeatherState | None = None
        self._weather_availability: str | None = None

    # --- inputs (bus thread) -------------------------------------------------------------
    def set_verdict(self, verdict: SafetyVerdict) -> None:
        with self._lock:
            self._verdict, self._verdict_received = verdict, self.clock()

    def set_state(self, state: WeatherState) -> None:
        with self._lock:
            self._state = state

    def set_weather_availability(self, value: str) -> None:
        with self._lock:
            self._weather_availability = value.strip()

    # --- what the devices ask (HTTP threads) ---------------------------------------------
    def verdict_age(self) -> float | None:
        """Seconds since the verdict was made or arrived, whichever is longer ago; None without one."""
        with self._lock:
            if self._verdict is None or self._verdict_received is None:
                return None
            oldest = min(self._verdict.timestamp, self._verdict_received)
        return (self.clock() - oldest).total_seconds()

    def freshness_problem(self) -> str | None:
        """Why nothing from the weather service can be trusted now, or None when it can."""
        age = self.verdict_age()
        with self._lock:
            verdict, availability = self._verdict, self._weather_availability
        if not self.bus_connected():
            return "not connected to the MQTT broker"
        if availability != ONLINE:
            return f"weather service is {availability or 'not heard from'}"
        if verdict is None or age is None:
            return "no weather verdict yet"
        if age > self.max_age:
            return f"weather verdict is stale ({age:.0f} s old, limit {self.max_age:.0f} s)"
        return None

    def safety(self) -> Safety:
        problem = self.freshness_problem()
        if problem is not None:
            return Safety(False, problem)
        with self._lock:
            verdict = self._verdict
        assert verdict is not None  # freshness_problem() says so
        if not verdict.safe:
            return Safety(False, "unsafe: " + (verdict.reasons[0].message if verdict.reasons else "no reason given"))
        return Safety(True, "safe")

    def reading(self, quantity: str) -> Reading | None:
        """The latest reading of a quantity, stale or not; None when the weather service never sent one."""
        with self._lock:
            return self._state.readings.get(quantity) if self._state is not None else None
