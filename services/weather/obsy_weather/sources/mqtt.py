"""Sensors already on the broker: Home Assistant, ESPHome, Zigbee2MQTT, Tasmota...

Each configured sensor is a topic plus, for JSON payloads, a dotted path to the value
(``AM2301.Temperature``, ``readings.0.value``); without a path the payload is the value
itself (ESPHome's ``.../sensor/<name>/state`` topics send plain numbers). The value is
converted from the sensor's ``unit`` to the quantity's unit. Each message is a reading,
timed when it arrives; a sensor that stops sending goes stale after the source's max_age.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from obsy.bus import Bus
from obsy_weather.config import MqttWeatherSensorConfig, MqttWeatherSourceConfig
from obsy_weather.sources.base import Clock, SampleSink, SourceError, WeatherSource


def extract(document: Any, path: str) -> Any:
    """Follow a dotted path (``a.b.0.c``) through JSON objects and lists."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise SourceError(f"no {part!r} at {path!r} in the payload")
    return value


class MqttWeatherSource(WeatherSource):
    kind = "mqtt"

    def __init__(self, config: MqttWeatherSourceConfig, sink: SampleSink, clock: Clock, *, bus: Bus) -> None:
        super().__init__(config, sink, clock)
        self.bus = bus
        self.sensors = config.sensors

    def start(self) -> None:
        for sensor in self.sensors:
            self.bus.subscribe(sensor.topic, self._handler(sensor), decode="bytes")

    def _handler(self, sensor: MqttWeatherSensorConfig) -> Callable[[str, bytes], None]:
        def handle(topic: str, payload: bytes) -> None:
            try:
                raw = self._value(sensor, payload)
            except SourceError as error:
                self.rejected += 1
                self.report(f"{topic}: {error}", key=f"payload:{sensor.topic}")
                return
            self.deliver([(sensor.quantity, raw, sensor.unit)])

        return handle

    @staticmethod
    def _value(sensor: MqttWeatherSensorConfig, payload: bytes) -> Any:
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SourceError("payload is not UTF-8 text") from None
        if sensor.json_path is None:
            return text
        try:
            document = json.loads(text)
        except ValueError as error:
            raise SourceError(f"payload is not valid JSON ({error}): {text[:60]!r}") from None
        return extract(document, sensor.json_path)
