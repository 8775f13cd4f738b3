"""HTTP weather sources against responses served from a loopback HTTP server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from obsy.config import HttpWeatherSourceConfig, SiteConfig
from obsy_weather.readings import Sample
from obsy_weather.sources.http import make_http_source
from tests.support.weather_http import FakeWeatherApi

pytestmark = pytest.mark.integration

SITE = SiteConfig(latitude=48.2, longitude=16.4)
NOW = datetime(2026, 1, 15, 22, 5, tzinfo=UTC)

OPEN_METEO = {
    "latitude": 48.2,
    "longitude": 16.4,
    "current_units": {
        "time": "iso8601",
        "interval": "seconds",
        "temperature_2m": "°F",
        "relative_humidity_2m": "%",
        "dew_point_2m": "°F",
        "surface_pressure": "hPa",
        "wind_speed_10m": "mp/h",
        "wind_gusts_10m": "mp/h",
        "wind_direction_10m": "°",
        "precipitation": "mm",
        "cloud_cover": "%",
    },
    "current": {
        "time": "2026-01-15T22:00",
        "interval": 900,
        "temperature_2m": 50.0,
        "relative_humidity_2m": 81,
        "dew_point_2m": 44.6,
        "surface_pressure": 1002.5,
        "wind_speed_10m": 10.0,
        "wind_gusts_10m": 20.0,
        "wind_direction_10m": 270,
        "precipitation": 0.5,
        "cloud_cover": 75,
    },
}

OPENWEATHERMAP = {
    "coord": {"lon": 16.4, "lat": 48.2},
    "main": {"temp": 3.2, "feels_like": 0.1, "pressure": 1021, "humidity": 87},
    "wind": {"speed": 5.0, "deg": 200, "gust": 9.5},
    "clouds": {"all": 40},
    "rain": {"1h": 1.25},
    "dt": 1768514400,
    "name": "Wien",
    "cod": 200,
}


@pytest.fixture
def api() -> Iterator[FakeWeatherApi]:
    with FakeWeatherApi() as server:
        yield server


def source(api: FakeWeatherApi, kind: str = "open_meteo", **settings):
    delivered: list[Sample] = []
    config = HttpWeatherSourceConfig.model_validate({"type": kind, "name": kind, "url": api.url, **settings})
    return make_http_source(config, delivered.extend, lambda: NOW, site=SITE), delivered


def by_quantity(samples: list[Sample]) -> dict[str, float | bool]:
    return {s.quantity: s.value for s in samples}


def test_open_meteo_current_values_with_their_units(api) -> None:
    api.body = json.dumps(OPEN_METEO).encode()
    weather, delivered = source(api)
    weather.poll_once()
    values = by_quantity(delivered)
    assert values["ambient_temperature"] == pytest.approx(10.0)
    assert values["dew_point"] == pytest.approx(7.0)
    assert values["wind_speed"] == pytest.approx(16.0934) and values["wind_gust"] == pytest.approx(32.1869)
    assert values["rain_rate"] == pytest.approx(2.0)  # 0.5 mm in 15 minutes
    assert values["humidity"] == 81 and values["pressure"] == 1002.5 and values["cloud_cover"] == 75
    assert delivered[0].measured_at == datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
    assert delivered[0].source == "open_meteo" and weather.errors == 0
    query = api.requests[0]
    assert query["latitude"] == ["48.2"] and query["longitude"] == ["16.4"] and "wind_gusts_10m" in query["current"][0]


def test_openweathermap_current_weather(api) -> None:
    api.body = json.dumps(OPENWEATHERMAP).encode()
    weather, delivered = source(api, "openweathermap", api_key="secret-key", latitude=-33.9, longitude=18.4)
    weather.poll_once()
    values = by_quantity(delivered)
    assert values["wind_speed"] == pytest.approx(18.0) and values["wind_gust"] == pytest.approx(34.2)
    assert values["rain_rate"] == 1.25 and values["humidity"] == 87 and values["wind_direction"] == 200
    assert delivered[0].measured_at == datetime.fromtimestamp(1768514400, UTC)
    assert api.requests[0]["appid"] == ["secret-key"] and api.requests[0]["lat"] == ["-33.9"]
    assert api.requests[0]["units"] == ["metric"]


@pytest.mark.parametrize(
    ("status", "body", "delay", "message"),
    [
        (500, b"upstream exploded", 0, "Open-Meteo at http://127.0.0.1:.* answered HTTP 500"),
        (200, b"{not json", 0, "Open-Meteo at .* sent invalid JSON"),
        (200, b'{"error": true, "reason": "Latitude must be in range"}', 0, "no 'current' block.*Latitude must"),
        (200, b"{}", 1.5, "Open-Meteo at .* did not answer within 0.5 s"),
    ],
)
def test_failures_name_the_provider_and_deliver_nothing(api, status, body, delay, message) -> None:
    api.status, api.body, api.delay = status, body, delay
    weather, delivered = source(api, timeout=0.5)
    assert weather.poll_once() == []
    assert delivered == [] and weather.errors == 1
    assert weather.last_error is not None and re.search(message, weather.last_error), weather.last_error


def test_garbage_values_are_dropped_and_the_rest_kept(api) -> None:
    broken = json.loads(json.dumps(OPEN_METEO))
    broken["current"]["relative_humidity_2m"] = -12
    broken["current"]["wind_speed_10m"] = "fast"
    text = json.dumps(broken).replace('"surface_pressure": 1002.5', '"surface_pressure": NaN')
    api.body = text.encode()
    weather, delivered = source(api)
    weather.poll_once()
    values = by_quantity(delivered)
    assert "humidity" not in values and "wind_speed" not in values and "pressure" not in values
    assert values["ambient_temperature"] == pytest.approx(10.0)
    assert weather.rejected == 3 and weather.status()["rejected"] == 3


def test_openweathermap_without_key_and_with_a_refusal(api) -> None:
    weather, delivered = source(api, "openweathermap")
    weather.poll_once()
    assert "api_key is not set" in (weather.last_error or "")
    api.status, api.body = 401, b'{"cod":401, "message": "Invalid API key wrong-key-123"}'
    weather, delivered = source(api, "openweathermap", api_key="wrong-key-123")
    weather.poll_once()
    assert delivered == [] and "OpenWeatherMap at" in weather.last_error and "HTTP 401" in weather.last_error
    assert "wrong-key-123" not in weather.last_error and "Invalid API key ***" in weather.last_error


def test_a_measurement_time_in_the_future_is_not_trusted(api) -> None:
    """A provider clock far ahead must not keep a reading fresh for ever: it is dated when received."""
    future = json.loads(json.dumps(OPEN_METEO))
    future["current"]["time"] = "2031-01-01T00:00"
    api.body = json.dumps(future).encode()
    weather, delivered = source(api)
    weather.poll_once()
    assert delivered and all(s.measured_at == NOW for s in delivered)
    assert "is in the future" in weather.last_error
