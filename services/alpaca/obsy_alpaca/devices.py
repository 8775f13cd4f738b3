"""The two Alpaca devices: SafetyMonitor (IsSafe) and ObservingConditions (the weather readings).

Both share the members every ASCOM device has (:class:`AlpacaDevice`): Connected, the
Platform 7 Connect/Disconnect/Connecting, DeviceState, Name, Description, DriverInfo,
DriverVersion, InterfaceVersion, SupportedActions, and Action/Command* (not implemented).
Connecting is instantaneous (nothing to open: the data come from the bus), so Connect
leaves Connecting false at once. Connected is one flag per device, shared by every client,
as ASCOM devices are.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from obsy.messages import Reading, utc_now
from obsy_alpaca.protocol import (
    ACTION_NOT_IMPLEMENTED,
    INVALID_VALUE,
    VALUE_NOT_SET,
    AlpacaError,
    Request,
    not_connected,
    not_implemented,
)
from obsy_alpaca.watch import VerdictWatch

#: A method member's result: Alpaca answers a method without a ``Value``.
NO_VALUE = object()

Handler = Callable[[Request], Any]


class AlpacaDevice:
    """Members common to every ASCOM device; subclasses add theirs in :meth:`_members`.

    Members are keyed by (HTTP method, lower-case name): ``("PUT", "connected")`` and
    ``("GET", "connected")`` are two members.
    """

    device_type: ClassVar[str]  # as in configureddevices: "SafetyMonitor"
    interface_version: ClassVar[int]
    description: ClassVar[str]

    def __init__(self, watch: VerdictWatch, unique_id: str, version: str, device_number: int = 0) -> None:
        self.watch = watch
        self.unique_id = unique_id
        self.version = version
        self.device_number = device_number
        self.name = f"OBSY {self.device_type}"
        self._connected = False
        self._lock = threading.Lock()
        self.members: dict[tuple[str, str], Handler] = {
            ("GET", "connected"): lambda r: self.connected,
            ("GET", "connecting"): lambda r: False,
            ("GET", "description"): lambda r: self.description,
            ("GET", "devicestate"): self._device_state,
            ("GET", "driverinfo"): lambda r: f"OBSY Alpaca service {self.version}: {self.description}",
            ("GET", "driverversion"): lambda r: self.version,
            ("GET", "interfaceversion"): lambda r: self.interface_version,
            ("GET", "name"): lambda r: self.name,
            ("GET", "supportedactions"): lambda r: [],
            ("PUT", "action"): self._action,
            ("PUT", "commandblind"): self._command,
            ("PUT", "commandbool"): self._command,
            ("PUT", "commandstring"): self._command,
            ("PUT", "connect"): lambda r: self._set_connected(True),
            ("PUT", "disconnect"): lambda r: self._set_connected(False),
            ("PUT", "connected"): lambda r: self._set_connected(r.boolean("Connected")),
        }
        self.members |= self._members()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def _set_connected(self, value: bool) -> object:
        with self._lock:
            self._connected = value
        return NO_VALUE

    def require_connected(self) -> None:
        if not self.connected:
            raise not_connected(self.device_type)

    def member(self, name: str, http_method: str) -> Handler | None:
        """The member a request names, or None when this device has no such member for that HTTP method."""
        return self.members.get((http_method, name))

    def has_member(self, name: str) -> bool:
        """Whether the device has the member for any HTTP method (to tell 405 from 400)."""
        return any(member == name for _, member in self.members)

    def _members(self) -> dict[tuple[str, str], Handler]:
        return {}

    def _state_values(self) -> list[tuple[str, Any]]:
        """The operational properties DeviceState lists (implemented ones only)."""
        return []

    def _device_state(self, request: Request) -> list[dict[str, Any]]:
        self.require_connected()
        values = [*self._state_values(), ("TimeStamp", utc_now().replace(tzinfo=None).isoformat() + "Z")]
        return [{"Name": name, "Value": value} for name, value in values]

    def _action(self, request: Request) -> object:
        request.require("Action")
        request.require("Parameters")
        raise AlpacaError(ACTION_NOT_IMPLEMENTED, "OBSY's devices support no actions (SupportedActions is empty)")

    def _command(self, request: Request) -> object:
        request.require("Command")
        request.require("Raw")
        raise not_implemented("sending commands")


class SafetyMonitor(AlpacaDevice):
    """IsSafe: OBSY's weather verdict, false whenever it is unsafe, missing or stale, or the device is not connected."""

    device_type = "SafetyMonitor"
    interface_version = 3
    description = "OBSY's weather safety verdict (false when unsafe, missing or stale)"

    def _members(self) -> dict[tuple[str, str], Handler]:
        return {("GET", "issafe"): lambda r: self.is_safe()}

    def is_safe(self) -> bool:
        # Before connecting, IsSafe answers false rather than NotConnected (ConformU checks this).
        return self.connected and self.watch.safety().safe

    def _state_values(self) -> list[tuple[str, Any]]:
        return [("IsSafe", self.is_safe())]


@dataclass(frozen=True)
class Sensor:
    """One ObservingConditions property fed by one OBSY weather quantity."""

    name: str  # the ASCOM property name, e.g. "CloudCover"
    quantity: str | None  # OBSY's weather quantity; None: OBSY has no such sensor
    scale: float = 1.0  # OBSY's unit -> ASCOM's unit

    @property
    def member(self) -> str:
        return self.name.lower()


SENSORS = (
    Sensor("CloudCover", "cloud_cover"),
    Sensor("DewPoint", "dew_point"),
    Sensor("Humidity", "humidity"),
    Sensor("Pressure", "pressure"),  # hPa both
    Sensor("RainRate", "rain_rate"),  # mm/h both
    Sensor("SkyBrightness", None),  # lux: OBSY measures mag/arcsec² (SkyQuality), not illuminance
    Sensor("SkyQuality", "sky_brightness"),  # mag/arcsec²
    Sensor("SkyTemperature", "sky_temperature"),
    Sensor("StarFWHM", None),
    Sensor("Temperature", "ambient_temperature"),
    Sensor("WindDirection", "wind_direction"),
    Sensor("WindGust", "wind_gust", 1 / 3.6),  # km/h -> m/s
    Sensor("WindSpeed", "wind_speed", 1 / 3.6),  # km/h -> m/s
)
SENSORS_BY_NAME = {sensor.name.lower(): sensor for sensor in SENSORS}


class ObservingConditions(AlpacaDevice):
    """OBSY's weather readings in ASCOM units.

    A sensor is implemented when OBSY has the quantity and the weather service has sent a
    reading of it; otherwise its property, SensorDescription and TimeSinceLastUpdate answer
    NotImplemented. A reading that is stale, or everything while the weather service is
    silent or offline, answers ValueNotSet: a number that may be hours old is never served.
    OBSY does not average, so AveragePeriod is 0 and only 0 may be set.
    """

    device_type = "ObservingConditions"
    interface_version = 2
    description = "OBSY's weather readings (latest values, no averaging)"

    def _members(self) -> dict[tuple[str, str], Handler]:
        members = {("GET", sensor.member): self._sensor_getter(sensor) for sensor in SENSORS}
        members |= {
            ("GET", "averageperiod"): self._average_period,
            ("PUT", "averageperiod"): self._set_average_period,
            ("PUT", "refresh"): self._refresh,
            ("GET", "sensordescription"): self._sensor_description,
            ("GET", "timesincelastupdate"): self._time_since_last_update,
        }
        return members

    def _sensor_getter(self, sensor: Sensor) -> Handler:
        return lambda request: self.value(sensor)

    def _implemented_reading(self, sensor: Sensor) -> Reading:
        self.require_connected()
        reading = self.watch.reading(sensor.quantity) if sensor.quantity else None
        if reading is None:
            raise not_implemented(sensor.name)
        return reading

    def value(self, sensor: Sensor) -> float:
        reading = self._implemented_reading(sensor)
        problem = self.watch.freshness_problem()
        if problem is not None:
            raise AlpacaError(VALUE_NOT_SET, f"{sensor.name}: {problem}")
        if reading.stale or not isinstance(reading.value, int | float) or isinstance(reading.value, bool):
            raise AlpacaError(VALUE_NOT_SET, f"{sensor.name}: no current reading from {reading.source or 'OBSY'}")
        value = float(reading.value) * sensor.scale
        if not math.isfinite(value):
            raise AlpacaError(VALUE_NOT_SET, f"{sensor.name}: no current reading")
        if sensor.name == "WindDirection" and self._wind_is_calm():
            return 0.0  # the interface asks for 0 when the wind speed is 0
        return value

    def _wind_is_calm(self) -> bool:
        speed = self.watch.reading("wind_speed")
        return speed is not None and not speed.stale and speed.value == 0

    def _sensor(self, request: Request) -> Sensor | None:
        """The sensor a SensorName names (case-insensitive); None for "" (every sensor)."""
        name = request.require("SensorName")
        if name == "":
            return None
        sensor = SENSORS_BY_NAME.get(name.lower())
        if sensor is None:
            raise AlpacaError(INVALID_VALUE, f"no ObservingConditions sensor is called {name[:40]!r}")
        return sensor

    def _sensor_description(self, request: Request) -> str:
        sensor = self._sensor(request)
        if sensor is None:
            raise AlpacaError(INVALID_VALUE, "SensorDescription needs a sensor name")
        reading = self._implemented_reading(sensor)
        return f"OBSY weather quantity {sensor.quantity} from source {reading.source or 'unknown'}"

    def _time_since_last_update(self, request: Request) -> float:
        sensor = self._sensor(request)
        self.require_connected()
        if sensor is not None:
            times = [self._implemented_reading(sensor).measured_at]
        else:
            readings = [self.watch.reading(s.quantity) for s in SENSORS if s.quantity]
            times = [r.measured_at for r in readings if r is not None]
        known = [t for t in times if t is not None]
        if not known:
            raise AlpacaError(VALUE_NOT_SET, "no reading has a measurement time yet")
        return max(0.0, (utc_now() - max(known)).total_seconds())

    def _average_period(self, request: Request) -> float:
        self.require_connected()
        return 0.0

    def _set_average_period(self, request: Request) -> object:
        hours = request.number("AveragePeriod")
        self.require_connected()
        if hours != 0:
            raise AlpacaError(INVALID_VALUE, f"AveragePeriod must be 0 (OBSY serves latest values), not {hours:g}")
        return NO_VALUE

    def _refresh(self, request: Request) -> object:
        self.require_connected()
        return NO_VALUE  # the readings arrive by themselves; nothing to fetch

    def _state_values(self) -> list[tuple[str, Any]]:
        values = []
        for sensor in SENSORS:
            try:
                values.append((sensor.name, self.value(sensor)))
            except AlpacaError:
                continue  # DeviceState lists only what has a value now
        return values
