"""Master darks: captured with the shutter shut (or the lens capped), combined, kept by temperature.

The library lives in ``<data_dir>/allsky/darks/`` as FITS files, one master per (gain,
binning, temperature, exposure), with those values in the header. For a light frame the
library picks the masters of the same gain and binning at the temperature nearest the
camera's (within ``tolerance_c``), and scales the thermal part to the exposure:
``bias + (dark − bias) · t / t_dark`` (dark current grows linearly with time), using the
dark with the nearest exposure at least as long when there is one. Without a bias master the
dark is used unscaled only for an exposure within 10 % of its own.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy_allsky.capture.badpixels import BadPixelMap
from obsy_allsky.capture.camera import CameraError, IndiCamera
from obsy_allsky.storage import write_atomic

log = logging.getLogger("obsy.allsky.darks")

#: A master this short holds (practically) no thermal signal: it serves as the bias.
BIAS_MAX_EXPOSURE_S = 0.02

_NAME = re.compile(r"^dark_g(?P<gain>[-\d.]+)_b(?P<binning>\d+)_t(?P<temp>[-\d.]+)_e(?P<exposure>[\d.]+)\.fits$")


@dataclass(frozen=True)
class MasterDark:
    path: Path
    gain: float
    binning: int
    temperature_c: float
    exposure_s: float

    def load(self) -> np.ndarray:
        with fits.open(self.path, memmap=False) as hdus:
            return np.asarray(hdus[0].data, dtype=np.float32)


def combine(frames: list[np.ndarray]) -> np.ndarray:
    """Median of the frames: cosmic rays and noise out, hot pixels and amp glow kept."""
    if not frames:
        raise ValueError("no frames to combine into a master dark")
    if any(f.shape != frames[0].shape for f in frames):
        raise ValueError("dark frames of different sizes cannot be combined")
    return np.median(np.stack([f.astype(np.float32) for f in frames]), axis=0).astype(np.float32)


class DarkLibrary:
    def __init__(self, folder: Path, tolerance_c: float = 2.0) -> None:
        self.folder = Path(folder)
        self.tolerance_c = tolerance_c
        self._maps: dict[tuple, BadPixelMap | None] = {}

    def bad_pixel_map(self, *, binning: int, shape: tuple[int, ...] | None, k: float, step: int) -> BadPixelMap | None:
        """The hot pixels of every master of this binning and size (None without one).

        ``shape`` None: the size of the newest master of that binning. Built once and kept
        until the library's masters change (a new master, one deleted).
        """
        masters = [m for m in self.masters() if m.binning == binning]
        stamps = tuple((m.path.name, _mtime(m.path)) for m in masters)
        if shape is None and masters:
            shape = max(masters, key=lambda m: _mtime(m.path)).load().shape
        key = (binning, tuple(shape or ()), k, step, stamps)
        if key not in self._maps:
            darks = [d for d in (m.load() for m in masters) if _fits(d, shape)]
            found = BadPixelMap.from_darks(darks, k, step) if darks else None
            self._maps = {key: found}  # only the current one is worth keeping
            if found is not None:
                log.info("bad-pixel map: %d hot pixels from %d masters", len(found), len(darks))
        return self._maps[key]

    def masters(self) -> list[MasterDark]:
        found = []
        for path in sorted(self.folder.glob("dark_*.fits")):
            match = _NAME.match(path.name)
            if match is None:
                continue
            found.append(
                MasterDark(
                    path,
                    float(match["gain"]),
                    int(match["binning"]),
                    float(match["temp"]),
                    float(match["exposure"]),
                )
            )
        return found

    def save(self, master: np.ndarray, *, gain: float, binning: int, temperature_c: float, exposure_s: float) -> Path:
        name = f"dark_g{gain:g}_b{binning}_t{temperature_c:.1f}_e{exposure_s:g}.fits"
        header = fits.Header()
        header["EXPTIME"] = exposure_s
        header["GAIN"] = gain
        header["XBINNING"] = binning
        header["CCD-TEMP"] = temperature_c
        header["IMAGETYP"] = "Master Dark"
        buffer = io.BytesIO()
        fits.PrimaryHDU(master.astype(np.float32), header=header).writeto(buffer)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        write_atomic(path, buffer.getvalue())
        return path

    def dark_for(
        self, exposure_s: float, *, gain: float, binning: int, temperature_c: float | None, shape: tuple[int, ...]
    ) -> np.ndarray | None:
        """The dark to subtract from a light frame, or None when the library has none that fits."""
        candidates = [
            m
            for m in self.masters()
            if m.gain == gain
            and m.binning == binning
            and (temperature_c is None or abs(m.temperature_c - temperature_c) <= self.tolerance_c)
        ]
        if not candidates:
            return None
        target = temperature_c if temperature_c is not None else candidates[0].temperature_c
        nearest_temp = min({m.temperature_c for m in candidates}, key=lambda t: abs(t - target))
        same_temp = sorted((m for m in candidates if m.temperature_c == nearest_temp), key=lambda m: m.exposure_s)
        bias = same_temp[0] if same_temp[0].exposure_s <= BIAS_MAX_EXPOSURE_S else None
        darks = [m for m in same_temp if m is not bias]
        if not darks:  # a bias alone: better than nothing
            frame = bias.load()
            return frame if _fits(frame, shape) else None
        longer = [m for m in darks if m.exposure_s >= exposure_s]
        dark_master = longer[0] if longer else darks[-1]
        dark = dark_master.load()
        if not _fits(dark, shape):
            return None
        if bias is None:
            return dark if abs(dark_master.exposure_s - exposure_s) <= 0.1 * exposure_s else None
        bias_frame = bias.load()
        return bias_frame + (dark - bias_frame) * np.float32(exposure_s / dark_master.exposure_s)


def _fits(frame: np.ndarray, shape: tuple[int, ...]) -> bool:
    return frame.shape == tuple(shape)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def capture_master(
    camera: IndiCamera, exposure_s: float, count: int, progress: Callable[[], None] | None = None
) -> tuple[np.ndarray, float]:
    """Expose ``count`` dark frames (INDI frame type DARK: the camera's shutter, or a capped lens), combine them.

    Returns the master and the exposure the camera actually used (it raises a too short one to
    its minimum). ``progress`` is called after each frame.
    """
    camera.set_frame_type("DARK")
    frames = []
    try:
        for _ in range(count):
            frames.append(camera.expose(exposure_s))
            if progress is not None:
                progress()
    finally:
        # A camera that failed may not take this either; prepare() sets light frames on reconnecting.
        with contextlib.suppress(CameraError):
            camera.set_frame_type("LIGHT")
    return combine([f.data for f in frames]), frames[0].exposure_s


def capture_masters(
    camera: IndiCamera,
    library: DarkLibrary,
    exposures: Iterable[float],
    *,
    count: int,
    gain: float,
    binning: int,
    progress: Callable[[], None] | None = None,
) -> list[Path]:
    """A master per exposure at the camera's current temperature, saved in the library; their paths.

    A gain the camera does not accept is a :class:`ValueError` before any exposure: masters
    labelled with one gain but taken at another (the driver's nearest) would calibrate nothing.
    """
    if (why := camera.out_of_range("CCD_GAIN", "GAIN", gain)) is not None:
        raise ValueError(f"master darks not taken: gain {why}")
    camera.set_binning(binning)
    camera.set_gain(gain)
    binning = camera.binning
    paths = []
    for exposure in exposures:
        master, used = capture_master(camera, exposure, count, progress)
        temperature = camera.temperature()
        paths.append(
            library.save(
                master,
                gain=gain,
                binning=binning,
                temperature_c=temperature if temperature is not None else 0.0,
                exposure_s=used,
            )
        )
        log.info("master dark %s (%d x %g s)", paths[-1].name, count, used, extra={"event": "master_dark"})
    return paths
