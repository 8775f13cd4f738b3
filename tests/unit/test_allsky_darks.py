"""The master-dark library: matching by gain, binning and temperature; thermal scaling by exposure."""

from __future__ import annotations

import numpy as np
import pytest

from obsy_allsky.capture.darks import DarkLibrary, combine

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
