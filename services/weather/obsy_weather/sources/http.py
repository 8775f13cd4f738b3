"""Weather APIs over HTTP: Open-Meteo (current conditions, no key) and OpenWeatherMap (current weather).

Both are optional online sources: when the network or the provider fails, the error names
the provider and the URL, the readings age, and after ``max_age`` they are stale (unknown,
which is unsafe where the quantity is required). The units come from the answer itself
where the provider states them (Open-Meteo's ``current_units``); OpenWeatherMap is asked
for metric units. Model data is coarse: use it for wind, cloud cover and pressure, not as
the only rain sensor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from obsy.config import SiteConfig
from obsy_weather.config import HttpWeatherSourceConfig
from obsy_weather.sources.base import Clock, PollingSource, RawValue, SampleSink, SourceError

#: Open-Meteo variable -> quantity
OPEN_METEO_VARIABLES = {
    "temperature_2m": "ambient_temperature",
    "relative_humidity_2m": "humidity",
    "dew_point_2m": "dew_point",
    "surface_pressure": "pressure",
    "wind_speed_10m": "wind_speed",
    "wind_gusts_10m": "wind_gust",
    "wind_direction_10m": "wind_direction",
    "precipitation": "rain_rate",
    "cloud_cover": "cloud_cover",
}


class HttpWeatherSource(PollingSource):
    provider = "HTTP"
    default_url = ""

    def __init__(self, config: HttpWeatherSourceConfig, sink: SampleSink, clock: Clock, *, site: SiteConfig) -> None:
        super().__init__(config, sink, clock)
        self.settings = config
        self.url = config.url or self.default_url
        self.latitude = config.latitude if config.latitude is not None else site.latitude
        self.longitude = config.longitude if config.longitude is not None else site.longitude
        self.client = httpx.Client(timeout=config.timeout, headers={"User-Agent": "OBSY weather service"})
        self.kind = self.provider

    def close(self) -> None:
        self.client.close()

    def report(self, message: str, *, key: str = "error") -> None:
        """As the base, with the API key blanked out: error texts end up in logs and on the bus."""
        secret = self.settings.api_key.get_secret_value() if self.settings.api_key else ""
        super().report(message.replace(secret, "***") if secret else message, key=key)

    def fetch(self, params: dict[str, Any]) -> Any:
        """GET the URL and decode its JSON; every failure becomes a SourceError naming the provider."""
        try:
            response = self.client.get(self.url, params=params)
        except httpx.TimeoutException:
            raise SourceError(
                f"{self.provider} at {self.url} did not answer within {self.settings.timeout:g} s"
            ) from None
        except httpx.HTTPError as error:
            raise SourceError(f"{self.provider} at {self.url} cannot be reached: {error}") from None
        if response.status_code != 200:
            raise SourceError(
                f"{self.provider} at {self.url} answered HTTP {response.status_code}: {response.text[:200]!r}"
            )
        try:
            return response.json()
        except ValueError:
            raise SourceError(f"{self.provider} at {self.url} sent invalid JSON: {response.text[:80]!r}") from None


class OpenMeteoSource(HttpWeatherSource):
    """``/v1/forecast?current=...``: the model's current 15-minute values."""

    provider = "Open-Meteo"
    default_url = "https://api.open-meteo.com/v1/forecast"

    def read(self) -> tuple[list[RawValue], datetime | None]:
        answer = self.fetch(
            {
                "latitude": self.latitude,
                "longitude": self.longitude,
                "current": ",".join(OPEN_METEO_VARIABLES),
                "wind_speed_unit": "kmh",
                "timezone": "GMT",
            }
        )
        current, units = (
            (answer.get("current"), answer.get("current_units", {})) if isinstance(answer, dict) else (None, {})
        )
        if not isinstance(current, dict):
            reason = answer.get("reason") if isinstance(answer, dict) else None
            raise SourceError(f"{self.provider}: no 'current' block in the answer{f' ({reason})' if reason else ''}")
        interval = current.get("interval") or 900
        values: list[RawValue] = []
        for variable, quantity in OPEN_METEO_VARIABLES.items():
            if current.get(variable) is None:
                continue
            unit = units.get(variable) if isinstance(units, dict) else None
            raw = current[variable]
            if variable == "precipitation":  # millimetres over the last interval -> a rate
                if isinstance(raw, int | float) and isinstance(interval, int | float) and interval > 0:
                    raw, unit = raw * 3600.0 / interval, "mm/h"
                else:
                    raw, unit = "not a number", "mm/h"
            values.append((quantity, raw, unit))
        return values, _parse_time(current.get("time"), self.provider)


class OpenWeatherMapSource(HttpWeatherSource):
    """``/data/2.5/weather``: the current weather of the nearest station/model cell (needs an API key)."""

    provider = "OpenWeatherMap"
    default_url = "https://api.openweathermap.org/data/2.5/weather"

    def read(self) -> tuple[list[RawValue], datetime | None]:
        if self.settings.api_key is None:
            raise SourceError(f"{self.provider}: api_key is not set")
        answer = self.fetch(
            {
                "lat": self.latitude,
                "lon": self.longitude,
                "units": "metric",
                "appid": self.settings.api_key.get_secret_value(),
            }
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("main"), dict):
            message = answer.get("message") if isinstance(answer, dict) else None
            raise SourceError(f"{self.provider}: no 'main' block in the answer{f' ({message})' if message else ''}")
        main, wind = answer["main"], answer.get("wind") or {}
        clouds, rain = answer.get("clouds") or {}, answer.get("rain") or {}
        values: list[RawValue] = [
            ("ambient_temperature", main.get("temp"), "°C"),
            ("humidity", main.get("humidity"), "%"),
            ("pressure", main.get("pressure"), "hPa"),
            ("wind_speed", wind.get("speed"), "m/s"),
            ("wind_gust", wind.get("gust"), "m/s"),
            ("wind_direction", wind.get("deg"), "°"),
            ("cloud_cover", clouds.get("all"), "%"),
            ("rain_rate", rain.get("1h", 0.0), "mm/h"),  # absent "rain" means none in the last hour
        ]
        measured = answer.get("dt")
        when = datetime.fromtimestamp(measured, UTC) if isinstance(measured, int | float) else None
        return [v for v in values if v[1] is not None], when


def _parse_time(text: object, provider: str) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SourceError(f"{provider}: cannot read the time {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def make_http_source(
    config: HttpWeatherSourceConfig, sink: SampleSink, clock: Clock, *, site: SiteConfig
) -> HttpWeatherSource:
    cls = OpenMeteoSource if config.type == "open_meteo" else OpenWeatherMapSource
    return cls(config, sink, clock, site=site)
