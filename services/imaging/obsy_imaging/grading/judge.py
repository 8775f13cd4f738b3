"""Accepting or rejecting a light: absolute limits, and limits relative to the night's median.

The night's median is taken over the lights of the same night, target and filter graded before
this one (once there are ``min_frames_for_relative`` of them), so a frame is judged against its
own conditions, not against another target's or another filter's. Every failed limit is a
reason, worded for people; a frame is accepted when it has none.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from obsy_imaging.config import ImagingGradingConfig
from obsy_imaging.grading.measure import FrameQuality

ARCSEC_PER_RADIAN = 206_264.806


@dataclass(frozen=True)
class NightMedians:
    """Medians of the lights graded before, for the same night, target and filter."""

    frames: int
    stars: float | None = None
    fwhm_px: float | None = None
    background: float | None = None

    @classmethod
    def of(cls, graded: Sequence[FrameQuality]) -> NightMedians:
        def median(values: list[float]) -> float | None:
            return statistics.median(values) if values else None

        return cls(
            frames=len(graded),
            stars=median([g.stars for g in graded]),
            fwhm_px=median([g.fwhm_px for g in graded if g.fwhm_px is not None]),
            background=median([g.background for g in graded]),
        )


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reasons: tuple[str, ...]
    fwhm_arcsec: float | None


def pixel_scale_arcsec(pixel_size_um: float | None, binning: int, focal_length_mm: float | None) -> float | None:
    """Arcseconds per (binned) pixel, when the header gives the optics."""
    if not pixel_size_um or not focal_length_mm:
        return None
    return pixel_size_um * binning * 1e-3 / focal_length_mm * ARCSEC_PER_RADIAN


def judge(
    quality: FrameQuality, limits: ImagingGradingConfig, night: NightMedians, scale_arcsec: float | None
) -> Verdict:
    reasons: list[str] = []
    fwhm_arcsec = quality.fwhm_px * scale_arcsec if quality.fwhm_px is not None and scale_arcsec else None
    if limits.min_stars is not None and quality.stars < limits.min_stars:
        reasons.append(f"{quality.stars} stars (at least {limits.min_stars})")
    if limits.max_fwhm_px is not None and quality.fwhm_px is not None and quality.fwhm_px > limits.max_fwhm_px:
        reasons.append(f"FWHM {quality.fwhm_px:.2f} px (at most {limits.max_fwhm_px:g})")
    if limits.max_fwhm_arcsec is not None and fwhm_arcsec is not None and fwhm_arcsec > limits.max_fwhm_arcsec:
        reasons.append(f'FWHM {fwhm_arcsec:.2f}" (at most {limits.max_fwhm_arcsec:g}")')
    if (
        limits.max_eccentricity is not None
        and quality.eccentricity is not None
        and quality.eccentricity > limits.max_eccentricity
    ):
        reasons.append(f"eccentricity {quality.eccentricity:.2f} (at most {limits.max_eccentricity:g})")
    if limits.min_snr is not None and (quality.snr or 0.0) < limits.min_snr:
        reasons.append(f"SNR {quality.snr or 0:.1f} (at least {limits.min_snr:g})")
    if night.frames >= limits.min_frames_for_relative:
        reasons += _relative(quality, limits, night)
    return Verdict(accepted=not reasons, reasons=tuple(reasons), fwhm_arcsec=fwhm_arcsec)


def _relative(quality: FrameQuality, limits: ImagingGradingConfig, night: NightMedians) -> list[str]:
    reasons = []
    fwhm = quality.fwhm_px
    if limits.max_fwhm_ratio and night.fwhm_px and fwhm is not None and fwhm > limits.max_fwhm_ratio * night.fwhm_px:
        reasons.append(
            f"FWHM {fwhm:.2f} px is {fwhm / night.fwhm_px:.2f}× the night's median "
            f"{night.fwhm_px:.2f} px (at most {limits.max_fwhm_ratio:g}×)"
        )
    if limits.min_stars_ratio and night.stars and quality.stars < limits.min_stars_ratio * night.stars:
        reasons.append(
            f"{quality.stars} stars, {quality.stars / night.stars:.2f}× the night's median {night.stars:g} "
            f"(at least {limits.min_stars_ratio:g}×)"
        )
    sky = quality.background
    if limits.max_background_ratio and night.background and sky > limits.max_background_ratio * night.background > 0:
        reasons.append(
            f"background {sky:.0f} is {sky / night.background:.2f}× the night's "
            f"median {night.background:.0f} (at most {limits.max_background_ratio:g}×)"
        )
    return reasons
