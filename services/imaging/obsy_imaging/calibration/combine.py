"""Combining a stack of frames into one, with outlier rejection, a band of rows at a time.

Memory is bounded by ``block_bytes`` (the stack's stored values for one band of rows) plus
the float32 result: 30 frames of 3000×2000 take about 100 MB, not the 0.7 GB of the whole
stack in float32, so a Raspberry Pi with 4 GB builds masters too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import kernels
from .backend import Backend, BackendName, select_backend
from .fitsio import FitsFrame, RowSource, as_source

CombineMethod = Literal["median", "mean", "sigma_clip", "winsorized_sigma_clip"]
_METHOD_CODES = {
    "median": kernels.MEDIAN,
    "mean": kernels.MEAN,
    "sigma_clip": kernels.SIGMA_CLIP,
    "winsorized_sigma_clip": kernels.WINSORIZED,
}
_SPREAD_CODES = {"std": kernels.STD, "mad_std": kernels.MAD_STD}
DEFAULT_BLOCK_BYTES = 64 << 20
DEVICE_BLOCK_BYTES = 2 << 30


class CombineError(ValueError):
    """A stack that cannot be combined; the message says what is wrong and with which frame."""


@dataclass(frozen=True)
class CombineSettings:
    """How a stack is combined. See :mod:`.kernels` for the algorithms."""

    method: CombineMethod = "sigma_clip"
    sigma_low: float = 3.0
    sigma_high: float = 3.0
    spread: Literal["std", "mad_std"] = "std"  # sigma clipping only; winsorized uses Huber's σ
    max_iterations: int = 5

    def __post_init__(self) -> None:
        if self.method not in _METHOD_CODES:
            raise CombineError(f"unknown combine method {self.method!r}; use one of {', '.join(_METHOD_CODES)}")
        if self.spread not in _SPREAD_CODES:
            raise CombineError(f"unknown spread {self.spread!r}; use std or mad_std")
        if not (self.sigma_low > 0 and self.sigma_high > 0):
            raise CombineError(f"clipping factors must be positive, not {self.sigma_low} and {self.sigma_high}")
        if self.max_iterations < 1:
            raise CombineError(f"max_iterations must be at least 1, not {self.max_iterations}")

    @property
    def rejects(self) -> bool:
        return self.method in ("sigma_clip", "winsorized_sigma_clip")

    def as_dict(self) -> dict[str, Any]:
        if not self.rejects:
            return {"method": self.method}
        described: dict[str, Any] = {
            "method": self.method,
            "sigma_low": self.sigma_low,
            "sigma_high": self.sigma_high,
            "max_iterations": self.max_iterations,
        }
        if self.method == "sigma_clip":
            described["spread"] = self.spread
        return described


@dataclass
class CombineResult:
    data: np.ndarray  # float32 (rows, columns); NaN where no frame had a finite value
    frame_count: int
    kept: np.ndarray = field(repr=False)  # uint16: how many values made each pixel
    nonfinite_by_frame: dict[str, int] = field(default_factory=dict)  # frames with NaN/inf pixels

    @property
    def rejected_fraction(self) -> float:
        """The share of (finite) input values the rejection left out."""
        total = self.frame_count * self.kept.size - sum(self.nonfinite_by_frame.values())
        return 0.0 if total <= 0 else 1.0 - float(self.kept.sum(dtype=np.int64)) / total

    @property
    def empty_pixels(self) -> int:
        return int(np.count_nonzero(self.kept == 0))


def combine_frames(
    frames: Sequence[RowSource | str | os.PathLike | np.ndarray],
    settings: CombineSettings = CombineSettings(),
    *,
    subtract: np.ndarray | None = None,
    frame_scales: Sequence[float] | None = None,
    backend: Backend | BackendName = "auto",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> CombineResult:
    """Combine ``frames`` (paths, arrays or row sources) pixel by pixel.

    Each value is first corrected as ``(value − subtract) · frame_scale`` (a master to take off
    every frame, e.g. the bias under flats, and one factor per frame, e.g. 1/median to bring
    flats to one level), then combined with ``settings``.
    """
    sources = [as_source(frame, f"frame {i + 1}") for i, frame in enumerate(frames)]
    if not sources:
        raise CombineError("nothing to combine: the group is empty")
    shape = sources[0].shape
    for source in sources[1:]:
        if source.shape != shape:
            raise CombineError(
                f"frames differ in size: {source.name} is {_size(source.shape)}, {sources[0].name} is {_size(shape)}"
            )
    if subtract is not None and subtract.shape != shape:
        raise CombineError(f"the master to subtract is {_size(subtract.shape)}, the frames are {_size(shape)}")
    scales = np.ones(len(sources)) if frame_scales is None else np.asarray(frame_scales, dtype=np.float64)
    if scales.shape != (len(sources),) or not np.all(np.isfinite(scales)):
        raise CombineError(f"frame_scales must be {len(sources)} finite numbers, got {list(scales)}")
    backend = select_backend(backend) if isinstance(backend, str) else backend

    n = len(sources)
    rows, cols = shape
    data = np.empty(shape, np.float32)
    kept = np.empty(shape, np.uint16)
    # Camera files (BITPIX 16): the kernel takes their bytes as read and swaps them itself.
    file_order = all(isinstance(source, FitsFrame) and source.big_endian_int16 for source in sources)
    dtypes = {source.dtype for source in sources}
    common = np.dtype(np.uint16) if file_order else dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float64)
    native = [file_order or source.dtype == common for source in sources]
    bscale = np.array([s.bscale if ok else 1.0 for s, ok in zip(sources, native, strict=True)])
    bzero = np.array([s.bzero if ok else 0.0 for s, ok in zip(sources, native, strict=True)])
    # The array twin holds the decoded stack in float64 and a sorted copy and masks: about 6× more per value.
    # On a GPU that memory is the card's: bands as large as DEVICE_BLOCK_BYTES keep its many cores busy.
    per_row = n * cols * (common.itemsize if backend.uses_numba else 48)
    budget = max(block_bytes, DEVICE_BLOCK_BYTES) if backend.name == "cupy" else block_bytes
    block_rows = int(max(1, min(rows, budget // per_row)))
    nonfinite = np.zeros(n, np.int64)
    block = np.empty((n, block_rows, cols), common)

    for start in range(0, rows, block_rows):
        stop = min(rows, start + block_rows)
        if stop - start != block.shape[1]:
            block = np.empty((n, stop - start, cols), common)
        _read_band(sources, start, stop, block, file_order=file_order, native=native, nonfinite=nonfinite)
        band = None if subtract is None else subtract[start:stop]
        _combine_block(
            backend,
            block,
            (file_order, bscale, bzero, scales),
            band,
            settings=settings,
            out=data[start:stop],
            kept=kept[start:stop],
        )

    for i, source in enumerate(sources):
        if nonfinite[i] == rows * cols:
            raise CombineError(f"{source.name} has no finite pixel (all NaN or inf)")
    return CombineResult(
        data=data,
        frame_count=n,
        kept=kept,
        nonfinite_by_frame={s.name: int(c) for s, c in zip(sources, nonfinite, strict=True) if c},
    )


def _combine_block(backend: Backend, block, decoding, band, *, settings: CombineSettings, out, kept) -> None:
    """Combine one band of rows of the stack into ``out`` and ``kept`` on ``backend``."""
    file_order, bscale, bzero, scales = decoding
    method, spread = _METHOD_CODES[settings.method], _SPREAD_CODES[settings.spread]
    if backend.uses_numba:
        subtract = band if band is not None else np.zeros((1, 1), np.float32)
        network = kernels.sorting_network(block.shape[0])
        low, high, iterations = settings.sigma_low, settings.sigma_high, settings.max_iterations
        with kernels.KERNEL_LOCK:
            kernels.combine_block_numba(
                block,
                file_order,
                bscale,
                bzero,
                subtract,
                band is not None,
                scales,
                network,
                method,
                low,
                high,
                spread,
                iterations,
                out,
                kept,
            )
        return
    xp = backend.xp
    if file_order:
        block = block.view(">i2").astype(np.int16)
    values = backend.to_device(block).astype(xp.float64)
    values = values * xp.asarray(bscale)[:, None, None] + xp.asarray(bzero)[:, None, None]
    if band is not None:
        values -= backend.to_device(band).astype(xp.float64)[None]
    values *= xp.asarray(scales)[:, None, None]
    # Stored as float32 before combining, as the numba kernel does: both sort the same numbers.
    values = values.astype(xp.float32).astype(xp.float64)
    values[~xp.isfinite(values)] = xp.nan
    result, count = kernels.combine_block_array(
        xp,
        values,
        method=method,
        low=settings.sigma_low,
        high=settings.sigma_high,
        spread=spread,
        max_iterations=settings.max_iterations,
    )
    out[...] = backend.to_host(result.astype(xp.float32))
    kept[...] = backend.to_host(count.astype(xp.uint16))


def _read_band(sources, start: int, stop: int, block: np.ndarray, *, file_order: bool, native, nonfinite) -> None:
    """Rows ``start:stop`` of every frame into ``block``; NaN/inf of float frames counted per frame."""
    for i, source in enumerate(sources):
        if file_order:
            source.read_rows_file_order(start, stop, block[i])
        else:
            _read_decoded(source, start, stop, block[i], native[i])
        if block.dtype.kind == "f":
            nonfinite[i] += block[i].size - np.count_nonzero(np.isfinite(block[i]))


def _read_decoded(source: RowSource, start: int, stop: int, out: np.ndarray, native: bool) -> None:
    if native:
        source.read_rows_into(start, stop, out)
        return
    stored = np.empty(out.shape, source.dtype)
    source.read_rows_into(start, stop, stored)
    out[...] = stored * source.bscale + source.bzero


def _size(shape: tuple[int, ...]) -> str:
    return "×".join(str(x) for x in reversed(shape)) + " (columns×rows)"
