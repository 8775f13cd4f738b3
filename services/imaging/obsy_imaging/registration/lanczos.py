"""Lanczos-4 resampling of an affine map in two one-dimensional passes (numba).

OpenCV's ``warpAffine`` evaluates the 8 x 8 Lanczos-4 kernel at every output pixel: 64
multiply-adds. The map is split instead into two shears (Catmull and Smith's two-pass
resampling): pass 1 resamples each source row along x at the places the output columns need,
pass 2 resamples those intermediate rows along y: 8 + 8 multiply-adds a pixel, about four times
less work for the same kernel, weights from a table of 1024 sub-pixel steps (OpenCV's has 32).
Pass 2 samples along the line that an output column maps to, so the two 8-tap kernels lie along
the source's rows and that line rather than along both axes: for the dithers, small rotations
and meridian flips (180 degrees) of a night the two are the same kernel to a few thousandths of
a pixel. Maps that turn the frame by more than 60 degrees from those (a camera turned by 90
degrees) are left to OpenCV (:func:`fits_two_pass`).

Pixel centres sit at integer coordinates, the frame's edge pixels are repeated for taps beyond
the rectangle read, and an output pixel whose source lies outside the frame (beyond half a pixel
from the edge pixels' centres) is NaN: the conventions of :mod:`.resample`.
"""

from __future__ import annotations

import numpy as np

try:  # numba is optional: without it OpenCV's warpAffine resamples (slower, the same kernel).
    import numba
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None

TAPS = 8  # Lanczos-4: 4 taps each side
STEPS = 1024  # sub-pixel steps of the weight table
MIN_AXIS_COSINE = 0.5  # |cos| of the turn (from 0 or 180 degrees) below which OpenCV resamples


def lanczos4_table(steps: int = STEPS) -> np.ndarray:
    """Weights (steps + 1, 8) for a source position ``floor + step / steps``: taps at ``floor - 3 ..
    floor + 4``, each ``sinc(d) sinc(d / 4)`` of its distance, normalised to a sum of 1."""
    fraction = np.arange(steps + 1)[:, None] / steps
    distance = fraction - np.arange(-3, 5)[None, :]
    weights = np.sinc(distance) * np.sinc(distance / 4.0)
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


_TABLE = lanczos4_table()


def fits_two_pass(to_source: np.ndarray) -> bool:
    """Whether the output-to-source matrix suits the two passes: the output columns must map to
    lines that cross the source rows (no turn near 90 degrees)."""
    a, b, d, e = to_source[0, 0], to_source[0, 1], to_source[1, 0], to_source[1, 1]
    scale = np.sqrt(abs(a * e - b * d))
    return numba is not None and scale > 0 and abs(e) >= MIN_AXIS_COSINE * scale


def warp_rows_two_pass(
    source: np.ndarray,
    to_source: np.ndarray,
    origin: tuple[int, int],
    rows: tuple[int, int],
    shape: tuple[int, int],
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Output rows ``rows`` (all columns of ``shape``) of the frame resampled by ``to_source``
    (2 x 3, output pixel to frame pixel). ``source`` is the rectangle of the frame read from
    ``origin`` (first row, first column): everything the rows need, kernel reach included."""
    first, end = rows
    height, width = shape
    m = np.asarray(to_source, dtype=np.float64)
    intermediate = np.empty((source.shape[0], width), dtype=np.float32)
    if out is None:
        out = np.empty((end - first, width), dtype=np.float32)
    _horizontal(np.ascontiguousarray(source, dtype=np.float32), m, origin[0], origin[1], intermediate, _TABLE)
    _vertical(intermediate, m, origin[0], first, height, width, out, _TABLE)
    return out


def warm_up() -> bool:
    """Compile the two passes now. False where numba is not installed."""
    if numba is None:
        return False
    image = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    turn = np.array([[-1.0, 0.01, 30.2], [-0.01, -1.0, 30.7]])
    warp_rows_two_pass(image, turn, (0, 0), (0, 32), (32, 32))
    return True


#: Reassociation lets the 8-tap sums use SIMD; no NaN/inf assumptions (frames may hold NaN).
_FAST = {"contract", "reassoc", "arcp"}

if numba is not None:

    @numba.njit(cache=True, parallel=True, nogil=True, fastmath=_FAST)
    def _horizontal(source, m, row0, col0, intermediate, table):  # noqa: PLR0917
        """Pass 1: each source row resampled along x at the places the output columns need there.

        Output (x, y) maps to source (a x + b y + c, d x + e y + f). On source row s, output
        column x is at y = (s - d x - f) / e, so its source x is (a - b d / e) x + (b / e) s + c - b f / e.
        """
        a, b, c = m[0, 0], m[0, 1], m[0, 2]
        d, e, f = m[1, 0], m[1, 1], m[1, 2]
        slope = a - b * d / e
        rows, columns = source.shape
        width = intermediate.shape[1]
        for j in numba.prange(rows):
            start = (b / e) * (row0 + j) + c - b * f / e - col0
            for x in range(width):
                position = slope * x + start
                base = int(np.floor(position))
                step = int((position - base) * STEPS + 0.5)
                first = base - 3
                acc = np.float32(0.0)
                if first >= 0 and first + TAPS <= columns:
                    for k in range(TAPS):
                        acc += table[step, k] * source[j, first + k]
                else:
                    for k in range(TAPS):
                        acc += table[step, k] * source[j, min(max(first + k, 0), columns - 1)]
                intermediate[j, x] = acc

    @numba.njit(cache=True, parallel=True, nogil=True, fastmath=_FAST)
    def _vertical(intermediate, m, row0, first_row, height, width, out, table):  # noqa: PLR0917
        """Pass 2: the intermediate rows resampled along y at each output pixel's source row;
        NaN where the source lies outside the frame."""
        a, b, c = m[0, 0], m[0, 1], m[0, 2]
        d, e, f = m[1, 0], m[1, 1], m[1, 2]
        rows = intermediate.shape[0]
        for i in numba.prange(out.shape[0]):
            y = first_row + i
            for x in range(width):
                sx = a * x + b * y + c
                sy = d * x + e * y + f
                if sx < -0.5 or sx > width - 0.5 or sy < -0.5 or sy > height - 0.5:
                    out[i, x] = np.nan
                    continue
                position = sy - row0
                base = int(np.floor(position))
                step = int((position - base) * STEPS + 0.5)
                top = base - 3
                acc = np.float32(0.0)
                if top >= 0 and top + TAPS <= rows:
                    for k in range(TAPS):
                        acc += table[step, k] * intermediate[top + k, x]
                else:
                    for k in range(TAPS):
                        acc += table[step, k] * intermediate[min(max(top + k, 0), rows - 1), x]
                out[i, x] = acc
