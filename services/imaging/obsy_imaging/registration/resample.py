"""Resampling a frame onto the reference's grid, the whole frame or a block of rows at a time.

Lanczos-4 (8x8 taps) in two one-dimensional passes (:mod:`.lanczos`, numba; OpenCV's
``warpAffine`` where numba is missing or the map turns the frame near 90 degrees), or OpenCV's
bicubic interpolation. Pixels whose source
lies outside the frame come out NaN, so the stacker counts them as missing rather than as zero;
near the frame's edge the kernel sees the edge pixels repeated. The identity (the reference
itself) is passed through untouched.
A block of output rows needs only the source rectangle its corners map to (plus the kernel's
reach), so a stack never holds more of a frame than that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np

from obsy_imaging.registration.lanczos import fits_two_pass, warp_rows_two_pass
from obsy_imaging.registration.transform import Transform

Interpolation = Literal["lanczos", "bicubic"]
_FLAGS = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC}
KERNEL_REACH_PX = 4  # Lanczos-4 reads 4 pixels each side


def warp(image: np.ndarray, transform: Transform, interpolation: Interpolation = "lanczos") -> np.ndarray:
    """The whole frame on the reference's grid (float32, same shape)."""
    height, width = image.shape
    return warp_rows(
        lambda r0, r1, c0, c1: image[r0:r1, c0:c1], (height, width), transform, (0, height), interpolation=interpolation
    )


def warp_rows(
    read: Callable[[int, int, int, int], np.ndarray],
    shape: tuple[int, int],
    transform: Transform,
    rows: tuple[int, int],
    *,
    interpolation: Interpolation = "lanczos",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Rows ``rows[0]:rows[1]`` of the frame resampled onto the reference grid of ``shape``
    (into ``out``, float32 of that shape, when given: a stack's band, no copy).

    ``read(r0, r1, c0, c1)`` returns that rectangle of the source frame (a memory-mapped FITS
    slice, say): only the part the block needs is ever read.
    """
    if interpolation not in _FLAGS:
        raise ValueError(f"unknown interpolation {interpolation!r} (lanczos or bicubic)")
    height, width = shape
    first_row, end_row = rows
    if np.array_equal(transform.matrix, Transform.identity().matrix):
        block = read(first_row, end_row, 0, width)  # a copy: the caller may change what it gets
        return np.array(block, dtype=np.float32) if out is None else _deliver(block, out)
    to_source = transform.inverse()
    corners_x = np.array([0.0, width - 1.0, 0.0, width - 1.0])
    corners_y = np.array([first_row, first_row, end_row - 1.0, end_row - 1.0])
    sx, sy = to_source.apply(corners_x, corners_y)
    reach = KERNEL_REACH_PX + 1
    c0, c1 = max(0, int(np.floor(sx.min())) - reach), min(width, int(np.ceil(sx.max())) + reach + 1)
    r0, r1 = max(0, int(np.floor(sy.min())) - reach), min(height, int(np.ceil(sy.max())) + reach + 1)
    block_shape = (end_row - first_row, width)
    if c0 >= c1 or r0 >= r1:  # the block sees none of the frame
        return _deliver(np.full(block_shape, np.nan, dtype=np.float32), out)
    source = np.ascontiguousarray(read(r0, r1, c0, c1), dtype=np.float32)
    if interpolation == "lanczos" and fits_two_pass(to_source.matrix):
        return warp_rows_two_pass(source, to_source.matrix, (r0, c0), rows, shape, out=out)
    # Output pixel (x, y + first_row) -> source pixel, relative to the rectangle read.
    m = to_source.matrix.copy()
    m[:, 2] += m[:, 1] * first_row - np.array([c0, r0])
    block = cv2.warpAffine(
        source,
        m,
        (width, end_row - first_row),
        flags=_FLAGS[interpolation] | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    _blank_outside_frame(block, to_source, first_row, (height, width))
    return _deliver(block, out)


def _deliver(block: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return block
    out[...] = block
    return out


def _blank_outside_frame(block: np.ndarray, to_source: Transform, first_row: int, shape: tuple[int, int]) -> None:
    """NaN where the output pixel's source lies outside the frame. On each output row the source
    is inside for one interval of x (an affine map of a rectangle is convex), found per row."""
    height, width = shape
    a = to_source.matrix
    y = np.arange(first_row, first_row + block.shape[0], dtype=np.float64)
    lo, hi = np.full(y.shape, -np.inf), np.full(y.shape, np.inf)
    for (slope, cross, offset), limit in (((a[0, 0], a[0, 1], a[0, 2]), width), ((a[1, 0], a[1, 1], a[1, 2]), height)):
        # -0.5 <= slope * x + cross * y + offset <= limit - 0.5
        base = cross * y + offset
        if abs(slope) < 1e-12:
            outside = (base < -0.5) | (base > limit - 0.5)
            lo[outside], hi[outside] = np.inf, -np.inf
            continue
        first, second = (-0.5 - base) / slope, (limit - 0.5 - base) / slope
        lo, hi = np.maximum(lo, np.minimum(first, second)), np.minimum(hi, np.maximum(first, second))
    start = np.clip(np.ceil(lo), 0, width).astype(int)
    stop = np.clip(np.floor(hi) + 1, 0, width).astype(int)
    for row, (s0, s1) in enumerate(zip(start, stop, strict=True)):
        if s1 <= s0:
            block[row] = np.nan
        else:
            block[row, :s0] = np.nan
            block[row, s1:] = np.nan
