"""Aperture photometry: sums in circles with ``sep``, the local sky from an annulus, the error from the
CCD noise equation, and flags for saturated and non-linear stars.

The sky is the sigma-clipped median of the annulus (stars in the annulus pull a mean up, a median
hardly), taken per star because a flat-fielded sky still varies across a wide field. The error in
electrons (Merline & Howell 1995)::

    σ² = N* + n_ap (1 + n_ap / n_sky) (N_sky + N_dark + RN²)

with N* the star's electrons, n_ap and n_sky the pixel counts of aperture and annulus, N_sky the sky
per pixel, N_dark the dark current per pixel over the exposure (still noise after a master dark
took its level away) and RN the read noise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import IntFlag

import numpy as np
import sep

from obsy_imaging.calibration.kernels import KERNEL_LOCK

try:
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # a platform without numba wheels: the array code on NumPy does the work
    HAVE_NUMBA = False
    prange = range

    def njit(*_args, **_kwargs):
        return lambda function: function


#: An annulus with fewer clean pixels than this gives no sky (``StarFlag.NO_SKY``).
MIN_SKY_PIXELS = 10


class StarFlag(IntFlag):
    NONE = 0
    OFF_FRAME = 1  # the aperture (or its annulus) does not lie wholly on the frame
    SATURATED = 2  # a pixel in the aperture at the saturation level: the flux is a lower bound
    NON_LINEAR = 4  # a pixel above the sensor's linear range: the flux is unreliable
    NO_SKY = 8  # too few clean pixels in the annulus


@dataclass(frozen=True)
class Apertures:
    """Radii in pixels: the aperture and the sky annulus."""

    radius: float
    sky_inner: float
    sky_outer: float

    @classmethod
    def from_fwhm(cls, fwhm_px: float, *, aperture: float = 1.5, inner: float = 3.0, outer: float = 5.0) -> Apertures:
        """Radii scaled to the frame's seeing: 1.5 FWHM holds ~99 % of a Gaussian star's light
        (the same share in every frame, which is what a differential magnitude needs)."""
        return cls(aperture * fwhm_px, inner * fwhm_px, max(outer * fwhm_px, inner * fwhm_px + 3.0))


@dataclass(frozen=True)
class CcdNoise:
    """The sensor's noise, for the CCD equation. ``pedestal_adu`` is what the frame still holds of
    the bias offset (0 for a calibrated frame), so that the sky level can be turned into electrons."""

    gain_e_per_adu: float
    read_noise_e: float
    dark_e_per_px: float = 0.0
    pedestal_adu: float = 0.0


@dataclass(frozen=True)
class ApertureMeasurement:
    """One row per position; fluxes in ADU above the local sky."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    sky_per_px: np.ndarray
    peak: np.ndarray
    flags: np.ndarray  # StarFlag values

    @property
    def snr(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.flux / self.flux_err

    def instrumental_magnitude(self) -> tuple[np.ndarray, np.ndarray]:
        """-2.5 log10(flux) and its error (NaN where the flux is not positive)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            good = self.flux > 0
            mag = np.where(good, -2.5 * np.log10(np.where(good, self.flux, 1.0)), np.nan)
            err = np.where(good, 2.5 / np.log(10) * self.flux_err / np.where(good, self.flux, 1.0), np.nan)
        return mag, err


def _ring_values(image: np.ndarray, x: np.ndarray, y: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """(stars, pixels) values of the pixels whose centres lie between ``inner`` and ``outer`` of each
    position; NaN for the rest and for pixels beyond the image's edge.

    Only the offsets (from the rounded position) that can be in the ring for some sub-pixel position
    are gathered, about 60 % of the square around a sky annulus.
    """
    r = int(np.ceil(outer + 1))
    oy, ox = np.mgrid[-r : r + 1, -r : r + 1]
    reach = np.hypot(ox, oy)
    candidate = (reach >= inner - 0.75) & (reach <= outer + 0.75)  # the position is within 0.71 px of its rounding
    ox, oy = ox[candidate], oy[candidate]
    ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    cols, rows = ix[:, None] + ox[None, :], iy[:, None] + oy[None, :]
    height, width = image.shape
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    values = np.take(image.ravel(), np.clip(rows, 0, height - 1) * width + np.clip(cols, 0, width - 1))
    d2 = (cols - x[:, None]) ** 2 + (rows - y[:, None]) ** 2
    return np.where(inside & (d2 >= inner * inner) & (d2 <= outer * outer), values, np.nan)


# --- numba: one star per iteration, the stars in parallel -----------------------------------------
@njit(cache=True, nogil=True)
def _gather(image, x, y, inner, outer, buf):  # noqa: PLR0917 - a numba kernel takes its arrays and settings positionally
    """The finite values of the pixels whose centres lie between ``inner`` and ``outer`` of (x, y)
    into ``buf``; returns how many."""
    height, width = image.shape
    inner2, outer2 = inner * inner, outer * outer
    r0 = max(0, math.floor(y - outer))
    r1 = min(height - 1, math.ceil(y + outer))
    c0 = max(0, math.floor(x - outer))
    c1 = min(width - 1, math.ceil(x + outer))
    n = 0
    for row in range(r0, r1 + 1):
        dy2 = (row - y) ** 2
        if dy2 > outer2:
            continue
        reach = math.sqrt(outer2 - dy2)
        lo = max(c0, math.floor(x - reach) - 1)  # a column to spare either side: the exact test decides
        hi = min(c1, math.ceil(x + reach) + 1)
        for col in range(lo, hi + 1):
            d2 = (col - x) ** 2 + dy2
            if d2 >= inner2 and d2 <= outer2:
                v = image[row, col]
                if math.isfinite(v):
                    buf[n] = v
                    n += 1
    return n


@njit(cache=True, nogil=True)
def _clipped_median(values, n, clip_sigma, iterations):
    """Astropy's ``SigmaClip`` (about the median, by the standard deviation) on the sorted
    ``values[:n]``: the survivors are always a contiguous run ``[lo, hi)`` of them. Returns (median
    of the survivors, their number)."""
    lo, hi = 0, n
    for _ in range(iterations):
        count = hi - lo
        if count == 0:
            break
        median = 0.5 * (np.float64(values[lo + (count - 1) // 2]) + np.float64(values[lo + count // 2]))
        total = 0.0
        for i in range(lo, hi):
            total += values[i]
        mean = total / count
        sq = 0.0
        for i in range(lo, hi):
            d = values[i] - mean
            sq += d * d
        spread = math.sqrt(sq / count)
        low_cut, high_cut = median - clip_sigma * spread, median + clip_sigma * spread
        new_lo, new_hi = lo, hi
        while new_lo < hi and values[new_lo] < low_cut:
            new_lo += 1
        while new_hi > new_lo and values[new_hi - 1] > high_cut:
            new_hi -= 1
        if new_lo == lo and new_hi == hi:
            break
        lo, hi = new_lo, new_hi
    count = hi - lo
    if count == 0:
        return np.nan, 0
    return 0.5 * (np.float64(values[lo + (count - 1) // 2]) + np.float64(values[lo + count // 2])), count


@njit(cache=True, nogil=True, parallel=True)
def _gather_numba(image, x, y, radius, inner, outer, values, counts, peak):  # noqa: PLR0917 - a numba kernel takes its arrays and settings positionally
    """Each star's annulus pixels into its row of ``values`` (NaN after the last), their number,
    and the brightest pixel within ``radius``."""
    stars, width = values.shape
    scratch_side = 2 * math.ceil(radius + 1) + 1
    for s in prange(stars):
        row = values[s]
        xs, ys = x[s], y[s]
        n = 0
        top = np.nan
        if math.isfinite(xs) and math.isfinite(ys):
            n = _gather(image, xs, ys, inner, outer, row)
            scratch = np.empty(scratch_side * scratch_side, dtype=values.dtype)
            m = _gather(image, xs, ys, 0.0, radius, scratch)
            for i in range(m):
                if not scratch[i] <= top:  # NaN at first, then the largest so far
                    top = scratch[i]
        for i in range(n, width):
            row[i] = np.nan
        counts[s] = n
        peak[s] = top


@njit(cache=True, nogil=True, parallel=True)
def _clip_numba(values, counts, clip_sigma, iterations, min_pixels, sky, n_sky):  # noqa: PLR0917 - a numba kernel takes its arrays and settings positionally
    """The clipped median of each sorted row of ``values``; NaN and 0 where fewer than
    ``min_pixels`` survive."""
    for s in prange(values.shape[0]):
        median, used = _clipped_median(values[s], counts[s], clip_sigma, iterations)
        if used >= min_pixels:
            sky[s], n_sky[s] = median, used
        else:
            sky[s], n_sky[s] = np.nan, 0


def _ring_capacity(inner: float, outer: float) -> int:
    """The most pixel centres an annulus can hold, wherever its centre lies within a pixel."""
    r = math.ceil(outer + 1)
    oy, ox = np.mgrid[-r : r + 1, -r : r + 1]
    reach = np.hypot(ox, oy)
    return int(np.count_nonzero((reach >= inner - 0.75) & (reach <= outer + 0.75)))


# --- NumPy: all stars at once, where numba is not installed -----------------------------------------
def _annulus_sky_numpy(  # noqa: PLR0917 - the settings as annulus_sky passes them
    image: np.ndarray, x: np.ndarray, y: np.ndarray, inner: float, outer: float, clip_sigma: float, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each annulus is sorted once, so every clipping pass keeps a contiguous run of the sorted
    values whose median, mean and spread come from indices and cumulative sums."""
    values = _ring_values(image, x, y, inner, outer).astype(np.float64)
    ordered = np.sort(values, axis=1)  # NaN last
    count = np.sum(np.isfinite(ordered), axis=1)
    filled = np.where(np.isfinite(ordered), ordered, 0.0)
    sums = np.concatenate([np.zeros((len(x), 1)), np.cumsum(filled, axis=1)], axis=1)
    squares = np.concatenate([np.zeros((len(x), 1)), np.cumsum(filled * filled, axis=1)], axis=1)
    rows = np.arange(len(x))
    last = max(values.shape[1] - 1, 0)
    lo, hi = np.zeros(len(x), dtype=np.int64), count.astype(np.int64)
    for _ in range(iterations):
        n = np.maximum(hi - lo, 1)
        median = 0.5 * (ordered[rows, lo + (n - 1) // 2] + ordered[rows, np.minimum(lo + n // 2, last)])
        mean = (sums[rows, hi] - sums[rows, lo]) / n
        spread = np.sqrt(np.maximum((squares[rows, hi] - squares[rows, lo]) / n - mean * mean, 0.0))
        low_cut, high_cut = median - clip_sigma * spread, median + clip_sigma * spread
        with np.errstate(invalid="ignore"):
            # astropy clips the survivors only: a bound that widens brings nothing back
            new_lo = np.maximum(np.sum(ordered < low_cut[:, None], axis=1), lo)
            new_hi = np.minimum(np.sum(ordered <= high_cut[:, None], axis=1), hi)
        new_lo = np.where(hi > lo, new_lo, lo)
        new_hi = np.where(hi > lo, np.maximum(new_hi, new_lo), hi)
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break
        lo, hi = new_lo, new_hi
    n = hi - lo
    safe = np.maximum(n, 1)
    median = 0.5 * (ordered[rows, lo + (safe - 1) // 2] + ordered[rows, np.minimum(lo + safe // 2, last)])
    return np.where(n > 0, median, np.nan), n


def annulus_sky(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    inner: float,
    outer: float,
    *,
    clip_sigma: float = 3.0,
    iterations: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """(sigma-clipped median sky per pixel, number of pixels used) in the annulus about each position;
    NaN and 0 where fewer than 10 pixels are left.

    Clipping as astropy's ``SigmaClip`` does: about the median, by the standard deviation, on the
    survivors of the previous pass, until nothing changes or ``iterations`` passes.
    """
    return _sky_and_peak(image, x, y, 0.0, inner, outer, clip_sigma=clip_sigma, iterations=iterations)[:2]


def _sky_and_peak(  # noqa: PLR0917 - the radii in the order of the Apertures
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    radius: float,
    inner: float,
    outer: float,
    *,
    clip_sigma: float = 3.0,
    iterations: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clipped-median sky, its pixel count, the brightest pixel within ``radius``) per position."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if HAVE_NUMBA and image.dtype in (np.float32, np.float64) and image.flags.c_contiguous and len(x):
        # numba gathers each star's pixels and clips them, in parallel over the stars; NumPy sorts
        # the rows in between (its vectorised sort is several times faster than numba's).
        values = np.empty((len(x), _ring_capacity(inner, outer)), dtype=image.dtype)
        counts = np.empty(len(x), dtype=np.int64)
        peak = np.empty(len(x), dtype=np.float64)
        sky = np.empty(len(x), dtype=np.float64)
        n_sky = np.empty(len(x), dtype=np.int64)
        with KERNEL_LOCK:
            _gather_numba(image, x, y, float(radius), float(inner), float(outer), values, counts, peak)
        values.sort(axis=1)  # NaN last
        with KERNEL_LOCK:
            _clip_numba(values, counts, float(clip_sigma), int(iterations), MIN_SKY_PIXELS, sky, n_sky)
        return sky, n_sky, peak
    sky, n_sky = _annulus_sky_numpy(image, x, y, inner, outer, clip_sigma, iterations)
    enough = n_sky >= MIN_SKY_PIXELS
    return np.where(enough, sky, np.nan), np.where(enough, n_sky, 0), peak_values(image, x, y, radius)


def peak_values(image: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """The brightest pixel within ``radius`` of each position (for the saturation flags)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a position wholly off the image: NaN
        return np.nanmax(_ring_values(image, x, y, 0.0, radius), axis=1).astype(np.float64)


def warm_up() -> bool:
    """Compile the numba kernel now (or load it from numba's cache) rather than on the first frame.
    Returns False where numba is not installed (nothing to compile)."""
    if not HAVE_NUMBA:
        return False
    for dtype in (np.float32, np.float64):
        _sky_and_peak(np.ones((40, 40), dtype=dtype), np.array([20.0]), np.array([20.0]), 2.0, 6.0, 10.0)
    return True


def measure(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    apertures: Apertures,
    noise: CcdNoise,
    *,
    saturation_adu: float,
    linearity_adu: float | None = None,
) -> ApertureMeasurement:
    """Sky-subtracted aperture sums at (x, y) (0-based pixel centres), their CCD-equation errors and flags.

    ``saturation_adu`` is the level at which a pixel clips (the ADC's top, or the full well through
    the gain); ``linearity_adu`` where the sensor stops being linear (default 90 % of saturation).
    """
    # sep works on float32 or float64 in native byte order; a float32 frame is not copied to float64.
    data = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("=") if image.dtype.kind == "f" else np.float32)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    height, width = data.shape
    flags = np.zeros(len(x), dtype=np.int64)
    off = (
        ~np.isfinite(x)
        | ~np.isfinite(y)
        | (x - apertures.sky_outer < -0.5)
        | (y - apertures.sky_outer < -0.5)
        | (x + apertures.sky_outer > width - 0.5)
        | (y + apertures.sky_outer > height - 0.5)
    )
    flags[off] |= StarFlag.OFF_FRAME
    on = ~off
    xs, ys = np.where(on, x, 0.0), np.where(on, y, 0.0)
    total, _, _ = sep.sum_circle(data, xs, ys, apertures.radius, subpix=0)  # exact overlap
    area = np.pi * apertures.radius**2
    sky, n_sky, peak = _sky_and_peak(data, xs, ys, apertures.radius, apertures.sky_inner, apertures.sky_outer)
    flags[on & ~np.isfinite(sky)] |= StarFlag.NO_SKY
    flux = total - area * sky
    flags[on & (peak >= saturation_adu)] |= StarFlag.SATURATED
    flags[on & (peak >= (linearity_adu if linearity_adu is not None else 0.9 * saturation_adu))] |= StarFlag.NON_LINEAR
    g = noise.gain_e_per_adu
    star_e = np.clip(flux, 0, None) * g
    sky_e = np.clip(sky - noise.pedestal_adu, 0, None) * g
    with np.errstate(divide="ignore", invalid="ignore"):
        per_px = (1.0 + area / np.where(n_sky > 0, n_sky, np.nan)) * (
            sky_e + noise.dark_e_per_px + noise.read_noise_e**2
        )
        flux_err = np.sqrt(star_e + area * per_px) / g
    flux = np.where(on, flux, np.nan)
    return ApertureMeasurement(x, y, flux, np.where(on, flux_err, np.nan), np.where(on, sky, np.nan), peak, flags)
