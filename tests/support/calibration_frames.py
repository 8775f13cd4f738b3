"""Synthetic calibration and light frames with a known truth, for the imaging calibration tests and bench.

A :class:`Sensor` has a fixed pattern: a bias level with column banding and a per-pixel
offset, a dark current map (ADU/s) with hot pixels, dead (cold) pixels that read below the
bias, and a flat field with vignetting and dust donuts. Frames add read noise and shot
noise; :func:`add_cosmic_rays` and :func:`add_satellite_trail` spoil a frame the way the sky
does. The sky simulator will later render frames with the same truths; until then this is it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy_imaging.calibration import FrameInfo, FrameKind

CAMERA = "ZWO CCD ASI294MM Pro"
_IMAGETYP = {
    FrameKind.BIAS: "Bias Frame",
    FrameKind.DARK: "Dark Frame",
    FrameKind.FLAT: "Flat Frame",
    FrameKind.DARK_FLAT: "Dark Frame",
    FrameKind.LIGHT: "Light Frame",
}


@dataclass
class Sensor:
    rows: int = 256
    cols: int = 384
    seed: int = 1
    bias_level: float = 1000.0
    read_noise: float = 6.0  # ADU per frame
    electrons_per_adu: float = 1.0
    dark_rate: float = 0.02  # ADU/s, everywhere
    hot_count: int = 40
    cold_count: int = 12
    bias: np.ndarray = field(init=False, repr=False)  # the fixed pattern of a bias frame (ADU)
    dark_current: np.ndarray = field(init=False, repr=False)  # ADU/s
    flat: np.ndarray = field(init=False, repr=False)  # relative response, mean 1
    hot: np.ndarray = field(init=False, repr=False)  # (k, 2) row, column
    cold: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        shape = (self.rows, self.cols)
        banding = rng.normal(0, 4, self.cols)[None, :]
        self.bias = (self.bias_level + banding + rng.normal(0, 2, shape)).astype(np.float64)
        self.dark_current = np.full(shape, self.dark_rate) * rng.uniform(0.8, 1.2, shape)
        spots = rng.choice(self.rows * self.cols, self.hot_count + self.cold_count, replace=False)
        self.hot = np.column_stack(np.unravel_index(spots[: self.hot_count], shape))
        self.cold = np.column_stack(np.unravel_index(spots[self.hot_count :], shape))
        self.dark_current[tuple(self.hot.T)] = rng.uniform(2.0, 20.0, self.hot_count)
        y, x = np.mgrid[0 : self.rows, 0 : self.cols]
        r2 = ((y - self.rows / 2) ** 2 + (x - self.cols / 2) ** 2) / (0.5 * max(shape)) ** 2
        flat = (1.0 - 0.35 * r2).clip(0.3)  # vignetting
        for _ in range(4):  # dust donuts: a dark ring around a lighter centre
            cy, cx = rng.uniform(0.15, 0.85) * self.rows, rng.uniform(0.15, 0.85) * self.cols
            radius = rng.uniform(8, 20)
            d = np.hypot(y - cy, x - cx)
            flat *= 1.0 - 0.12 * np.exp(-(((d - radius) / (0.25 * radius)) ** 2))
        self.flat = flat / flat.mean()

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def _read(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Signal above the bias with shot and read noise, dead pixels, digitised to uint16."""
        electrons = np.clip(signal, 0, None) * self.electrons_per_adu
        shot = rng.normal(0, 1, signal.shape) * np.sqrt(electrons) / self.electrons_per_adu
        frame = self.bias + signal + shot + rng.normal(0, self.read_noise, signal.shape)
        frame[tuple(self.cold.T)] = self.bias_level - 300.0
        return np.clip(np.rint(frame), 0, 65535).astype(np.uint16)

    def bias_frame(self, rng: np.random.Generator) -> np.ndarray:
        return self._read(np.zeros(self.shape), rng)

    def dark_frame(self, exposure: float, rng: np.random.Generator) -> np.ndarray:
        return self._read(self.dark_current * exposure, rng)

    def flat_frame(self, level: float, exposure: float, rng: np.random.Generator) -> np.ndarray:
        return self._read(self.dark_current * exposure + level * self.flat, rng)

    def light_frame(self, sky: np.ndarray | float, exposure: float, rng: np.random.Generator) -> np.ndarray:
        return self._read(self.dark_current * exposure + self.flat * sky, rng)

    def truth(self, kind: FrameKind, exposure: float = 0.0) -> np.ndarray:
        """What a perfect master of this kind is (dark: with its bias, as masters are kept)."""
        truth = {
            FrameKind.BIAS: self.bias,
            FrameKind.DARK: self.bias + self.dark_current * exposure,
            FrameKind.DARK_FLAT: self.bias + self.dark_current * exposure,
            FrameKind.FLAT: self.flat,
        }[kind].copy()
        truth[tuple(self.cold.T)] = np.nan  # dead pixels carry no truth
        return truth


def add_cosmic_rays(frame: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Bright single pixels at random places; returns their (row, column) positions."""
    spots = rng.choice(frame.size, count, replace=False)
    where = np.unravel_index(spots, frame.shape)
    frame[where] = np.minimum(frame[where].astype(np.int64) + rng.integers(2000, 20000, count), 65535)
    return np.column_stack(where)


def add_satellite_trail(frame: np.ndarray, row0: int, slope: float, brightness: float = 3000.0) -> np.ndarray:
    """A 3-pixel-wide line across the frame; returns the boolean mask of its pixels."""
    rows, cols = frame.shape
    mask = np.zeros(frame.shape, bool)
    x = np.arange(cols)
    for width in (-1, 0, 1):
        y = np.rint(row0 + slope * x).astype(int) + width
        ok = (y >= 0) & (y < rows)
        mask[y[ok], x[ok]] = True
    frame[mask] = np.minimum(frame[mask] + brightness, 65535).astype(frame.dtype)
    return mask


def frame_info(
    kind: FrameKind,
    *,
    exposure: float,
    time: datetime | None = None,
    temperature: float | None = -10.0,
    gain: float | None = 120,
    offset: float | None = 30,
    filter: str | None = None,
    path: Path | None = None,
    shape: tuple[int, int] | None = None,
    readout_mode: str | None = "High Gain",
    camera: str = CAMERA,
    optical_train: str | None = None,
) -> FrameInfo:
    return FrameInfo(
        kind=kind,
        camera=camera,
        time=time or datetime(2026, 12, 1, 22, 0, tzinfo=UTC),
        exposure=exposure,
        gain=gain,
        offset=offset,
        readout_mode=readout_mode,
        temperature=temperature,
        filter=filter,
        optical_train=optical_train,
        shape=shape,
        path=path,
    )


def write_frame(path: Path, data: np.ndarray, info: FrameInfo, cards: dict | None = None) -> Path:
    """A FITS file as INDI writes it (uint16 as int16 with BZERO 32768, INDI's keywords); ``cards``: more keywords."""
    header = fits.Header(cards or {})
    header["IMAGETYP"] = _IMAGETYP[info.kind]
    header["EXPTIME"] = info.exposure
    header["INSTRUME"] = info.camera
    header["XBINNING"], header["YBINNING"] = info.binning
    header["DATE-OBS"] = info.time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    for key, value in (("CCD-TEMP", info.temperature), ("GAIN", info.gain), ("OFFSET", info.offset)):
        if value is not None:
            header[key] = value
    if info.filter:
        header["FILTER"] = info.filter
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return path


def write_series(
    folder: Path,
    sensor: Sensor,
    kind: FrameKind,
    count: int,
    *,
    exposure: float,
    seed: int,
    level: float = 20000.0,
    start: datetime | None = None,
    cards: dict | None = None,
    **info,
) -> list[FrameInfo]:
    """``count`` frames of one kind written as FITS files in ``folder``, with their :class:`FrameInfo`.

    ``cards``: more header keywords for every frame (e.g. TELESCOP and FOCALLEN).
    """
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    frames = []
    for i in range(count):
        if kind == FrameKind.BIAS:
            data = sensor.bias_frame(rng)
        elif kind in (FrameKind.DARK, FrameKind.DARK_FLAT):
            data = sensor.dark_frame(exposure, rng)
        elif kind == FrameKind.FLAT:
            data = sensor.flat_frame(level, exposure, rng)
        else:
            data = sensor.light_frame(level, exposure, rng)
        meta = frame_info(kind, exposure=exposure, time=start + timedelta(seconds=i * (exposure + 2)), **info)
        path = write_frame(folder / f"{kind}_{exposure:g}s_{seed}_{i:03d}.fits", data, meta, cards)
        frames.append(FrameInfo(**{**meta.__dict__, "path": path, "shape": data.shape}))
    return frames
