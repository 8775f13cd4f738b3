"""A light's quality figures, measured with ``sep`` (SExtractor's algorithms as a library).

- background and noise: sep's mesh background (64 px boxes) - its global level and RMS;
- stars: sources 5 sigma above the background, at least 5 pixels, not flagged (blended,
  truncated at the edge) and not saturated;
- FWHM: per star from the second moments, 2.3548 * sqrt((a² + b²) / 2), the median over stars;
- HFR: the radius holding half of each star's flux (sep.flux_radius), the median;
- eccentricity: sqrt(1 - b²/a²) per star, the median (0 round, 1 a line);
- SNR: per star, flux over its error in a circular aperture of 2 FWHM, the median.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sep

DETECTION_SIGMA = 5.0
MIN_AREA_PX = 5
GAUSSIAN_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: sep's pixel buffer grows for crowded frames; this is plenty for a raw light.
sep.set_extract_pixstack(3_000_000)


@dataclass(frozen=True)
class FrameQuality:
    stars: int
    fwhm_px: float | None
    hfr_px: float | None
    eccentricity: float | None
    background: float
    noise: float
    snr: float | None


@dataclass(frozen=True)
class Extraction:
    """What sep found on a frame: the background-subtracted image, the background and clean stars."""

    subtracted: np.ndarray
    background: sep.Background
    noise: float
    sources: np.ndarray  # sep's structured array: isolated, unsaturated, not at the edge
    #: Every source found, blended, saturated and truncated ones too (to judge a star's neighbours).
    detections: np.ndarray | None = None


def extract_stars(image: np.ndarray, *, saturation: float | None = None) -> Extraction:
    """Background (64 px mesh) and the stars 5 sigma above it; grading and registration share it."""
    data = np.ascontiguousarray(image, dtype=np.float32)  # native byte order, as sep needs
    background = sep.Background(data, bw=64, bh=64)
    noise = float(background.globalrms)
    subtracted = data - background.back()
    if saturation is None:
        saturation = float(np.max(data)) * 0.98 if np.issubdtype(image.dtype, np.integer) else math.inf
    try:
        sources = sep.extract(subtracted, DETECTION_SIGMA, err=noise, minarea=MIN_AREA_PX)
    except Exception:  # sep raises when a frame is one big source (clouds, a flat by mistake)
        sources = np.zeros(0, dtype=[("flag", int)])
    detections = sources
    if len(sources):
        peaks = sources["peak"] + background.globalback
        keep = (sources["flag"] == 0) & (peaks < saturation) & (sources["a"] > 0) & (sources["b"] > 0)
        sources = sources[keep]
    return Extraction(subtracted, background, noise, sources, detections)


def measure(image: np.ndarray, *, saturation: float | None = None) -> FrameQuality:
    """The quality figures of a 2-D image (any numeric type)."""
    found = extract_stars(image, saturation=saturation)
    subtracted, background, noise, sources = found.subtracted, found.background, found.noise, found.sources
    if len(sources) == 0:
        return FrameQuality(0, None, None, None, float(background.globalback), noise, None)
    a, b = sources["a"], sources["b"]
    fwhm = GAUSSIAN_FWHM_PER_SIGMA * np.sqrt((a**2 + b**2) / 2.0)
    eccentricity = np.sqrt(np.clip(1.0 - (b / a) ** 2, 0.0, 1.0))
    x, y = sources["x"], sources["y"]
    hfr, _flags = sep.flux_radius(subtracted, x, y, 6.0 * a, 0.5, normflux=sources["flux"], subpix=5)
    radius = np.maximum(2.0 * float(np.median(fwhm)), 2.0)
    flux, flux_error, _flags = sep.sum_circle(subtracted, x, y, radius, err=noise)
    good = flux_error > 0
    snr = float(np.median(flux[good] / flux_error[good])) if good.any() else None
    return FrameQuality(
        stars=len(sources),
        fwhm_px=float(np.median(fwhm)),
        hfr_px=float(np.median(hfr[np.isfinite(hfr) & (hfr > 0)])) if np.any(hfr > 0) else None,
        eccentricity=float(np.median(eccentricity)),
        background=float(background.globalback),
        noise=noise,
        snr=snr,
    )
