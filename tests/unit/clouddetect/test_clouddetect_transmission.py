"""The star-transmission method on synthetic skies rendered from the catalogue with known truth."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from obsy.config import SiteConfig
from obsy.skymodel import PROJECTIONS, SkyModel, StarCatalogue, fit_sky_model, named_star_positions
from obsy_clouddetect.catalogue import load_catalogue
from obsy_clouddetect.transmission.analyser import (
    CLEAR,
    OVERCAST,
    THIN,
    TransmissionAnalyser,
    TransmissionSettings,
)
from obsy_clouddetect.transmission.stars import PreparedFrame, detect_stars
from obsy_clouddetect.transmission.synthetic import CloudPatches, SyntheticSky, UniformCloud

SITE = (50.0, 8.0, 200.0)
WHEN = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
TRUE_MODEL = SkyModel(655.0, 470.0, 300.0, 37.0, False, "equisolid")
THRESHOLD = TransmissionSettings().clear_transmission
MIN_ALT = TransmissionSettings().min_altitude


def angle_difference(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module")
def catalogue() -> StarCatalogue:
    return load_catalogue()


@pytest.mark.parametrize("projection", PROJECTIONS)
@pytest.mark.parametrize("mirrored", [False, True])
def test_pixel_and_sky_positions_round_trip(projection, mirrored):
    model = SkyModel(500.0, 400.0, 320.0, 123.0, mirrored, projection)
    alt = np.array([89.0, 60.0, 30.0, 10.0, 45.0])
    az = np.array([0.0, 90.0, 181.0, 300.0, 359.5])
    x, y = model.altaz_to_pixel(alt, az)
    back_alt, back_az = model.pixel_to_altaz(x, y)
    distorted = SkyModel(500.0, 400.0, 320.0, 123.0, mirrored, projection, distortion=0.05)
    dx, dy = distorted.altaz_to_pixel(alt, az)
    assert np.allclose(distorted.pixel_to_altaz(dx, dy)[0], alt, atol=1e-6)
    assert np.allclose(back_alt, alt, atol=1e-9)
    assert np.allclose(np.cos(np.radians(back_az - az)), 1.0, atol=1e-12)


def test_cardinal_points_follow_the_view_from_below():
    model = SkyModel(100.0, 100.0, 50.0)
    points = model.cardinal_points()
    assert points["N"][1] < 100 and abs(points["N"][0] - 100) < 1e-9  # north up
    assert points["E"][0] < 100  # east to the left, as seen looking up
    assert points["W"][0] > 100 and points["S"][1] > 100
    mirrored = SkyModel(100.0, 100.0, 50.0, mirrored=True).cardinal_points()
    assert mirrored["E"][0] > 100


def test_model_rejects_bad_values():
    with pytest.raises(ValueError, match="projection"):
        SkyModel(1, 1, 1, projection="fisheye")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        SkyModel(1, 1, 0)


def test_hot_pixels_are_not_stars(catalogue):
    sky = SyntheticSky(TRUE_MODEL, 1280, 960, hot_pixels=300)
    frame = sky.render(catalogue, *SITE, WHEN)
    hot = np.argwhere(frame == 65535)[:, ::-1]  # (x, y)
    isolated = [p for p in hot if np.all(np.hypot(*(hot - p).T)[np.any(hot != p, axis=1)] > 6)]
    detections = detect_stars(PreparedFrame(frame), max_stars=10_000)
    distance = np.hypot(detections.x[:, None] - hot[None, :, 0], detections.y[:, None] - hot[None, :, 1])
    fooled = (distance.min(axis=0) < 1.5).sum()
    assert len(isolated) > 200
    # A hot pixel may sit on a star (then the star is still found); nearly all must go unseen.
    assert fooled < 0.05 * len(hot), f"{fooled} of {len(hot)} hot pixels detected as stars"


def test_catalogue_holds_the_naked_eye_sky(catalogue):
    assert 7000 < len(catalogue) < 9000
    assert catalogue.mag.max() <= 6.5
    assert np.all(np.diff(catalogue.mag) >= 0), "brightest first"
    sirius = list(catalogue.names).index("Sirius")
    assert abs(catalogue.ra[sirius] - 101.287) < 0.01 and abs(catalogue.dec[sirius] + 16.716) < 0.01


def test_broken_catalogue_gives_a_clear_error(tmp_path):
    path = tmp_path / "stars.csv"
    path.write_text("hip,ra_deg,dec_deg,mag,bv,name\n1,abc,2,3,0,\n")
    with pytest.raises(ValueError, match="malformed"):
        StarCatalogue.from_csv(path)


@pytest.mark.parametrize(
    "truth",
    [
        TRUE_MODEL,
        SkyModel(612.0, 501.0, 285.0, 212.5, True, "equidistant"),
        SkyModel(640.0, 470.0, 250.0, 301.0, False, "stereographic"),
        SkyModel(630.0, 485.0, 290.0, 150.0, False, "equisolid", distortion=0.04),
    ],
    ids=["equisolid", "equidistant-mirrored", "stereographic", "distorted-equisolid"],
)
@pytest.mark.slow
def test_fit_finds_zenith_rotation_and_projection(catalogue, truth):
    # 400 hot pixels, brighter than any star: they must not lead the fit astray.
    frame = SyntheticSky(truth, 1280, 960, hot_pixels=400).render(catalogue, *SITE, WHEN)
    detections = detect_stars(PreparedFrame(frame))
    stars = catalogue.brighter_than(6.0)
    alt, az = stars.altaz(*SITE, WHEN)
    fit = fit_sky_model(detections.xy, alt, az, (1280, 960))
    assert fit.model.zenith_offset_deg(truth) < 0.5
    assert angle_difference(fit.model.rotation, truth.rotation) < 0.5
    assert fit.model.mirrored == truth.mirrored
    assert fit.rms_px < 1.0
    # Where it puts the sky, down to 15 degrees, within a pixel of the truth.
    alt, az = np.meshgrid(np.arange(15.0, 90.0, 5.0), np.arange(0.0, 360.0, 10.0))
    error = np.hypot(*(np.subtract(fit.model.altaz_to_pixel(alt, az), truth.altaz_to_pixel(alt, az))))
    assert error.max() < 1.0
    if truth.distortion == 0:
        # A distorted lens may be fitted as another projection plus distortion: only the mapping counts.
        assert fit.model.projection == truth.projection
        assert abs(fit.model.scale / truth.scale - 1) < 0.01


@pytest.fixture(scope="module")
def judged(catalogue):
    """Two clear frames teach the clear-sky zero point; then each cloud case is judged."""
    sky = SyntheticSky(TRUE_MODEL, 1280, 960)
    analyser = TransmissionAnalyser(catalogue, *SITE)
    results = {}
    cases = {
        "clear": UniformCloud(1.0),
        "clear again": UniformCloud(1.0),
        "two patches": CloudPatches(((50, 120, 30), (35, 300, 25))),
        "big bank": CloudPatches(((10, 200, 70),)),
        "thin veil": UniformCloud(0.4),
        "overcast": UniformCloud(0.02),
    }
    for seed, (name, clouds) in enumerate(cases.items()):
        frame = sky.render(catalogue, *SITE, WHEN, clouds=clouds, seed=seed)
        results[name] = (clouds.cover(MIN_ALT, THRESHOLD), analyser.analyse(frame, WHEN, sky.exposure_s))
    return results


@pytest.mark.parametrize("case", ["clear", "clear again", "two patches", "big bank", "thin veil", "overcast"])
def test_cloud_cover_is_within_ten_points_of_truth(judged, case):
    truth, result = judged[case]
    assert result.cover is not None, result.reason
    assert abs(result.cover - truth) <= 10, f"{case}: measured {result.cover:.1f} %, truth {truth:.1f} %"
    assert result.model is not None and result.model.zenith_offset_deg(TRUE_MODEL) < 0.5


def test_labels_tell_clear_from_thin_from_overcast(judged):
    assert judged["clear"][1].label == CLEAR
    assert judged["thin veil"][1].label == THIN
    assert judged["overcast"][1].label == OVERCAST
    assert 0.2 < judged["thin veil"][1].transmission < 0.6
    for case in ("two patches", "big bank", "thin veil", "overcast"):
        assert judged[case][1].label != CLEAR


@pytest.mark.slow
def test_overcast_without_a_known_model_is_unknown_never_clear(catalogue):
    sky = SyntheticSky(TRUE_MODEL, 1280, 960)
    frame = sky.render(catalogue, *SITE, WHEN, clouds=UniformCloud(0.0))
    result = TransmissionAnalyser(catalogue, *SITE).analyse(frame, WHEN, sky.exposure_s)
    assert result.label == "unknown" and result.cover is None
    assert "sky model" in result.reason


def test_stars_near_the_moon_are_left_out(catalogue):
    sky = SyntheticSky(TRUE_MODEL, 1280, 960)
    analyser = TransmissionAnalyser(catalogue, *SITE, model=TRUE_MODEL, fixed_model=True)
    frame = sky.render(catalogue, *SITE, WHEN)
    without = analyser.analyse(frame, WHEN, sky.exposure_s)
    with_moon = analyser.analyse(frame, WHEN, sky.exposure_s, moon=(60.0, 100.0))
    assert with_moon.stars_expected < without.stars_expected
    assert math.isclose(without.cover or 0.0, 0.0, abs_tol=5)


def test_a_frame_without_exposure_time_is_unknown(catalogue):
    sky = SyntheticSky(TRUE_MODEL, 1280, 960)
    frame = sky.render(catalogue, *SITE, WHEN)
    result = TransmissionAnalyser(catalogue, *SITE, model=TRUE_MODEL).analyse(frame, WHEN, 0.0)
    assert result.label == "unknown" and result.cover is None and "exposure" in result.reason


@pytest.mark.slow
def test_eight_bit_gamma_jpeg_frames_still_give_the_cover(catalogue):
    """Most allsky cameras save stretched, gamma-encoded JPEGs: not linear, yet usable."""
    sky = SyntheticSky(TRUE_MODEL, 1280, 960)
    analyser = TransmissionAnalyser(catalogue, *SITE)

    def as_jpeg(frame: np.ndarray) -> np.ndarray:
        scaled = np.clip((frame.astype(np.float32) - 600) / 4000.0, 0, 1) ** (1 / 2.2)
        _, data = cv2.imencode(".jpg", (255 * scaled).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)

    cases = [UniformCloud(1.0), UniformCloud(1.0), CloudPatches(((50, 120, 30), (35, 300, 25))), UniformCloud(0.02)]
    results = [
        analyser.analyse(as_jpeg(sky.render(catalogue, *SITE, WHEN, clouds=c, seed=i)), WHEN, 10.0)
        for i, c in enumerate(cases)
    ]
    for clouds, result in zip(cases, results, strict=True):
        assert abs(result.cover - clouds.cover(MIN_ALT, THRESHOLD)) <= 10
    assert results[0].label == CLEAR and results[-1].label == OVERCAST


def test_named_stars_for_an_overlay_land_on_their_stars(catalogue):
    frame = SyntheticSky(TRUE_MODEL, 1280, 960).render(catalogue, *SITE, WHEN)
    site = SiteConfig(latitude=SITE[0], longitude=SITE[1], elevation=SITE[2])
    labels = named_star_positions(TRUE_MODEL, catalogue, site, WHEN)
    names = [name for name, _, _ in labels]
    assert "Sirius" in names and "Vega" not in names  # a January evening from 50 degrees north
    assert "Polaris" in names
    for name, x, y in labels[:10]:
        patch = frame[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3]
        assert patch.max() > 5000, f"{name} at ({x:.0f}, {y:.0f}) is not on a star"
