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
    _jit = numba.njit(cache=True, nogil=True)

    @_jit
    def _run_length(q: float, rate: float, limit: int) -> int:
        """How many pixels from here keep floor(q) while q changes by ``rate`` a pixel (at least 1)."""
        n = np.floor(q)
        if rate > 0:
            run = np.ceil((n + 1.0 - q) / rate)
        elif rate < 0:
            run = np.ceil((q - n) / -rate)
        else:
            return limit
        return max(1, min(limit, int(run)))

    @numba.njit(cache=True, parallel=True, nogil=True, fastmath=_FAST)
    def _horizontal(source, m, row0, col0, intermediate, table):  # noqa: PLR0917
        """Pass 1: each source row resampled along x at the places the output columns need there.

        Output (x, y) maps to source (a x + b y + c, d x + e y + f). On source row s, output
        column x is at y = (s - d x - f) / e, so its source x is (a - b d / e) x + (b / e) s + c - b f / e:
        ``sign * x + rest(x)`` with sign the nearest whole slope (1, -1 for a flip) and rest(x)
        slowly varying. Over a run of x whose rest keeps one table step, the weights are the same
        and the taps move by ``sign`` a pixel: a plain 8-tap filter, which vectorises.
        """
        a, b, c = m[0, 0], m[0, 1], m[0, 2]
        d, e, f = m[1, 0], m[1, 1], m[1, 2]
        slope = a - b * d / e
        sign = int(np.round(slope))
        rate = (slope - sign) * STEPS
        rows, columns = source.shape
        width = intermediate.shape[1]
        for j in numba.prange(rows):
            start = (b / e) * (row0 + j) + c - b * f / e - col0
            x = 0
            while x < width:
                q = ((slope - sign) * x + start) * STEPS + 0.5
                run = _run_length(q, rate, width - x)
                n = int(np.floor(q))
                shift = n // STEPS
                step = n - shift * STEPS
                w0, w1, w2, w3 = table[step, 0], table[step, 1], table[step, 2], table[step, 3]
                w4, w5, w6, w7 = table[step, 4], table[step, 5], table[step, 6], table[step, 7]
                for xx in range(x, x + run):
                    first = sign * xx + shift - 3
                    if first >= 0 and first + TAPS <= columns:
                        intermediate[j, xx] = (
                            w0 * source[j, first]
                            + w1 * source[j, first + 1]
                            + w2 * source[j, first + 2]
                            + w3 * source[j, first + 3]
                            + w4 * source[j, first + 4]
                            + w5 * source[j, first + 5]
                            + w6 * source[j, first + 6]
                            + w7 * source[j, first + 7]
                        )
                    else:
                        acc = np.float32(0.0)
                        for k in range(TAPS):
                            acc += table[step, k] * source[j, min(max(first + k, 0), columns - 1)]
                        intermediate[j, xx] = acc
                x += run

    @numba.njit(cache=True, parallel=True, nogil=True, fastmath=_FAST)
    def _vertical(intermediate, m, row0, first_row, height, width, out, table):  # noqa: PLR0917
        """Pass 2: the intermediate rows resampled along y at each output pixel's source row;
        NaN where the source lies outside the frame. Over a run of x whose source row keeps one
        table step the weights and the 8 rows are the same: a filter down the columns, which vectorises."""
        a, b, c = m[0, 0], m[0, 1], m[0, 2]
        d, e, f = m[1, 0], m[1, 1], m[1, 2]
        rows = intermediate.shape[0]
        rate = d * STEPS
        for i in numba.prange(out.shape[0]):
            y = first_row + i
            # The output columns whose source is inside the frame: one interval (a convex region's cut).
            lo, hi = 0.0, width - 1.0
            for slope, offset, limit in ((a, b * y + c, width), (d, e * y + f, height)):
                if abs(slope) < 1e-12:
                    if offset < -0.5 or offset > limit - 0.5:
                        lo, hi = 1.0, 0.0
                    continue
                one, two = (-0.5 - offset) / slope, (limit - 0.5 - offset) / slope
                lo, hi = max(lo, min(one, two)), min(hi, max(one, two))
            inside_from = max(0, min(width, int(np.ceil(lo))))
            inside_to = max(inside_from, min(width, int(np.floor(hi)) + 1)) if hi >= lo else inside_from
            out[i, :inside_from] = np.nan
            out[i, inside_to:] = np.nan
            x = inside_from
            while x < inside_to:
                sy = d * x + e * y + f
                q = (sy - row0) * STEPS + 0.5
                end = x + 1 if abs(rate) >= 1.0 else x + _run_length(q, rate, inside_to - x)  # turned: 1 px runs
                n = int(np.floor(q))
                top = n // STEPS - 3
                step = n - (top + 3) * STEPS
                if top >= 0 and top + TAPS <= rows:
                    w0, w1, w2, w3 = table[step, 0], table[step, 1], table[step, 2], table[step, 3]
                    w4, w5, w6, w7 = table[step, 4], table[step, 5], table[step, 6], table[step, 7]
                    r0, r1, r2, r3 = (
                        intermediate[top],
                        intermediate[top + 1],
                        intermediate[top + 2],
                        intermediate[top + 3],
                    )
                    r4, r5, r6, r7 = (
                        intermediate[top + 4],
                        intermediate[top + 5],
                        intermediate[top + 6],
                        intermediate[top + 7],
                    )
                    for xx in range(x, end):
                        out[i, xx] = (
                            w0 * r0[xx]
                            + w1 * r1[xx]
                            + w2 * r2[xx]
                            + w3 * r3[xx]
                            + w4 * r4[xx]
                            + w5 * r5[xx]
                            + w6 * r6[xx]
                            + w7 * r7[xx]
                        )
                else:
                    for xx in range(x, end):
                        acc = np.float32(0.0)
                        for k in range(TAPS):
                            acc += table[step, k] * intermediate[min(max(top + k, 0), rows - 1), xx]
                        out[i, xx] = acc
                x = end
