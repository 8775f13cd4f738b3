"""The contract every weather source follows.

A source turns what its device or service sends into ``(quantity, raw value, unit)``
triples and calls :meth:`WeatherSource.deliver`, which normalises each one (unit
conversion, NaN and range checks) and passes the good ones to the service's sink as
:class:`~obsy_weather.readings.Sample`. A value that cannot be used is reported (logged,
counted, kept as ``last_error`` in the service's health) and dropped; the others in the
same delivery still count, and nothing a source receives can stop the service.

Polling sources (HTTP, serial) subclass :class:`PollingSource` and implement ``read()``;
push sources (INDI, MQTT) call ``deliver`` from their callbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from obsy.messages import Clock
from obsy_weather.config import WeatherSourceBase
from obsy_weather.quantities import ReadingError, normalise
from obsy_weather.readings import Sample

SampleSink = Callable[[list[Sample]], None]
RawValue = tuple[str, object, str | None]
"""(quantity, value as the source sent it, unit it is in; None = the quantity's own unit)."""


class SourceError(Exception):
    """A source could not deliver (unreachable, bad answer); the message names the source."""


class WeatherSource:
    kind = "source"

    def __init__(self, config: WeatherSourceBase, sink: SampleSink, clock: Clock) -> None:
        self.config = config
        self.name = config.name
        self.sink = sink
        self.clock = clock
        self.log = logging.getLogger(f"obsy.weather.{self.name}")
        self.accepted = 0
        self.rejected = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_delivery: datetime | None = None
        self._last_log: dict[str, float] = {}

    def start(self) -> None:
        """Begin reading; must return promptly (connect in a thread) and never raise for a dead device."""

    def stop(self) -> None:
        """Stop reading and release the device."""

    def deliver(self, values: Iterable[RawValue], measured_at: datetime | None = None) -> list[Sample]:
        """Normalise and hand over ``values``; bad ones are reported and skipped."""
        now = self.clock()
        when = now if measured_at is None else min(measured_at, now)
        if measured_at is not None and (measured_at - now).total_seconds() > 300:
            # Taken as received: a timestamp in the future would otherwise never grow stale.
            self.report(f"measurement time {measured_at.isoformat()} is in the future; using now", key="future")
        samples: list[Sample] = []
        for quantity, raw, unit in values:
            try:
                value = normalise(quantity, raw, unit)
            except ReadingError as error:
                self.rejected += 1
                self.report(f"{quantity}: {error}", key=f"reject:{quantity}")
                continue
            samples.append(Sample(quantity, value, self.name, when, self.config.max_age))
        if samples:
            self.accepted += len(samples)
            self.last_delivery = when
            self.sink(samples)
        return samples

    def report(self, message: str, *, key: str = "error") -> None:
        """Record a problem; the log line is limited to one a minute per kind of problem."""
        self.errors += 1
        self.last_error = f"{self.name} ({self.kind}): {message}"
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= 60.0:
            self._last_log[key] = now
            self.log.warning("%s", self.last_error, extra={"event": "weather_source_error", "source": self.name})

    def status(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_delivery": self.last_delivery.isoformat() if self.last_delivery else None,
        }


class PollingSource(WeatherSource):
    """Calls :meth:`read` every ``poll_interval`` seconds on its own thread."""

    def __init__(self, config: WeatherSourceBase, sink: SampleSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> tuple[list[RawValue], datetime | None]:
        """The values of one poll and when they were measured (None = now)."""
        raise NotImplementedError

    def poll_once(self) -> list[Sample]:
        try:
            values, measured_at = self.read()
        except SourceError as error:
            self.report(str(error), key="read")
            return []
        except Exception as error:  # a source bug or a device surprise must not end the thread
            self.report(f"{type(error).__name__}: {error}", key="read")
            return []
        return self.deliver(values, measured_at)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"weather-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.close()

    def close(self) -> None:
        """Release the device or connection (called after the thread ended)."""

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:  # raised past the source (the sink): keep polling, say so
                self.report(f"{type(error).__name__} while handing over readings: {error}", key="sink")
            self._stop.wait(self.config.poll_interval)
