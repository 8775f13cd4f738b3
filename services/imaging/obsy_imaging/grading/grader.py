"""Grading a registered light: read its pixels, measure, judge against the limits and the night."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy_imaging.config import ImagingGradingConfig
from obsy_imaging.grading.judge import NightMedians, judge, pixel_scale_arcsec
from obsy_imaging.grading.measure import measure
from obsy_imaging.repository.models import Frame, Grade
from obsy_imaging.repository.store import Repository


def read_image(path: Path) -> np.ndarray:
    """The frame's 2-D image (primary HDU, or the first tile-compressed one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False) as hdus:
            for hdu in hdus:
                if hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
                    return hdu.data
    raise ValueError(f"{path} has no 2-D image")


class Grader:
    def __init__(self, repository: Repository, limits: ImagingGradingConfig) -> None:
        self.repository = repository
        self.limits = limits

    def grade(self, frame: Frame) -> Grade:
        quality = measure(read_image(self.repository.root / frame.path))
        earlier = self.repository.night_qualities(frame.night, frame.target, frame.filter)
        scale = pixel_scale_arcsec(frame.pixel_size_um, frame.binning_x, frame.focal_length_mm)
        verdict = judge(quality, self.limits, NightMedians.of(earlier), scale)
        grade = Grade(
            frame_id=frame.id,
            night=frame.night,
            target=frame.target,
            filter=frame.filter,
            stars=quality.stars,
            fwhm_px=quality.fwhm_px,
            fwhm_arcsec=verdict.fwhm_arcsec,
            hfr_px=quality.hfr_px,
            eccentricity=quality.eccentricity,
            background=quality.background,
            noise=quality.noise,
            snr=quality.snr,
            accepted=verdict.accepted,
            reasons=list(verdict.reasons),
            graded_at=datetime.now(UTC),
        )
        return self.repository.add_grade(grade)
