"""Ekos itself parks on OBSY's verdict: real KStars 3.6 with the Weather Safety Proxy reading the alpaca service.

The proxy runs in a test indiserver, set up as docs/alpaca.md says; Ekos uses it as the weather
device of its profile. The weather status is read where Ekos keeps it, on KStars' D-Bus
(``/KStars/INDI/Weather/<n>``, property ``status``: 1 Ok, 3 Alert), so this is Ekos's own view.
"""

from __future__ import annotations

import re
import time

import pytest

from obsy.indi import IndiClient
from tests.support.alpaca import (
    SAFETY,
    SAFETY_PROXY,
    WEATHER_AVAILABILITY,
    AlpacaProcesses,
    configure_safety_proxy,
    publish_weather,
    verdict,
)
from tests.support.indiserver import CCD, TELESCOPE, IndiServer, require_indi
from tests.support.kstars import KStars, requires_kstars

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    requires_kstars,
]

WEATHER_INTERFACE = "org.kde.kstars.INDI.Weather"
EKOS_OK, EKOS_ALERT = 1, 3  # ISD::Weather::Status


def ekos_weather_status(ks: KStars) -> int | None:
    """The status of the weather device Ekos holds, or None before Ekos has one."""
    if not ks.has_object("/KStars/INDI/Weather"):
        return None
    for number in re.findall(r'node name="([^"]+)"', ks.introspect("/KStars/INDI/Weather")):
        path = f"/KStars/INDI/Weather/{number}"
        if ks.get_property(path, WEATHER_INTERFACE, "name") == SAFETY_PROXY:
            return int(ks.get_property(path, WEATHER_INTERFACE, "status"))
    return None


def wait_status(ks: KStars, expected: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := ekos_weather_status(ks)) != expected:
        assert time.monotonic() < deadline, f"Ekos' weather status is {status}, expected {expected}"
        time.sleep(0.5)


def test_ekos_weather_goes_alert_on_an_unsafe_verdict(mosquitto, watcher, tmp_path):
    drivers = ["indi_weather_safety_proxy", "indi_simulator_telescope", "indi_simulator_ccd"]
    require_indi(drivers)
    with (
        AlpacaProcesses(tmp_path, mosquitto) as processes,
        IndiServer(tmp_path / "indi", drivers) as server,
        IndiClient.from_config(server.config(), timeout=60) as indi,
        KStars(tmp_path / "kstars") as ks,
    ):
        alpaca = processes.start(max_verdict_age=60)
        publish_weather(watcher, safe=True)
        configure_safety_proxy(indi, f"{alpaca.url}/obsy/weather-safety-proxy.json")

        ks.set_location("Vienna", "", "Austria")
        ks.start_ekos(drivers=(TELESCOPE, CCD, SAFETY_PROXY), indi_server=(server.host, server.port))
        indi.wait_for(SAFETY_PROXY, "CONNECTION", lambda p: p.values.get("CONNECT") is True, what="connected")
        indi.wait_property(SAFETY_PROXY, "WEATHER_UPDATE")
        indi.set_number(SAFETY_PROXY, "WEATHER_UPDATE", {"PERIOD": 1})
        wait_status(ks, EKOS_OK)

        watcher.publish(SAFETY, verdict(False), retain=True)
        wait_status(ks, EKOS_ALERT)
        watcher.publish(SAFETY, verdict(True), retain=True)
        wait_status(ks, EKOS_OK)
        watcher.publish(WEATHER_AVAILABILITY, "offline", retain=True)
        wait_status(ks, EKOS_ALERT)
