"""Weather sources: each reads one device or service and hands normalised samples to the service.

See :mod:`obsy_weather.sources.base` for the contract; :func:`build_source` makes the right
source for a config entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from obsy_weather.config import (
    HttpWeatherSourceConfig,
    IndiWeatherSourceConfig,
    MqttWeatherSourceConfig,
    SerialRainSourceConfig,
)
from obsy_weather.sources.base import Clock, SampleSink, WeatherSource

if TYPE_CHECKING:
    from obsy.bus import Bus
    from obsy.config import ObsyConfig
    from obsy_weather.config import WeatherSourceConfig


def build_source(
    config: WeatherSourceConfig, sink: SampleSink, clock: Clock, *, obsy: ObsyConfig, bus: Bus
) -> WeatherSource:
    """The source for one entry of ``weather.sources`` (imports only what that kind needs)."""
    if isinstance(config, IndiWeatherSourceConfig):
        from obsy_weather.sources.indi import IndiWeatherSource

        return IndiWeatherSource(config, sink, clock, indi=obsy.indi)
    if isinstance(config, HttpWeatherSourceConfig):
        from obsy_weather.sources.http import make_http_source

        return make_http_source(config, sink, clock, site=obsy.site)
    if isinstance(config, MqttWeatherSourceConfig):
        from obsy_weather.sources.mqtt import MqttWeatherSource

        return MqttWeatherSource(config, sink, clock, bus=bus)
    if isinstance(config, SerialRainSourceConfig):
        from obsy_weather.sources.serial_rain import make_serial_rain_source

        return make_serial_rain_source(config, sink, clock)
    raise TypeError(f"unknown weather source config {type(config).__name__}")


__all__ = ["Clock", "SampleSink", "WeatherSource", "build_source"]
