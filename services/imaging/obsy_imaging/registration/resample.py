"""Resampling a frame onto the reference's grid, the whole frame or a block of rows at a time.

OpenCV's ``warpAffine`` with Lanczos (8x8 taps) or bicubic interpolation. Pixels whose source
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
) -> np.ndarray:
    """Rows ``rows[0]:rows[1]`` of the frame resampled onto the reference grid of ``shape``.

    ``read(r0, r1, c0, c1)`` returns that rectangle of the source frame (a memory-mapped FITS
    slice, say): only the part the block needs is ever read.
    """
    if interpolation not in _FLAGS:
        raise ValueError(f"unknown interpolation {interpolation!r} (lanczos or bicubic)")
    height, width = shape
    first_row, end_row = rows
    if np.array_equal(transform.matrix, Transform.identity().matrix):
        return np.array(read(first_row, end_row, 0, width), dtype=np.float32)
    to_source = transform.inverse()
    corners_x = np.array([0.0, width - 1.0, 0.0, width - 1.0])
    corners_y = np.array([first_row, first_row, end_row - 1.0, end_row - 1.0])
    sx, sy = to_source.apply(corners_x, corners_y)
    reach = KERNEL_REACH_PX + 1
    c0, c1 = max(0, int(np.floor(sx.min())) - reach), min(width, int(np.ceil(sx.max())) + reach + 1)
    r0, r1 = max(0, int(np.floor(sy.min())) - reach), min(height, int(np.ceil(sy.max())) + reach + 1)
    block_shape = (end_row - first_row, width)
    if c0 >= c1 or r0 >= r1:  # the block sees none of the frame
        return np.full(block_shape, np.nan, dtype=np.float32)
    source = np.ascontiguousarray(read(r0, r1, c0, c1), dtype=np.float32)
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
    # Where each output pixel comes from in the whole frame: outside it, there is no data.
    a = to_source.matrix
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(first_row, end_row, dtype=np.float32)[:, None]
    sx = a[0, 0] * x + a[0, 1] * y + a[0, 2]
    sy = a[1, 0] * x + a[1, 1] * y + a[1, 2]
    block[(sx < -0.5) | (sx > width - 0.5) | (sy < -0.5) | (sy > height - 0.5)] = np.nan
    return block
