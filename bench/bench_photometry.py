"""Aperture photometry of 2,000 stars on one 6 MP frame (3000 × 2000): OBSY's (``sep`` sums, the
clipped-median annulus sky, the CCD-equation errors) against photutils' aperture photometry with
a sigma-clipped median annulus (the reference, same radii, same frame), and the agreement of the
two. Target (issue 19): 2,000 stars in 50 ms or less. Also the parts of OBSY's time (sep's sums, the
numba sky kernel) and the NumPy code used where numba is not installed.

    python -m bench bench_photometry
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import sep

from obsy_imaging.photometry import aperture
from obsy_imaging.photometry.aperture import Apertures, CcdNoise, measure

WIDTH, HEIGHT, STARS, FWHM = 3000, 2000, 2000, 3.0
RUNS = 15


def star_field(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(30, WIDTH - 30, STARS)
    y = rng.uniform(30, HEIGHT - 30, STARS)
    flux = 10 ** rng.uniform(3, 5, STARS)
    image = np.full((HEIGHT, WIDTH), 200.0, dtype=np.float32)
    sigma = FWHM / 2.3548
    yy, xx = np.mgrid[-8:9, -8:9]
    for cx, cy, f in zip(x, y, flux, strict=True):
        ix, iy = round(float(cx)), round(float(cy))
        image[iy - 8 : iy + 9, ix - 8 : ix + 9] += (
            f / (2 * np.pi * sigma**2) * np.exp(-((xx + ix - cx) ** 2 + (yy + iy - cy) ** 2) / (2 * sigma**2))
        ).astype(np.float32)
    image += rng.normal(0, 1, image.shape).astype(np.float32) * np.sqrt(image)
    return image, x, y


def timed(function, runs: int = RUNS) -> tuple[float, object]:
    """(median wall-clock seconds over ``runs`` calls after a first one, the last result)."""
    return timed_cpu(function, runs)[0::2]


def timed_cpu(function, runs: int = RUNS) -> tuple[float, float, object]:
    """(median wall-clock seconds, median CPU seconds of this process, the last result)."""
    result = function()
    walls, cpus = [], []
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    image, x, y = star_field()
    apertures = Apertures.from_fwhm(FWHM)
    noise = CcdNoise(gain_e_per_adu=1.0, read_noise_e=3.0)
    aperture.warm_up()
    ours_s, ours_cpu, ours = timed_cpu(lambda: measure(image, x, y, apertures, noise, saturation_adu=65535.0))
    print(
        f"  OBSY (sep + clipped-median annulus): {len(x)} stars on {WIDTH}x{HEIGHT} in {ours_s * 1000:.1f} ms "
        f"(median of {RUNS}; CPU {ours_cpu * 1000:.1f} ms)"
    )
    sums_s = timed(lambda: sep.sum_circle(image, x, y, apertures.radius, subpix=0))[0]
    radii = (apertures.radius, apertures.sky_inner, apertures.sky_outer)
    sky_s, sky_cpu, _ = timed_cpu(lambda: aperture._sky_and_peak(image, x, y, *radii))
    print(
        f"    of which sep.sum_circle {sums_s * 1000:.1f} ms, the sky kernel (gather, sort, clip; peaks) "
        f"{sky_s * 1000:.1f} ms (CPU {sky_cpu * 1000:.1f} ms)"
    )
    numpy_s, numpy_sky = timed(
        lambda: aperture._annulus_sky_numpy(image, x, y, apertures.sky_inner, apertures.sky_outer, 3.0, 5), runs=3
    )
    peaks_s = timed(lambda: aperture.peak_values(image, x, y, apertures.radius), runs=3)[0]
    same = np.array_equal(np.where(numpy_sky[1] >= aperture.MIN_SKY_PIXELS, numpy_sky[0], np.nan), ours.sky_per_px)
    print(
        f"    without numba (the NumPy code): sky {numpy_s * 1000:.1f} ms + peaks {peaks_s * 1000:.1f} ms; "
        f"same skies: {same}"
    )
    try:
        from astropy.stats import SigmaClip
        from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture, aperture_photometry
    except ImportError:
        print("  (photutils not installed: it is in requirements-dev.txt)")
        return

    def reference() -> np.ndarray:
        positions = np.column_stack([x, y])
        circle = CircularAperture(positions, r=apertures.radius)
        annulus = CircularAnnulus(positions, r_in=apertures.sky_inner, r_out=apertures.sky_outer)
        total = aperture_photometry(image, circle, method="exact")["aperture_sum"].value
        sky = ApertureStats(image, annulus, sigma_clip=SigmaClip(sigma=3.0, maxiters=5)).median
        return total - sky * circle.area

    theirs_s, theirs = timed(reference, runs=2)
    difference = np.abs(ours.flux - theirs) / ours.flux_err
    print(f"  photutils (exact apertures, clipped-median annulus): {theirs_s * 1000:.1f} ms")
    print(
        f"  ratio photutils/OBSY {theirs_s / ours_s:.1f}x; agreement: median |Δ|/σ {np.median(difference):.3f}, "
        f"max {np.max(difference):.3f}"
    )
