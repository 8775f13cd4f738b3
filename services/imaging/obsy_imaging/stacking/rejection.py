"""Pixel rejection and the weighted mean of what is kept, per pixel across the frames.

Three rejections, the same as Siril's (and PixInsight's) by the same names:

- ``sigma``: iteratively drop values more than ``low``/``high`` standard deviations below/above
  the median of those still kept;
- ``winsorized``: the same, with the standard deviation measured robustly: values beyond
  1.5 sigma of the median are pulled in to that bound and sigma re-measured (times 1.134, the
  factor making it unbiased for a normal distribution) until it settles (Huber's method);
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
    if values.ndim != 2:
        raise ValueError(f"combine takes (frames, pixels) values, not shape {values.shape}")
    if len(weights) != values.shape[0]:
        raise ValueError(f"{len(weights)} weights for {values.shape[0]} frames")
    if engine == "auto":
        engine = "numba" if numba is not None else "numpy"
    code = METHODS.index(rejection.method)
    w = np.asarray(weights, dtype=np.float64)
    if engine == "numba":
        if numba is None:
            raise RuntimeError("the numba engine was asked for but numba is not installed")
        out = np.empty(values.shape[1], dtype=np.float32)
        rejected = np.zeros(values.shape[1], dtype=np.int32)
        _combine_numba(
            np.ascontiguousarray(values, dtype=np.float32),
            w,
            code,
            rejection.low,
            rejection.high,
            rejection.iterations,
            out,
            rejected,
        )
        return out, rejected
    if engine == "numpy":
        return _combine_numpy(values, w, rejection)
    raise ValueError(f"unknown engine {engine!r} (auto, numba or numpy)")


def warm_up() -> bool:
    """Compile the numba kernels now (about a second per method) rather than on the first stack.
    Returns False where numba is not installed (nothing to compile)."""
    if numba is None:
        return False
    data = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    for method in METHODS:
        combine(data, np.ones(6), Rejection(method))
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
                        sigma = _winsorized_sigma(masked, centre, sigma)
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
if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)

    @_jit
    def _select(a: np.ndarray, n: int, kth: int) -> float:
        """The kth smallest of a[:n], partly reordering a in place (Hoare's quickselect, no allocation)."""
        lo, hi = 0, n - 1
        while lo < hi:
            pivot = a[(lo + hi) // 2]
            i, j = lo, hi
            while i <= j:
                while a[i] < pivot:
                    i += 1
                while a[j] > pivot:
                    j -= 1
                if i <= j:
                    a[i], a[j] = a[j], a[i]
                    i += 1
                    j -= 1
            if kth <= j:
                hi = j
            elif kth >= i:
                lo = i
            else:
                break
        return a[kth]

    @_jit
    def _median(v: np.ndarray, keep: np.ndarray, scratch: np.ndarray) -> float:
        k = 0
        for j in range(len(v)):
            if keep[j]:
                scratch[k] = v[j]
                k += 1
        upper = _select(scratch, k, k // 2)
        if k % 2:
            return upper
        lower = scratch[0]  # the largest of the k // 2 values now left of the upper middle
        for j in range(1, k // 2):
            lower = max(lower, scratch[j])
        return 0.5 * (lower + upper)

    @_jit
    def _std(v: np.ndarray, keep: np.ndarray, lo: float, hi: float) -> float:
        """Population standard deviation of the kept values, each clipped to [lo, hi]."""
        k, s, ss = 0, 0.0, 0.0
        for j in range(len(v)):
            if keep[j]:
                x = min(max(v[j], lo), hi)
                s += x
                ss += x * x
                k += 1
        mean = s / k
        return np.sqrt(max(ss / k - mean * mean, 0.0))

    @_jit
    def _reject_pixel(v, w, method, low, high, iterations, keep, scratch):  # noqa: PLR0912, PLR0917
        n = len(v)
        for _ in range(iterations):
            count = 0
            for j in range(n):
                count += keep[j]
            if count < MIN_KEPT:
                return
            if method == 3:  # linear fit against the rank of the (sorted) kept values
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
            else:
                centre = _median(v, keep, scratch)
                sigma = _std(v, keep, -np.inf, np.inf)
                if method == 2:
                    for _round in range(WINSOR_ROUNDS):
                        new_sigma = WINSOR_UNBIAS * _std(
                            v, keep, centre - WINSOR_CLIP * sigma, centre + WINSOR_CLIP * sigma
                        )
                        settled = abs(new_sigma - sigma) < WINSOR_TOLERANCE * sigma
                        sigma = new_sigma
                        if settled:
                            break
                changed = False
                for j in range(n):
                    if keep[j] and (v[j] < centre - low * sigma or v[j] > centre + high * sigma):
                        keep[j] = False
                        changed = True
            if not changed:
                return

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _combine_numba(values, weights, method, low, high, iterations, out, rejected):  # noqa: PLR0917
        frames, pixels = values.shape
        chunk = 512
        for c in numba.prange((pixels + chunk - 1) // chunk):
            v = np.empty(frames, dtype=np.float64)
            w = np.empty(frames, dtype=np.float64)
            keep = np.empty(frames, dtype=np.bool_)
            scratch = np.empty(frames, dtype=np.float64)
            for p in range(c * chunk, min(pixels, (c + 1) * chunk)):
                n = 0
                for f in range(frames):
                    x = values[f, p]
                    if np.isfinite(x):
                        v[n] = x
                        w[n] = weights[f]
                        keep[n] = True
                        n += 1
                if method == 3 and n > 1:
                    order = np.argsort(v[:n], kind="mergesort")
                    v[:n] = v[:n][order]
                    w[:n] = w[:n][order]
                if method != 0:
                    _reject_pixel(v[:n], w[:n], method, low, high, iterations, keep[:n], scratch)
                total = 0.0
                acc = 0.0
                kept = 0
                for j in range(n):
                    if keep[j]:
                        total += w[j]
                        acc += w[j] * v[j]
                        kept += 1
                out[p] = acc / total if total > 0 else np.nan
                rejected[p] = n - kept
