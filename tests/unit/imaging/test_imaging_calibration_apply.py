"""Calibrating lights: equal to ccdproc's ccd_process, recovers the sky, handles NaN, leaves originals alone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData

from obsy_imaging.calibration import (
    FrameError,
    FrameKind,
    PreparedMasters,
    build_master,
    calibrate_light,
    calibrate_lights,
    find_bad_pixels,
    match_masters,
)
from obsy_imaging.calibration.apply import DEFAULT_MIN_FLAT
from obsy_imaging.calibration.badpixels import repair_bad_pixels
from tests.support.calibration_frames import Sensor, write_series

ccdproc = pytest.importorskip("ccdproc", reason="ccdproc is the reference (requirements-dev.txt)")
RELATIVE = 1e-5


@pytest.fixture(scope="module")
def sensor():
    return Sensor(rows=128, cols=160)


@pytest.fixture(scope="module")
def masters(sensor, tmp_path_factory):
    """Master bias, 600 s and 300 s darks and an Ha flat built from files, written as FITS."""
    folder = tmp_path_factory.mktemp("library")
    bias = build_master("bias", write_series(folder, sensor, FrameKind.BIAS, 12, exposure=0.0, seed=1))
    dark300 = build_master("dark", write_series(folder, sensor, FrameKind.DARK, 12, exposure=300.0, seed=2))
    dark600 = build_master("dark", write_series(folder, sensor, FrameKind.DARK, 12, exposure=600.0, seed=3))
    flats = write_series(folder, sensor, FrameKind.FLAT, 12, exposure=2.0, seed=4, filter="Ha", level=20000)
    flat = build_master("flat", flats, bias=bias)
    for name, m in (("bias", bias), ("dark300", dark300), ("dark600", dark600), ("flat", flat)):
        m.write(folder / f"master_{name}.fits")
    return {"bias": bias, "dark300": dark300, "dark600": dark600, "flat": flat}


@pytest.fixture
def light(sensor, tmp_path):
    return write_series(tmp_path, sensor, FrameKind.LIGHT, 1, exposure=300.0, seed=9, filter="Ha", level=500.0)[0]


def _ccd(array):
    return CCDData(np.asarray(array, dtype=float), unit="adu")


def _agree(ours, reference, flat):
    """Equal where the flat has signal; NaN (ours) where it has none (ccdproc divides by it anyway)."""
    signal = flat > DEFAULT_MIN_FLAT
    assert np.isnan(ours.data[~signal]).all() and np.isfinite(ours.data[signal]).all()
    relative = np.abs(ours.data[signal] - reference.data[signal]) / np.abs(reference.data[signal])
    assert relative.max() < RELATIVE


def test_exact_dark_and_flat_equal_ccd_process(masters, light):
    prepared = PreparedMasters.from_arrays(dark=masters["dark300"].data, flat=masters["flat"].data)
    ours = calibrate_light(light.path, prepared)
    raw = fits.getdata(light.path).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):  # ccdproc divides by the dead flat pixels too
        reference = ccdproc.ccd_process(
            _ccd(raw),
            dark_frame=_ccd(masters["dark300"].data),
            master_flat=_ccd(masters["flat"].data),
            dark_exposure=300 * u.s,
            data_exposure=300 * u.s,
        )
    assert ours.data.dtype == np.dtype(">f4")  # float32, in the file's byte order
    _agree(ours, reference, masters["flat"].data)


def test_scaled_dark_with_bias_equals_ccd_process(masters, light):
    bias, dark = masters["bias"].data, masters["dark600"].data
    prepared = PreparedMasters.from_arrays(bias=bias, dark=dark, flat=masters["flat"].data, dark_scale=0.5)
    ours = calibrate_light(light.path, prepared)
    with np.errstate(divide="ignore", invalid="ignore"):  # ccdproc divides by the dead flat pixels too
        reference = ccdproc.ccd_process(
            _ccd(fits.getdata(light.path)),
            master_bias=_ccd(bias),
            dark_frame=_ccd(dark - bias),  # ccdproc wants the bias taken off a dark it scales
            master_flat=_ccd(masters["flat"].data),
            dark_exposure=600 * u.s,
            data_exposure=300 * u.s,
            dark_scale=True,
        )
    _agree(ours, reference, masters["flat"].data)


def test_calibrated_light_recovers_the_sky(sensor, masters, light):
    for dark, scale in (("dark300", 1.0), ("dark600", 0.5)):
        prepared = PreparedMasters.from_arrays(
            bias=masters["bias"].data, dark=masters[dark].data, flat=masters["flat"].data, dark_scale=scale
        )
        out = calibrate_light(light.path, prepared).data
        good = np.ones(out.shape, bool)
        good[tuple(sensor.cold.T)] = False
        good[tuple(sensor.hot.T)] = False  # their shot noise is large
        residual = out[good] - 500.0
        assert abs(np.median(residual)) < 1.0
        # Noise of one light: shot noise of the sky plus read noise, through the flat.
        assert residual.std() < 1.3 * np.sqrt(500 + sensor.read_noise**2) / 0.8


def test_the_whole_path_from_plan_to_file(sensor, masters, light, tmp_path):
    library = [m.info for m in masters.values()]
    shaped = replace(light, shape=sensor.shape, time=masters["flat"].info.time + timedelta(hours=3))
    plan = match_masters(shaped, library)
    assert plan.ready and plan.dark.master.exposure == 300.0
    prepared = PreparedMasters.from_plan(plan)
    before = hashlib.sha256(light.path.read_bytes()).hexdigest()
    result = calibrate_light(light.path, prepared, tmp_path / "calibrated.fits")
    assert hashlib.sha256(light.path.read_bytes()).hexdigest() == before  # the original is untouched
    with fits.open(result.path) as hdul:
        header, data = hdul[0].header, hdul[0].data
        assert data.dtype == np.dtype(">f4")
        np.testing.assert_array_equal(data, result.data)
    assert header["CALSTAT"] == "DF" and header["IMAGETYP"] == "Light Frame" and header["EXPTIME"] == 300.0
    assert header["CALDARK"] == "master_dark300.fits" and header["CALFLAT"] == "master_flat.fits"
    assert header["DARKSCL"] == 1.0 and header["CALNAN"] == result.nan_pixels
    history = "".join(header["HISTORY"])  # long lines are cut into 72-character cards
    assert "calibrated light" in history and "exposure 300 s matches the light's 300 s" in history
    assert result.provenance.as_dict()["masters"]["dark"] == str(masters["dark300"].info.path)
    assert masters["dark300"].info.master_id in history


def test_nan_inf_and_dead_flat_pixels_become_nan_and_are_counted(masters, sensor):
    light = sensor.light_frame(500.0, 300.0, np.random.default_rng(1)).astype(np.float32)
    light[3, 3], light[4, 4] = np.nan, np.inf
    flat = masters["flat"].data.copy()
    flat[5, 5], flat[6, 6] = 0.0, np.nan
    prepared = PreparedMasters.from_arrays(dark=masters["dark300"].data, flat=flat)
    result = calibrate_light(light, prepared)
    for spot in ((3, 3), (4, 4), (5, 5), (6, 6)):
        assert np.isnan(result.data[spot])
    dead = len(sensor.cold)  # dead pixels read below the bias: the master flat is negative there
    assert result.nan_pixels == 4 + dead
    assert np.isfinite(result.data).sum() == result.data.size - result.nan_pixels


def test_bias_only_and_numpy_twin_agree_with_numba(masters, light):
    prepared = PreparedMasters.from_arrays(bias=masters["bias"].data, flat=masters["flat"].data)
    assert prepared.calstat == "BF"
    fast = calibrate_light(light.path, prepared, backend="numba")
    twin = calibrate_light(light.path, prepared, backend="numpy")
    np.testing.assert_allclose(fast.data, twin.data, rtol=1e-6)
    assert fast.nan_pixels == twin.nan_pixels


def test_many_lights_in_parallel(masters, sensor, tmp_path):
    lights = write_series(tmp_path, sensor, FrameKind.LIGHT, 5, exposure=300.0, seed=11, level=400.0)
    prepared = PreparedMasters.from_arrays(dark=masters["dark300"].data, flat=masters["flat"].data)
    results = calibrate_lights([(f.path, tmp_path / f"cal_{f.path.name}") for f in lights], prepared)
    assert [r.path.name for r in results] == [f"cal_{f.path.name}" for f in lights]
    for f, r in zip(lights, results, strict=True):
        np.testing.assert_array_equal(fits.getdata(r.path), calibrate_light(f.path, prepared).data)


def test_bad_inputs_are_refused_with_the_reason(masters, light, tmp_path):
    dark, flat, bias = masters["dark300"].data, masters["flat"].data, masters["bias"].data
    with pytest.raises(FrameError, match="no master"):
        PreparedMasters.from_arrays()
    with pytest.raises(FrameError, match="masters differ in size: dark 160×128, flat 80×64"):
        PreparedMasters.from_arrays(dark=dark, flat=flat[:64, :80])
    with pytest.raises(FrameError, match=r"scaled by 0\.5 needs the master bias"):
        PreparedMasters.from_arrays(dark=dark, dark_scale=0.5)
    small = PreparedMasters.from_arrays(bias=bias[:64, :80])
    with pytest.raises(FrameError, match=r"is 160×128, the masters are 80×64"):
        calibrate_light(light.path, small)
    with pytest.raises(FrameError, match="must not replace the original"):
        calibrate_light(light.path, PreparedMasters.from_arrays(dark=dark), light.path)
    plan = match_masters(replace(light, shape=dark.shape), [masters["dark300"].info])
    with pytest.raises(FrameError, match="cannot be calibrated yet: flat: no match: the library has no master flat"):
        PreparedMasters.from_plan(plan)
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((3, 4, 5), np.uint16)).writeto(cube)
    with pytest.raises(FrameError, match=r"cube\.fits: expected a 2-D image, NAXIS is 3"):
        calibrate_light(cube, small)
    compressed = tmp_path / "light.fits.fz"
    fits.CompImageHDU(np.zeros((8, 8), np.int16)).writeto(compressed)
    with pytest.raises(FrameError, match="compressed FITS"):
        calibrate_light(compressed, small)


@pytest.mark.slow
def test_two_threads_on_numbas_workqueue_layer_do_not_abort(tmp_path):
    """Without TBB or OpenMP numba's workqueue layer aborts on concurrent parallel kernels: they take turns."""
    script = """
import threading, numpy as np
from obsy_imaging.calibration import CombineSettings, PreparedMasters, calibrate_light, combine_frames, warm_up
warm_up("numba")
frames = [np.random.default_rng(i).normal(1000, 5, (64, 64)).astype(np.uint16) for i in range(7)]
masters = PreparedMasters.from_arrays(dark=np.full((64, 64), 900, np.float32))
def work():
    for _ in range(10):
        combine_frames(frames, CombineSettings(), backend="numba")
        calibrate_light(frames[0], masters, backend="numba")
threads = [threading.Thread(target=work) for _ in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
import numba
print("layer", numba.threading_layer())
"""
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "layer workqueue" in done.stdout


def test_bad_pixels_are_repaired_from_their_neighbours(sensor, masters, light, tmp_path):
    bad = find_bad_pixels(masters["dark300"].data, masters["bias"].data)
    plain = PreparedMasters.from_arrays(dark=masters["dark300"].data, flat=masters["flat"].data)
    repairing = PreparedMasters.from_arrays(dark=masters["dark300"].data, flat=masters["flat"].data, bad_pixels=bad)
    before = calibrate_light(light.path, plain)
    after = calibrate_light(light.path, repairing, tmp_path / "repaired.fits")
    hot, cold = tuple(sensor.hot.T), tuple(sensor.cold.T)
    assert np.isnan(before.data[cold]).all()  # dead pixels: the flat has no signal there
    # Repaired: the sky level (500) within the noise of a median of 8 neighbours.
    assert np.all(np.abs(after.data[hot] - 500) < 100) and np.all(np.abs(after.data[cold] - 500) < 100)
    assert np.abs(before.data[hot] - 500).max() > 100  # the shot noise of the hot pixels' dark current
    assert after.nan_pixels == before.nan_pixels - len(sensor.cold)
    header = fits.getheader(after.path)
    assert header["CALSTAT"] == "DFC" and header["BPMFIX"] == len(sensor.hot) + len(sensor.cold)
    untouched = np.ones(sensor.shape, bool)
    untouched[hot] = untouched[cold] = False
    np.testing.assert_array_equal(after.data[untouched], before.data[untouched])


def test_repair_takes_the_same_colour_on_a_bayer_sensor():
    image = np.zeros((8, 8), np.float32)
    image[0::2, 0::2] = 100.0  # red
    image[1::2, 1::2] = 300.0  # blue
    image[0::2, 1::2] = image[1::2, 0::2] = 200.0  # green
    bad = np.zeros(image.shape, bool)
    bad[4, 4] = bad[3, 3] = bad[4, 5] = True
    image[bad] = 9999.0
    fixed, more_nan = repair_bad_pixels(image, bad, step=2)
    assert (fixed, more_nan) == (3, 0)
    assert (image[4, 4], image[3, 3], image[4, 5]) == (100.0, 300.0, 200.0)
    lonely = np.ones((3, 3), bool)
    assert repair_bad_pixels(np.zeros((3, 3), np.float32), lonely) == (0, 9)
    with pytest.raises(FrameError, match="bad-pixel map is 4×4"):
        repair_bad_pixels(image, np.zeros((4, 4), bool))
