"""Helpers for the weather service tests: a clock the test moves, and the service in a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from obsy.config import load_config
from obsy.messages import SafetyVerdict, WeatherState
from obsy_weather.service import WeatherService
from tests.support.configs import write_config
from tests.support.service_thread import ServiceThread
from tests.support.watcher import Watcher

SAFETY = "obsy/weather/safety"
STATE = "obsy/weather/state"


class FakeClock:
    """UTC time that moves only when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


class RunningWeather(ServiceThread):
    """The weather service under the real runner, on its own thread, with an injectable clock."""

    def __init__(
        self,
        tmp_path: Path,
        mosquitto: Any,
        clock: Callable[[], datetime] | None = None,
        sections: dict[str, Any] | None = None,
        **weather: Any,
    ):
        """``weather`` are the weather section's settings; ``sections`` other sections (indi, allsky)."""
        settings = {"heartbeat_interval": 1, **weather}
        path = write_config(tmp_path, mosquitto, weather=settings, run_dir=str(tmp_path), **(sections or {}))
        super().__init__(WeatherService, load_config(path), clock=clock)
        self.service: WeatherService = self.runner.service  # type: ignore[assignment]


def verdicts(watcher: Watcher) -> list[SafetyVerdict]:
    return [SafetyVerdict.model_validate_json(m.payload) for m in watcher.on(SAFETY) if m.payload]


def states(watcher: Watcher) -> list[WeatherState]:
    return [WeatherState.model_validate_json(m.payload) for m in watcher.on(STATE) if m.payload]


def wait_verdict(watcher: Watcher, predicate: Callable[[SafetyVerdict], bool], timeout: float = 15.0) -> SafetyVerdict:
    """Wait until the latest published verdict satisfies ``predicate``; return it."""

    def latest_matches(_: object) -> bool:
        published = verdicts(watcher)
        return bool(published) and predicate(published[-1])

    watcher.wait_for(latest_matches, timeout)
    return verdicts(watcher)[-1]


def wait_state(watcher: Watcher, predicate: Callable[[WeatherState], bool], timeout: float = 15.0) -> WeatherState:
    def latest_matches(_: object) -> bool:
        published = states(watcher)
        return bool(published) and predicate(published[-1])

    watcher.wait_for(latest_matches, timeout)
    return states(watcher)[-1]
