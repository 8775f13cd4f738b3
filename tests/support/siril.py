"""Siril (Debian's ``siril``, 1.0.6) beside OBSY's registration and stacking: the same lights, both stacks
on frame 1's grid, and the figures that compare them fairly.

Used by the Siril comparison test and by ``bench/bench_imaging_stacking.py``.

Why the figures are what they are:

- **Siril's scale**: its ``-norm=addscale`` stack carries less of the stars' light than frame 1
  (0.96 on 5 frames, 0.27 on 30: its scale is compressed about the background), so light and
  noise are compared on its ``-nonorm`` stack; with equal exposures and skies that is fair.
- **Noise**: the background noise per pixel rewards smoothing: Siril's resampling smooths (its
  per-pixel noise falls below the single frame's noise over √N, and its stars are wider), OBSY's
  Lanczos kernel does not. What photometry pays for is the noise in an aperture, so both are
  measured as the scatter of aperture sums at star-free places (radius twice the FWHM).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sep
from astropy.io import fits

#: Calibrated lights get this pedestal so that no pixel clips at 0 in the 0..1 scale Siril keeps.
PEDESTAL = 200.0
FULL_SCALE = 65535.0


def siril_available() -> bool:
    return shutil.which("siril-cli") is not None


def write_lights(
    folder: Path,
    count: int,
    shape: tuple[int, int],
    *,
    flip_every: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Calibrated sky-simulator lights (dithered up to 1', every ``flip_every``-th after a meridian
    flip) as 32-bit float FITS scaled to 0..1, as Siril keeps calibrated frames (with 16-bit input it
    writes a flipped frame at another precision than the rest and refuses to stack them).
    ``progress(done, count)`` after each light written."""
    from obsy_skysim.allsky import Site
    from obsy_skysim.field import FieldRenderer, TelescopeOptics
    from obsy_skysim.sensor import SensorSpec
    from tests.support.stacking import EXPOSURE_S, GAIN, NIGHT, SITE, offset_pointing

    spec = SensorSpec(width=shape[1], height=shape[0], pixel_um=3.76, bayer=None, temperature_c=-10.0, seed=5)
    renderers = {
        pa: FieldRenderer(
            Site(*SITE), spec, TelescopeOptics(position_angle=pa, limiting_magnitude=15.0, seeing_fwhm_arcsec=3.5)
        )
        for pa in (0.0, 180.0)
    }
    rng = np.random.default_rng(18)
    master = renderers[0.0].sensor.master(EXPOSURE_S, GAIN)
    flat = renderers[0.0].flat_field(1)
    paths = []
    for index in range(count):
        east, north = (0.0, 0.0) if index == 0 else rng.uniform(-60.0, 60.0, 2)
        renderer = renderers[180.0 if index % flip_every == flip_every - 1 else 0.0]
        raw = renderer.render(NIGHT, offset_pointing(east, north), EXPOSURE_S, GAIN, seed=1000 + index).image
        calibrated = (raw.astype(np.float32) - master) / flat + PEDESTAL
        path = folder / f"frame_{index + 1:05d}.fit"
        fits.PrimaryHDU((np.clip(calibrated, 0, FULL_SCALE) / FULL_SCALE).astype(np.float32)).writeto(path)
        paths.append(path)
        if progress is not None:
            progress(index + 1, count)
    return paths


def run_siril(folder: Path, script: str) -> float:
    """Run a Siril script in ``folder`` (32-bit throughout); its seconds. Raises with Siril's output on failure."""
    path = folder / "step.ssf"
    path.write_text("requires 1.0.0\nset32bits\n" + script)
    started = time.perf_counter()
    done = subprocess.run(
        ["siril-cli", "-d", str(folder), "-s", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"siril-cli failed ({done.returncode}) on:\n{script}\n{done.stdout[-2000:]}")
    return time.perf_counter() - started


def load_stack(path: Path, edge: int = 50) -> np.ndarray:
    """A stack in ADU, NaN (uncovered) filled with the median, ``edge`` px cut on every side."""
    image = fits.getdata(path).astype(np.float32) * FULL_SCALE  # both stacks keep the frames' 0..1 scale
    image = np.nan_to_num(image, nan=float(np.nanmedian(image)))
    return np.ascontiguousarray(image[edge:-edge, edge:-edge])


@dataclass(frozen=True)
class StackComparison:
    noise: tuple[float, float]  # background noise per pixel (ADU), OBSY's then Siril's
    aperture_noise: tuple[float, float]  # scatter of star-free aperture sums (ADU)
    aperture_radius: float
    fwhm_px: tuple[float, float]  # median star FWHM
    snr: tuple[float, float]  # median star SNR (grading's measure, per-pixel noise)
    background: tuple[float, float]  # median level (ADU)
    light_ratio: float  # Siril / OBSY: median over OBSY's 50 brightest stars, 8 px aperture

    def describe(self) -> str:
        (a, b), (na, nb) = self.noise, self.aperture_noise
        return (
            f"background noise per pixel OBSY {a:.2f} / Siril {b:.2f} ADU; in r={self.aperture_radius:.1f} px "
            f"apertures OBSY {na:.1f} / Siril {nb:.1f} ADU (ratio {na / nb:.3f}); median FWHM OBSY "
            f"{self.fwhm_px[0]:.3f} / Siril {self.fwhm_px[1]:.3f} px; SNR OBSY {self.snr[0]:.0f} / Siril "
            f"{self.snr[1]:.0f}; star light Siril/OBSY {self.light_ratio:.3f}"
        )


def aperture_noise(image: np.ndarray, avoid_x: np.ndarray, avoid_y: np.ndarray, radius: float) -> float:
    """Robust scatter (1.4826 MAD) of background-subtracted aperture sums on a grid of places at
    least 25 px from every star in ``avoid``."""
    from obsy_imaging.grading.measure import extract_stars

    subtracted = extract_stars(image).subtracted
    height, width = subtracted.shape
    ys, xs = np.mgrid[20 : height - 20 : 13, 20 : width - 20 : 13]
    xs, ys = xs.ravel().astype(float), ys.ravel().astype(float)
    distance = np.hypot(xs[:, None] - avoid_x[None, :], ys[:, None] - avoid_y[None, :]).min(axis=1)
    keep = distance > 25
    assert keep.sum() > 100, "too few star-free places to measure the aperture noise"
    sums = sep.sum_circle(subtracted, xs[keep], ys[keep], radius)[0]
    return float(1.4826 * np.median(np.abs(sums - np.median(sums))))


def compare_stacks(ours: np.ndarray, theirs: np.ndarray) -> StackComparison:
    """Both stacks on frame 1's grid (same places): grading's measure of each, the light of OBSY's
    brightest stars in both, and the aperture noise at twice OBSY's FWHM."""
    from obsy_imaging.grading.measure import extract_stars, measure

    a, b = measure(ours), measure(theirs)
    stars = extract_stars(ours).sources
    brightest = stars[np.argsort(-stars["flux"])][:50]
    light = [
        sep.sum_circle(extract_stars(im).subtracted, brightest["x"], brightest["y"], 8.0)[0] for im in (ours, theirs)
    ]
    radius = 2.0 * float(a.fwhm_px)
    return StackComparison(
        noise=(float(a.noise), float(b.noise)),
        aperture_noise=tuple(aperture_noise(im, stars["x"], stars["y"], radius) for im in (ours, theirs)),
        aperture_radius=radius,
        fwhm_px=(float(a.fwhm_px), float(b.fwhm_px)),
        snr=(float(a.snr), float(b.snr)),
        background=(float(np.median(ours)), float(np.median(theirs))),
        light_ratio=float(np.median(light[1] / light[0])),
    )
