"""Masters from FITS files recover the sensor's known fixed pattern, carry their provenance, and refuse bad groups."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from astropy.io import fits

from obsy_imaging.calibration import (
    CombineSettings,
    FrameError,
    FrameKind,
    GroupError,
    build_master,
    find_bad_pixels,
    load_master,
)
from obsy_imaging.calibration.badpixels import COLD, HOT
from tests.support.calibration_frames import Sensor, write_series

N = 16


@pytest.fixture(scope="module")
def sensor():
    return Sensor()


@pytest.fixture(scope="module")
def library(sensor, tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    return {
        "bias": write_series(folder, sensor, FrameKind.BIAS, N, exposure=0.0, seed=1),
        "dark": write_series(folder, sensor, FrameKind.DARK, N, exposure=120.0, seed=2),
        "darkflat": write_series(folder, sensor, FrameKind.DARK_FLAT, N, exposure=2.0, seed=3),
        "flat": write_series(folder, sensor, FrameKind.FLAT, N, exposure=2.0, seed=4, filter="L", level=25000),
    }


def _error(master, truth):
    good = np.isfinite(truth)
    return np.abs(master[good] - truth[good])


@pytest.mark.parametrize("method", ["median", "sigma_clip", "winsorized_sigma_clip"])
def test_master_bias_and_dark_recover_the_fixed_pattern(sensor, library, method):
    noise = sensor.read_noise / np.sqrt(N)
    bias = build_master("bias", library["bias"], CombineSettings(method=method))
    assert _error(bias.data, sensor.truth(FrameKind.BIAS)).std() < 1.5 * noise
    assert _error(bias.data, sensor.truth(FrameKind.BIAS)).max() < 8 * noise
    dark = build_master("dark", library["dark"], CombineSettings(method=method))
    truth = sensor.truth(FrameKind.DARK, 120.0)
    assert np.median(_error(dark.data, truth)) < noise
    hot = tuple(sensor.hot.T)  # hot pixels also have the shot noise of their dark current
    assert np.all(np.abs(dark.data[hot] - truth[hot]) < 8 * np.sqrt(noise**2 + sensor.dark_current[hot] * 120 / N))


def test_master_flat_recovers_vignetting_and_dust(sensor, library):
    dark_flat = build_master("darkflat", library["darkflat"])
    flat = build_master("flat", library["flat"], dark_flat=dark_flat)
    truth = sensor.truth(FrameKind.FLAT)
    error = _error(flat.data, truth)
    assert np.nanmean(flat.data[np.isfinite(truth)]) == pytest.approx(1.0, abs=2e-3)
    assert np.median(error) < 2e-3 and np.percentile(error, 99.9) < 1e-2
    assert flat.provenance.masters == {"darkflat": dark_flat.info.master_id}
    assert flat.provenance.statistics["flat_level"] == pytest.approx(25000, rel=0.05)


def test_master_flat_with_only_a_bias_and_with_nothing(sensor, library):
    bias = build_master("bias", library["bias"])
    with_bias = build_master("flat", library["flat"], bias=bias)
    assert np.median(_error(with_bias.data, sensor.truth(FrameKind.FLAT))) < 2e-3
    bare = build_master("flat", library["flat"])
    assert any("keep their offset" in note for note in bare.provenance.notes)


def test_provenance_is_returned_and_written_to_the_header(library, tmp_path):
    settings = CombineSettings(method="sigma_clip", sigma_low=2.5, sigma_high=3.5, max_iterations=4)
    master = build_master("dark", library["dark"], settings)
    path = master.write(tmp_path / "master_dark.fits")
    assert master.info.path == path
    record = master.provenance.as_dict()
    assert record["inputs"] == [str(f.path) for f in library["dark"]]
    assert record["parameters"] == {
        "method": "sigma_clip",
        "sigma_low": 2.5,
        "sigma_high": 3.5,
        "max_iterations": 4,
        "spread": "std",
    }
    header = fits.getheader(path)
    assert header["IMAGETYP"] == "Master Dark" and header["BITPIX"] == -32
    assert header["NCOMBINE"] == N and header["COMBMETH"] == "sigma_clip"
    assert (header["CLIPLOW"], header["CLIPHIGH"], header["CLIPITER"]) == (2.5, 3.5, 4)
    assert header["EXPTIME"] == 120.0 and header["GAIN"] == 120 and header["CCD-TEMP"] == -10.0
    # A line longer than a card goes on in the next card: join them back without a break.
    history = "".join(header["HISTORY"])
    assert "master dark" in history and all(f.path.name in history for f in library["dark"])
    assert 0 < header["REJFRAC"] < 0.05
    np.testing.assert_array_equal(load_master(master.info, master.data.shape), master.data)


def test_bad_pixel_map_finds_the_hot_and_dead_pixels(sensor, library):
    bias = build_master("bias", library["bias"])
    dark = build_master("dark", library["dark"])
    bad = find_bad_pixels(dark.data, bias.data)
    found_hot = set(map(tuple, np.argwhere(bad.flags & HOT)))
    found_cold = set(map(tuple, np.argwhere(bad.flags & COLD)))
    assert found_hot == set(map(tuple, sensor.hot))
    assert found_cold == set(map(tuple, sensor.cold))
    assert bad.summary()["hot"] == sensor.hot_count


def test_groups_that_do_not_belong_together_are_refused(library, sensor):
    darks = list(library["dark"])
    darks[3] = replace(darks[3], gain=100)
    with pytest.raises(GroupError, match=rf"{darks[3].name} does not belong with .*gain 100 where the dark has 120"):
        build_master("dark", darks)
    with pytest.raises(GroupError, match="exposure 2 s where the dark has 120 s"):
        build_master("dark", [*library["dark"][:3], replace(library["darkflat"][0], kind=FrameKind.DARK)])
    with pytest.raises(GroupError, match="is a bias frame, not a dark frame"):
        build_master("dark", library["dark"][:2] + library["bias"][:1])
    with pytest.raises(GroupError, match="no frames"):
        build_master("bias", [])
    with pytest.raises(GroupError, match="no master is made of light frames"):
        build_master("light", library["bias"])
    dark = build_master("dark", library["dark"])
    with pytest.raises(GroupError, match="cannot correct these flats: exposure 120 s where the flats have 2 s"):
        build_master(
            "flat", library["flat"], dark_flat=replace(dark, info=replace(dark.info, kind=FrameKind.DARK_FLAT))
        )


def test_files_that_cannot_be_read_are_named(library, tmp_path):
    truncated = tmp_path / "cut.fits"
    truncated.write_bytes(library["bias"][0].path.read_bytes()[:20000])
    frames = [*library["bias"][:3], replace(library["bias"][0], path=truncated, shape=None)]
    with pytest.raises(FrameError, match=r"cut\.fits: truncated"):
        build_master("bias", frames)
    wrong = tmp_path / "wrong.fits"
    fits.PrimaryHDU(np.zeros((10, 10), np.uint16)).writeto(wrong)
    with pytest.raises(FrameError, match=r"wrong\.fits: the file is"):
        build_master("bias", [*library["bias"][:3], replace(library["bias"][0], path=wrong)])
    master = build_master("bias", library["bias"][:3])
    master.write(tmp_path / "bias.fits")
    with pytest.raises(FrameError, match=r"master bias .* is 384×256, the frame to calibrate is 100×50"):
        load_master(master.info, (50, 100))
