"""The sensor's read-out in one pass over each row (numba): the frame's mean electrons, the noise, the
gain and the bias, the clipping and the 16-bit cast, where NumPy needed about ten passes over the
frame and a full frame of normal deviates.

Per pixel: the light (an image, a uniform level through the flat field, or both) plus the dark
signal (ordinary pixels, the row's hot pixels, the amplifier glow) is the mean ``e``; the read-out
is ``(e + sqrt(e + read_noise²) · z) · gain + offset + column offset``, clipped at full well and at
the ADC's range and rounded. ``z`` is a standard normal deviate: shot noise as a Gaussian of
variance ``e`` and read noise in one draw, as before.

The deviates come from Marsaglia & Tsang's ziggurat (256 layers; exactly Gaussian, the method of
NumPy's own ``standard_normal``) fed by xoshiro256++ (Blackman & Vigna), one stream per row whose
state NumPy's PCG64 draws from the seed. A seed therefore gives the same frame whatever the number
of threads; without one, NumPy's entropy seeds it.

The kernel releases the GIL and runs on a few Python threads, one block of rows each (not numba's
``parallel=True``: its fallback threading layer aborts the process when two threads start
parallel kernels at once, and a simulator's exposures run on worker threads).
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

#: The ziggurat: LAYERS strips of equal area ZIGGURAT_V under the normal curve, the base one with
#: the tail beyond ZIGGURAT_R (Marsaglia & Tsang 2000; NumPy's 256-layer constants).
LAYERS = 256
ZIGGURAT_R = 3.6541528853610088
ZIGGURAT_V = 4.92867323399e-3
MANTISSA_BITS = 23  # a 32-bit draw: 8 bits pick the layer, 1 the sign, 23 the place along it


def ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, w, f): per layer the draw below which a point is inside the curve for sure, the width of
    one step of the 23-bit draw, and the curve's height at the layer's edge (Marsaglia's zigset)."""
    m = float(1 << MANTISSA_BITS)
    k = np.zeros(LAYERS, dtype=np.uint32)
    w = np.zeros(LAYERS)
    f = np.zeros(LAYERS)
    dn = tn = ZIGGURAT_R
    q = ZIGGURAT_V / math.exp(-0.5 * dn * dn)
    k[0] = int(dn / q * m)
    w[0], w[-1] = q / m, dn / m
    f[0], f[-1] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(LAYERS - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(ZIGGURAT_V / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = int(dn / tn * m)
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / m
    return k, w, f


ZIG_K, ZIG_W, ZIG_F = ziggurat_tables()
#: 32-bit draws generated at a time (a row takes about 1.01 a pixel; the rest of its last chunk is unused).
CHUNK = 512
_U64 = np.uint64
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(nogil=True, cache=True)
def _fill(buf, s):
    """Fill ``buf`` (uint32, even length) from the xoshiro256++ state ``s`` (uint64[4], advanced)."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(buf.size // 2):
        x = s0 + s3
        result = ((x << _U64(23)) | (x >> _U64(41))) + s0
        t = s1 << _U64(17)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << _U64(45)) | (s3 >> _U64(19))
        buf[2 * i] = np.uint32(result & _LOW32)
        buf[2 * i + 1] = np.uint32(result >> _U64(32))
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@njit(nogil=True, cache=True)
def _uniform(buf, p, s):
    """A uniform deviate in [0, 1) (24 bits) from the buffer, refilled when spent; and the new place."""
    if p == buf.size:
        _fill(buf, s)
        p = 0
    return (buf[p] >> np.uint32(8)) * (1.0 / 16777216.0), p + 1


@njit(nogil=True, cache=True)
def _edge(layer, x, negative, buf, p, s, zf):  # noqa: PLR0917 - a numba kernel takes its arrays positionally
    """The ziggurat's slow path (about 1 draw in 80): the tail beyond R from the base layer, else the
    wedge test against the curve. Returns (deviate, accepted, place)."""
    if layer == 0:
        while True:
            u, p = _uniform(buf, p, s)
            v, p = _uniform(buf, p, s)
            xx = -math.log1p(-u) / ZIGGURAT_R
            yy = -math.log1p(-v)
            if yy + yy > xx * xx:
                z = ZIGGURAT_R + xx
                return (-z if negative else z), True, p
    u, p = _uniform(buf, p, s)
    return x, zf[layer] + u * (zf[layer - 1] - zf[layer]) < math.exp(-0.5 * x * x), p


@njit(nogil=True, cache=True)
def _normals(out, buf, s, key, zk, zw, zf):  # noqa: PLR0917 - a numba kernel takes its arrays positionally
    """Fill ``out`` with standard normal deviates from the stream that starts at ``key`` (uint64[4]);
    ``buf`` and ``s`` are scratch space."""
    s[:] = key
    if s[0] == 0 and s[1] == 0 and s[2] == 0 and s[3] == 0:  # xoshiro's one forbidden state
        s[0] = 1
    _fill(buf, s)
    p = 0
    n = buf.size
    for c in range(out.size):
        while True:
            if p == n:
                _fill(buf, s)
                p = 0
            r = buf[p]
            p += 1
            layer = r & np.uint32(0xFF)
            rabs = r >> np.uint32(9)
            negative = (r >> np.uint32(8)) & np.uint32(1)
            x = rabs * zw[layer]
            if negative:
                x = -x
            if rabs < zk[layer]:
                break
            x, accepted, p = _edge(layer, x, negative, buf, p, s, zf)
            if accepted:
                break
        out[c] = x


@njit(nogil=True, cache=True)
def _row_mean(mean, row, light, flat, level_e, dark_e, hot_start, hot_col, hot_e, glow, glow_col0, glow_e):  # noqa: PLR0917
    """The mean electrons of one row: light, dark current, amplifier glow, the row's hot pixels."""
    width = mean.size
    if light.shape[0] > 0:
        for c in range(width):
            mean[c] = light[row, c] + dark_e
    else:
        mean[:] = dark_e
    if flat.shape[0] > 0:
        for c in range(width):
            mean[c] += flat[row, c] * level_e
    elif level_e != 0.0:
        for c in range(width):
            mean[c] += level_e
    if row < glow.shape[0]:
        for c in range(glow_col0, width):
            mean[c] += glow[row, c - glow_col0] * glow_e
    for i in range(hot_start[row], hot_start[row + 1]):
        mean[hot_col[i]] += hot_e[i]


@njit(nogil=True, cache=True)
def _read_out_rows(  # noqa: PLR0917 - the kernel's inputs, positionally
    out,
    first,
    end,
    light,
    flat,
    level_e,
    dark_e,
    hot_start,
    hot_col,
    hot_e,
    glow,
    glow_col0,
    glow_e,
    read_var,
    scale,
    offset,
    column,
    ceiling,
    keys,
    zk,
    zw,
    zf,
):
    width = out.shape[1]
    mean = np.empty(width)
    noise = np.empty(width)
    buf = np.empty(CHUNK, dtype=np.uint32)
    s = np.empty(4, dtype=np.uint64)
    for row in range(first, end):
        _row_mean(mean, row, light, flat, level_e, dark_e, hot_start, hot_col, hot_e, glow, glow_col0, glow_e)
        _normals(noise, buf, s, keys[row], zk, zw, zf)  # this row's own stream
        # Noise, gain, bias, clipping at full well and the ADC's range, rounding (+ 0.5 in offset).
        for c in range(width):
            e = mean[c]
            v = (e + math.sqrt(max(e + read_var, 0.0)) * noise[c]) * scale + offset + column[c]
            if not v >= 0.0:  # also NaN
                v = 0.0
            elif v > ceiling:
                v = ceiling
            out[row, c] = np.uint16(v)


@njit(nogil=True, cache=True)
def _standard_normal_rows(out, first, end, keys, zk, zw, zf):  # noqa: PLR0917
    buf = np.empty(CHUNK, dtype=np.uint32)
    s = np.empty(4, dtype=np.uint64)
    for row in range(first, end):
        _normals(out[row], buf, s, keys[row], zk, zw, zf)


_EMPTY = np.empty((0, 0), dtype=np.float32)


def _row_keys(height: int, seed: int | None) -> np.ndarray:
    """Each row's xoshiro256++ state, drawn from the seed by NumPy (PCG64)."""
    return np.random.default_rng(seed).bit_generator.random_raw((height, 4))


def _threads(height: int, threads: int | None) -> list[tuple[int, int]]:
    count = max(1, min(threads or min(4, os.cpu_count() or 1), height))
    bounds = np.linspace(0, height, count + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def _run(kernel, blocks: list[tuple[int, int]]) -> None:
    """Run ``kernel(first, end)`` over the blocks of rows, on threads when there are several."""
    if len(blocks) == 1:
        kernel(*blocks[0])
        return
    with ThreadPoolExecutor(len(blocks)) as pool:
        list(pool.map(lambda block: kernel(*block), blocks))


def read_out(
    shape: tuple[int, int],
    *,
    light: np.ndarray | None,
    flat: np.ndarray | None,
    level_e: float,
    dark_e: float,
    hot: tuple[np.ndarray, np.ndarray, np.ndarray],
    glow: tuple[np.ndarray, int, float] | None,
    read_noise_e: float,
    scale: float,
    offset: float,
    column: np.ndarray,
    ceiling: float,
    seed: int | None,
    threads: int | None = None,
) -> np.ndarray:
    """The 16-bit frame (see the module's description). ``hot`` is (row start per row + 1, column,
    electrons) of the hot pixels, sorted by row; ``glow`` (values, first column, electrons at 1)."""
    out = np.empty(shape, dtype=np.uint16)
    light_rows = _EMPTY if light is None else np.ascontiguousarray(light, dtype=np.float32)
    flat_rows = _EMPTY if flat is None else np.ascontiguousarray(flat, dtype=np.float32)
    glow_rows, glow_col0, glow_e = (_EMPTY, 0, 0.0) if glow is None else glow
    hot_start, hot_col, hot_e = hot
    keys = _row_keys(shape[0], seed)
    column = np.ascontiguousarray(column, dtype=np.float32)

    def kernel(first: int, end: int) -> None:
        _read_out_rows(
            out,
            first,
            end,
            light_rows,
            flat_rows,
            float(level_e),
            float(dark_e),
            hot_start,
            hot_col,
            hot_e,
            glow_rows,
            int(glow_col0),
            float(glow_e),
            float(read_noise_e) ** 2,
            float(scale),
            float(offset),
            column,
            float(ceiling),
            keys,
            ZIG_K,
            ZIG_W,
            ZIG_F,
        )

    _run(kernel, _threads(shape[0], threads))
    return out


def standard_normal(shape: tuple[int, int], seed: int | None, threads: int | None = None) -> np.ndarray:
    """Standard normal deviates (float64) from the read-out's generator: the same per-row streams
    a read-out of this seed uses, so its statistics can be tested on their own."""
    out = np.empty(shape)
    keys = _row_keys(shape[0], seed)

    def kernel(first: int, end: int) -> None:
        _standard_normal_rows(out, first, end, keys, ZIG_K, ZIG_W, ZIG_F)

    _run(kernel, _threads(shape[0], threads))
    return out


def warm_up() -> None:
    """Compile the kernels now (or load them from numba's cache): a few seconds of CPU the first
    time, well under one after. The drivers call it on a thread at start, so no exposure waits for it."""
    read_out(
        (16, 16),
        light=np.ones((16, 16), dtype=np.float32),
        flat=np.ones((16, 16), dtype=np.float32),
        level_e=1.0,
        dark_e=0.1,
        hot=(np.zeros(17, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)),
        glow=(np.ones((4, 4), dtype=np.float32), 12, 1.0),
        read_noise_e=1.0,
        scale=1.0,
        offset=0.5,
        column=np.zeros(16, dtype=np.float32),
        ceiling=65535.0,
        seed=0,
        threads=1,
    )
    standard_normal((2, 16), 0, threads=1)
