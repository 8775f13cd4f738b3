"""Calibrated main-camera frames from the sky simulator, with the true transform between them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import numpy as np
import sep

from obsy.skymodel import load_bright_stars
from obsy_imaging.registration.transform import Transform
from obsy_skysim.allsky import Site
from obsy_skysim.field import FieldRenderer, FieldTruth, TelescopeOptics
from obsy_skysim.sensor import SensorSpec
from tests.support.skysim import SITE

NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
M42_NORTH = (83.82, -4.2)  # a field beside the nebula the simulator does not draw anyway
SENSOR = SensorSpec(width=1000, height=800, pixel_um=3.76, bayer=None, temperature_c=-10.0, seed=5)
EXPOSURE_S, GAIN = 60.0, 100.0


@dataclass(frozen=True)
class SimFrame:
    image: np.ndarray  # calibrated: dark subtracted, divided by the flat (ADU)
    truth: FieldTruth
    adu_per_electron: float


@cache
def renderer(position_angle: float = 0.0) -> FieldRenderer:
    optics = TelescopeOptics(position_angle=position_angle, limiting_magnitude=15.0, seeing_fwhm_arcsec=3.5)
    return FieldRenderer(Site(*SITE), SENSOR, optics, catalogue=_catalogue())


@cache
def _catalogue():
    return load_bright_stars()


def offset_pointing(east_arcsec: float = 0.0, north_arcsec: float = 0.0) -> tuple[float, float]:
    ra, dec = M42_NORTH
    return ra + east_arcsec / 3600.0 / np.cos(np.radians(dec)), dec + north_arcsec / 3600.0


def render(pointing: tuple[float, float] = M42_NORTH, *, position_angle: float = 0.0, seed: int = 1) -> SimFrame:
    r = renderer(position_angle)
    frame = r.render(NIGHT, pointing, EXPOSURE_S, GAIN, seed=seed)
    assert frame.truth is not None
    master = r.sensor.master(EXPOSURE_S, GAIN)
    calibrated = (frame.image.astype(np.float32) - master) / r.flat_field(1)
    return SimFrame(calibrated, frame.truth, SENSOR.adu_per_electron(GAIN))


def true_transform(frame: SimFrame, reference: SimFrame) -> Transform:
    """The similarity transform taking the frame's pixels onto the reference's, fitted to the
    true positions of the stars both show."""
    common, in_frame, in_reference = np.intersect1d(frame.truth.stars.ra, reference.truth.stars.ra, return_indices=True)
    assert len(common) > 20
    source = np.column_stack([frame.truth.x[in_frame], frame.truth.y[in_frame]])
    target = np.column_stack([reference.truth.x[in_reference], reference.truth.y[in_reference]])
    return Transform.fit(source, target, "similarity")


def background_noise(image: np.ndarray) -> float:
    """Robust spread of the sky: MAD of the image less sep's background, stars clipped by the median."""
    data = np.ascontiguousarray(np.nan_to_num(image[20:-20, 20:-20]), dtype=np.float32)
    residual = data - sep.Background(data, bw=64, bh=64).back()
    return 1.4826 * float(np.median(np.abs(residual - np.median(residual))))


def bright_isolated_stars(frame: SimFrame, margin: float = 60.0) -> np.ndarray:
    """Indices into ``frame.truth`` of bright, unsaturated stars with no neighbour of 0.2 % of their
    light within 15 px, ``margin`` px inside the frame."""
    truth = frame.truth
    adu = truth.electrons * frame.adu_per_electron
    x, y = truth.x, truth.y
    inside = (x > margin) & (x < SENSOR.width - margin) & (y > margin) & (y < SENSOR.height - margin)
    distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(distance, np.inf)
    isolated = np.min(np.where(adu[None, :] > 0.002 * adu[:, None], distance, np.inf), axis=1) > 15
    return np.flatnonzero(inside & isolated & (adu > 2e4) & (adu < 4e5))


def flux_over_truth(image: np.ndarray, frame: SimFrame, radius: float = 8.0) -> np.ndarray:
    """The light of ``frame``'s bright isolated stars in an image on its grid (sep's background
    subtracted, an aperture of ``radius`` px) over the simulator's true light of each."""
    pick = bright_isolated_stars(frame)
    data = np.ascontiguousarray(image, dtype=np.float32)
    background = sep.Background(np.nan_to_num(data), bw=64, bh=64)
    flux, _err, _flag = sep.sum_circle(data - background.back(), frame.truth.x[pick], frame.truth.y[pick], radius)
    return flux / (frame.truth.electrons[pick] * frame.adu_per_electron)
