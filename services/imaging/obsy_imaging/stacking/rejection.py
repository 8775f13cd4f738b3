"""Pixel rejection and the weighted mean of what is kept, per pixel across the frames.

Three rejections, the same as Siril's (and PixInsight's) by the same names:

- ``sigma``: iteratively drop values more than ``low``/``high`` standard deviations below/above
  the median of those still kept;
- ``winsorized``: the same, with the standard deviation measured robustly: values beyond
  1.5 sigma of the median are pulled in to that bound and sigma re-measured (times 1.134, the
  factor making it unbiased for a normal distribution) until it settles (Huber's method); then
  times n / (n - 1) for the n values kept: without that the winsorized sigma of a few values is
  low by about 1/n (0.88 sigma for 8 frames, 0.97 for 30), and 3-sigma bounds on it drop ten
  times the nominal share of good values (2.7 % instead of 0.27 % for 8 frames), which costs 7 %
  in noise. Siril (1.0) does not correct it;
- ``linear_fit``: the kept values, sorted, are fitted with a straight line against their rank;
  values further than ``low``/``high`` times the mean absolute deviation from that line go.
  Best for many frames (15 or more) whose background drifts.

Missing values (NaN: outside a frame after registration) are never counted. A pixel keeps at
least 3 values: rejection stops there.

Two implementations of one algorithm: numba kernels (compiled once; call :func:`warm_up` at
service start so no frame pays for it) and vectorised NumPy, used where numba is not installed.
They agree to float rounding (a test checks it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

try:  # numba is optional: the NumPy path gives the same numbers, slower.
    import numba
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None

RejectionMethod = Literal["none", "sigma", "winsorized", "linear_fit"]
METHODS: tuple[str, ...] = ("none", "sigma", "winsorized", "linear_fit")
WINSOR_CLIP = 1.5
WINSOR_UNBIAS = 1.134
WINSOR_TOLERANCE = 5e-4
WINSOR_ROUNDS = 10
MIN_KEPT = 3


@dataclass(frozen=True)
class Rejection:
    method: RejectionMethod = "winsorized"
    low: float = 3.0  # sigmas below
    high: float = 3.0  # sigmas above
    iterations: int = 5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown rejection {self.method!r} (one of {', '.join(METHODS)})")
        if self.low <= 0 or self.high <= 0:
            raise ValueError(f"rejection limits must be positive sigmas, not low={self.low} high={self.high}")
        if self.iterations < 1:
            raise ValueError(f"rejection needs at least one iteration, not {self.iterations}")


def combine(
    values: np.ndarray, weights: np.ndarray, rejection: Rejection, *, engine: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean over axis 0 of ``values`` (frames, pixels) after rejection, and the number
    of values rejected per pixel. ``engine``: ``auto`` (numba when installed), ``numba``, ``numpy``."""
    pixels = values.shape[1] if values.ndim == 2 else 0
    out, rejected = np.empty(pixels, dtype=np.float32), np.empty(pixels, dtype=np.int32)
    frames = len(weights)
    combine_into(
        values,
        weights,
        rejection,
        gains=np.ones(frames),
        offsets=np.zeros(frames),
        outputs=(out, rejected, None),
        engine=engine,
    )
    return out, rejected


def combine_into(
    values: np.ndarray,
    weights: np.ndarray,
    rejection: Rejection,
    *,
    gains: np.ndarray,
    offsets: np.ndarray,
    outputs: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    engine: str = "auto",
) -> None:
    """:func:`combine` of the normalised values ``gains[f] * values[f] + offsets[f]``, written into
    ``outputs``: the mean (float32), the values rejected and the finite values (the coverage; None:
    not wanted) per pixel. The stack's path: one pass over a band, no normalised copy of it."""
    if values.ndim != 2:
        raise ValueError(f"combine takes (frames, pixels) values, not shape {values.shape}")
    if len(weights) != values.shape[0]:
        raise ValueError(f"{len(weights)} weights for {values.shape[0]} frames")
    if engine == "auto":
        engine = "numba" if numba is not None else "numpy"
    w = np.asarray(weights, dtype=np.float64)
    gains, offsets = np.asarray(gains, dtype=np.float64), np.asarray(offsets, dtype=np.float64)
    out, rejected, coverage = outputs
    if engine == "numba":
        if numba is None:
            raise RuntimeError("the numba engine was asked for but numba is not installed")
        counts = np.empty(values.shape[1], dtype=np.int32) if coverage is None else coverage
        data = values if values.dtype == np.float32 else values.astype(np.float32)
        limits = (rejection.low, rejection.high, rejection.iterations)
        if rejection.method == "linear_fit":
            _combine_linear_fit(data, gains, offsets, w, *limits, out, rejected, counts)
        else:
            network = _sorting_network(values.shape[0])
            method = METHODS.index(rejection.method)
            _combine_sorted(data, gains, offsets, w, method, *limits, *network, out, rejected, counts)
        return
    if engine == "numpy":
        normalised = values * gains[:, None].astype(np.float32) + offsets[:, None].astype(np.float32)
        out[:], rejected[:] = _combine_numpy(normalised, w, rejection)
        if coverage is not None:
            coverage[:] = np.isfinite(values).sum(0)
        return
    raise ValueError(f"unknown engine {engine!r} (auto, numba or numpy)")


def warm_up() -> bool:
    """Compile the numba kernels now (about a second per method) rather than on the first stack:
    :func:`combine`'s and the stack's (uint16 counts; a band that is a slice of its buffer).
    Returns False where numba is not installed (nothing to compile)."""
    if numba is None:
        return False
    data = np.random.default_rng(0).normal(size=(6, 16)).astype(np.float32)
    ones, zeros = np.ones(6), np.zeros(6)
    for method in METHODS:
        combine(data, ones, Rejection(method))
        for values in (data, data[:, :8]):
            counts = (np.empty(values.shape[1], np.float32), *np.empty((2, values.shape[1]), np.uint16))
            combine_into(values, ones, Rejection(method), gains=ones, offsets=zeros, outputs=counts)
    return True


# --- NumPy ------------------------------------------------------------------------------------
def _combine_numpy(values: np.ndarray, weights: np.ndarray, r: Rejection) -> tuple[np.ndarray, np.ndarray]:
    data = values.astype(np.float64)
    finite = np.isfinite(data)
    if r.method == "linear_fit":
        order = np.argsort(np.where(finite, data, np.inf), axis=0, kind="stable")
        data = np.take_along_axis(data, order, 0)
        finite = np.take_along_axis(finite, order, 0)
        w = weights[order]
    else:
        w = np.broadcast_to(weights[:, None], data.shape)
    keep = finite.copy()
    if r.method != "none":
        for _ in range(r.iterations):
            count = keep.sum(0)
            active = count >= MIN_KEPT
            if not active.any():
                break
            masked = np.where(keep, data, np.nan)
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels no frame covers
                if r.method == "linear_fit":
                    lower, upper = _linear_fit_bounds(data, keep, count, r)
                else:
                    centre = np.nanmedian(masked, 0)
                    sigma = np.nanstd(masked, 0)
                    if r.method == "winsorized":
                        sigma = _winsorized_sigma(masked, centre, sigma) * count / (count - 1.0)
                    lower, upper = centre - r.low * sigma, centre + r.high * sigma
                new_keep = keep & (data >= lower) & (data <= upper)
            new_keep = np.where(active[None, :], new_keep, keep)
            if np.array_equal(new_keep, keep):
                break
            keep = new_keep
    total = (w * keep).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(keep, data * w, 0.0).sum(0) / total
    return mean.astype(np.float32), (finite.sum(0) - keep.sum(0)).astype(np.int32)


def _winsorized_sigma(masked: np.ndarray, centre: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    active = np.ones(sigma.shape, dtype=bool)
    for _ in range(WINSOR_ROUNDS):
        clipped = np.clip(masked, centre - WINSOR_CLIP * sigma, centre + WINSOR_CLIP * sigma)
        new_sigma = WINSOR_UNBIAS * np.nanstd(clipped, 0)
        settled = np.abs(new_sigma - sigma) < WINSOR_TOLERANCE * sigma
        sigma = np.where(active, new_sigma, sigma)
        active &= ~settled
        if not active.any():
            break
    return sigma


def _linear_fit_bounds(
    data: np.ndarray, keep: np.ndarray, count: np.ndarray, r: Rejection
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the band around the line fitted to the kept (sorted) values against their rank."""
    rank = np.cumsum(keep, 0) - 1.0
    k = keep.astype(np.float64)
    y = np.where(keep, data, 0.0)
    n, sx, sxx = count, (rank * k).sum(0), (rank * rank * k).sum(0)
    sy, sxy = y.sum(0), (rank * y).sum(0)
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    intercept = (sy - slope * sx) / n
    line = intercept + slope * rank
    sigma = (np.abs(y - line) * k).sum(0) / n
    return line - r.low * sigma, line + r.high * sigma


# --- numba ------------------------------------------------------------------------------------
# Sigma and winsorized rejection work on blocks of BLOCK pixels: each frame's values of the block
# (normalised on the way) are a row, and the rows are put in order by a sorting network, every
# compare-exchange a min and a max over the whole row (SIMD, no branches), so each pixel's column
# ends sorted. Those rejections keep a run of the sorted values (everything within
# [centre - low*sigma, centre + high*sigma]): the median is the run's middle, the run's (or the
# winsorized run's) sums come from prefix sums, and the weighted mean is a last pass over the
# rows in frame order keeping the values within the run's ends. Linear fit can drop values from
# the middle of the order: it sorts each pixel's values on its own and keeps a mask.
BLOCK = 64


def merge_sort_pairs(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort for the next power of two at or above ``n``: its
    compare-exchange pairs (i, j), i < j, in order (the smaller value goes to i)."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def _sorting_network(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The compare-exchange pairs (i, j) of :func:`merge_sort_pairs` for ``frames`` rows (the rows
    past ``frames`` hold +inf), as two index arrays."""
    pairs = [(i, j) for i, j in merge_sort_pairs(frames) if i < frames]  # a pair of two +inf rows changes nothing
    array = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(array[:, 0]), np.ascontiguousarray(array[:, 1])


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)

    @_jit
    def _reject_block(ordered, prefix, prefix_sq, count, method, low, high, iterations, start, stop):  # noqa: PLR0912, PLR0915, PLR0917
        """Sigma (method 1) or winsorized (2) rejection of the sorted columns of a block: per pixel
        q the kept run [start[q], stop[q]) of ordered[:count[q], q]. The pixels go in lock-step,
        one step of each in turn, so that their independent chains of arithmetic overlap in the CPU."""
        m = len(count)
        live = np.empty(m, dtype=np.bool_)
        winsor = np.empty(m, dtype=np.bool_)
        centre = np.empty(m, dtype=np.float64)
        sigma = np.empty(m, dtype=np.float64)
        first = np.empty(m, dtype=np.int64)
        end = np.empty(m, dtype=np.int64)
        for q in range(m):
            start[q], stop[q] = 0, count[q]
            live[q] = count[q] >= MIN_KEPT
        for _ in range(iterations):
            busy = False
            for q in range(m):
                winsor[q] = False
                if not live[q]:
                    continue
                a, b = start[q], stop[q]
                n = b - a
                if n < MIN_KEPT:
                    live[q] = False
                    continue
                half = n // 2
                middle = np.float64(ordered[a + half, q])
                centre[q] = middle if n % 2 else 0.5 * (np.float64(ordered[a + half - 1, q]) + middle)
                mean = (prefix[b, q] - prefix[a, q]) / n
                sigma[q] = np.sqrt(max((prefix_sq[b, q] - prefix_sq[a, q]) / n - mean * mean, 0.0))
                first[q], end[q] = a, b
                winsor[q] = method == 2
                busy = True
            if not busy:
                break
            if method == 2:
                for _round in range(WINSOR_ROUNDS):
                    busy = False
                    for q in range(m):
                        if not winsor[q]:
                            continue
                        a, b = start[q], stop[q]
                        n = b - a
                        lo, hi = centre[q] - WINSOR_CLIP * sigma[q], centre[q] + WINSOR_CLIP * sigma[q]
                        i0, i1 = first[q], end[q]  # the values within [lo, hi], moved from round to round
                        while i0 < b and ordered[i0, q] < lo:
                            i0 += 1
                        while i0 > a and ordered[i0 - 1, q] >= lo:
                            i0 -= 1
                        i1 = max(i1, i0)
                        while i1 > i0 and ordered[i1 - 1, q] > hi:
                            i1 -= 1
                        while i1 < b and ordered[i1, q] <= hi:
                            i1 += 1
                        first[q], end[q] = i0, i1
                        below, above = i0 - a, b - i1
                        total = below * lo + above * hi + prefix[i1, q] - prefix[i0, q]
                        squares = below * lo * lo + above * hi * hi + prefix_sq[i1, q] - prefix_sq[i0, q]
                        mean = total / n
                        new_sigma = WINSOR_UNBIAS * np.sqrt(max(squares / n - mean * mean, 0.0))
                        settled = abs(new_sigma - sigma[q]) < WINSOR_TOLERANCE * sigma[q]
                        sigma[q] = new_sigma
                        if settled:
                            winsor[q] = False
                        else:
                            busy = True
                    if not busy:
                        break
                for q in range(m):
                    if live[q]:
                        n = stop[q] - start[q]
                        sigma[q] *= n / (n - 1.0)  # the small-sample correction (module docstring)
            for q in range(m):
                if not live[q]:
                    continue
                a, b = start[q], stop[q]
                lower, upper = centre[q] - low * sigma[q], centre[q] + high * sigma[q]
                new_a, new_b = a, b
                while new_a < new_b and ordered[new_a, q] < lower:
                    new_a += 1
                while new_b > new_a and ordered[new_b - 1, q] > upper:
                    new_b -= 1
                if new_a == a and new_b == b:
                    live[q] = False
                start[q], stop[q] = new_a, new_b

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _combine_sorted(  # noqa: PLR0912, PLR0915, PLR0917
        values, gains, offsets, weights, method, low, high, iterations, first, second, out, rejected, coverage
    ):
        """No rejection (method 0), sigma (1) or winsorized (2), BLOCK pixels at a time; see above.
        ``first``/``second``: the sorting network's pairs."""
        frames, pixels = values.shape
        size = 1
        while size < frames:
            size *= 2
        blocks = (pixels + BLOCK - 1) // BLOCK
        per_task = 16
        for task in numba.prange((blocks + per_task - 1) // per_task):
            normalised = np.empty((frames, BLOCK), dtype=np.float32)
            ordered = np.empty((size, BLOCK), dtype=np.float32)
            prefix = np.zeros((frames + 1, BLOCK), dtype=np.float64)
            prefix_sq = np.zeros((frames + 1, BLOCK), dtype=np.float64)
            count = np.empty(BLOCK, dtype=np.int64)
            lower = np.empty(BLOCK, dtype=np.float32)
            upper = np.empty(BLOCK, dtype=np.float32)
            total = np.empty(BLOCK, dtype=np.float64)
            acc = np.empty(BLOCK, dtype=np.float64)
            kept = np.empty(BLOCK, dtype=np.int64)
            run_start = np.empty(BLOCK, dtype=np.int64)
            run_stop = np.empty(BLOCK, dtype=np.int64)
            for block in range(task * per_task, min(blocks, (task + 1) * per_task)):
                p0 = block * BLOCK
                m = min(BLOCK, pixels - p0)
                count[:] = 0
                for f in range(frames):
                    gain, offset = np.float32(gains[f]), np.float32(offsets[f])
                    for q in range(m):
                        x = values[f, p0 + q] * gain + offset
                        normalised[f, q] = x
                        finite = np.isfinite(x)
                        ordered[f, q] = x if finite else np.inf
                        count[q] += finite
                    for q in range(m, BLOCK):
                        normalised[f, q] = np.nan
                        ordered[f, q] = np.inf
                if method == 0:
                    lower[:] = -np.inf
                    upper[:] = np.inf
                else:
                    ordered[frames:] = np.inf
                    for k in range(len(first)):
                        row_i, row_j = ordered[first[k]], ordered[second[k]]
                        for q in range(BLOCK):
                            x, y = row_i[q], row_j[q]
                            row_i[q] = min(x, y)
                            row_j[q] = max(x, y)
                    for f in range(frames):
                        for q in range(BLOCK):
                            x = np.float64(ordered[f, q])
                            prefix[f + 1, q] = prefix[f, q] + x
                            prefix_sq[f + 1, q] = prefix_sq[f, q] + x * x
                    _reject_block(
                        ordered, prefix, prefix_sq, count[:m], method, low, high, iterations, run_start, run_stop
                    )
                    for q in range(m):
                        a, b = run_start[q], run_stop[q]
                        if b > a:
                            lower[q], upper[q] = ordered[a, q], ordered[b - 1, q]
                        else:
                            lower[q], upper[q] = np.inf, -np.inf
                total[:] = 0.0
                acc[:] = 0.0
                kept[:] = 0
                for f in range(frames):
                    weight = weights[f]
                    for q in range(BLOCK):
                        x = normalised[f, q]
                        if x >= lower[q] and x <= upper[q]:  # NaN (missing) is never within
                            total[q] += weight
                            acc[q] += weight * x
                            kept[q] += 1
                for q in range(m):
                    out[p0 + q] = acc[q] / total[q] if total[q] > 0 else np.nan
                    rejected[p0 + q] = count[q] - kept[q]
                    coverage[p0 + q] = count[q]

    @_jit
    def _sort_with_weights(v: np.ndarray, w: np.ndarray, n: int) -> None:
        """Sort v[:n] ascending, carrying w along (insertion sort: stable, no allocation, and
        the fastest for the tens of values a pixel has; Shell's gaps first for hundreds)."""
        for gap in (701, 301, 132, 57, 23, 10, 4, 1):
            if gap >= n:
                continue
            for i in range(gap, n):
                x, y = v[i], w[i]
                j = i
                while j >= gap and v[j - gap] > x:
                    v[j] = v[j - gap]
                    w[j] = w[j - gap]
                    j -= gap
                v[j] = x
                w[j] = y

    @_jit
    def _reject_linear_fit(v, n, low, high, iterations, keep):  # noqa: PLR0917
        """Linear-fit rejection on sorted v[:n]: keep[j] cleared for the values that go."""
        for _ in range(iterations):
            count = 0
            for j in range(n):
                count += keep[j]
            if count < MIN_KEPT:
                return
            sx = sxx = sy = sxy = 0.0
            rank = 0.0
            for j in range(n):
                if keep[j]:
                    sx += rank
                    sxx += rank * rank
                    sy += v[j]
                    sxy += rank * v[j]
                    rank += 1.0
            slope = (count * sxy - sx * sy) / (count * sxx - sx * sx)
            intercept = (sy - slope * sx) / count
            dev = 0.0
            rank = 0.0
            for j in range(n):
                if keep[j]:
                    dev += abs(v[j] - (intercept + slope * rank))
                    rank += 1.0
            sigma = dev / count
            changed = False
            rank = 0.0
            for j in range(n):
                if keep[j]:
                    line = intercept + slope * rank
                    rank += 1.0
                    if v[j] < line - low * sigma or v[j] > line + high * sigma:
                        keep[j] = False
                        changed = True
            if not changed:
                return

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _combine_linear_fit(values, gains, offsets, weights, low, high, iterations, out, rejected, coverage):  # noqa: PLR0917
        """Linear-fit rejection (method 3), a pixel at a time: each pixel's values sorted with their weights."""
        frames, pixels = values.shape
        chunk = 1024
        for c in numba.prange((pixels + chunk - 1) // chunk):
            v = np.empty(frames, dtype=np.float64)
            w = np.empty(frames, dtype=np.float64)
            keep = np.empty(frames, dtype=np.bool_)
            for p in range(c * chunk, min(pixels, (c + 1) * chunk)):
                n = 0
                for f in range(frames):
                    x = values[f, p] * np.float32(gains[f]) + np.float32(offsets[f])
                    if np.isfinite(x):
                        v[n] = x
                        w[n] = weights[f]
                        n += 1
                _sort_with_weights(v, w, n)
                keep[:n] = True
                _reject_linear_fit(v, n, low, high, iterations, keep)
                total = acc = 0.0
                kept = 0
                for j in range(n):
                    if keep[j]:
                        total += w[j]
                        acc += w[j] * v[j]
                        kept += 1
                out[p] = acc / total if total > 0 else np.nan
                rejected[p] = n - kept
                coverage[p] = n
