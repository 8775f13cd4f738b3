"""The pixel kernels, twice: numba (parallel over rows, the CPU default) and array code for NumPy or CuPy.

Both implement the same algorithm on the same numbers, so they agree to float rounding
(a test holds them to it). Per pixel, the finite values of the stack are sorted once; every
rejection below removes values from the two ends of that sorted run, so what survives is
always a contiguous range ``[lo, hi)`` of it, and medians are read off the range directly.

Rejection methods (``low``/``high`` are the clipping factors in units of the spread):

* median — the median of the values, nothing rejected;
* mean — the mean of the values, nothing rejected;
* sigma clipping — centre is the median, spread the standard deviation (or the MAD scaled
  to a standard deviation); values below ``centre − low·spread`` or above ``centre + high·spread``
  are rejected, repeated on the survivors until nothing changes or ``max_iterations``; the
  result is the mean of the survivors. With one iteration this is ccdproc's ``sigma_clip``.
* winsorized sigma clipping — as sigma clipping, but the spread is Huber's: the values
  are winsorized at ``centre ± 1.5·σ`` and σ recomputed (× 1.134) until it settles (Siril's
  "Winsorized sigma clipping"); robust when a stack has several outliers at one pixel.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from obsy_imaging.stacking.rejection import merge_sort_pairs

try:
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # a platform without numba wheels: the array twin on NumPy does the work
    HAVE_NUMBA = False
    prange = range

    def njit(*_args, **_kwargs):
        return lambda function: function


MEDIAN, MEAN, SIGMA_CLIP, WINSORIZED = 0, 1, 2, 3
STD, MAD_STD = 0, 1
#: 1 / Φ⁻¹(3/4): a normal distribution's MAD times this is its standard deviation (astropy's mad_std).
MAD_TO_STD = 1.482602218505602
WINSOR_CUT = 1.5
WINSOR_CORRECTION = 1.134
WINSOR_TOLERANCE = 5e-4
WINSOR_MAX_STEPS = 50

#: Held around every call of a parallel numba kernel. Each call already uses every core, and
#: numba's fallback threading layer (workqueue, where neither TBB nor OpenMP is installed)
#: aborts the process when two threads launch parallel kernels at once.
KERNEL_LOCK = threading.Lock()


# --- numba: one pixel ---------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _sort(buf, n):
    """Insertion sort of ``buf[:n]``: the fastest for the 5–60 values of a stack."""
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


@njit(cache=True, nogil=True)
def _median_of_sorted(buf, lo, hi):
    a = buf[lo + (hi - lo - 1) // 2]
    b = buf[lo + (hi - lo) // 2]
    return 0.5 * (a + b)


@njit(cache=True, nogil=True)
def _mean_std(buf, lo, hi):
    total = 0.0
    for i in range(lo, hi):
        total += buf[i]
    mean = total / (hi - lo)
    sq = 0.0
    for i in range(lo, hi):
        d = buf[i] - mean
        sq += d * d
    return mean, math.sqrt(sq / (hi - lo))


@njit(cache=True, nogil=True)
def _spread(buf, lo, hi, center, spread, work):  # noqa: PLR0917 - a numba kernel takes its arrays and settings positionally
    if spread == STD:
        return _mean_std(buf, lo, hi)[1]
    n = hi - lo
    for i in range(n):
        work[i] = abs(buf[lo + i] - center)
    _sort(work, n)
    return _median_of_sorted(work, 0, n) * MAD_TO_STD


@njit(cache=True, nogil=True)
def _from_big_endian_int16(stored):
    """A FITS BITPIX 16 value from its two bytes as read (big-endian) on a little-endian machine."""
    u = np.int64(stored)
    u = ((u & 0xFF) << 8) | (u >> 8)
    return u - 65536 if u >= 32768 else u


@njit(cache=True, nogil=True)
def _clip_range(buf, lo, hi, lower, upper):
    new_lo = lo
    while new_lo < hi and buf[new_lo] < lower:
        new_lo += 1
    new_hi = hi
    while new_hi > new_lo and buf[new_hi - 1] > upper:
        new_hi -= 1
    return new_lo, new_hi


@njit(cache=True, nogil=True)
def _sigma_clip(buf, n, low, high, spread, max_iterations, work):  # noqa: PLR0917 - a numba kernel takes its arrays and settings positionally
    lo, hi = 0, n
    for _ in range(max_iterations):
        center = _median_of_sorted(buf, lo, hi)
        sigma = _spread(buf, lo, hi, center, spread, work)
        new_lo, new_hi = _clip_range(buf, lo, hi, center - low * sigma, center + high * sigma)
        if new_lo == lo and new_hi == hi:
            break
        lo, hi = new_lo, new_hi
    return lo, hi


@njit(cache=True, nogil=True)
def _winsorized_clip(buf, n, low, high, max_iterations, work):  # noqa: PLR0917 - a numba kernel takes its arrays and settings positionally
    lo, hi = 0, n
    for _ in range(max_iterations):
        count = hi - lo
        if count < 3:
            break
        center = _median_of_sorted(buf, lo, hi)
        sigma = _mean_std(buf, lo, hi)[1]
        for _step in range(WINSOR_MAX_STEPS):
            lower, upper = center - WINSOR_CUT * sigma, center + WINSOR_CUT * sigma
            for i in range(count):
                work[i] = min(max(buf[lo + i], lower), upper)
            new_sigma = _mean_std(work, 0, count)[1] * WINSOR_CORRECTION
            settled = abs(new_sigma - sigma) <= WINSOR_TOLERANCE * sigma
            sigma = new_sigma
            if settled:
                break
        new_lo, new_hi = _clip_range(buf, lo, hi, center - low * sigma, center + high * sigma)
        if new_lo == lo and new_hi == hi:
            break
        lo, hi = new_lo, new_hi
    return lo, hi


def sorting_network(n: int) -> np.ndarray:
    """Batcher's odd–even merge sort for ``n`` values as (k, 2) index pairs (min goes to the first index).

    Built for the next power of two and pruned of every pair that touches a position ≥ n:
    those hold +inf padding that would never move.
    """
    pairs = [pair for pair in merge_sort_pairs(n) if pair[1] < n]
    return np.array(pairs or [(0, 0)], dtype=np.int64).reshape(-1, 2)


@njit(cache=True, nogil=True, parallel=True)
def combine_block_numba(  # noqa: PLR0912, PLR0915, PLR0917 - one loop nest per row, positional as numba wants
    raw,
    big_endian_int16,
    bscale,
    bzero,
    subtract,
    use_subtract,
    frame_scale,
    network,
    method,
    low,
    high,
    spread,
    max_iterations,
    out,
    kept,
):
    """Combine a (frames, rows, columns) block of stored values into ``out`` (rows, columns).

    Each value is decoded as ``(raw·bscale + bzero − subtract) · frame_scale`` (per frame
    bscale, bzero, frame_scale; ``subtract`` per pixel when ``use_subtract``); non-finite
    values are left out. ``kept`` gets how many values each pixel's result is made of.
    With ``big_endian_int16``, ``raw`` holds the files' bytes of BITPIX 16 images seen as
    uint16, and the kernel swaps them itself (no pass of its own over the stack).

    A row's columns are sorted together by the sorting ``network`` (from :func:`sorting_network`),
    one compare-exchange of two whole rows at a time, which the compiler turns into SIMD
    min/max: several times faster than sorting pixel by pixel.
    """
    n, rows, cols = raw.shape
    for r in prange(rows):
        x = np.empty((n, cols), np.float32)
        buf = np.empty(n, np.float64)
        work = np.empty(n, np.float64)
        for i in range(n):
            row = x[i]
            for c in range(cols):
                stored = _from_big_endian_int16(raw[i, r, c]) if big_endian_int16 else raw[i, r, c]
                v = stored * bscale[i] + bzero[i]
                if use_subtract:
                    v -= subtract[r, c]
                v *= frame_scale[i]
                row[c] = v if math.isfinite(v) else np.inf
        for k in range(network.shape[0]):
            first = x[network[k, 0]]
            second = x[network[k, 1]]
            for c in range(cols):
                a = first[c]
                b = second[c]
                first[c] = a if a < b else b
                second[c] = b if a < b else a
        fast = method == MEAN or (method == SIGMA_CLIP and spread == STD)
        mean = np.zeros(cols, np.float64)
        sq = np.zeros(cols, np.float64)
        if fast:
            # The usual pixel rejects nothing in the first pass: find those for all columns at once.
            for i in range(n):
                row = x[i]
                for c in range(cols):
                    mean[c] += row[c]
            for c in range(cols):
                mean[c] /= n
            for i in range(n):
                row = x[i]
                for c in range(cols):
                    d = row[c] - mean[c]
                    sq[c] += d * d
        for c in range(cols):
            if fast and x[n - 1, c] != np.inf:
                if method == MEAN:
                    out[r, c] = mean[c]
                    kept[r, c] = n
                    continue
                center = 0.5 * (np.float64(x[(n - 1) // 2, c]) + np.float64(x[n // 2, c]))
                sigma = math.sqrt(sq[c] / n)
                if x[0, c] >= center - low * sigma and x[n - 1, c] <= center + high * sigma:
                    out[r, c] = mean[c]
                    kept[r, c] = n
                    continue
            m = n
            while m > 0 and x[m - 1, c] == np.inf:
                m -= 1
            if m == 0:
                out[r, c] = np.nan
                kept[r, c] = 0
                continue
            for i in range(m):
                buf[i] = x[i, c]
            lo, hi = 0, m
            if method == MEDIAN:
                out[r, c] = _median_of_sorted(buf, 0, m)
                kept[r, c] = m
                continue
            if method == SIGMA_CLIP:
                lo, hi = _sigma_clip(buf, m, low, high, spread, max_iterations, work)
            elif method == WINSORIZED:
                lo, hi = _winsorized_clip(buf, m, low, high, max_iterations, work)
            out[r, c] = _mean_std(buf, lo, hi)[0]
            kept[r, c] = hi - lo


@njit(cache=True, nogil=True, parallel=True)
def calibrate_numba(  # noqa: PLR0917 - a numba kernel takes its arrays and settings positionally
    raw,
    big_endian_int16,
    bscale,
    bzero,
    dark,
    dark_factor,
    bias,
    bias_factor,
    inv_flat,
    use_dark,
    use_bias,
    use_flat,
    out,
):
    """``(raw·bscale + bzero − dark_factor·dark − bias_factor·bias) · inv_flat`` as big-endian float32 bits in ``out``.

    Returns the count of non-finite results (from the light, a master, or a flat pixel
    without signal), which are all NaN. ``raw`` is either native numbers or, when
    ``big_endian_int16``, the file's bytes of a BITPIX 16 image seen as uint16: the kernel
    swaps them itself, and writes ``out`` (uint32) ready for the file, so that neither the
    input nor the output needs a pass of its own to change byte order.
    """
    rows, cols = raw.shape
    bad = np.zeros(rows, np.int64)
    for r in prange(rows):
        count = 0
        row = np.empty(cols, np.float32)
        for c in range(cols):
            stored = _from_big_endian_int16(raw[r, c]) if big_endian_int16 else raw[r, c]
            v = stored * bscale + bzero
            if use_dark:
                v -= dark_factor * dark[r, c]
            if use_bias:
                v -= bias_factor * bias[r, c]
            if use_flat:
                v *= inv_flat[r, c]
            if not math.isfinite(v):
                v = np.nan
                count += 1
            row[c] = v
        bits = row.view(np.uint32)
        for c in range(cols):
            b = bits[c]
            out[r, c] = ((b & 0xFF) << 24) | ((b & 0xFF00) << 8) | ((b >> 8) & 0xFF00) | (b >> 24)
        bad[r] = count
    return bad.sum()


# --- array code (NumPy or CuPy): all pixels of a block at once ----------------------------------
def combine_block_array(
    xp: Any, values: Any, *, method: int, low: float, high: float, spread: int, max_iterations: int
):
    """The same combination on decoded float64 ``values`` (frames, rows, columns) with the array module ``xp``.

    Returns ``(combined, kept)``.
    """
    s = xp.sort(values, axis=0)  # NaN sort last
    n = s.shape[0]
    index = xp.arange(n).reshape(n, 1, 1)
    lo = xp.zeros(s.shape[1:], dtype=xp.int64)
    hi = xp.isfinite(s).sum(axis=0).astype(xp.int64)
    empty = hi == 0

    def median(lo, hi):
        a = xp.take_along_axis(s, xp.clip(lo + (hi - lo - 1) // 2, 0, n - 1)[None], axis=0)[0]
        b = xp.take_along_axis(s, xp.clip(lo + (hi - lo) // 2, 0, n - 1)[None], axis=0)[0]
        return 0.5 * (a + b)

    def mean_std(x, inside):
        count = xp.maximum(inside.sum(axis=0), 1)
        mean = xp.where(inside, x, 0.0).sum(axis=0) / count
        sq = xp.where(inside, (x - mean) ** 2, 0.0).sum(axis=0) / count
        return mean, xp.sqrt(sq)

    def clip(lo, hi, lower, upper):
        new_lo = xp.minimum(xp.maximum(lo, (s < lower).sum(axis=0)), hi)
        new_hi = xp.maximum(xp.minimum(hi, (s <= upper).sum(axis=0)), new_lo)
        return new_lo, new_hi

    if method == MEDIAN:
        result = median(lo, hi)
    else:
        for _ in range(max_iterations if method in (SIGMA_CLIP, WINSORIZED) else 0):
            inside = (index >= lo) & (index < hi)
            center = median(lo, hi)
            sigma = mean_std(s, inside)[1]
            if method == SIGMA_CLIP and spread == MAD_STD:
                deviation = xp.sort(xp.where(inside, xp.abs(s - center), xp.inf), axis=0)
                count = hi - lo
                a = xp.take_along_axis(deviation, xp.clip((count - 1) // 2, 0, n - 1)[None], axis=0)[0]
                b = xp.take_along_axis(deviation, xp.clip(count // 2, 0, n - 1)[None], axis=0)[0]
                sigma = 0.5 * (a + b) * MAD_TO_STD
            active = hi > lo
            if method == WINSORIZED:
                active = (hi - lo) >= 3
                settled = ~active
                for _step in range(WINSOR_MAX_STEPS):
                    winsorized = xp.clip(s, center - WINSOR_CUT * sigma, center + WINSOR_CUT * sigma)
                    new_sigma = mean_std(winsorized, inside)[1] * WINSOR_CORRECTION
                    now = xp.abs(new_sigma - sigma) <= WINSOR_TOLERANCE * sigma
                    sigma = xp.where(settled, sigma, new_sigma)
                    settled = settled | now
                    if bool(settled.all()):
                        break
            new_lo, new_hi = clip(lo, hi, center - low * sigma, center + high * sigma)
            new_lo = xp.where(active, new_lo, lo)
            new_hi = xp.where(active, new_hi, hi)
            if not bool(((new_lo != lo) | (new_hi != hi)).any()):
                break
            lo, hi = new_lo, new_hi
        inside = (index >= lo) & (index < hi)
        result = mean_std(s, inside)[0]
    result = xp.where(empty, xp.nan, result)
    return result, hi - lo


def calibrate_array(xp: Any, raw: Any, *, bscale, bzero, dark, dark_factor, bias, bias_factor, inv_flat):
    """The array twin of :func:`calibrate_numba` (``None`` for an unused master); returns (float32 image, bad count)."""
    value = raw.astype(xp.float64) * bscale + bzero
    if dark is not None:
        value -= dark_factor * dark
    if bias is not None:
        value -= bias_factor * bias
    if inv_flat is not None:
        value *= inv_flat
    value = value.astype(xp.float32)
    bad = ~xp.isfinite(value)
    value[bad] = xp.nan
    return value, int(bad.sum())


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels for the stored types frames come in.

    The service calls this once at start, so no frame pays for the compiler.
    """
    if not HAVE_NUMBA:
        return
    for dtype in (np.int16, np.uint16, np.int32, np.float32, np.float64, np.uint8):
        raw = np.ones((3, 2, 2), dtype=dtype)
        ones = np.ones(3)
        out = np.empty((2, 2), np.float32)
        kept = np.empty((2, 2), np.uint16)
        for method in (MEDIAN, SIGMA_CLIP):
            subtract = np.zeros((2, 2), np.float32)
            network = sorting_network(3)
            swap = dtype == np.uint16  # BITPIX 16 files are combined from their bytes as read
            combine_block_numba(
                raw, swap, ones, ones * 0, subtract, False, ones, network, method, 3.0, 3.0, STD, 1, out, kept
            )
        frame = np.ones((2, 2), dtype=dtype)
        master = np.ones((2, 2), np.float32)
        bits = np.empty((2, 2), np.uint32)
        calibrate_numba(frame, dtype == np.uint16, 1.0, 0.0, master, 1.0, master, 0.0, master, True, True, True, bits)
