"""The main camera's renderer: a deterministic sky by position, the projection, and calibration frames
whose fixed pattern is the known answer."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from obsy_skysim.allsky import Site
from obsy_skysim.field import (
    CELL_DEG,
    FieldRenderer,
    TelescopeOptics,
    stars_per_square_degree,
    synthetic_cell_stars,
)
from obsy_skysim.sensor import Sensor, SensorSpec
from tests.support.skysim import SITE, centroids

NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
M42 = (83.82, -5.39)
SMALL = SensorSpec(width=800, height=600, pixel_um=3.76, bayer=None)


@pytest.fixture(scope="module")
def renderer() -> FieldRenderer:
    return FieldRenderer(Site(*SITE), SMALL, TelescopeOptics(limiting_magnitude=14.0))


def test_the_same_pointing_always_shows_the_same_stars(renderer: FieldRenderer) -> None:
    a = renderer.render(NIGHT, M42, 30.0, 0.0, seed=1).truth
    b = (
        FieldRenderer(Site(*SITE), SMALL, TelescopeOptics(limiting_magnitude=14.0))
        .render(NIGHT, M42, 30.0, 0.0, seed=2)
        .truth
    )
    assert a is not None and b is not None and len(a.x) > 20
    assert np.array_equal(a.stars.ra, b.stars.ra) and np.array_equal(a.x, b.x)


def test_a_neighbouring_pointing_shows_the_overlap_shifted(renderer: FieldRenderer) -> None:
    shift_deg = 0.05
    here = renderer.stars_near(*M42, 0.3)
    there = renderer.stars_near(M42[0], M42[1] + shift_deg, 0.3)
    shared = np.intersect1d(here.ra, there.ra)
    assert len(shared) > 0.5 * min(len(here.ra), len(there.ra))
    # A star in both fields moves down the image (north is up) by the shift in pixels.
    pick = np.isin(here.ra, shared)
    ra, dec = here.ra[pick][:10], here.dec[pick][:10]
    _, y1 = renderer.to_pixels(ra, dec, *M42)
    _, y2 = renderer.to_pixels(ra, dec, M42[0], M42[1] + shift_deg)
    assert np.allclose(y2 - y1, shift_deg * 3600 / renderer.arcsec_per_pixel, rtol=0.01)


def test_north_is_up_east_left_and_the_position_angle_turns_the_camera() -> None:
    upright = FieldRenderer(Site(*SITE), SMALL, TelescopeOptics())
    turned = FieldRenderer(Site(*SITE), SMALL, TelescopeOptics(position_angle=90.0))
    ra0, dec0 = 100.0, 20.0
    step = 200 * upright.arcsec_per_pixel / 3600.0  # 200 pixels
    x, y = upright.to_pixels(
        np.array([ra0, ra0, ra0 + step / math.cos(math.radians(dec0))]), np.array([dec0, dec0 + step, dec0]), ra0, dec0
    )
    centre = ((SMALL.width - 1) / 2, (SMALL.height - 1) / 2)
    assert (x[0], y[0]) == pytest.approx(centre)
    assert y[1] == pytest.approx(centre[1] - 200, abs=0.1) and x[1] == pytest.approx(centre[0], abs=0.1)
    assert x[2] == pytest.approx(centre[0] - 200, abs=0.5)  # east to the left
    tx, ty = turned.to_pixels(np.array([ra0]), np.array([dec0 + step]), ra0, dec0)
    assert abs(tx[0] - centre[0]) == pytest.approx(200, abs=0.1) and ty[0] == pytest.approx(centre[1], abs=0.1)


def test_star_counts_follow_the_model() -> None:
    band = round((20.0 + 90.0) / CELL_DEG)  # a band at declination +20
    stars = [synthetic_cell_stars(band, i, seed=5) for i in range(40)]
    area = (
        40
        * CELL_DEG
        * (360.0 / math.ceil(360.0 * math.cos(math.radians(20.25)) / CELL_DEG))
        * math.cos(math.radians(20.25))
    )
    brighter_than_12 = sum(int((s.mag <= 12.0).sum()) for s in stars)
    expected = (stars_per_square_degree(12.0) - stars_per_square_degree(6.5)) * area
    assert brighter_than_12 == pytest.approx(expected, rel=4 / math.sqrt(expected))


def test_field_stars_land_where_the_projection_puts_them(renderer: FieldRenderer) -> None:
    frame = renderer.render(NIGHT, M42, 30.0, 0.0, seed=3)
    t = frame.truth
    assert t is not None
    inside = (t.x > 10) & (t.x < SMALL.width - 10) & (t.y > 10) & (t.y < SMALL.height - 10)
    d = np.hypot(t.x[:, None] - t.x[None, :], t.y[:, None] - t.y[None, :])
    alone = (np.sort(d, axis=1)[:, 1] > 12) & inside & (t.stars.mag < 13.0)
    mx, my = centroids(frame.image, t.x[alone], t.y[alone], half=5)
    error = np.hypot(mx - t.x[alone], my - t.y[alone])
    print(f"field stars: {alone.sum()} measured, median {np.median(error):.3f} px, max {np.max(error):.3f} px")
    assert alone.sum() >= 10 and np.max(error) < 0.5


def test_a_master_dark_from_simulated_darks_matches_the_known_pattern() -> None:
    spec = SensorSpec(
        width=320,
        height=240,
        bayer=None,
        dark_current_e_s=0.2,
        hot_pixel_share=1e-3,
        amp_glow_e_s=5.0,
        column_noise_adu=3.0,
    )
    sensor = Sensor(spec)
    darks = np.stack([sensor.read_out(None, 60.0, 100.0, seed=i).astype(np.float32) for i in range(16)])
    master = np.median(darks, axis=0)
    truth = sensor.master(60.0, 100.0)
    single_noise = np.std(darks[0] - truth)
    residual = master - truth
    print(f"master dark: single-frame noise {single_noise:.2f} ADU, master residual {np.std(residual):.2f} ADU")
    assert np.std(residual) < 0.4 * single_noise
    assert abs(np.mean(residual)) < 0.5
    # The pattern is real structure a calibration must remove: glow corner, hot pixels, columns.
    assert truth[0, -1] - truth[-1, 0] > 200
    assert np.std(truth.mean(axis=0)) > 2.0
    bias_truth = sensor.master(0.0, 100.0, dark=False)
    bias = np.mean([sensor.read_out(None, 0.0, 100.0, seed=100 + i) for i in range(16)], axis=0)
    assert np.corrcoef(bias.mean(axis=0), bias_truth.mean(axis=0))[0, 1] > 0.95


def test_flats_show_the_vignetting_and_each_filters_dust(renderer: FieldRenderer) -> None:
    frames = [renderer.render(NIGHT, M42, 1.0, 0.0, frame_type="flat", filter_slot=2, seed=i).image for i in range(8)]
    flat = np.mean(frames, axis=0) - SMALL.offset_adu
    measured = flat / flat[250:350, 350:450].mean()
    truth = renderer.flat_field(2) / renderer.flat_field(2)[250:350, 350:450].mean()
    assert np.abs(measured - truth).mean() < 0.01
    assert truth[0, 0] < 0.85 * truth[300, 400]
    assert not np.allclose(renderer.flat_field(1), renderer.flat_field(2))  # other dust on another filter
    assert np.array_equal(renderer.flat_field(1), FieldRenderer(Site(*SITE), SMALL, TelescopeOptics()).flat_field(1))
