"""Clouds on command: ``obsy-weather simulate clouds`` and the bus command set the sky simulator's clouds.

A real indiserver runs the sky simulator's allsky camera (``indi_obsy_allsky``) and INDI's CCD
simulator (a camera that is not the sky simulator, which must be refused by name).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.indi import IndiClient
from tests.support.configs import write_config
from tests.support.indi_late_proxy import LateDefinitionProxy
from tests.support.indiserver import CCD, IndiServer, require_indi
from tests.support.watcher import Watcher
from tests.support.weather import RunningWeather

pytestmark = pytest.mark.integration

pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(["indi_simulator_ccd"])
SKYSIM = Path(sys.executable).parent / "indi_obsy_allsky"
if not SKYSIM.exists():
    pytest.skip("the sky simulator is not installed (pip install -e services/skysim)", allow_module_level=True)

ALLSKY = "SkySim Allsky"
EVENTS = "obsy/weather/events"
AVAILABILITY = "obsy/weather/availability"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndiServer]:
    indiserver = IndiServer(tmp_path_factory.mktemp("indi"), [str(SKYSIM), "indi_simulator_ccd"])
    indiserver.start()
    try:
        yield indiserver
    finally:
        indiserver.stop()


@pytest.fixture
def client(server: IndiServer) -> Iterator[IndiClient]:
    with IndiClient.from_config(server.config(), timeout=10.0, reconnect_interval=0.2) as c:
        for name in ("SIM_CLOUDS", "SIM_CLOUD_SETTINGS"):  # defined one after the other
            c.wait_property(ALLSKY, name)
        yield c


def sections(server: IndiServer | LateDefinitionProxy, camera: str = ALLSKY) -> dict:
    return {"indi": {"host": server.host, "port": server.port}, "allsky": {"camera": {"device": camera}}}


def simulate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obsy_weather", "simulate", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def clouds_now(client: IndiClient) -> tuple[str, float]:
    """The switch that is on in SIM_CLOUDS, and SIM_CLOUD_SETTINGS.COVER, as the server says now."""
    kinds = client.get_property(ALLSKY, "SIM_CLOUDS").values
    cover = client.get_property(ALLSKY, "SIM_CLOUD_SETTINGS").values["COVER"]
    return next(name for name, on in kinds.items() if on), cover


def eventually(predicate) -> None:
    """The INDI server's answer arrives on the client's thread: wait for it (at most 10 s)."""
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, "the sky simulator's clouds never became what was asked"
        time.sleep(0.1)


def test_cli_sets_the_sky_simulators_clouds(server, mosquitto, client, tmp_path) -> None:
    with RunningWeather(tmp_path, mosquitto, sections=sections(server), sources=[]) as weather:
        config = weather.config.source_file
        result = simulate(config, "clouds", "--kind", "overcast")
        assert result.returncode == 0, result.stderr
        assert f"{ALLSKY} at {server.host}:{server.port}: clouds: overcast" in result.stdout
        eventually(lambda: clouds_now(client)[0] == "OVERCAST")

        result = simulate(config, "clouds", "--cover", "60")
        assert result.returncode == 0, result.stderr
        assert "clouds: scattered 60 %" in result.stdout
        eventually(lambda: clouds_now(client) == ("SCATTERED", 60.0))

        result = simulate(config, "clouds", "--kind", "clear")
        assert result.returncode == 0, result.stderr
        eventually(lambda: clouds_now(client)[0] == "CLEAR")


def test_cli_waits_for_cloud_settings_that_the_driver_defines_late(server, mosquitto, client, tmp_path) -> None:
    """A client that knows SIM_CLOUDS but not yet SIM_CLOUD_SETTINGS (a busy machine) waits for it."""
    with LateDefinitionProxy(server.host, server.port, "SIM_CLOUD_SETTINGS", release_after=3.0) as proxy:
        config = write_config(tmp_path, mosquitto, **sections(proxy))
        result = simulate(config, "clouds", "--cover", "55")
        assert result.returncode == 0, result.stderr
        assert "clouds: scattered 55 %" in result.stdout
        assert len(proxy.held) == 1 and len(proxy.released) == 1  # it really came late, and was waited for
    eventually(lambda: clouds_now(client) == ("SCATTERED", 55.0))


def test_cli_names_cloud_settings_that_never_come_and_changes_nothing(server, mosquitto, client, tmp_path) -> None:
    before = clouds_now(client)
    with LateDefinitionProxy(server.host, server.port, "SIM_CLOUD_SETTINGS", release_after=None) as proxy:
        config = write_config(tmp_path, mosquitto, **sections(proxy))
        result = simulate(config, "clouds", "--cover", "20", "--timeout", "2")
        assert proxy.held
    assert result.returncode == 1, result.stdout
    assert f"the sky simulator's allsky camera {ALLSKY!r} at 127.0.0.1:{proxy.port}" in result.stderr
    assert "did not define SIM_CLOUD_SETTINGS within 2 s" in result.stderr
    time.sleep(1)
    assert clouds_now(client) == before  # not half applied: the kind was not switched either


def test_cli_refuses_bad_clouds_and_a_camera_that_is_not_the_sky_simulator(server, mosquitto, tmp_path) -> None:
    with RunningWeather(tmp_path, mosquitto, sections=sections(server, CCD), sources=[]) as weather:
        config = weather.config.source_file
        result = simulate(config, "clouds", "--kind", "fog")
        assert result.returncode == 2 and "'fog'" in result.stderr and "overcast" in result.stderr
        result = simulate(config, "clouds", "--cover", "150")
        assert result.returncode == 2 and "cloud cover 150 % is outside 0 to 100 %" in result.stderr
        result = simulate(config, "clouds", "--kind", "overcast", "--cover", "40")
        assert result.returncode == 2 and "a cover is for scattered clouds, not overcast" in result.stderr
        result = simulate(config, "clouds")
        assert result.returncode == 2 and "needs a kind" in result.stderr
        result = simulate(config, "rain", "--cover", "40")
        assert result.returncode == 2 and "--kind and --cover are for clouds, not rain" in result.stderr

        result = simulate(config, "clouds", "--kind", "overcast")
        assert result.returncode == 1
        assert f"the allsky camera {CCD!r} is driven by indi_simulator_ccd, not the sky simulator" in result.stderr


def wait_event(watcher: Watcher, request_id: str) -> dict:
    def answered(_: object) -> bool:
        return any(json.loads(m.payload)["data"].get("request_id") == request_id for m in watcher.on(EVENTS))

    watcher.wait_for(answered, 20)
    return next(e for m in watcher.on(EVENTS) if (e := json.loads(m.payload))["data"].get("request_id") == request_id)


def wait_online(watcher: Watcher) -> None:
    watcher.wait_for(lambda _: [m.payload for m in watcher.on(AVAILABILITY)][-1:] == [b"online"], 20)


def test_bus_command_sets_the_clouds_and_names_a_wrong_camera(server, mosquitto, watcher, client, tmp_path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    with RunningWeather(good, mosquitto, sections=sections(server), sources=[], allow_simulation=True):
        wait_online(watcher)
        command = {"action": "clouds", "cloud_kind": "overcast", "request_id": "c1", "user": "ann"}
        watcher.publish("obsy/weather/simulate/set", json.dumps(command))
        applied = wait_event(watcher, "c1")
        assert applied["kind"] == "command_accepted", applied
        assert applied["data"]["values"] == {"kind": "overcast", "cover": None}
        assert applied["data"]["device"] == ALLSKY and "asked by ann" in applied["message"]
        eventually(lambda: clouds_now(client)[0] == "OVERCAST")

        watcher.publish("obsy/weather/simulate/set", json.dumps({"action": "clouds", "cover": 35, "request_id": "c2"}))
        assert wait_event(watcher, "c2")["data"]["values"] == {"kind": "scattered", "cover": 35.0}
        eventually(lambda: clouds_now(client) == ("SCATTERED", 35.0))

        watcher.publish(
            "obsy/weather/simulate/set", json.dumps({"action": "clouds", "cloud_kind": "fog", "request_id": "c3"})
        )
        bad = wait_event(watcher, "c3")
        assert bad["kind"] == "command_rejected" and "cloud_kind" in bad["message"]
        watcher.publish("obsy/weather/simulate/set", json.dumps({"action": "clouds", "cover": 101, "request_id": "c4"}))
        assert wait_event(watcher, "c4")["kind"] == "command_rejected"
        watcher.publish(
            "obsy/weather/simulate/set", json.dumps({"action": "clouds", "cloud_kind": "clear", "request_id": "c5"})
        )
        assert wait_event(watcher, "c5")["kind"] == "command_accepted"
        eventually(lambda: clouds_now(client)[0] == "CLEAR")

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    with RunningWeather(wrong, mosquitto, sections=sections(server, CCD), sources=[], allow_simulation=True):
        wait_online(watcher)
        watcher.publish(
            "obsy/weather/simulate/set", json.dumps({"action": "clouds", "cloud_kind": "overcast", "request_id": "c6"})
        )
        answer = wait_event(watcher, "c6")
        assert answer["kind"] == "command_rejected"
        assert f"the allsky camera {CCD!r} is driven by indi_simulator_ccd" in answer["message"]
