"""The alpaca service's freshness rules and devices, on a clock the test drives (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from obsy.messages import Reading, SafetyVerdict, WeatherState
from obsy_alpaca.devices import SENSORS_BY_NAME, ObservingConditions, SafetyMonitor
from obsy_alpaca.protocol import NOT_CONNECTED, NOT_IMPLEMENTED, VALUE_NOT_SET, AlpacaError
from obsy_alpaca.watch import VerdictWatch

T0 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus() -> dict[str, bool]:
    return {"connected": True}


@pytest.fixture
def watch(clock: Clock, bus: dict[str, bool]) -> VerdictWatch:
    watch = VerdictWatch(90, lambda: bus["connected"], clock)
    watch.set_weather_availability("online\n")
    return watch


def test_unknown_is_unsafe_and_each_missing_input_says_why(watch: VerdictWatch, clock: Clock, bus) -> None:
    assert watch.safety().why == "no weather verdict yet"
    watch.set_verdict(SafetyVerdict(safe=True, timestamp=T0))
    assert watch.safety().safe
    bus["connected"] = False
    assert watch.safety().why == "not connected to the MQTT broker"
    bus["connected"] = True
    watch.set_weather_availability("stopped")
    assert watch.safety().why == "weather service is stopped"


def test_stale_after_max_age_counted_from_the_older_of_made_and_received(watch: VerdictWatch, clock: Clock) -> None:
    watch.set_verdict(SafetyVerdict(safe=True, timestamp=T0))
    clock.now = T0 + timedelta(seconds=90)
    assert watch.safety().safe
    clock.now = T0 + timedelta(seconds=91)
    assert "stale" in watch.safety().why

    # A weather host whose clock is 5 minutes behind: its verdicts are stale on arrival.
    watch.set_verdict(SafetyVerdict(safe=True, timestamp=clock.now - timedelta(minutes=5)))
    assert not watch.safety().safe
    # One whose clock is ahead counts from arrival.
    watch.set_verdict(SafetyVerdict(safe=True, timestamp=clock.now + timedelta(minutes=5)))
    assert watch.safety().safe
    clock.now += timedelta(seconds=91)
    assert not watch.safety().safe


def test_the_safety_monitor_is_false_until_connected(watch: VerdictWatch) -> None:
    watch.set_verdict(SafetyVerdict(safe=True, timestamp=T0))
    monitor = SafetyMonitor(watch, "id", "1.0")
    assert monitor.is_safe() is False
    monitor._set_connected(True)
    assert monitor.is_safe() is True


def test_observing_conditions_never_serve_an_old_number(watch: VerdictWatch, clock: Clock) -> None:
    conditions = ObservingConditions(watch, "id", "1.0")
    temperature, pressure, fwhm = (SENSORS_BY_NAME[n] for n in ("temperature", "pressure", "starfwhm"))
    with pytest.raises(AlpacaError) as refused:
        conditions.value(temperature)
    assert refused.value.number == NOT_CONNECTED
    conditions._set_connected(True)
    watch.set_verdict(SafetyVerdict(safe=False, timestamp=T0))  # an unsafe verdict is still fresh data
    watch.set_state(
        WeatherState(
            readings={
                "ambient_temperature": Reading(value=3.0, measured_at=T0),
                "pressure": Reading(value=990.0, measured_at=T0, stale=True),
            }
        )
    )
    assert conditions.value(temperature) == 3.0
    for sensor, number in (
        (pressure, VALUE_NOT_SET),
        (fwhm, NOT_IMPLEMENTED),
        (SENSORS_BY_NAME["humidity"], NOT_IMPLEMENTED),
    ):
        with pytest.raises(AlpacaError) as refused:
            conditions.value(sensor)
        assert refused.value.number == number, sensor.name
    clock.now = T0 + timedelta(minutes=5)  # the verdict went stale: so did every reading
    with pytest.raises(AlpacaError) as refused:
        conditions.value(temperature)
    assert refused.value.number == VALUE_NOT_SET
