"""The dashboard's "make it rain": button → web API → bus → the weather service → INDI's weather simulator.

Everything is real: Mosquitto, indiserver with indi_simulator_weather and the sky simulator's
allsky camera (indi_obsy_allsky, for "make it cloudy"), the weather service (simulation allowed)
and the web service (SQLite), and Chromium for the buttons.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.indi import IndiClient
from tests.support.indiserver import WEATHER, IndiServer, require_indi
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.support.weather import RunningWeather, wait_verdict
from tests.support.web_server import PASSWORD, RunningWeb

pytestmark = pytest.mark.integration

DRIVER = "indi_simulator_weather"
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi([DRIVER])
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
URL = "/api/v1/commands/weather/simulate"
SKYSIM = Path(sys.executable).parent / "indi_obsy_allsky"
if not SKYSIM.exists():
    pytest.skip("the sky simulator is not installed (pip install -e services/skysim)", allow_module_level=True)
ALLSKY = "SkySim Allsky"


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> Iterator[tuple[RunningWeb, MosquittoBroker, IndiServer]]:
    workdir = tmp_path_factory.mktemp("web-simulation")
    broker = MosquittoBroker(workdir)
    broker.start()
    indi = IndiServer(workdir / "indi", [DRIVER, str(SKYSIM)])
    indi.start()
    source = {"type": "indi", "name": "sim", "device": WEATHER, "host": indi.host, "port": indi.port,
              "poll_interval": 1, "max_age": 60}  # fmt: skip
    weather_dir = workdir / "weather"
    weather_dir.mkdir()
    allsky = {"indi": {"host": indi.host, "port": indi.port}, "allsky": {"camera": {"device": ALLSKY}}}
    weather = RunningWeather(
        weather_dir, broker, sections=allsky, sources=[source], safe_delay=0, allow_simulation=True
    )
    web = RunningWeb(workdir, broker, f"sqlite:///{workdir / 'obsy.sqlite3'}", command_timeout=10)
    web.config.weather.allow_simulation = True  # the shared config of a demo: the dashboard shows the buttons
    try:
        with weather:
            web.start()
            web.add_user("vera", "viewer")
            web.add_user("otto", "operator")
            yield web, broker, indi
    finally:
        web.stop()
        indi.stop()
        broker.stop()


@pytest.fixture
def verdicts(system) -> Iterator[Watcher]:
    watcher = Watcher(system[1].port, ["obsy/weather/safety"])
    yield watcher
    watcher.close()


def test_only_operators_may_simulate_and_bad_requests_are_named(system) -> None:
    web, _, _ = system
    with web.client() as anonymous:
        assert anonymous.post(URL, json={"action": "rain"}).status_code == 401
    with web.login("vera") as viewer:
        reply = viewer.post(URL, json={"action": "rain"})
        assert reply.status_code == 403 and "operator" in reply.json()["detail"]
    with web.login("otto") as operator:
        for body, expected in (
            ({"action": "hail"}, "action: Input should be 'rain', 'clear', 'wind' or 'clouds'"),
            ({"action": "clouds"}, "the clouds action needs cloud_kind or cover"),
            ({"action": "clouds", "cloud_kind": "fog"}, "cloud_kind: Input should be 'clear', 'scattered'"),
            ({"action": "clouds", "cover": 150}, "cover: Input should be less than or equal to 100"),
            ({"action": "clouds", "cloud_kind": "veil", "cover": 50}, "cover is for scattered clouds, not veil"),
            ({"action": "rain", "cover": 50}, "cloud_kind and cover are for the clouds action, not rain"),
            ({"action": "wind"}, "the wind action needs wind_speed"),
            ({"action": "wind", "wind_speed": 500}, "less than or equal to 100"),
            ({"action": "rain", "wind_speed": 5}, "wind_speed belongs to the wind action, not rain"),
            ({"action": "rain", "when": "now"}, "when: Extra inputs are not permitted"),
        ):
            reply = operator.post(URL, json=body)
            assert reply.status_code == 422, body
            assert expected in reply.json()["detail"], reply.json()


def test_make_it_rain_and_stop_it_through_the_api(system, verdicts) -> None:
    web, _, _ = system
    with web.login("otto") as operator:
        reply = operator.post(URL, json={"action": "clear"})
        assert reply.status_code == 200, reply.text
        wait_verdict(verdicts, lambda v: v.safe, timeout=30)

        reply = operator.post(URL, json={"action": "rain"})
        assert reply.status_code == 200, reply.text
        assert (
            reply.json()["values"] == {"Precip": 10.0}
            and "asked by web user otto, role operator" in reply.json()["message"]
        )
        unsafe = wait_verdict(verdicts, lambda v: not v.safe, timeout=30)
        assert "rain" in {r.quantity for r in unsafe.reasons}

        assert operator.post(URL, json={"action": "clear"}).status_code == 200
        wait_verdict(verdicts, lambda v: v.safe, timeout=30)
        events = operator.get("/api/v1/events", params={"service": "web"}).json()
        sent = [e for e in events["items"] if "otto, role operator sent weather simulate rain" in e["message"]]
        assert sent and sent[0]["origin"] == "web user otto, role operator"


def clouds_on(indi_port: int) -> str:
    """The switch that is on in the sky simulator's SIM_CLOUDS, read from the INDI server now."""
    with IndiClient("127.0.0.1", indi_port, timeout=10.0, reconnect=False) as client:
        values = client.wait_property(ALLSKY, "SIM_CLOUDS").values
        return next(name for name, on in values.items() if on)


def eventually_clouds(indi_port: int, kind: str) -> None:
    deadline = time.monotonic() + 10
    while clouds_on(indi_port) != kind:
        assert time.monotonic() < deadline, f"the sky simulator's clouds never became {kind}"
        time.sleep(0.2)


def test_make_it_cloudy_and_clear_the_sky_through_the_api(system) -> None:
    web, _, indi = system
    port = indi.port
    with web.login("otto") as operator:
        reply = operator.post(URL, json={"action": "clouds", "cloud_kind": "overcast"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["values"] == {"kind": "overcast", "cover": None}
        assert "simulated sky on SkySim Allsky: clouds: overcast" in reply.json()["message"]
        eventually_clouds(port, "OVERCAST")
        reply = operator.post(URL, json={"action": "clouds", "cover": 45})
        assert reply.status_code == 200 and reply.json()["values"] == {"kind": "scattered", "cover": 45.0}
        eventually_clouds(port, "SCATTERED")
        assert operator.post(URL, json={"action": "clouds", "cloud_kind": "clear"}).status_code == 200
        eventually_clouds(port, "CLEAR")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_the_dashboard_buttons_make_it_rain_and_cloudy(system, verdicts, tmp_path) -> None:
    web, _, _ = system
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{web.url}/login")
            page.fill("input[name=username]", "otto")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{web.url}/")
            page.click("text=Make it rain")
            playwright_api.expect(page.locator("#simulation-result")).to_contain_text("rain (10 mm/h)", timeout=15000)
            playwright_api.expect(page.locator("#safety-verdict")).to_have_text("unsafe", timeout=15000)
            page.screenshot(path=tmp_path / "make-it-rain.png", full_page=True)
            page.click("text=Stop the rain")
            playwright_api.expect(page.locator("#simulation-result")).to_contain_text("clear", timeout=15000)
            playwright_api.expect(page.locator("#safety-verdict")).to_have_text("safe", timeout=15000)
            page.click("text=Make it cloudy")
            playwright_api.expect(page.locator("#simulation-result")).to_contain_text("clouds: overcast", timeout=15000)
            eventually_clouds(system[2].port, "OVERCAST")
            page.click("text=Clear the sky")
            playwright_api.expect(page.locator("#simulation-result")).to_contain_text("clouds: clear", timeout=15000)
            eventually_clouds(system[2].port, "CLEAR")
        finally:
            browser.close()


def test_no_weather_service_is_a_clear_timeout_and_simulation_off_a_clear_refusal(tmp_path) -> None:
    broker = MosquittoBroker(tmp_path)
    broker.start()
    web = RunningWeb(tmp_path, broker, f"sqlite:///{tmp_path / 'obsy.sqlite3'}", command_timeout=1.5)
    try:
        web.start()
        web.add_user("otto", "operator")
        with web.login("otto") as operator:
            refused = operator.post(URL, json={"action": "rain"})
            web.config.weather.allow_simulation = True
            reply = operator.post(URL, json={"action": "rain"})
        assert refused.status_code == 409
        assert "weather.allow_simulation" in refused.json()["detail"]
        assert reply.status_code == 504
        assert "the weather service did not answer the simulate command within 1.5 s" in reply.json()["detail"]
    finally:
        web.stop()
        broker.stop()
