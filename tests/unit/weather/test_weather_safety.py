"""Readings model and safety evaluator: units, dew point, merging, staleness, hysteresis, delay."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from obsy.config import WeatherConfig, WeatherLimitConfig
from obsy_weather.quantities import ReadingError, dew_point, normalise
from obsy_weather.readings import ReadingStore, Sample
from obsy_weather.safety import SafetyEvaluator

T0 = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def put(store: ReadingStore, quantity: str, value, seconds: float = 0, *, source: str = "s", max_age: float = 60):
    store.put(Sample(quantity, value, source, at(seconds), max_age))


# --- units and validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "raw", "unit", "expected"),
    [
        ("ambient_temperature", 50, "°F", 10.0),
        ("ambient_temperature", "283.15", "K", 10.0),
        ("ambient_temperature", 12.5, None, 12.5),
        ("wind_speed", 10, "m/s", 36.0),
        ("wind_speed", 10, "mph", 16.0934),
        ("wind_gust", 10, "kn", 18.52),
        ("pressure", 29.92, "inHg", 1013.2075),
        ("pressure", 101325, "Pa", 1013.25),
        ("rain_rate", 0.1, "iph", 2.54),
        ("rain_rate", 0.5, "mmph", 0.5),
        ("humidity", 0.45, "fraction", 45.0),
        ("sky_minus_ambient", -36, "°F", -20.0),
        ("sky_brightness", "21.3", "mpsas", 21.3),
        ("rain", "ON", None, True),
        ("rain", "dry", None, False),
        ("rain", 0, None, False),
    ],
)
def test_units_are_converted_to_the_canonical_unit(quantity, raw, unit, expected) -> None:
    value = normalise(quantity, raw, unit)
    assert value == pytest.approx(expected, abs=1e-3) if not isinstance(expected, bool) else value is expected


@pytest.mark.parametrize(
    ("quantity", "raw", "unit", "message"),
    [
        ("humidity", -5, "%", "outside the physical range"),
        ("humidity", 130, "%", "outside the physical range"),
        ("ambient_temperature", float("nan"), "°C", "not a finite number"),
        ("wind_speed", "fast", "km/h", "not a number"),
        ("wind_speed", 3, "°C", "does not fit wind_speed"),
        ("rain", "maybe", None, "yes/no"),
        ("visibility", 3, None, "unknown quantity"),
    ],
)
def test_garbage_values_are_rejected_with_a_reason(quantity, raw, unit, message) -> None:
    with pytest.raises(ReadingError, match=message):
        normalise(quantity, raw, unit)


@pytest.mark.parametrize(
    ("temperature", "humidity", "expected"),
    # Reference values from the psychrometric tables (dew point for T, RH), within the Magnus ±0.4 °C.
    [(20.0, 50.0, 9.3), (10.0, 90.0, 8.4), (0.0, 100.0, 0.0), (-10.0, 60.0, -16.7), (30.0, 70.0, 23.9)],
)
def test_dew_point_magnus(temperature, humidity, expected) -> None:
    assert dew_point(temperature, humidity) == pytest.approx(expected, abs=0.4)


# --- merging and derived quantities ---------------------------------------------------


def test_dew_point_and_sky_difference_are_derived_when_absent() -> None:
    store = ReadingStore()
    put(store, "ambient_temperature", 10.0, source="indi")
    put(store, "humidity", 90.0, seconds=5, source="mqtt")
    put(store, "sky_temperature", -12.0, seconds=5, source="aag")
    now = store.current(at(10))
    assert now["dew_point"].value == pytest.approx(8.4, abs=0.2)
    assert now["dew_point"].source == "computed(indi+mqtt)"
    assert now["dew_point"].age_s == 10  # as old as its oldest input
    assert now["dew_point_margin"].value == pytest.approx(1.6, abs=0.2)
    assert now["sky_minus_ambient"].value == -22.0
    # a measured dew point wins over the computed one
    put(store, "dew_point", 5.0, seconds=9, source="station")
    assert store.current(at(10))["dew_point"].value == 5.0


def test_freshest_fresh_source_wins_and_stale_is_marked() -> None:
    store = ReadingStore()
    put(store, "wind_speed", 10.0, seconds=0, source="a", max_age=100)
    put(store, "wind_speed", 20.0, seconds=30, source="b", max_age=10)
    assert store.current(at(35))["wind_speed"].source == "b"
    later = store.current(at(50))["wind_speed"]  # b is stale now, a still fresh
    assert (later.source, later.value, later.stale) == ("a", 10.0, False)
    gone = store.current(at(200))["wind_speed"]  # all stale: the freshest stale one, marked
    assert (gone.source, gone.stale) == ("b", True)
    assert gone.to_reading().stale and gone.to_reading().unit == "km/h"


def test_any_fresh_source_that_says_rain_wins_and_a_rate_counts_as_rain() -> None:
    store = ReadingStore()
    put(store, "rain", False, seconds=10, source="rg11")
    put(store, "rain_rate", 0.4, seconds=0, source="rg15")
    rain = store.current(at(11))["rain"]
    assert rain.value is True and rain.source == "rg15"
    put(store, "rain_rate", 0.0, seconds=12, source="rg15")
    assert store.current(at(13))["rain"].value is False


def test_derived_value_goes_stale_with_its_first_stale_input() -> None:
    store = ReadingStore()
    put(store, "ambient_temperature", 10.0, seconds=0, max_age=100)
    put(store, "humidity", 50.0, seconds=50, max_age=20)
    assert not store.current(at(65))["dew_point"].stale
    assert store.current(at(71))["dew_point"].stale


# --- safety --------------------------------------------------------------------------


def evaluator(safe_delay: float = 60, **limits: WeatherLimitConfig) -> SafetyEvaluator:
    return SafetyEvaluator(limits or {"wind_speed": WeatherLimitConfig(unsafe_above=40, safe_below=30)}, safe_delay)


def test_unsafe_is_immediate_and_safe_waits_for_the_delay() -> None:
    store, safety = ReadingStore(), evaluator(safe_delay=60)
    put(store, "wind_speed", 10.0, seconds=0)
    first = safety.evaluate(store.current(at(0)), at(0))
    assert not first.safe and first.reasons[0].quantity == "safe_delay"
    assert not safety.evaluate(store.current(at(59)), at(59)).safe  # 59 s of the 60 s delay
    put(store, "wind_speed", 12.0, seconds=59)
    safe = safety.evaluate(store.current(at(60)), at(60))
    assert safe.safe and safe.since == at(60) and safe.fine_since == at(0)  # fine since the wait began
    put(store, "wind_speed", 45.0, seconds=61)
    bad = safety.evaluate(store.current(at(61)), at(61))
    assert not bad.safe and bad.since == at(61) and bad.fine_since is None
    assert bad.reasons[0].quantity == "wind_speed" and bad.reasons[0].value == 45.0 and bad.reasons[0].limit == 40
    assert "above the limit 40" in bad.reasons[0].message


def test_hysteresis_stops_flapping_around_a_limit() -> None:
    store, safety = ReadingStore(), evaluator(safe_delay=0)
    verdicts = []
    # wind oscillating around 40 km/h: trips once, then stays unsafe until it drops to 30
    for second, value in enumerate([35, 41, 39, 41, 38, 40.5, 36, 31, 29, 33, 38]):
        put(store, "wind_speed", value, seconds=second)
        verdicts.append(safety.evaluate(store.current(at(second)), at(second)).safe)
    assert verdicts == [True, False, False, False, False, False, False, False, True, True, True]
    held = SafetyEvaluator({"wind_speed": WeatherLimitConfig(unsafe_above=40, safe_below=30)}, 0)
    put(store, "wind_speed", 45, seconds=20)
    held.evaluate(store.current(at(20)), at(20))
    put(store, "wind_speed", 35, seconds=21)
    reason = held.evaluate(store.current(at(21)), at(21)).reasons[0]
    assert "unsafe until at most 30" in reason.message and reason.limit == 30


def test_without_hysteresis_a_safe_delay_still_prevents_flapping() -> None:
    store = ReadingStore()
    safety = evaluator(safe_delay=300, wind_speed=WeatherLimitConfig(unsafe_above=40))
    changes = 0
    last = None
    for second in range(0, 1200, 20):
        put(store, "wind_speed", 41 if (second // 20) % 2 else 39, seconds=second)
        safe = safety.evaluate(store.current(at(second)), at(second)).safe
        changes += safe != last
        last = safe
    assert changes == 1 and last is False  # unsafe from the start, never safe


def test_missing_or_stale_required_quantity_is_unsafe_with_the_reason() -> None:
    store, safety = ReadingStore(), evaluator(safe_delay=0)
    verdict = safety.evaluate(store.current(at(0)), at(0))
    assert not verdict.safe and verdict.reasons[0].message == "wind_speed: no reading from any source (required)"
    put(store, "wind_speed", 5.0, seconds=0, source="anemometer", max_age=60)
    assert safety.evaluate(store.current(at(30)), at(30)).safe
    stale = safety.evaluate(store.current(at(61)), at(61))
    assert not stale.safe
    assert "from anemometer is 61 s old" in stale.reasons[0].message and "(stale)" in stale.reasons[0].message


def test_optional_quantity_keeps_its_tripped_state_when_it_goes_quiet() -> None:
    store = ReadingStore()
    safety = evaluator(safe_delay=0, humidity=WeatherLimitConfig(unsafe_above=90, safe_below=85, required=False))
    assert safety.evaluate(store.current(at(0)), at(0)).safe  # optional and absent: no reason
    put(store, "humidity", 95.0, seconds=1, max_age=10)
    assert not safety.evaluate(store.current(at(1)), at(1)).safe
    quiet = safety.evaluate(store.current(at(30)), at(30))
    assert not quiet.safe and "last known" in quiet.reasons[0].message


def test_rain_flag_and_lower_limits() -> None:
    store = ReadingStore()
    safety = evaluator(
        safe_delay=0,
        rain=WeatherLimitConfig(unsafe_if=True),
        dew_point_margin=WeatherLimitConfig(unsafe_below=2, safe_above=3),
    )
    put(store, "rain", False)
    put(store, "ambient_temperature", 10.0)
    put(store, "humidity", 80.0)  # dew point 6.7, margin 3.3
    assert safety.evaluate(store.current(at(1)), at(1)).safe
    put(store, "humidity", 92.0, seconds=2)  # margin 1.2
    verdict = safety.evaluate(store.current(at(2)), at(2))
    assert [r.quantity for r in verdict.reasons] == ["dew_point_margin"]
    put(store, "humidity", 85.0, seconds=3)  # margin 2.4: between the thresholds, still unsafe
    assert not safety.evaluate(store.current(at(3)), at(3)).safe
    put(store, "rain", True, seconds=4)
    put(store, "humidity", 70.0, seconds=4)
    verdict = safety.evaluate(store.current(at(4)), at(4))
    assert [r.quantity for r in verdict.reasons] == ["rain"] and verdict.reasons[0].value is True


def test_limit_config_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match=r"safe_below 50\.0 must not exceed unsafe_above 40\.0"):
        WeatherLimitConfig(unsafe_above=40, safe_below=50)
    with pytest.raises(ValueError, match="needs unsafe_above, unsafe_below or unsafe_if"):
        WeatherLimitConfig(required=False)
    with pytest.raises(ValueError, match="did you mean 'wind_gust'"):
        WeatherConfig.model_validate({"limits": {"wind_gusts": {"unsafe_above": 3}}})
    assert not math.isnan(WeatherConfig().limits["wind_speed"].safe_below)
