"""Stacking registered frames in bands of rows, so memory stays bounded whatever the count.

For each band of output rows: every frame's band is resampled onto the reference grid (reading
only the source rectangle it needs), normalised, and the pixels combined with rejection. Peak
memory is about ``frames x band rows x width x 4 bytes`` (twice that for the NumPy fallback's
float64 work) plus the output, and the band height is chosen from ``memory_budget_mb``:
200 frames of 6248 x 4176 in a 256 MB budget give bands of 25 rows (the numba engine).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from obsy_imaging.grading.measure import FrameQuality
from obsy_imaging.registration import lanczos
from obsy_imaging.registration.resample import Interpolation, warp_rows
from obsy_imaging.registration.transform import Transform
from obsy_imaging.stacking import rejection
from obsy_imaging.stacking.normalise import Normalisation, frame_statistics, normalisation_coefficients
from obsy_imaging.stacking.rejection import Rejection, combine_into
from obsy_imaging.stacking.rejection import numba as _numba
from obsy_imaging.stacking.sources import Reader
from obsy_imaging.stacking.weights import Weighting, frame_weights

MIN_BAND_ROWS = 8


@dataclass(frozen=True)
class StackFrame:
    """A frame to stack: how to read it, and its registration onto the reference grid."""

    name: str
    read: Reader
    shape: tuple[int, int]
    transform: Transform = field(default_factory=Transform.identity)
    grade: FrameQuality | None = None


@dataclass(frozen=True)
class StackOptions:
    rejection: Rejection = field(default_factory=Rejection)
    normalisation: Normalisation = "additive_scaling"
    weighting: Weighting = "noise"
    interpolation: Interpolation = "lanczos"
    memory_budget_mb: float = 256.0
    engine: str = "auto"  # numba when installed, else numpy


@dataclass(frozen=True)
class StackResult:
    image: np.ndarray  # float32, the reference frame's grid and units
    rejected: np.ndarray  # uint16: values rejected per pixel
    coverage: np.ndarray  # uint16: frames that covered each pixel
    names: list[str]
    weights: np.ndarray
    gains: np.ndarray
    offsets: np.ndarray


def warm_up() -> bool:
    """Compile the stack's numba kernels (rejection, Lanczos resampling) now, or load them from
    numba's cache: once at service start or by ``obsy-imaging warm-up``, not on the first stack.
    False where numba is not installed."""
    compiled = rejection.warm_up()
    lanczos.warm_up()
    return compiled


def band_rows(frames: int, width: int, options: StackOptions) -> int:
    """Rows per band so that the band's pixel values stay within the memory budget."""
    per_value = 4 if (options.engine == "numba" or (options.engine == "auto" and _numba is not None)) else 16
    rows = int(options.memory_budget_mb * 1e6 / (frames * width * (per_value + 4)))
    return max(MIN_BAND_ROWS, rows)


def stack(
    frames: Sequence[StackFrame],
    options: StackOptions | None = None,
    *,
    reference: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> StackResult:
    """Combine ``frames`` on the grid of ``frames[reference]`` (the one registration matched to)."""
    options = options or StackOptions()
    if not frames:
        raise ValueError("nothing to stack: the list of frames is empty")
    if not 0 <= reference < len(frames):
        raise ValueError(f"reference index {reference} is outside the {len(frames)} frames")
    shape = frames[reference].shape
    for frame in frames:
        if frame.shape != shape:
            raise ValueError(
                f"{frame.name} is {frame.shape[1]}x{frame.shape[0]}, the reference {shape[1]}x{shape[0]}: "
                "frames of one stack must share a sensor size and binning"
            )
    with ThreadPoolExecutor(max_workers=min(len(frames), os.cpu_count() or 1)) as pool:
        # Frames on threads: one is read (the GIL released) while another is resampled.
        stats = list(pool.map(lambda f: frame_statistics(f.read, f.shape), frames))
        gains, offsets = normalisation_coefficients(stats, reference, options.normalisation)
        weights = frame_weights(options.weighting, [s.scale for s in stats], gains, [f.grade for f in frames])
        height, width = shape
        image = np.empty(shape, dtype=np.float32)
        rejected = np.empty(shape, dtype=np.uint16)
        coverage = np.empty(shape, dtype=np.uint16)
        rows = min(height, band_rows(len(frames), width, options))
        band = np.empty((len(frames), rows * width), dtype=np.float32)
        for first in range(0, height, rows):
            end = min(height, first + rows)
            values = band[:, : (end - first) * width].reshape(len(frames), end - first, width)

            def resample(i: int, rows_of: tuple[int, int] = (first, end), values: np.ndarray = values) -> None:
                frame = frames[i]
                warp_rows(
                    frame.read, shape, frame.transform, rows_of, interpolation=options.interpolation, out=values[i]
                )

            list(pool.map(resample, range(len(frames))))
            pixels = slice(first * width, end * width)
            outputs = (image.reshape(-1)[pixels], rejected.reshape(-1)[pixels], coverage.reshape(-1)[pixels])
            flat = band[:, : (end - first) * width]
            combine_into(
                flat, weights, options.rejection, gains=gains, offsets=offsets, outputs=outputs, engine=options.engine
            )
            if progress is not None:
                progress(end, height)
    return StackResult(image, rejected, coverage, [f.name for f in frames], weights, gains, offsets)
