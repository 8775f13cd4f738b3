"""The camera's sensor: electrons in, ADU out, with the noise and defects a real one has.

A frame is the light (electrons per pixel, from the sky and the stars) plus dark current,
with shot noise on both and read noise, times the gain's ADU per electron, plus the bias,
clipped at full well and at the ADC's 16-bit range. The fixed pattern is drawn once per
sensor from its seed: hot pixels, amplifier glow in one corner, and column offsets in the
bias. :meth:`Sensor.master` is the noise-free bias or dark that pattern gives, the known
answer a calibration library can be checked against.

Gain follows the convention of ZWO-style CMOS cameras: 0.1 dB steps, so ``gain`` 200
gives ten times the ADU per electron of gain 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from obsy_skysim import readout

BayerPattern = Literal["RGGB"]
ADC_MAX = 65535


@dataclass(frozen=True)
class SensorSpec:
    width: int = 3856
    height: int = 2180
    pixel_um: float = 2.9
    bayer: BayerPattern | None = "RGGB"
    adu_per_e_at_zero_gain: float = 0.8
    gain_min: float = 0.0
    gain_max: float = 400.0
    read_noise_e: float = 2.5
    full_well_e: float = 40000.0
    offset_adu: float = 64.0
    dark_current_e_s: float = 0.05  # at the reference temperature below
    dark_reference_c: float = 20.0
    dark_doubling_c: float = 6.5  # dark current doubles every this many degrees
    temperature_c: float = 20.0
    hot_pixel_share: float = 2e-4
    hot_pixel_e_s: tuple[float, float] = (5.0, 200.0)  # log-uniform range of a hot pixel's dark current
    amp_glow_e_s: float = 0.0  # dark current added at the top-right corner, fading inwards
    column_noise_adu: float = 0.0  # standard deviation of the bias's per-column offsets
    seed: int = 7

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"sensor must be at least 16 x 16 pixels, not {self.width} x {self.height}")
        if self.bayer is not None and self.bayer != "RGGB":
            raise ValueError(f"only the RGGB Bayer pattern (or none, mono) is simulated, not {self.bayer!r}")

    def adu_per_electron(self, gain: float) -> float:
        if not self.gain_min <= gain <= self.gain_max:
            raise ValueError(f"gain {gain:g} is outside the camera's range {self.gain_min:g}..{self.gain_max:g}")
        return self.adu_per_e_at_zero_gain * 10 ** (gain / 200.0)

    def dark_current(self, temperature_c: float | None = None) -> float:
        """Dark current (e-/s) of an ordinary pixel at the given (or the sensor's) temperature."""
        t = self.temperature_c if temperature_c is None else temperature_c
        return self.dark_current_e_s * 2 ** ((t - self.dark_reference_c) / self.dark_doubling_c)


#: The colour channel (0 red, 1 green, 2 blue) of each position in a 2 x 2 RGGB cell, [row % 2, column % 2].
RGGB_CHANNELS = np.array([[0, 1], [1, 2]])


class Sensor:
    def __init__(self, spec: SensorSpec) -> None:
        self.spec = spec

    @cached_property
    def hot_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the hot pixels and their dark current (e-/s at the reference temperature)."""
        s = self.spec
        rng = np.random.default_rng([s.seed, 0x407])
        count = round(s.width * s.height * s.hot_pixel_share)
        index = np.unique(rng.integers(0, s.width * s.height, count))
        low, high = s.hot_pixel_e_s
        rate = np.exp(rng.uniform(math.log(low), math.log(high), len(index)))
        return index, rate

    @cached_property
    def amp_glow(self) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """Relative amplifier glow (1 at the top-right corner) in the corner region where it is
        above 1e-4 of that: (rows, columns) and the values. None without glow."""
        s = self.spec
        if s.amp_glow_e_s <= 0:
            return None
        reach = 0.08 * max(s.width, s.height)
        size = math.ceil(reach * math.log(1e4))
        rows, cols = slice(0, min(s.height, size)), slice(max(0, s.width - size), s.width)
        y = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None]
        x = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :]
        return (rows, cols), np.exp(-np.hypot(s.width - 1 - x, y) / reach).astype(np.float32)

    @cached_property
    def column_offsets(self) -> np.ndarray:
        """The bias's offset per column (ADU, mean 0)."""
        s = self.spec
        rng = np.random.default_rng([s.seed, 0xB1A5])
        return (rng.standard_normal(s.width) * s.column_noise_adu).astype(np.float32)

    def dark_electrons(self, exposure_s: float, temperature_c: float | None = None) -> np.ndarray:
        """Mean dark signal per pixel (electrons): ordinary pixels, hot pixels and amplifier glow."""
        dark = np.zeros((self.spec.height, self.spec.width), dtype=np.float32)
        self.add_dark(dark, exposure_s, temperature_c)
        return dark

    def add_dark(self, electrons: np.ndarray, exposure_s: float, temperature_c: float | None = None) -> None:
        """Add the mean dark signal to ``electrons`` in place."""
        s = self.spec
        temperature_factor = self._temperature_factor(temperature_c)
        electrons += np.float32(s.dark_current(temperature_c) * exposure_s)
        hot_index, hot_rate = self.hot_pixels
        electrons.reshape(-1)[hot_index] += (hot_rate * temperature_factor * exposure_s).astype(np.float32)
        if self.amp_glow is not None:
            (rows, cols), glow = self.amp_glow
            electrons[rows, cols] += glow * np.float32(s.amp_glow_e_s * temperature_factor * exposure_s)

    def _temperature_factor(self, temperature_c: float | None) -> float:
        """How much more dark current than at the reference temperature (hot pixels and glow too)."""
        s = self.spec
        return s.dark_current(temperature_c) / s.dark_current_e_s if s.dark_current_e_s else 1.0

    def master(
        self, exposure_s: float, gain: float, temperature_c: float | None = None, *, dark: bool = True
    ) -> np.ndarray:
        """The noise-free dark (or with ``dark=False`` bias) frame in ADU (float32): what averaging
        infinitely many frames of this kind converges to, below saturation."""
        s = self.spec
        signal = self.dark_electrons(exposure_s if dark else 0.0, temperature_c)
        signal *= np.float32(s.adu_per_electron(gain))
        signal += np.float32(s.offset_adu)
        signal += self.column_offsets[None, :]
        return signal

    def channel_map(self) -> np.ndarray | None:
        """Each pixel's colour channel for a Bayer sensor (None for mono)."""
        if self.spec.bayer is None:
            return None
        rows = np.arange(self.spec.height) % 2
        cols = np.arange(self.spec.width) % 2
        return RGGB_CHANNELS[rows[:, None], cols[None, :]]

    @cached_property
    def _hot_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The hot pixels by row for the read-out kernel: where each row's run starts (height + 1
        entries), their columns and their dark current (e-/s at the reference temperature)."""
        index, rate = self.hot_pixels  # sorted (np.unique)
        rows, cols = np.divmod(index, self.spec.width)
        starts = np.searchsorted(rows, np.arange(self.spec.height + 1))
        return starts.astype(np.int64), cols.astype(np.int64), rate.astype(np.float64)

    def read_out(
        self,
        light_e: np.ndarray | None,
        exposure_s: float,
        gain: float,
        *,
        seed: int | None = None,
        temperature_c: float | None = None,
        level_e: float = 0.0,
        flat: np.ndarray | None = None,
    ) -> np.ndarray:
        """The 16-bit frame for ``light_e`` electrons per pixel (float32, height x width; None for
        none) plus a uniform ``level_e`` electrons per pixel through the relative response ``flat``
        (float32, height x width; None: a uniform level). Neither array is changed.

        One pass per row (:mod:`.readout`): dark current, hot pixels and amplifier glow, shot and
        read noise, gain, offset and column offsets, full well and the ADC's range, the cast.
        """
        s = self.spec
        scale = s.adu_per_electron(gain)
        shape = (s.height, s.width)
        for name, image in (("light", light_e), ("flat", flat)):
            if image is not None and (image.shape != shape or image.dtype != np.float32):
                raise ValueError(f"{name} must be float32 {shape}, not {image.dtype} {image.shape}")
        temperature_factor = self._temperature_factor(temperature_c)
        hot_start, hot_col, hot_rate = self._hot_rows
        glow = None
        if self.amp_glow is not None:
            (_, cols), values = self.amp_glow  # its rows start at the top, as the kernel takes them
            glow = (values, cols.start, s.amp_glow_e_s * temperature_factor * exposure_s)
        return readout.read_out(
            shape,
            light=light_e,
            flat=flat,
            level_e=level_e,
            dark_e=s.dark_current(temperature_c) * exposure_s,
            hot=(hot_start, hot_col, hot_rate * (temperature_factor * exposure_s)),
            glow=glow,
            read_noise_e=s.read_noise_e,
            scale=scale,
            offset=s.offset_adu + 0.5,  # + 0.5: the cast rounds down
            column=self.column_offsets,
            # Full well and the ADC's range in one: a full pixel reads full well plus the offset.
            ceiling=min(ADC_MAX, s.full_well_e * scale + s.offset_adu + 0.5),
            seed=seed,
        )
