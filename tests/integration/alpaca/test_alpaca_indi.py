"""Ekos's view: Debian's INDI Weather Safety Proxy reading OBSY's verdict from the alpaca service.

A real indiserver runs indi_weather_safety_proxy, set up as docs/alpaca.md tells users to
(its "Use url" pointing at the alpaca service, SOFT_ERROR_MAX 0); OBSY's own INDI client
watches WEATHER_STATUS as Ekos's observatory module does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.indi import IndiClient
from tests.support.alpaca import (
    SAFETY_PROXY,
    WEATHER_AVAILABILITY,
    AlpacaProcesses,
    configure_safety_proxy,
    publish_weather,
)
from tests.support.indiserver import IndiServer, pyindi_available, require_indi

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not pyindi_available(), reason="pyindi-client is not installed"),
]

DRIVER = "indi_weather_safety_proxy"


@pytest.fixture
def indi(tmp_path: Path) -> Iterator[IndiClient]:
    require_indi([DRIVER])
    with (
        IndiServer(tmp_path / "indi", [DRIVER]) as server,
        IndiClient.from_config(server.config(), timeout=15) as client,
    ):
        yield client


def light(indi: IndiClient, state: str, timeout: float = 30.0) -> None:
    indi.wait_for(
        SAFETY_PROXY,
        "WEATHER_STATUS",
        lambda p: str(p.values.get("WEATHER_SAFETY")) == state,
        timeout=timeout,
        what=f"WEATHER_SAFETY {state}",
    )


def test_the_proxy_goes_alert_on_an_unsafe_or_stale_verdict_and_when_obsy_is_gone(mosquitto, watcher, tmp_path, indi):
    with AlpacaProcesses(tmp_path, mosquitto) as processes:
        alpaca = processes.start(max_verdict_age=60)
        publish_weather(watcher, safe=True)

        configure_safety_proxy(indi, f"{alpaca.url}/obsy/weather-safety-proxy.json")
        indi.connect_device(SAFETY_PROXY)
        indi.wait_property(SAFETY_PROXY, "WEATHER_UPDATE")
        indi.set_number(SAFETY_PROXY, "WEATHER_UPDATE", {"PERIOD": 1})
        light(indi, "Ok")

        watcher.publish("obsy/weather/safety", b"", retain=True)  # nothing retained
        publish_weather(watcher, safe=False)
        light(indi, "Alert")
        publish_weather(watcher, safe=True)
        light(indi, "Ok")
        watcher.publish(WEATHER_AVAILABILITY, "offline", retain=True)  # the weather service died
        light(indi, "Alert")
        publish_weather(watcher, safe=True)
        light(indi, "Ok")
        alpaca.process.terminate()  # OBSY itself gone: the first failed fetch is an Alert
        alpaca.process.wait(20)
        light(indi, "Alert")
