"""Making it rain on INDI's weather simulator: ``obsy-weather simulate`` and the bus command.

A real indiserver runs indi_simulator_weather (and the CCD simulator, a device that is no
weather simulator); the weather service reads the simulator as it would in the demo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.indiserver import CCD, WEATHER, IndiServer, require_indi
from tests.support.watcher import Watcher
from tests.support.weather import RunningWeather, wait_state, wait_verdict

pytestmark = pytest.mark.integration

DRIVERS = ["indi_simulator_weather", "indi_simulator_ccd"]
EVENTS = "obsy/weather/events"
AVAILABILITY = "obsy/weather/availability"
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndiServer]:
    indiserver = IndiServer(tmp_path_factory.mktemp("indi"), DRIVERS)
    indiserver.start()
    try:
        yield indiserver
    finally:
        indiserver.stop()


def source(server: IndiServer, device: str = WEATHER) -> dict:
    return {"type": "indi", "name": "sim", "device": device, "host": server.host, "port": server.port,
            "poll_interval": 1, "max_age": 60}  # fmt: skip


def simulate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obsy_weather", "simulate", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rain_is(value: bool):
    return lambda s: "rain" in s.readings and s.readings["rain"].value is value


def reasons(verdict) -> set[str]:
    return {r.quantity for r in verdict.reasons}


def events(watcher: Watcher) -> list[dict]:
    return [json.loads(m.payload) for m in watcher.on(EVENTS)]


def wait_event(watcher: Watcher, request_id: str) -> dict:
    watcher.wait_for(lambda _: any(e["data"].get("request_id") == request_id for e in events(watcher)), 20)
    return next(e for e in events(watcher) if e["data"].get("request_id") == request_id)


def wait_online(watcher: Watcher) -> None:
    """The service is subscribed once it says online (a command sent before that is lost)."""
    watcher.wait_for(lambda _: [m.payload for m in watcher.on(AVAILABILITY)][-1:] == [b"online"], 20)


def test_cli_makes_it_rain_and_the_verdict_goes_unsafe(server, mosquitto, watcher, tmp_path) -> None:
    with RunningWeather(tmp_path, mosquitto, sources=[source(server)], safe_delay=0) as weather:
        config = weather.config.source_file
        assert simulate(config, "clear").returncode == 0
        wait_state(watcher, rain_is(False), timeout=30)
        wait_verdict(watcher, lambda v: v.safe, timeout=30)

        result = simulate(config, "rain")
        assert result.returncode == 0, result.stderr
        assert "Weather Simulator" in result.stdout and "rain (10 mm/h)" in result.stdout
        state = wait_state(watcher, rain_is(True), timeout=30)
        assert state.readings["rain_rate"].value == 10.0
        unsafe = wait_verdict(watcher, lambda v: not v.safe)
        assert "rain" in reasons(unsafe)

        result = simulate(config, "wind", "55")
        assert result.returncode == 0, result.stderr
        windy = wait_state(watcher, lambda s: s.readings["wind_speed"].value == 55.0, timeout=30)
        assert windy.readings["wind_gust"].value == 50.0  # 1.3 x 55, capped at the simulator's maximum
        assert "wind_speed" in reasons(wait_verdict(watcher, lambda v: "wind_speed" in reasons(v)))

        assert simulate(config, "clear").returncode == 0
        wait_verdict(watcher, lambda v: v.safe, timeout=30)


def test_cli_refuses_what_is_not_the_simulator_and_bad_arguments(server, mosquitto, tmp_path) -> None:
    with RunningWeather(tmp_path, mosquitto, sources=[source(server, CCD)]) as weather:
        config = weather.config.source_file
        result = simulate(config, "rain")
        assert result.returncode == 1
        assert "indi_simulator_ccd, not indi_simulator_weather" in result.stderr

        result = simulate(config, "wind")
        assert result.returncode == 2 and "wind needs a speed in km/h" in result.stderr
        result = simulate(config, "rain", "--source", "nope")
        assert result.returncode == 1 and "no INDI weather source named 'nope' (INDI sources: sim)" in result.stderr


def test_bus_command_is_obeyed_only_when_simulation_is_allowed(server, mosquitto, watcher, tmp_path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    with RunningWeather(allowed, mosquitto, sources=[source(server)], safe_delay=0, allow_simulation=True):
        wait_online(watcher)
        watcher.publish("obsy/weather/simulate/set", json.dumps({"action": "rain", "request_id": "r1", "user": "ann"}))
        applied = wait_event(watcher, "r1")
        assert applied["kind"] == "command_accepted" and applied["data"]["values"] == {"Precip": 10.0}
        assert "asked by ann" in applied["message"]
        assert "rain" in reasons(wait_verdict(watcher, lambda v: not v.safe, timeout=30))

        watcher.publish("obsy/weather/simulate/set", json.dumps({"action": "wind", "request_id": "r2"}))
        bad = wait_event(watcher, "r2")
        assert bad["kind"] == "command_rejected" and "needs wind_speed" in bad["message"]
        watcher.publish("obsy/weather/simulate/set", json.dumps({"action": "clear", "request_id": "r3"}))
        assert wait_event(watcher, "r3")["kind"] == "command_accepted"
        wait_verdict(watcher, lambda v: v.safe, timeout=30)

    refused = tmp_path / "refused"
    refused.mkdir()
    with RunningWeather(refused, mosquitto, sources=[source(server)]):
        wait_online(watcher)
        watcher.publish("obsy/weather/simulate/set", json.dumps({"action": "rain", "request_id": "r4"}))
        answer = wait_event(watcher, "r4")
        assert answer["kind"] == "command_rejected" and "weather.allow_simulation is off" in answer["message"]
        state = wait_state(watcher, lambda s: "rain" in s.readings, timeout=30)
        assert state.readings["rain"].value is False  # the simulator was left alone
