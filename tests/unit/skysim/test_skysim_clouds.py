"""The simulator's clouds: the cover they are asked for is the cover they have, and they move with the wind."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from obsy_skysim.clouds import TRUTH_THRESHOLD, Bank, Clouds, Scattered, Uniform, Wind, make_clouds


@pytest.mark.parametrize("cover", [5.0, 25.0, 50.0, 80.0])
@pytest.mark.parametrize("seed", [1, 2])
def test_scattered_clouds_cover_what_was_asked_when_set(cover: float, seed: int) -> None:
    clouds = Scattered(cover_percent=cover, seed=seed)
    assert clouds.cover(0.0) == pytest.approx(cover, abs=1.0)
    later = clouds.cover(1800.0)  # drifted 14 km: other clouds, the truth follows them
    assert later != pytest.approx(cover, abs=0.01)
    assert 0.0 <= later <= 100.0


def test_scattered_clouds_are_patches_not_a_veil() -> None:
    clouds = Scattered(cover_percent=40.0)
    alt, az = np.meshgrid(np.linspace(25, 89, 60), np.linspace(0, 359, 120), indexing="ij")
    t = clouds.transmission(alt, az)
    assert (t > 0.95).mean() > 0.3  # clear sky between the patches
    assert (t < 0.1).mean() > 0.15  # thick cores


def test_the_pattern_drifts_downwind() -> None:
    wind = Wind(speed=10.0, from_direction=270.0)  # from the west: the clouds move east
    clouds = Scattered(cover_percent=40.0, wind=wind, seed=3)
    rng = np.random.default_rng(0)
    alt, az = rng.uniform(30, 80, 500), rng.uniform(0, 360, 500)
    # Where each piece of cloud seen at t = 0 is seen 200 s later: 2 km further east on the layer.
    east = clouds.base_m / np.tan(np.radians(alt)) * np.sin(np.radians(az)) + 2000.0
    north = clouds.base_m / np.tan(np.radians(alt)) * np.cos(np.radians(az))
    later_alt = np.degrees(np.arctan2(clouds.base_m, np.hypot(east, north)))
    later_az = np.degrees(np.arctan2(east, north)) % 360.0
    before = clouds.transmission(alt, az, 0.0)
    moved = clouds.transmission(later_alt, later_az, 200.0)
    stayed = clouds.transmission(alt, az, 200.0)
    assert np.allclose(moved, before, atol=1e-4)
    assert np.mean(np.abs(stayed - before) < 0.1) < 0.85


def test_a_bank_rises_from_its_horizon_and_covers_the_sky() -> None:
    bank = Bank(from_azimuth=270.0, top_altitude=15.0, advance=10.0)
    west_low = bank.transmission(np.array([8.0]), np.array([270.0]), 0.0)[0]
    east_low = bank.transmission(np.array([8.0]), np.array([90.0]), 0.0)[0]
    assert west_low < TRUTH_THRESHOLD < east_low
    covers = [bank.cover(t) for t in (0.0, 600.0, 1200.0, 2400.0)]
    assert covers[0] < 5.0
    assert all(a < b for a, b in itertools.pairwise(covers))
    assert covers[-1] > 95.0


def test_a_veil_dims_everything_alike_and_counts_as_cover() -> None:
    veil = Uniform(value=0.4)
    t = veil.transmission(np.array([20.0, 60.0, 89.0]), np.array([0.0, 100.0, 200.0]))
    assert np.allclose(t, 0.4)
    assert veil.cover() == 100.0  # below clouddetect's clear transmission everywhere
    assert Uniform(value=0.8).cover() == 0.0
    assert Clouds().cover() == 0.0


def test_make_clouds_names_what_is_wrong() -> None:
    assert make_clouds("overcast").cover() == 100.0
    with pytest.raises(ValueError, match="unknown cloud kind 'fog'"):
        make_clouds("fog")
    with pytest.raises(ValueError, match="cover must be between 0 and 100 percent, not 140"):
        make_clouds("scattered", cover_percent=140)
    with pytest.raises(ValueError, match="transmission must be between 0 and 1"):
        make_clouds("veil", veil_transmission=2)
    with pytest.raises(ValueError, match="wind speed must not be negative"):
        make_clouds("clear", wind_speed=-3)
