"""The weather section of the configuration (registered in the ``obsy.config_sections`` entry-point group)."""

from __future__ import annotations

import difflib
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from obsy.config.base import Section, ServiceSection
from obsy.messages import WEATHER_QUANTITIES


def _weather_quantity(name: str) -> str:
    if name not in WEATHER_QUANTITIES:
        close = difflib.get_close_matches(name, WEATHER_QUANTITIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (one of {', '.join(WEATHER_QUANTITIES)})"
        raise ValueError(f"unknown weather quantity {name!r}{hint}")
    return name


class WeatherSourceBase(Section):
    """What every weather source has: a name (the ``source`` of its readings) and its timing."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="names the source in readings and errors")
    enabled: bool = True
    poll_interval: float = Field(default=10.0, gt=0, description="seconds between reads")
    max_age: float = Field(default=120.0, gt=0, description="seconds after which its readings are stale")


class WeatherElementMap(Section):
    quantity: str
    unit: str | None = Field(default=None, description="unit the source sends; empty = the quantity's own unit")
    _check = field_validator("quantity")(_weather_quantity)


class IndiWeatherSourceConfig(WeatherSourceBase):
    """An INDI weather device (WEATHER_PARAMETERS); see docs/weather.md for the default element map."""

    type: Literal["indi"]
    device: str = "Weather Simulator"
    host: str | None = Field(default=None, description="empty = the indi section's host")
    port: int | None = Field(default=None, ge=1, le=65535, description="empty = the indi section's port")
    set_update_period: bool = Field(default=True, description="set the driver's WEATHER_UPDATE to poll_interval")
    parameters: dict[str, WeatherElementMap | None] = Field(
        default_factory=dict, description="INDI element -> quantity, merged over the defaults; null drops one"
    )


class HttpWeatherSourceConfig(WeatherSourceBase):
    """Open-Meteo (no key) or OpenWeatherMap current weather (needs api_key)."""

    type: Literal["open_meteo", "openweathermap"]
    url: str | None = Field(default=None, description="empty = the provider's public endpoint")
    api_key: SecretStr | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90, description="empty = site.latitude")
    longitude: float | None = Field(default=None, ge=-180, le=180, description="empty = site.longitude")
    timeout: float = Field(default=10.0, gt=0, description="seconds for one request")
    poll_interval: float = Field(default=300.0, gt=0)
    max_age: float = Field(default=1800.0, gt=0)


class MqttWeatherSensorConfig(WeatherElementMap):
    topic: str = Field(min_length=1)
    json_path: str | None = Field(default=None, description="dotted path into a JSON payload; empty = plain value")


class MqttWeatherSourceConfig(WeatherSourceBase):
    """Sensors already on the broker (Home Assistant, ESPHome, Zigbee2MQTT)."""

    type: Literal["mqtt"]
    sensors: list[MqttWeatherSensorConfig] = Field(min_length=1)


class SerialRainSourceConfig(WeatherSourceBase):
    """A Hydreon rain sensor on a serial port: RG-15 (text protocol) or RG-11 (relay on a modem status line)."""

    type: Literal["rg15", "rg11"]
    port: str = Field(description="serial device or pyserial URL, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0)
    timeout: float = Field(default=2.0, gt=0, description="seconds to wait for an answer (rg15)")
    line: Literal["CTS", "DSR", "DCD", "RI"] = Field(default="CTS", description="rg11: status line the relay drives")
    wet_when: Literal["closed", "open"] = Field(default="closed", description="rg11: relay state that means rain")
    poll_interval: float = Field(default=2.0, gt=0)
    max_age: float = Field(default=30.0, gt=0)


WeatherSourceConfig = Annotated[
    IndiWeatherSourceConfig | HttpWeatherSourceConfig | MqttWeatherSourceConfig | SerialRainSourceConfig,
    Field(discriminator="type"),
]


class WeatherLimitConfig(Section):
    """A safety limit with hysteresis: unsafe beyond ``unsafe_*``, safe again only past ``safe_*``."""

    unsafe_above: float | None = None
    safe_below: float | None = Field(default=None, description="empty = unsafe_above (no hysteresis)")
    unsafe_below: float | None = None
    safe_above: float | None = Field(default=None, description="empty = unsafe_below (no hysteresis)")
    unsafe_if: bool | None = Field(default=None, description="for yes/no quantities (rain): the unsafe value")
    required: bool = Field(default=True, description="missing or stale data is unsafe")

    @model_validator(mode="after")
    def _consistent(self) -> WeatherLimitConfig:
        if self.unsafe_above is None and self.unsafe_below is None and self.unsafe_if is None:
            raise ValueError("a limit needs unsafe_above, unsafe_below or unsafe_if")
        if self.unsafe_above is not None:
            self.safe_below = self.unsafe_above if self.safe_below is None else self.safe_below
            if self.safe_below > self.unsafe_above:
                raise ValueError(f"safe_below {self.safe_below} must not exceed unsafe_above {self.unsafe_above}")
        elif self.safe_below is not None:
            raise ValueError("safe_below needs unsafe_above")
        if self.unsafe_below is not None:
            self.safe_above = self.unsafe_below if self.safe_above is None else self.safe_above
            if self.safe_above < self.unsafe_below:
                raise ValueError(f"safe_above {self.safe_above} must not be below unsafe_below {self.unsafe_below}")
        elif self.safe_above is not None:
            raise ValueError("safe_above needs unsafe_below")
        return self


def _default_weather_limits() -> dict[str, WeatherLimitConfig]:
    return {
        "rain": WeatherLimitConfig(unsafe_if=True),
        "wind_speed": WeatherLimitConfig(unsafe_above=40, safe_below=30),
        "wind_gust": WeatherLimitConfig(unsafe_above=55, safe_below=45, required=False),
        "humidity": WeatherLimitConfig(unsafe_above=90, safe_below=85, required=False),
        "dew_point_margin": WeatherLimitConfig(unsafe_below=2, safe_above=3, required=False),
        "cloud_cover": WeatherLimitConfig(unsafe_above=60, safe_below=40, required=False),
        "sky_minus_ambient": WeatherLimitConfig(unsafe_above=-15, safe_below=-18, required=False),
    }


class WeatherConfig(ServiceSection):
    sources: list[WeatherSourceConfig] = Field(default_factory=list, description="read at the same time")
    limits: dict[str, WeatherLimitConfig] = Field(default_factory=_default_weather_limits)
    safe_delay: float = Field(default=600.0, ge=0, description="seconds conditions must stay safe before 'safe'")
    publish_interval: float = Field(default=30.0, gt=0, description="seconds between republishing state and verdict")
    allow_simulation: bool = Field(
        default=False,
        description="obey 'simulate' commands from the bus (the dashboard's make-it-rain) on INDI weather "
        "simulators; for demonstrations, never on an observatory with real sensors",
    )

    @field_validator("limits")
    @classmethod
    def _known_quantities(cls, limits: dict[str, WeatherLimitConfig]) -> dict[str, WeatherLimitConfig]:
        for name in limits:
            _weather_quantity(name)
        return limits

    @model_validator(mode="after")
    def _unique_source_names(self) -> WeatherConfig:
        names = [source.name for source in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"weather source names must be unique: {', '.join(duplicates)}")
        return self
