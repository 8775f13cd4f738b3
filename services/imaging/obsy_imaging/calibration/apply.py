"""Calibrating lights: ``(light − dark·k − bias·(1 − k)) / flat``, float32 output with provenance.

With a dark of the light's exposure, ``k = 1`` and the bias is not used (the dark contains
it); with a longer dark scaled down, ``k`` is the exposure ratio and the bias is taken off
in its place (light − bias − k·(dark − bias)); with no dark, only the bias. The master flat
is already 1 on average. Every pixel that comes out NaN or ±inf (a NaN in the light or a
master, a flat pixel at or below ``min_flat``) is NaN in the output and counted in CALNAN.
The raw light is only read; the output goes to another file, written atomically.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from . import kernels
from .backend import Backend, BackendName, select_backend
from .badpixels import BadPixelMap, repair_bad_pixels
from .fitsio import FitsFrame, FrameError, RowSource, as_source, write_float32_fits
from .masters import load_master
from .matching import CalibrationPlan
from .provenance import Provenance

#: Flat pixels at or below this (of a flat normalised to 1) carry no signal: the output is NaN there.
DEFAULT_MIN_FLAT = 0.05


@dataclass
class PreparedMasters:
    """The masters for a run of lights, loaded once: the dark and bias with their factors, 1/flat."""

    shape: tuple[int, int]
    dark: np.ndarray | None = field(default=None, repr=False)
    dark_factor: float = 0.0
    bias: np.ndarray | None = field(default=None, repr=False)
    bias_factor: float = 0.0
    inverse_flat: np.ndarray | None = field(default=None, repr=False)
    names: dict[str, str] = field(default_factory=dict)  # kind → the master used (its file)
    notes: tuple[str, ...] = ()  # why these masters
    bad_pixels: np.ndarray | None = field(default=None, repr=False)  # bool: pixels to repair from neighbours
    bayer: bool = False  # repair from the nearest pixels of the same colour (2 apart)

    @classmethod
    def from_arrays(
        cls,
        *,
        bias: np.ndarray | None = None,
        dark: np.ndarray | None = None,
        flat: np.ndarray | None = None,
        dark_scale: float = 1.0,
        names: dict[str, str] | None = None,
        notes: Sequence[str] = (),
        min_flat: float = DEFAULT_MIN_FLAT,
        bad_pixels: np.ndarray | BadPixelMap | None = None,
        bayer: bool = False,
    ) -> PreparedMasters:
        """Masters in memory: a scaled dark (``dark_scale`` ≠ 1) needs the bias.

        With ``bad_pixels`` (a :class:`~.badpixels.BadPixelMap`, or any array non-zero where a
        pixel is bad), those pixels of every light are replaced by the median of their good
        neighbours after the calibration (of the same colour when ``bayer``).
        """
        present = {k: v for k, v in (("bias", bias), ("dark", dark), ("flat", flat)) if v is not None}
        if not present:
            raise FrameError("no master to calibrate with")
        shapes = {k: v.shape for k, v in present.items()}
        shape = next(iter(shapes.values()))
        for kind, other in shapes.items():
            if other != shape or len(other) != 2:
                raise FrameError(f"masters differ in size: {_sizes(shapes)}; {kind} does not fit")
        if dark is not None and dark_scale != 1.0 and bias is None:
            raise FrameError(f"a dark scaled by {dark_scale:g} needs the master bias, and there is none")
        prepared = cls(shape=shape, names=dict(names or {}), notes=tuple(notes), bayer=bayer)
        if bad_pixels is not None:
            flags = bad_pixels.flags if isinstance(bad_pixels, BadPixelMap) else np.asarray(bad_pixels)
            if flags.shape != shape:
                raise FrameError(
                    f"the bad-pixel map is {flags.shape[1]}×{flags.shape[0]}, the masters {shape[1]}×{shape[0]}"
                )
            prepared.bad_pixels = flags != 0
        if dark is not None:
            prepared.dark, prepared.dark_factor = np.asarray(dark, np.float32), float(dark_scale)
        if bias is not None and (dark is None or dark_scale != 1.0):
            prepared.bias = np.asarray(bias, np.float32)
            prepared.bias_factor = 1.0 - prepared.dark_factor
        if flat is not None:
            flat = np.asarray(flat, np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                prepared.inverse_flat = np.where(flat > min_flat, 1.0 / flat, np.nan).astype(np.float32)
        return prepared

    @classmethod
    def from_plan(
        cls,
        plan: CalibrationPlan,
        *,
        min_flat: float = DEFAULT_MIN_FLAT,
        bad_pixels: np.ndarray | BadPixelMap | None = None,
        bayer: bool = False,
    ) -> PreparedMasters:
        """Load the masters a :class:`~.matching.CalibrationPlan` chose (it must be ready)."""
        if not plan.ready:
            raise FrameError(f"{plan.light.name} cannot be calibrated yet: " + "; ".join(plan.missing))
        shape = plan.light.shape
        loaded = {}
        names = {}
        for choice in (plan.dark, plan.flat) + ((plan.bias,) if plan.uses_bias else ()):
            if choice.found:
                loaded[str(choice.kind)] = load_master(choice.master, shape)
                names[str(choice.kind)] = str(choice.master.path)
        return cls.from_arrays(
            bias=loaded.get("bias"),
            dark=loaded.get("dark"),
            flat=loaded.get("flat"),
            dark_scale=plan.dark.scale,
            names=names,
            notes=plan.explanation(),
            min_flat=min_flat,
            bad_pixels=bad_pixels,
            bayer=bayer,
        )

    @property
    def calstat(self) -> str:
        return "".join(
            letter
            for letter, used in (
                ("B", self.bias is not None),
                ("D", self.dark is not None),
                ("F", self.inverse_flat is not None),
                ("C", self.bad_pixels is not None),
            )
            if used
        )


@dataclass
class CalibratedFrame:
    data: np.ndarray | None = field(repr=False)  # float32 (big-endian, as written); None once written in a batch
    source_header: fits.Header | None = field(repr=False)
    extra_cards: list[fits.Card] = field(repr=False)
    provenance: Provenance
    nan_pixels: int
    path: Path | None = None

    @property
    def header(self) -> fits.Header:
        """The calibrated frame's header: the light's, with the calibration's keywords and HISTORY."""
        header = self.source_header.copy() if self.source_header is not None else fits.Header()
        for key in ("BZERO", "BSCALE", "BLANK"):
            header.remove(key, ignore_missing=True, remove_all=True)
        header.extend(self.extra_cards)
        return header


def calibrate_light(
    light: str | os.PathLike | np.ndarray | RowSource,
    masters: PreparedMasters,
    output: str | os.PathLike | None = None,
    *,
    backend: Backend | BackendName = "auto",
    workspace: Workspace | None = None,
) -> CalibratedFrame:
    """Calibrate one light (a file or an array) and write it to ``output`` when given.

    With a ``workspace``, the pixel buffers are reused from one light to the next (the
    returned ``data`` is then only valid until the next light calibrated with it).
    """
    source = as_source(light, "light")
    if source.shape != masters.shape:
        raise FrameError(
            f"{source.name} is {source.shape[1]}×{source.shape[0]}, the masters are "
            f"{masters.shape[1]}×{masters.shape[0]} (columns×rows)"
        )
    is_file = isinstance(source, FitsFrame)
    if output is not None and is_file and Path(output).resolve() == source.path.resolve():
        raise FrameError(f"{source.name}: the calibrated frame must not replace the original")
    backend = select_backend(backend) if isinstance(backend, str) else backend
    data, bad = _calibrate(backend, source, masters, workspace or Workspace())
    statistics: dict[str, float | int] = {}
    if masters.bad_pixels is not None:
        repaired, more_nan = repair_bad_pixels(data, masters.bad_pixels, step=2 if masters.bayer else 1)
        bad += more_nan
        statistics["bad_pixels_repaired"] = repaired
    statistics["nan_pixels"] = bad
    if masters.dark is not None:
        statistics["dark_scale"] = masters.dark_factor
    provenance = Provenance(
        product="calibrated light",
        inputs=(str(source.path) if is_file else source.name,),
        masters=masters.names,
        statistics=statistics,
        notes=masters.notes,
    )
    cards = [
        fits.Card("CALSTAT", masters.calstat, "applied: B bias, D dark, F flat, C bad pixels"),
        fits.Card("CALNAN", bad, "pixels set to NaN by the calibration"),
        *provenance.cards(),
    ]
    header = source.header if is_file else None
    path = write_float32_fits(output, data, header, cards) if output is not None else None
    return CalibratedFrame(
        data=data, source_header=header, extra_cards=cards, provenance=provenance, nan_pixels=bad, path=path
    )


def calibrate_lights(
    lights: Iterable[tuple[str | os.PathLike, str | os.PathLike]],
    masters: PreparedMasters,
    *,
    backend: Backend | BackendName = "auto",
    workers: int = 2,
) -> list[CalibratedFrame]:
    """Calibrate (light, output) pairs with the same masters; ``workers`` overlap one file's I/O with another's work."""
    backend = select_backend(backend) if isinstance(backend, str) else backend

    local = threading.local()

    def one(pair):
        if not hasattr(local, "workspace"):
            local.workspace = Workspace()
        frame = calibrate_light(pair[0], masters, pair[1], backend=backend, workspace=local.workspace)
        frame.data = None  # written, and the buffer is the next light's
        return frame

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="calibrate") as pool:
        return list(pool.map(one, lights))


class Workspace:
    """Pixel buffers kept from one light to the next: a fresh 24 MB buffer costs thousands of page faults."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != np.dtype(dtype):
            buffer = self._buffers[name] = np.empty(shape, dtype)
        return buffer


def _calibrate(backend: Backend, source: RowSource, m: PreparedMasters, workspace: Workspace) -> tuple[np.ndarray, int]:
    """The calibrated pixels as big-endian float32 (what the file holds) and the NaN count."""
    if isinstance(source, FitsFrame) and source.file_dtype == np.dtype(">i2") and np.little_endian:
        raw = source.read_file_order(workspace.get("raw", source.shape, np.uint16)).view(np.uint16)
        big_endian_int16 = True  # the kernel swaps
    else:
        raw, big_endian_int16 = np.empty(source.shape, source.dtype), False
        source.read_rows_into(0, source.shape[0], raw)
    if backend.uses_numba:
        bits = workspace.get("bits", raw.shape, np.uint32)
        placeholder = np.zeros((1, 1), np.float32)
        with kernels.KERNEL_LOCK:
            bad = kernels.calibrate_numba(
                raw,
                big_endian_int16,
                source.bscale,
                source.bzero,
                placeholder if m.dark is None else m.dark,
                m.dark_factor,
                placeholder if m.bias is None else m.bias,
                m.bias_factor,
                placeholder if m.inverse_flat is None else m.inverse_flat,
                m.dark is not None,
                m.bias is not None,
                m.inverse_flat is not None,
                bits,
            )
        return bits.view(">f4"), int(bad)
    if big_endian_int16:
        raw = raw.view(">i2").astype(np.int16)
    on_device = {k: None if v is None else _cached_on_device(backend, m, k, v) for k, v in _arrays(m).items()}
    data, bad = kernels.calibrate_array(
        backend.xp,
        backend.to_device(raw),
        bscale=source.bscale,
        bzero=source.bzero,
        dark=on_device["dark"],
        dark_factor=m.dark_factor,
        bias=on_device["bias"],
        bias_factor=m.bias_factor,
        inv_flat=on_device["inverse_flat"],
    )
    return backend.to_host(data).astype(">f4"), bad


def _arrays(m: PreparedMasters) -> dict[str, np.ndarray | None]:
    return {"dark": m.dark, "bias": m.bias, "inverse_flat": m.inverse_flat}


_device_cache: dict[tuple[int, str, str], object] = {}


def _cached_on_device(backend: Backend, m: PreparedMasters, kind: str, array: np.ndarray):
    """The GPU copy of a master, uploaded once per set of masters (not per light)."""
    if backend.name != "cupy":
        return array
    key = (id(m), kind, backend.name)
    cached = _device_cache.get(key)
    if cached is None or cached[0] is not array:
        if len(_device_cache) > 12:
            _device_cache.clear()
        cached = _device_cache[key] = (array, backend.to_device(array))
    return cached[1]


def _sizes(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{k} {'×'.join(str(x) for x in reversed(v))}" for k, v in shapes.items())
