"""INDI weather devices: any driver with the standard weather interface (WEATHER_PARAMETERS).

Element names of the common drivers map to OBSY quantities by default (see
:data:`DEFAULT_PARAMETERS`); a config's ``parameters`` adds or overrides entries, and an
entry set to null drops one. A key is either an element of WEATHER_PARAMETERS
(``WEATHER_TEMPERATURE``) or ``PROPERTY.ELEMENT`` for values a driver keeps elsewhere
(``SKY_QUALITY.SKY_BRIGHTNESS`` of the SQM drivers).

Values are taken from every update the driver sends (no waiting for a poll), and the
driver's own update period (WEATHER_UPDATE) is set to ``poll_interval``. A property in
Alert means the driver could not read its hardware: its values are reported, not used.
When indiserver goes away nothing arrives, and the readings go stale after ``max_age``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from obsy.config import IndiServerConfig
from obsy.indi import IndiClient, IndiError, IndiRangeError
from obsy_weather.config import IndiWeatherSourceConfig
from obsy_weather.sources.base import Clock, RawValue, SampleSink, WeatherSource

PARAMETERS = "WEATHER_PARAMETERS"
STATUS = "WEATHER_STATUS"

#: INDI element -> (quantity, unit the drivers send). INDI's weather drivers use metric units.
DEFAULT_PARAMETERS: dict[str, tuple[str, str]] = {
    # indi_simulator_weather, OpenWeatherMap, Vantage, most DIY drivers
    "WEATHER_TEMPERATURE": ("ambient_temperature", "°C"),
    "WEATHER_HUMIDITY": ("humidity", "%"),
    "WEATHER_DEWPOINT": ("dew_point", "°C"),
    "WEATHER_DEW_POINT": ("dew_point", "°C"),
    "WEATHER_PRESSURE": ("pressure", "hPa"),
    "WEATHER_BAROMETER": ("pressure", "hPa"),
    "WEATHER_WIND_SPEED": ("wind_speed", "km/h"),
    "WEATHER_WIND_GUST": ("wind_gust", "km/h"),
    "WEATHER_WIND_DIRECTION": ("wind_direction", "°"),
    "WEATHER_RAIN_HOUR": ("rain_rate", "mm/h"),
    "WEATHER_RAIN_RATE": ("rain_rate", "mm/h"),
    "WEATHER_IS_RAIN": ("rain", ""),
    "WEATHER_CLOUD_COVER": ("cloud_cover", "%"),
    "WEATHER_SKY_TEMP": ("sky_temperature", "°C"),
    "WEATHER_SKY_TEMPERATURE": ("sky_temperature", "°C"),
    "WEATHER_SKY_DIFF": ("sky_minus_ambient", "°C"),
    "WEATHER_SKY_DIFF_TEMP": ("sky_minus_ambient", "°C"),
    # SQM meters and boxes with one
    "WEATHER_SKY_BRIGHTNESS": ("sky_brightness", "mag/arcsec²"),
    "WEATHER_SKY_QUALITY": ("sky_brightness", "mag/arcsec²"),
    "SQM_READING": ("sky_brightness", "mag/arcsec²"),
    "SKY_QUALITY.SKY_BRIGHTNESS": ("sky_brightness", "mag/arcsec²"),
    # AAG CloudWatcher: WEATHER_CLOUD is its corrected sky temperature; it approximates sky minus ambient
    # only after the driver's correction, so it is left to the config (as are WEATHER_RAIN cycles).
}


def element_map(config: IndiWeatherSourceConfig) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(property, element) -> (quantity, unit): the defaults with the config's entries over them."""
    merged: dict[str, tuple[str, str | None]] = dict(DEFAULT_PARAMETERS)
    for key, entry in config.parameters.items():
        if entry is None:
            merged.pop(key, None)
        else:
            merged[key] = (entry.quantity, entry.unit)
    result: dict[tuple[str, str], tuple[str, str | None]] = {}
    for key, target in merged.items():
        prop, _, element = key.rpartition(".")
        result[(prop or PARAMETERS, element)] = target
    return result


class IndiWeatherSource(WeatherSource):
    kind = "indi"

    def __init__(
        self, config: IndiWeatherSourceConfig, sink: SampleSink, clock: Clock, *, indi: IndiServerConfig
    ) -> None:
        super().__init__(config, sink, clock)
        self.settings = config
        self.device = config.device
        self.elements = element_map(config)
        self.properties = {prop for prop, _ in self.elements}
        self.client = IndiClient(
            config.host or indi.host,
            config.port or indi.port,
            connect_timeout=indi.connect_timeout,
            timeout=10.0,
            reconnect=True,
        )
        self.client.add_listener(self._on_property)
        self.client.on_reconnect(self._prepare_device)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.device_ready = threading.Event()
        self.driver_status: dict[str, str] = {}

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._connect_loop, name=f"weather-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        self.client.disconnect()

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "server": self.client.address,
            "device": self.device,
            "connected": self.client.connected,
            "device_ready": self.device_ready.is_set(),
            "driver_status": self.driver_status,
        }

    def _connect_loop(self) -> None:
        """Connect to the server (retrying until stopped); afterwards IndiClient reconnects by itself."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.client.connect()
            except IndiError as error:
                self.report(f"cannot reach indiserver: {error}", key="connect")
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            self._prepare_device()
            return

    def _prepare_device(self) -> None:
        """Connect the device and set its update period; retried until it works or the source stops."""
        self.device_ready.clear()
        while not self._stop.is_set():
            try:
                self.client.connect_device(self.device)
                if self.settings.set_update_period:
                    self._set_update_period()
                self.device_ready.set()
                values = self._snapshot_values()
                if values:
                    self.deliver(values)
                return
            except IndiError as error:
                self.report(f"device {self.device!r}: {error}", key="device")
                if not self.client.connected:
                    return  # the client's own reconnect calls us again
                self._stop.wait(5.0)

    def _set_update_period(self) -> None:
        try:
            self.client.wait_property(self.device, "WEATHER_UPDATE", timeout=3.0)
            self.client.set_number(self.device, "WEATHER_UPDATE", {"PERIOD": self.settings.poll_interval}, timeout=5.0)
        except IndiRangeError as error:  # the driver polls at its own period: the readings come slower or faster
            self.log.warning("%s: poll_interval not applied to the driver: %s", self.name, error)
        except IndiError as error:  # not every driver has one (SQM meters poll on their own)
            self.log.info("%s: driver update period not set: %s", self.name, error)

    def _snapshot_values(self) -> list[RawValue]:
        values: list[RawValue] = []
        for prop in self.properties:
            try:
                snapshot = self.client.get_property(self.device, prop)
            except IndiError:
                continue
            if snapshot.state != "Alert":
                values.extend(self._mapped(prop, snapshot.values))
        return values

    def _mapped(self, prop: str, values: Mapping[str, Any]) -> list[RawValue]:
        found: list[RawValue] = []
        for element, raw in values.items():
            target = self.elements.get((prop, element))
            if target is not None:
                found.append((target[0], raw, target[1]))
        return found

    def _on_property(self, device: str, prop: str, state: str, values: Mapping[str, Any]) -> None:
        if device != self.device:
            return
        if prop == STATUS:  # the driver's own judgement by its own limits: shown, not used for the verdict
            self.driver_status = dict(values)
            return
        if prop not in self.properties:
            return
        mapped = self._mapped(prop, values)
        if not mapped:
            return
        if state == "Alert":
            self.report(
                f"{device} {prop} is in Alert (the driver cannot read its sensors); values ignored", key="alert"
            )
            return
        self.deliver(mapped)
