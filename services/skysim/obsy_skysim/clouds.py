"""Clouds as a transmission of the sky (0 = opaque, 1 = clear) over altitude, azimuth and time.

Every cloud kind lives on one flat layer ``base_m`` metres up: a point of the sky at altitude
``alt`` and azimuth ``az`` looks at the layer ``base_m / tan(alt)`` metres away in that
direction. The wind moves the layer, so patches drift across the sky and shrink towards the
horizon as real ones do, and a bank seen rising from a horizon is a front moving over the layer.

The known truth is :meth:`Clouds.cover`: the share of the sky above ``min_altitude`` (by solid
angle) whose transmission is below ``threshold``, the same definition as clouddetect's
transmission map uses. Scattered clouds have exactly the requested cover when they are set;
then the pattern drifts unchanged with the wind, so the cover in view wanders around it as real
clouds' does, and :meth:`Clouds.cover` tells the truth at each moment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

CloudKind = Literal["clear", "scattered", "bank", "veil", "overcast"]
CLOUD_KINDS: tuple[CloudKind, ...] = ("clear", "scattered", "bank", "veil", "overcast")

#: The truth's defaults, as clouddetect judges (its min_altitude and clear_transmission).
TRUTH_MIN_ALTITUDE = 20.0
TRUTH_THRESHOLD = 0.6

#: Lowest altitude (degrees) the layer geometry is taken at: below it the layer distance is held.
_LOWEST_ALT = 1.0


def _truth_grid(min_altitude: float, step: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell centres (alt, az) above ``min_altitude`` and their solid-angle weights."""
    alt, az = np.meshgrid(np.arange(min_altitude + step / 2, 90.0, step), np.arange(0.0, 360.0, step), indexing="ij")
    return alt, az, np.cos(np.radians(alt))


@dataclass(frozen=True)
class Wind:
    """Wind at the cloud layer: speed (m/s) and the direction it blows FROM (degrees, as weather reports give)."""

    speed: float = 8.0
    from_direction: float = 270.0

    def displacement(self, elapsed_s: float) -> tuple[float, float]:
        """How far (east, north metres) the layer has moved after ``elapsed_s``."""
        towards = math.radians(self.from_direction + 180.0)
        distance = self.speed * elapsed_s
        return distance * math.sin(towards), distance * math.cos(towards)


@dataclass(frozen=True)
class Clouds:
    """Clear sky; the base of every cloud kind (they override :meth:`transmission`)."""

    kind: CloudKind = "clear"
    wind: Wind = field(default_factory=Wind)
    base_m: float = 2000.0

    def transmission(self, alt: np.ndarray, az: np.ndarray, elapsed_s: float = 0.0) -> np.ndarray:
        """Transmission (0..1) towards each altitude/azimuth (degrees), ``elapsed_s`` after the scene began."""
        return np.ones(np.shape(alt), dtype=np.float32)

    def cover(
        self, elapsed_s: float = 0.0, min_altitude: float = TRUTH_MIN_ALTITUDE, threshold: float = TRUTH_THRESHOLD
    ) -> float:
        """True cloud cover in percent (see the module docstring)."""
        alt, az, weight = _truth_grid(min_altitude)
        cloudy = self.transmission(alt, az, elapsed_s) < threshold
        return float(100.0 * (weight * cloudy).sum() / weight.sum())

    def layer_xy(self, alt: np.ndarray, az: np.ndarray, elapsed_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Position (east, north metres) on the moving layer that each direction looks at, in the
        layer's own frame (the wind's displacement taken off)."""
        alt_r = np.radians(np.clip(np.asarray(alt, dtype=np.float64), _LOWEST_ALT, 90.0))
        distance = self.base_m / np.tan(alt_r)
        az_r = np.radians(np.asarray(az, dtype=np.float64))
        dx, dy = self.wind.displacement(elapsed_s)
        return distance * np.sin(az_r) - dx, distance * np.cos(az_r) - dy


@dataclass(frozen=True)
class Uniform(Clouds):
    """The same transmission everywhere: a thin veil (about 0.4) or overcast (about 0.02)."""

    kind: CloudKind = "veil"
    value: float = 0.4

    def __post_init__(self) -> None:
        if not 0.0 <= self.value <= 1.0:
            raise ValueError(f"cloud transmission must be between 0 and 1, not {self.value}")

    def transmission(self, alt: np.ndarray, az: np.ndarray, elapsed_s: float = 0.0) -> np.ndarray:
        return np.full(np.shape(alt), self.value, dtype=np.float32)


class _Texture:
    """A smooth random field on the layer (a sum of plane waves), the same for the same seed."""

    def __init__(self, seed: int, scale_m: float, waves: int = 24) -> None:
        rng = np.random.default_rng(seed)
        # Wavelengths from a third of to three times the typical cloud size, in random directions.
        wavelength = scale_m * np.exp(rng.uniform(np.log(1 / 3), np.log(3.0), waves))
        angle = rng.uniform(0.0, 2 * math.pi, waves)
        k = 2 * math.pi / wavelength
        self.kx, self.ky = k * np.cos(angle), k * np.sin(angle)
        self.phase = rng.uniform(0.0, 2 * math.pi, waves)
        # Larger waves carry more of the field, as in real cloud fields.
        self.amplitude = (wavelength / scale_m) ** 0.8
        self.amplitude /= math.sqrt((self.amplitude**2).sum() / 2)  # unit variance

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        total = np.zeros(np.shape(x), dtype=np.float64)
        for kx, ky, phase, amplitude in zip(self.kx, self.ky, self.phase, self.amplitude, strict=True):
            total += amplitude * np.cos(kx * x + ky * y + phase)
        return total


@dataclass(frozen=True)
class Scattered(Clouds):
    """Patches of thick cloud over clear sky, covering ``cover_percent`` of the sky when set, then
    drifting with the wind. ``size_m`` is a typical patch size on the layer; ``seed`` picks the pattern."""

    kind: CloudKind = "scattered"
    cover_percent: float = 40.0
    size_m: float = 4000.0
    inside: float = 0.02  # transmission of a patch's core
    edge: float = 0.6  # width of a patch's soft edge, in units of the field's standard deviation
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.cover_percent <= 100.0:
            raise ValueError(f"cloud cover must be between 0 and 100 percent, not {self.cover_percent}")
        if self.size_m <= 0:
            raise ValueError(f"cloud size must be positive metres, not {self.size_m}")
        object.__setattr__(self, "_texture", _Texture(self.seed, self.size_m))
        object.__setattr__(self, "_level", self._solve_level())

    def transmission(self, alt: np.ndarray, az: np.ndarray, elapsed_s: float = 0.0) -> np.ndarray:
        field_ = self._texture(*self.layer_xy(alt, az, elapsed_s))
        return self._from_field(field_, self._level)

    def _from_field(self, field_: np.ndarray, level: float) -> np.ndarray:
        opacity = np.clip(0.5 + (field_ - level) / self.edge, 0.0, 1.0)
        return (1.0 - opacity * (1.0 - self.inside)).astype(np.float32)

    def _solve_level(self) -> float:
        """The field level whose cloudy share (transmission below the truth's threshold) is the
        cover asked for, on the sky as it is when the clouds are set."""
        if self.cover_percent <= 0.0:
            return math.inf
        if self.cover_percent >= 100.0:
            return -math.inf
        alt, az, weight = _truth_grid(TRUTH_MIN_ALTITUDE)
        values = self._texture(*self.layer_xy(alt, az, 0.0)).ravel()
        order = np.argsort(values)[::-1]
        cumulative = np.cumsum(weight.ravel()[order]) / weight.sum()
        at = int(np.searchsorted(cumulative, self.cover_percent / 100.0))
        crossing = float(values[order[min(at, len(order) - 1)]])
        # transmission < threshold  <=>  opacity > (1 - threshold) / (1 - inside)
        opacity_at_threshold = (1.0 - TRUTH_THRESHOLD) / (1.0 - self.inside)
        return crossing - (opacity_at_threshold - 0.5) * self.edge


@dataclass(frozen=True)
class Bank(Clouds):
    """A bank of thick cloud coming up from the horizon at azimuth ``from_azimuth``.

    At the start its top stands ``top_altitude`` degrees above that horizon; its front then moves
    over the observer at ``advance`` m/s (and on across the sky: a front that has passed the
    zenith leaves the sky overcast behind it). The edge is ragged over ``edge_m`` metres.
    """

    kind: CloudKind = "bank"
    from_azimuth: float = 270.0
    top_altitude: float = 15.0
    advance: float = 10.0
    inside: float = 0.02
    edge_m: float = 1500.0
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.top_altitude <= 90.0:
            raise ValueError(f"the bank's top altitude must be between 0 and 90 degrees, not {self.top_altitude}")
        object.__setattr__(self, "_texture", _Texture(self.seed, 3 * self.edge_m))

    def transmission(self, alt: np.ndarray, az: np.ndarray, elapsed_s: float = 0.0) -> np.ndarray:
        alt_r = np.radians(np.clip(np.asarray(alt, dtype=np.float64), _LOWEST_ALT, 90.0))
        distance = self.base_m / np.tan(alt_r)
        direction = np.radians(np.asarray(az, dtype=np.float64) - self.from_azimuth)
        # How far towards the bank's side each point of the layer lies; the front starts at the
        # distance where the layer meets the given top altitude and comes nearer.
        towards_bank = distance * np.cos(direction)
        front = self.base_m / math.tan(math.radians(min(self.top_altitude, 89.9))) - self.advance * elapsed_s
        x, y = distance * np.sin(direction), towards_bank
        ragged = self.edge_m * 0.5 * self._texture(x, y)
        opacity = np.clip(0.5 + (towards_bank + ragged - front) / self.edge_m, 0.0, 1.0)
        return (1.0 - opacity * (1.0 - self.inside)).astype(np.float32)


def make_clouds(
    kind: str,
    *,
    cover_percent: float = 40.0,
    veil_transmission: float = 0.4,
    wind_speed: float = 8.0,
    wind_from: float = 270.0,
    bank_top_altitude: float = 15.0,
    seed: int = 1,
) -> Clouds:
    """The clouds of one kind (see :data:`CLOUD_KINDS`); raises ``ValueError`` naming a bad value."""
    wind = Wind(wind_speed, wind_from)
    if wind_speed < 0:
        raise ValueError(f"wind speed must not be negative, not {wind_speed}")
    if kind == "clear":
        return Clouds(wind=wind)
    if kind == "scattered":
        return Scattered(wind=wind, cover_percent=cover_percent, seed=seed)
    if kind == "bank":
        return Bank(wind=wind, from_azimuth=wind_from, top_altitude=bank_top_altitude, advance=wind_speed, seed=seed)
    if kind == "veil":
        return Uniform(kind="veil", value=veil_transmission, wind=wind)
    if kind == "overcast":
        return Uniform(kind="overcast", value=0.02, wind=wind)
    raise ValueError(f"unknown cloud kind {kind!r} (one of {', '.join(CLOUD_KINDS)})")
