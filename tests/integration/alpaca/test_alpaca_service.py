"""The Alpaca service as a process on a real Mosquitto, read through real HTTP and UDP on loopback.

The independent client is ``alpyca``, the ASCOM Initiative's own Python Alpaca client; the
malformed requests it would never send go through ``httpx``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from alpaca import management
from alpaca.exceptions import NotConnectedException, NotImplementedException
from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor

from obsy.messages import Reading, WeatherState
from tests.support.alpaca import (
    SAFETY,
    STATE,
    WEATHER_AVAILABILITY,
    AlpacaProcess,
    AlpacaProcesses,
    eventually,
    publish_weather,
    verdict,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def start_alpaca(mosquitto, tmp_path) -> Iterator[Callable[..., AlpacaProcess]]:
    with AlpacaProcesses(tmp_path, mosquitto) as processes:
        yield processes.start


def test_is_safe_follows_the_verdict_and_fails_safe_when_weather_goes_offline(start_alpaca, watcher):
    alpaca = start_alpaca()
    monitor = SafetyMonitor(alpaca.address, 0)
    assert monitor.IsSafe is False, "before Connected, IsSafe is false (ConformU's pre-connect check)"
    publish_weather(watcher, safe=True)
    monitor.Connected = True
    assert monitor.Connected is True
    eventually(lambda: monitor.IsSafe, True)

    watcher.publish(SAFETY, verdict(False), retain=True)
    eventually(lambda: monitor.IsSafe, False)
    watcher.publish(SAFETY, verdict(True), retain=True)
    eventually(lambda: monitor.IsSafe, True)

    watcher.publish(WEATHER_AVAILABILITY, "offline", retain=True)  # the weather service's Last Will
    eventually(lambda: monitor.IsSafe, False)
    watcher.publish(WEATHER_AVAILABILITY, "online", retain=True)
    eventually(lambda: monitor.IsSafe, True)

    state = {item["Name"]: item["Value"] for item in monitor.DeviceState}
    assert state["IsSafe"] is True and "TimeStamp" in state
    assert monitor.InterfaceVersion == 3
    monitor.Disconnect()
    assert monitor.Connected is False and monitor.IsSafe is False


def test_is_safe_goes_false_when_the_verdict_goes_stale(start_alpaca, watcher):
    alpaca = start_alpaca(max_verdict_age=2.0)
    monitor = SafetyMonitor(alpaca.address, 0)
    monitor.Connect()
    assert monitor.Connecting is False
    publish_weather(watcher, safe=True, age=30)  # a verdict made long ago counts from when it was made
    time.sleep(0.5)
    assert monitor.IsSafe is False

    publish_weather(watcher, safe=True)
    eventually(lambda: monitor.IsSafe, True)
    eventually(lambda: monitor.IsSafe, False, timeout=5)  # no republishing: stale after 2 s


def test_observing_conditions_in_ascom_units(start_alpaca, watcher):
    alpaca = start_alpaca()
    now = datetime.now(UTC)
    readings = {
        "ambient_temperature": Reading(value=4.5, unit="°C", source="aag", measured_at=now),
        "humidity": Reading(value=81.0, unit="%", source="aag", measured_at=now),
        "wind_speed": Reading(value=36.0, unit="km/h", source="aag", measured_at=now),
        "wind_direction": Reading(value=270.0, unit="°", source="aag", measured_at=now),
        "sky_brightness": Reading(value=21.3, unit="mag/arcsec²", source="sqm", measured_at=now),
        "pressure": Reading(value=1002.0, unit="hPa", source="aag", measured_at=now, stale=True),
    }
    watcher.publish(STATE, WeatherState(readings=readings).to_json(), retain=True)
    publish_weather(watcher, safe=True)

    conditions = ObservingConditions(alpaca.address, 0)
    with pytest.raises(NotConnectedException):
        _ = conditions.Temperature
    conditions.Connected = True
    eventually(lambda: conditions.Temperature, 4.5)
    assert conditions.Humidity == 81.0
    assert conditions.WindSpeed == pytest.approx(10.0)  # m/s
    assert conditions.WindDirection == 270.0
    assert conditions.SkyQuality == 21.3
    assert conditions.AveragePeriod == 0.0
    put = httpx.put(f"{alpaca.url}/api/v1/observingconditions/0/averageperiod", data={"AveragePeriod": "0"})
    assert put.json()["ErrorNumber"] == 0  # alpyca has no setter for it: 0 (no averaging) is accepted
    conditions.Refresh()
    with pytest.raises(NotImplementedException):
        _ = conditions.StarFWHM  # OBSY does not measure it
    with pytest.raises(NotImplementedException):
        _ = conditions.SkyBrightness  # lux: OBSY has mag/arcsec² (SkyQuality) only
    assert "sqm" in conditions.SensorDescription("SkyQuality")
    assert 0 <= conditions.TimeSinceLastUpdate("Temperature") < 30
    assert conditions.InterfaceVersion == 2

    reply = httpx.get(f"{alpaca.url}/api/v1/observingconditions/0/pressure", params={"ClientTransactionID": 9})
    assert reply.json()["ErrorNumber"] == 0x402, "a stale reading is never served as a value"

    watcher.publish(WEATHER_AVAILABILITY, "offline", retain=True)
    reply = httpx.get(f"{alpaca.url}/api/v1/observingconditions/0/temperature")
    assert reply.json()["ErrorNumber"] == 0x402
    assert "offline" in reply.json()["ErrorMessage"]


def test_management_api_and_transaction_ids(start_alpaca, watcher):
    alpaca = start_alpaca()
    assert management.apiversions(alpaca.address) == [1]
    assert management.description(alpaca.address)["Manufacturer"] == "OBSY"
    devices = {d["DeviceType"]: d for d in management.configureddevices(alpaca.address)}
    assert set(devices) == {"SafetyMonitor", "ObservingConditions"}
    assert all(d["DeviceNumber"] == 0 and len(d["UniqueID"]) == 36 for d in devices.values())

    url = f"{alpaca.url}/api/v1/safetymonitor/0/issafe"
    first = httpx.get(url, params={"ClientID": 7, "ClientTransactionID": 4242}).json()
    second = httpx.get(url, params={"clientid": 7, "clienttransactionid": 4243}).json()  # names: any case in GET
    assert first["ClientTransactionID"] == 4242 and second["ClientTransactionID"] == 4243
    assert second["ServerTransactionID"] > first["ServerTransactionID"] > 0
    assert first["Value"] is False and first["ErrorNumber"] == 0 and first["ErrorMessage"] == ""
    put = httpx.put(
        f"{alpaca.url}/api/v1/safetymonitor/0/connected", data={"Connected": "True", "ClientTransactionID": 5}
    )
    assert put.status_code == 200 and put.json()["ClientTransactionID"] == 5 and "Value" not in put.json()


BAD_REQUESTS = [
    ("GET", "/api/v1/safetymonitor/1/issafe", None, 400),  # unknown device number
    ("GET", "/api/v1/safetymonitor/x/issafe", None, 400),
    ("GET", "/api/v1/telescope/0/issafe", None, 400),  # a device type this server has not
    ("GET", "/api/v1/safetymonitor/0/frobnicate", None, 400),
    ("GET", "/api/v2/safetymonitor/0/issafe", None, 400),
    ("GET", "/api/v1/safetymonitor/0/issafe?ClientTransactionID=abc", None, 400),
    ("GET", "/api/v1/safetymonitor/0/issafe?ClientID=-1", None, 400),
    ("GET", "/api/v1/safetymonitor/0/issafe?ClientTransactionID=4294967296", None, 400),
    ("PUT", "/api/v1/safetymonitor/0/issafe", {}, 405),
    ("PUT", "/api/v1/safetymonitor/0/connected", {"connected": "true"}, 400),  # PUT names are case-sensitive
    ("PUT", "/api/v1/safetymonitor/0/connected", {"Connected": "maybe"}, 400),
    ("PUT", "/api/v1/safetymonitor/0/connected", {}, 400),
    ("PUT", "/api/v1/observingconditions/0/averageperiod", {"AveragePeriod": "soon"}, 400),
    ("GET", "/api/v1/observingconditions/0/sensordescription", None, 400),
    ("GET", "/nonsense", None, 404),
    ("GET", "/management/v1/nothing", None, 404),
]


def test_bad_requests_get_an_http_error_and_never_stop_the_server(start_alpaca, watcher):
    alpaca = start_alpaca()
    for method, path, data, status in BAD_REQUESTS:
        reply = httpx.request(method, alpaca.url + path, data=data)
        assert reply.status_code == status, (method, path, reply.text)
        assert reply.text and len(reply.text) < 300, path
    with socket.create_connection(("127.0.0.1", alpaca.port)) as raw:  # not HTTP at all
        raw.sendall(b"\x00\x01garbage\r\n\r\n")
        raw.recv(1024)
    assert httpx.get(f"{alpaca.url}/api/v1/safetymonitor/0/issafe").json()["ErrorNumber"] == 0
    assert alpaca.process.poll() is None


def test_refused_requests_get_the_alpaca_error_numbers(start_alpaca, watcher):
    alpaca = start_alpaca()
    oc = f"{alpaca.url}/api/v1/observingconditions/0"

    def error(method: str, url: str, **params: object) -> int:
        reply = httpx.request(method, url, **({"params": params} if method == "GET" else {"data": params}))
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["ErrorMessage"] or body["ErrorNumber"] == 0
        return body["ErrorNumber"]

    assert error("GET", f"{oc}/temperature") == 0x407  # NotConnected
    assert error("PUT", f"{oc}/connected", Connected="True") == 0
    assert error("GET", f"{oc}/starfwhm") == 0x400  # NotImplemented
    assert error("PUT", f"{oc}/averageperiod", AveragePeriod="1.5") == 0x401  # InvalidValue
    assert error("GET", f"{oc}/sensordescription", SensorName="Frobs") == 0x401
    assert error("GET", f"{oc}/timesincelastupdate", SensorName="StarFWHM") == 0x400
    assert error("PUT", f"{oc}/action", Action="x", Parameters="") == 0x40C  # ActionNotImplemented
    assert error("PUT", f"{oc}/commandblind", Command="x", Raw="False") == 0x400
    # A body that is not a form at all is read as no parameters, never as a crash.
    reply = httpx.put(f"{oc}/connected", content=b"\xff\xfe{]", headers={"Content-Type": "text/plain"})
    assert reply.status_code == 400


def test_discovery_answers_on_loopback(start_alpaca, watcher):
    alpaca = start_alpaca()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b"alpacadiscovery1", ("127.0.0.1", alpaca.discovery_port))
        data, _ = sock.recvfrom(1024)
        assert json.loads(data) == {"AlpacaPort": alpaca.port}
        sock.sendto(b"hello", ("127.0.0.1", alpaca.discovery_port))  # not a discovery: no answer
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recvfrom(1024)


def test_alpyca_discovers_the_server_on_the_alpaca_discovery_port(start_alpaca, watcher):
    from alpaca import discovery

    alpaca = start_alpaca(discovery_port=32227)
    found = discovery.search_ipv4(numquery=1, timeout=1)
    assert f"127.0.0.1:{alpaca.port}" in found, found
