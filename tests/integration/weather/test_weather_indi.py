"""The weather service against a real indiserver running indi_simulator_weather.

The test changes the simulator's weather through INDI (WEATHER_CONTROL), and moves the
service's clock itself: unsafe must come at once, safe only after the safe delay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.indi import IndiClient
from tests.support.indiserver import WEATHER, IndiServer, require_indi
from tests.support.weather import FakeClock, RunningWeather, wait_state, wait_verdict

pytestmark = pytest.mark.integration

DRIVER = "indi_simulator_weather"
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi([DRIVER])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndiServer]:
    indiserver = IndiServer(tmp_path / "indi", [DRIVER])
    indiserver.start()
    try:
        yield indiserver
    finally:
        indiserver.stop()


def set_weather(indi: IndiClient, **values: float) -> None:
    """Change the simulator's weather; it applies WEATHER_CONTROL on its next update."""
    indi.set_number(WEATHER, "WEATHER_CONTROL", values)
    indi.set_switch(WEATHER, "WEATHER_REFRESH", "REFRESH")


def pass_time(clock: FakeClock, weather: RunningWeather, seconds: float, step: float = 60) -> None:
    """Move the clock by ``seconds`` in steps, letting the simulator's next update arrive after each.

    The simulator keeps sending (every second), so the readings stay fresh as time passes,
    as they would in a real night; one jump longer than max_age would make them stale.
    """
    left = seconds
    while left > 0:
        clock.advance(min(step, left))
        left -= step
        target = clock()
        wait_until(lambda at=target: weather.service.store.current(at)["wind_speed"].age_s == 0)


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_simulator_weather_unsafe_at_once_safe_after_the_delay(server, mosquitto, watcher, tmp_path) -> None:
    clock = FakeClock()
    source = {
        "type": "indi",
        "name": "sim",
        "device": WEATHER,
        "host": server.host,
        "port": server.port,
        "poll_interval": 1,
        "max_age": 120,
    }
    limits = {
        "wind_speed": {"unsafe_above": 40, "safe_below": 30},
        "rain": {"unsafe_if": True},
        "ambient_temperature": {"unsafe_below": -20},
    }
    with (
        IndiClient.from_config(server.config(), timeout=10) as indi,
        RunningWeather(
            tmp_path, mosquitto, clock, sources=[source], limits=limits, safe_delay=600, publish_interval=3600
        ) as weather,
    ):
        first = wait_verdict(watcher, lambda v: True)
        assert not first.safe  # nothing known yet

        indi.connect_device(WEATHER)
        indi.wait_property(WEATHER, "WEATHER_CONTROL")
        set_weather(indi, Temperature=8.5, Wind=5, Gust=8, Precip=0)
        state = wait_state(
            watcher,
            lambda s: (
                s.readings.get("ambient_temperature", None) is not None
                and s.readings["ambient_temperature"].value == 8.5
            ),
        )
        assert state.readings["wind_speed"].value == 5.0 and state.readings["wind_speed"].unit == "km/h"
        assert state.readings["wind_gust"].value == 8.0
        assert state.readings["rain"].value is False and state.readings["rain"].source == "sim"
        waiting = wait_verdict(watcher, lambda v: [r.quantity for r in v.reasons] == ["safe_delay"])
        assert not waiting.safe
        calm_from = clock()

        pass_time(clock, weather, 300)
        assert not wait_verdict(watcher, lambda v: v.reasons[0].quantity == "safe_delay").safe
        pass_time(clock, weather, 301)  # 601 s of good weather
        safe = wait_verdict(watcher, lambda v: v.safe)
        assert safe.reasons == [] and 600 <= (safe.since - calm_from).total_seconds() <= 601

        # Wind above the limit: unsafe with no time passing at all.
        set_weather(indi, Wind=55)
        unsafe = wait_verdict(watcher, lambda v: not v.safe)
        assert [(r.quantity, r.value, r.limit) for r in unsafe.reasons] == [("wind_speed", 55.0, 40.0)]
        assert unsafe.since == clock()
        source_status = weather.service.sources[0].status  # the driver's own lights, shown in the health
        wait_until(lambda: source_status()["driver_status"].get("WEATHER_WIND_SPEED") == "Alert")

        # Back between the thresholds (30..40): still unsafe (hysteresis), even long after.
        set_weather(indi, Wind=35)
        held = wait_verdict(watcher, lambda v: v.reasons and v.reasons[0].value == 35.0)
        assert not held.safe and held.reasons[0].limit == 30.0
        pass_time(clock, weather, 700)
        set_weather(indi, Wind=36)
        assert not wait_verdict(watcher, lambda v: v.reasons and v.reasons[0].value == 36.0).safe

        # Calm again: the delay starts over; rain in the middle restarts it once more.
        set_weather(indi, Wind=10)
        wait_verdict(watcher, lambda v: [r.quantity for r in v.reasons] == ["safe_delay"])
        pass_time(clock, weather, 400)
        set_weather(indi, Precip=2.5)
        rain = wait_verdict(watcher, lambda v: any(r.quantity == "rain" for r in v.reasons))
        assert not rain.safe
        set_weather(indi, Precip=0)
        wait_verdict(watcher, lambda v: [r.quantity for r in v.reasons] == ["safe_delay"])
        pass_time(clock, weather, 400)  # 800 s since the wind dropped, but only 400 s since the rain
        assert not wait_verdict(watcher, lambda v: v.reasons[0].quantity == "safe_delay").safe
        pass_time(clock, weather, 201)
        assert wait_verdict(watcher, lambda v: v.safe).safe

        # The driver goes away: no more readings, and once they are older than max_age, unsafe.
        server.stop_driver(DRIVER)
        clock.advance(121)
        stale = wait_verdict(watcher, lambda v: not v.safe)
        messages = {r.quantity: r.message for r in stale.reasons}
        assert "stale" in messages["wind_speed"] and "stale" in messages["rain"]


def test_sqm_simulator_sky_brightness(tmp_path) -> None:
    """indi_simulator_sqm keeps its reading in SKY_QUALITY, not WEATHER_PARAMETERS: the default map covers it."""
    require_indi(["indi_simulator_sqm"])
    from obsy.config import IndiWeatherSourceConfig
    from obsy_weather.sources.indi import IndiWeatherSource

    with IndiServer(tmp_path / "sqm", ["indi_simulator_sqm"]) as sqm:
        delivered = []
        config = IndiWeatherSourceConfig(type="indi", name="sqm", device="SQM Simulator", set_update_period=False)
        source = IndiWeatherSource(config, delivered.extend, FakeClock(), indi=sqm.config())
        source.start()
        try:
            wait_until(lambda: any(s.quantity == "sky_brightness" for s in delivered))
        finally:
            source.stop()
        brightness = next(s for s in delivered if s.quantity == "sky_brightness")
        assert 10 < brightness.value < 25 and brightness.source == "sqm"
        assert {s.quantity for s in delivered} == {"sky_brightness"}  # its sensor temperature is not the sky's
