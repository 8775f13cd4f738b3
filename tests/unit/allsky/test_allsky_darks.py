"""The master-dark library (matching by gain, binning and temperature; thermal scaling) and the bad-pixel map."""

from __future__ import annotations

import numpy as np
import pytest

from obsy.config import AllskyPipelineConfig
from obsy_allsky.capture.badpixels import BadPixelMap, colour_step, hot_pixels
from obsy_allsky.capture.darks import DarkLibrary, combine
from obsy_allsky.pipeline.chain import FramePipeline
from obsy_allsky.service import main
from tests.support.allsky_frames import bayer_frame, make_scene, match_stars

SHAPE = (20, 30)


def frame(value: float) -> np.ndarray:
    return np.full(SHAPE, value, np.float32)


@pytest.fixture
def library(tmp_path) -> DarkLibrary:
    lib = DarkLibrary(tmp_path / "darks", tolerance_c=2.0)
    # At -10 °C: bias 500 ADU, dark current 10 ADU/s; at 0 °C: 40 ADU/s.
    for temperature, current in ((-10.0, 10.0), (0.0, 40.0)):
        lib.save(frame(500), gain=100, binning=1, temperature_c=temperature, exposure_s=0.0001)
        for exposure in (10.0, 30.0):
            lib.save(
                frame(500 + current * exposure), gain=100, binning=1, temperature_c=temperature, exposure_s=exposure
            )
    return lib


def test_dark_is_scaled_to_the_exposure_at_the_nearest_temperature(library):
    dark = library.dark_for(20.0, gain=100, binning=1, temperature_c=-9.0, shape=SHAPE)
    assert np.allclose(dark, 500 + 10 * 20)  # from the 30 s master: 500 + 300 * 20/30
    warm = library.dark_for(5.0, gain=100, binning=1, temperature_c=1.5, shape=SHAPE)
    assert np.allclose(warm, 500 + 40 * 5)
    longest = library.dark_for(60.0, gain=100, binning=1, temperature_c=-10, shape=SHAPE)
    assert np.allclose(longest, 500 + 10 * 60)  # beyond the library: the longest master, scaled


def test_no_dark_rather_than_a_wrong_one(library):
    assert library.dark_for(20.0, gain=200, binning=1, temperature_c=-10, shape=SHAPE) is None  # other gain
    assert library.dark_for(20.0, gain=100, binning=2, temperature_c=-10, shape=SHAPE) is None  # other binning
    assert library.dark_for(20.0, gain=100, binning=1, temperature_c=-20, shape=SHAPE) is None  # too cold
    assert library.dark_for(20.0, gain=100, binning=1, temperature_c=-10, shape=(10, 10)) is None  # other size


def test_without_a_bias_only_a_matching_exposure_is_used(tmp_path):
    lib = DarkLibrary(tmp_path)
    lib.save(frame(800), gain=0, binning=1, temperature_c=5, exposure_s=30)
    assert np.allclose(lib.dark_for(29.0, gain=0, binning=1, temperature_c=5, shape=SHAPE), 800)
    assert lib.dark_for(10.0, gain=0, binning=1, temperature_c=5, shape=SHAPE) is None


def test_combine_takes_the_median_and_names_bad_input():
    frames = [frame(100), frame(102), frame(101)]
    frames[1][3, 4] = 60000  # a cosmic ray in one frame
    master = combine(frames)
    assert master[3, 4] == 101 and master[0, 0] == 101
    with pytest.raises(ValueError, match="no frames"):
        combine([])
    with pytest.raises(ValueError, match="different sizes"):
        combine([frame(1), np.zeros((5, 5), np.float32)])


# --- the bad-pixel map ---------------------------------------------------------------------

BAYER_LEVELS = {(0, 0): 1000.0, (0, 1): 5000.0, (1, 0): 5000.0, (1, 1): 300.0}  # R, G, G, B of a flat scene


def flat_bayer(height: int = 64, width: int = 96) -> np.ndarray:
    mosaic = np.empty((height, width), np.uint16)
    for (dy, dx), level in BAYER_LEVELS.items():
        mosaic[dy::2, dx::2] = level
    return mosaic


def noisy_dark(rng: np.random.Generator, shape=(64, 96)) -> np.ndarray:
    """A dark with a different offset per colour plane and read noise of 5 ADU."""
    dark = rng.normal(0, 5, shape).astype(np.float32)
    for (dy, dx), offset in {(0, 0): 500, (0, 1): 520, (1, 0): 520, (1, 1): 560}.items():
        dark[dy::2, dx::2] += offset
    return dark


HOT = [(10, 20), (11, 21), (10, 22), (0, 0), (63, 95), (31, 47), (40, 3)]  # a cluster, two corners, odd sites


def test_hot_pixels_beyond_k_mad_are_found_per_colour_plane():
    rng = np.random.default_rng(3)
    dark = noisy_dark(rng)
    for y, x in HOT:
        dark[y, x] += 400  # 80 sigma: hot
    dark[5, 5] += 20  # 4 sigma: noise, not hot
    dark[20, 40] += 150  # 30 sigma of its plane, but the plane offsets (500..560 ADU) would hide it
    found = BadPixelMap.from_darks([dark], k=10, step=2)
    assert sorted(zip(found.rows.tolist(), found.cols.tolist(), strict=True)) == sorted([*HOT, (20, 40)])
    # One median and MAD for all colours: the offsets inflate the spread and the warm pixel is missed.
    assert not hot_pixels(dark, k=10, step=1)[20, 40]


def test_a_perfectly_flat_dark_has_no_hot_pixels():
    assert len(BadPixelMap.from_darks([np.full((8, 8), 100, np.float32)], k=5, step=2)) == 0


def test_bad_pixels_are_replaced_by_neighbours_of_the_same_colour():
    frame = flat_bayer()
    hot_mask = np.zeros(frame.shape, bool)
    for y, x in HOT:
        frame[y, x] = 65535
        hot_mask[y, x] = True
    repaired = BadPixelMap(hot_mask, step=2).apply(frame)
    assert np.array_equal(repaired, flat_bayer())  # each one its own colour's level, the cluster included
    assert repaired.dtype == np.uint16
    assert frame[10, 20] == 65535  # the input is left alone


def test_mono_frames_use_the_direct_neighbours():
    frame = np.full((20, 20), 700, np.uint16)
    frame[9, 9] = 40000
    mask = np.zeros(frame.shape, bool)
    mask[9, 9] = True
    assert colour_step("MONO") == 1 and colour_step("RGGB") == 2
    assert BadPixelMap(mask, colour_step("MONO")).apply(frame)[9, 9] == 700


def test_a_map_of_another_size_is_refused():
    with pytest.raises(ValueError, match=r"does not fit the bad-pixel map's \(8, 8\)"):
        BadPixelMap(np.zeros((8, 8), bool), 2).apply(np.zeros((10, 10), np.uint16))
    with pytest.raises(ValueError, match="different sizes"):
        BadPixelMap.from_darks([np.zeros((8, 8)), np.zeros((6, 6))], k=5, step=2)


def test_hot_pixels_become_no_stars_once_the_map_repairs_them():
    scene = make_scene(400, 300, n_stars=60, seed=4)
    light = bayer_frame(scene, 1.0)
    rng = np.random.default_rng(5)
    dark = noisy_dark(rng, light.shape)
    inside = [(y, x) for y, x in zip(rng.integers(40, 260, 400), rng.integers(90, 310, 400), strict=True)]
    hot = [p for p in inside if min(np.hypot(scene.stars[:, 0] - p[1], scene.stars[:, 1] - p[0])) > 12][:40]
    for y, x in hot:
        dark[y, x] += 30000
        light[y, x] = 30500
    pipeline = FramePipeline(AllskyPipelineConfig(backend="numpy"))
    bad = BadPixelMap.from_darks([dark], k=10, step=2)
    assert len(bad) == len(hot)

    _, precision_raw = match_stars(pipeline.process([light], [1.0]).stars.positions, scene.stars)
    recall, precision = match_stars(pipeline.process([bad.apply(light)], [1.0]).stars.positions, scene.stars)
    assert precision_raw < 0.8, precision_raw  # the hot pixels pass for stars
    assert recall >= 0.95 and precision >= 0.95


def test_the_library_builds_the_map_from_its_masters_and_rebuilds_it_when_they_change(tmp_path):
    lib = DarkLibrary(tmp_path / "darks")
    rng = np.random.default_rng(6)
    assert lib.bad_pixel_map(binning=1, shape=(64, 96), k=10, step=2) is None  # no masters yet
    short, long = noisy_dark(rng), noisy_dark(rng)
    short[10, 20] += 400
    long[30, 30] += 400  # only shows in the long dark
    lib.save(short, gain=0, binning=1, temperature_c=0, exposure_s=1)
    first = lib.bad_pixel_map(binning=1, shape=(64, 96), k=10, step=2)
    assert len(first) == 1
    assert lib.bad_pixel_map(binning=1, shape=(64, 96), k=10, step=2) is first  # kept, not rebuilt
    lib.save(long, gain=0, binning=1, temperature_c=0, exposure_s=30)
    union = lib.bad_pixel_map(binning=1, shape=None, k=10, step=2)  # shape of the newest master
    assert sorted(zip(union.rows.tolist(), union.cols.tolist(), strict=True)) == [(10, 20), (30, 30)]
    assert lib.bad_pixel_map(binning=2, shape=(64, 96), k=10, step=2) is None  # other binning: other geometry


# --- obsy-allsky darks: what it refuses before touching a camera or the broker ---------------


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "obsy.yaml"
    path.write_text(f"site: {{latitude: 48.2, longitude: 16.4}}\ndata_dir: {tmp_path / 'data'}\n")
    return path


def test_the_darks_command_names_what_is_missing_or_wrong(config_file, capsys):
    with pytest.raises(SystemExit) as missing:
        main(["darks", "--config", str(config_file)])
    assert missing.value.code == 2
    assert "--exposures is required without --service" in capsys.readouterr().err
    with pytest.raises(SystemExit) as negative:
        main(["darks", "--config", str(config_file), "--exposures", "-1", "--service"])
    assert negative.value.code == 2
    assert "exposures must be in (0, 3600] s, got [-1.0]" in capsys.readouterr().err
