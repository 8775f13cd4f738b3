"""Source helpers that need no device: JSON paths, the INDI element map, the source factory."""

from __future__ import annotations

import pytest

from obsy.config import IndiWeatherSourceConfig, WeatherConfig
from obsy_weather.sources.base import SourceError
from obsy_weather.sources.indi import element_map
from obsy_weather.sources.mqtt import extract


def test_dotted_json_paths() -> None:
    document = {"AM2301": {"Temperature": 21.5}, "readings": [{"value": 1}, {"value": 2}]}
    assert extract(document, "AM2301.Temperature") == 21.5
    assert extract(document, "readings.1.value") == 2
    assert extract(document, "readings.-1.value") == 2
    for path in ("AM2301.Humidity", "readings.5.value", "readings.x"):
        with pytest.raises(SourceError, match="no '"):
            extract(document, path)


def test_indi_element_map_defaults_overrides_and_drops() -> None:
    config = IndiWeatherSourceConfig.model_validate(
        {
            "type": "indi",
            "name": "aag",
            "device": "AAG Cloud Watcher",
            "parameters": {
                "WEATHER_CLOUD": {"quantity": "sky_minus_ambient", "unit": "°C"},
                "WEATHER_WIND_SPEED": {"quantity": "wind_speed", "unit": "m/s"},
                "WEATHER_RAIN_HOUR": None,
                "SKY_QUALITY.SKY_BRIGHTNESS": {"quantity": "sky_brightness"},
            },
        }
    )
    mapping = element_map(config)
    assert mapping[("WEATHER_PARAMETERS", "WEATHER_CLOUD")] == ("sky_minus_ambient", "°C")
    assert mapping[("WEATHER_PARAMETERS", "WEATHER_WIND_SPEED")] == ("wind_speed", "m/s")
    assert ("WEATHER_PARAMETERS", "WEATHER_RAIN_HOUR") not in mapping
    assert mapping[("WEATHER_PARAMETERS", "WEATHER_TEMPERATURE")] == ("ambient_temperature", "°C")
    assert mapping[("SKY_QUALITY", "SKY_BRIGHTNESS")] == ("sky_brightness", None)


def test_source_config_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match="unknown weather quantity 'humidty'"):
        IndiWeatherSourceConfig.model_validate(
            {"type": "indi", "name": "x", "parameters": {"WEATHER_HUMIDITY": {"quantity": "humidty"}}}
        )
    with pytest.raises(ValueError, match="weather source names must be unique: a"):
        WeatherConfig.model_validate(
            {
                "sources": [
                    {"type": "rg15", "name": "a", "port": "/dev/ttyUSB0"},
                    {"type": "rg11", "name": "a", "port": "x"},
                ]
            }
        )
    with pytest.raises(ValueError, match="sensors"):
        WeatherConfig.model_validate({"sources": [{"type": "mqtt", "name": "m", "sensors": []}]})
    with pytest.raises(
        ValueError, match="tag 'davis' found using 'type' does not match any of the expected tags: 'indi'"
    ):
        WeatherConfig.model_validate({"sources": [{"type": "davis", "name": "d"}]})


def test_a_polling_source_survives_a_failing_sink() -> None:
    import threading
    from datetime import UTC, datetime

    from obsy.config import WeatherSourceBase
    from obsy_weather.sources.base import PollingSource

    calls: list[int] = []
    done = threading.Event()

    def sink(samples) -> None:
        calls.append(len(samples))
        if len(calls) == 1:
            raise RuntimeError("publishing failed")
        done.set()

    class Steady(PollingSource):
        def read(self):
            return [("humidity", 50, "%")], None

    source = Steady(WeatherSourceBase(name="steady", poll_interval=0.01), sink, lambda: datetime.now(UTC))
    source.start()
    try:
        assert done.wait(5), "the source stopped polling after the sink failed"
    finally:
        source.stop()
    assert "RuntimeError while handing over readings: publishing failed" in source.last_error
