"""The quantities OBSY knows, their canonical units, plausible ranges and unit conversion.

Every reading is converted to the canonical unit of its quantity on the way in, so the
safety limits, the published state and Home Assistant all speak one unit per quantity.
The table of units is written out here rather than taken from a units library: it is
small, temperature offsets are explicit, and the aliases are the spellings weather
sources actually send (``°C``, ``degC``, ``km/h``, ``kph``, ``mmph``...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


class ReadingError(ValueError):
    """A value from a source cannot be used (not a number, NaN, outside the physical range, unknown unit)."""


@dataclass(frozen=True)
class Quantity:
    name: str
    unit: str
    """Canonical unit; every reading of this quantity is converted to it."""
    kind: str
    """Dimension of the unit ("temperature", "speed", ...): which conversions apply."""
    minimum: float | None = None
    maximum: float | None = None
    ha_device_class: str | None = None
    ha_icon: str | None = None
    label: str = ""

    @property
    def is_flag(self) -> bool:
        return self.kind == "flag"


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("ambient_temperature", "°C", "temperature", -80, 70, "temperature", label="Ambient temperature"),
        Quantity("humidity", "%", "percent", 0, 100, "humidity", label="Humidity"),
        Quantity("dew_point", "°C", "temperature", -100, 70, "temperature", label="Dew point"),
        Quantity(
            "dew_point_margin",
            "°C",
            "temperature_difference",
            -20,
            150,
            None,
            "mdi:water-thermometer",
            label="Dew point margin",
        ),
        Quantity("pressure", "hPa", "pressure", 300, 1100, "atmospheric_pressure", label="Pressure"),
        Quantity("wind_speed", "km/h", "speed", 0, 400, "wind_speed", label="Wind speed"),
        Quantity("wind_gust", "km/h", "speed", 0, 500, "wind_speed", label="Wind gust"),
        Quantity("wind_direction", "°", "angle", 0, 360, None, "mdi:compass-outline", label="Wind direction"),
        Quantity("rain", "", "flag", None, None, "moisture", label="Rain"),
        Quantity("rain_rate", "mm/h", "rate", 0, 1000, "precipitation_intensity", label="Rain rate"),
        Quantity("sky_temperature", "°C", "temperature", -100, 60, "temperature", label="Sky temperature"),
        Quantity(
            "sky_minus_ambient",
            "°C",
            "temperature_difference",
            -100,
            60,
            None,
            "mdi:weather-night",
            label="Sky minus ambient",
        ),
        Quantity(
            "sky_brightness",
            "mag/arcsec²",
            "surface_brightness",
            0,
            30,
            None,
            "mdi:brightness-2",
            label="Sky brightness",
        ),
        Quantity("cloud_cover", "%", "percent", 0, 100, None, "mdi:weather-cloudy", label="Cloud cover"),
    )
}

#: Quantities computed from others when no source supplies them (see readings.derive).
DERIVED = ("dew_point", "dew_point_margin", "sky_minus_ambient", "rain")

_Conversion = Callable[[float], float]

# (kind, unit alias) -> function converting to the kind's canonical unit
_UNITS: dict[tuple[str, str], _Conversion] = {}


def _add(kind: str, aliases: tuple[str, ...], to_canonical: _Conversion) -> None:
    for alias in aliases:
        _UNITS[(kind, alias.lower())] = to_canonical


def _same(x: float) -> float:
    return x


_add("temperature", ("°C", "C", "degC", "celsius", "℃"), _same)
_add("temperature", ("°F", "F", "degF", "fahrenheit", "℉"), lambda f: (f - 32.0) * 5.0 / 9.0)
_add("temperature", ("K", "kelvin"), lambda k: k - 273.15)
_add("temperature_difference", ("°C", "C", "K", "degC", "celsius", "kelvin"), _same)
_add("temperature_difference", ("°F", "F", "degF"), lambda f: f * 5.0 / 9.0)
_add("percent", ("%", "percent", "pct"), _same)
_add("percent", ("fraction", "ratio"), lambda x: x * 100.0)
_add("pressure", ("hPa", "mbar", "mb", "millibar"), _same)
_add("pressure", ("Pa",), lambda p: p / 100.0)
_add("pressure", ("kPa",), lambda p: p * 10.0)
_add("pressure", ("inHg", "in Hg"), lambda p: p * 33.8638866667)
_add("pressure", ("mmHg", "Torr"), lambda p: p * 1.33322387415)
_add("speed", ("km/h", "kph", "kmh", "km/hr"), _same)
_add("speed", ("m/s", "mps"), lambda v: v * 3.6)
_add("speed", ("mph", "mi/h", "mp/h"), lambda v: v * 1.609344)  # mp/h: Open-Meteo
_add("speed", ("kn", "kt", "knots", "knot"), lambda v: v * 1.852)
_add("speed", ("ft/s",), lambda v: v * 1.09728)
_add("angle", ("°", "deg", "degrees"), _same)
_add("rate", ("mm/h", "mmph", "mm/hr"), _same)
_add("rate", ("in/h", "iph", "in/hr"), lambda r: r * 25.4)
_add("rate", ("mm/min",), lambda r: r * 60.0)
_add("surface_brightness", ("mag/arcsec²", "mag/arcsec^2", "mpsas", "mag/arcsec2"), _same)
_add("flag", ("", "bool", "flag"), _same)


def quantity(name: str) -> Quantity:
    try:
        return QUANTITIES[name]
    except KeyError:
        raise ReadingError(f"unknown quantity {name!r} (known: {', '.join(QUANTITIES)})") from None


def to_canonical(name: str, value: float, unit: str | None) -> float:
    """``value`` in ``unit`` converted to the canonical unit of quantity ``name``."""
    q = quantity(name)
    if unit is None or not unit.strip():
        return value
    convert = _UNITS.get((q.kind, unit.strip().lower()))
    if convert is None:
        raise ReadingError(f"unit {unit!r} does not fit {name} (canonical unit {q.unit!r})")
    return convert(value)


_TRUE = {"1", "true", "on", "yes", "wet", "rain", "raining", "detected", "open"}
_FALSE = {"0", "false", "off", "no", "dry", "clear", "none", "closed"}


def parse_flag(value: object) -> bool:
    """A rain flag from what sensors send: booleans, 0/1, ON/OFF, wet/dry."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isnan(value):
            raise ReadingError("flag is NaN")
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ReadingError(f"cannot read {str(value)[:40]!r} as a yes/no flag")


def parse_number(value: object) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ReadingError(f"not a number: {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ReadingError(f"not a finite number: {value!r}")
    return number


def normalise(name: str, raw: object, unit: str | None) -> float | bool:
    """Parse, convert and range-check one raw value; raises :class:`ReadingError` naming the problem."""
    q = quantity(name)
    if q.is_flag:
        return parse_flag(raw)
    value = to_canonical(name, parse_number(raw), unit)
    if (q.minimum is not None and value < q.minimum) or (q.maximum is not None and value > q.maximum):
        raise ReadingError(
            f"{name} {value:g} {q.unit} is outside the physical range {q.minimum:g}..{q.maximum:g} {q.unit}"
        )
    return round(value, 4)


def dew_point(temperature_c: float, humidity_pct: float) -> float:
    """Dew point in °C by the Magnus formula (Alduchov & Eskridge 1996 constants; ±0.4 °C, -40..50 °C)."""
    a, b = 17.625, 243.04
    rh = max(humidity_pct, 0.01) / 100.0  # 0 % has no dew point; clamp to keep the log finite
    gamma = math.log(rh) + a * temperature_c / (b + temperature_c)
    return b * gamma / (a - gamma)
