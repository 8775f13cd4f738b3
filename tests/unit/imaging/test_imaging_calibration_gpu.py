"""The CuPy twin of the calibration kernels gives the numba results: masters and calibrated lights.

Runs only where CuPy imports and finds a GPU; skipped otherwise with the reason (never faked).
"""

from __future__ import annotations

import numpy as np
import pytest

from obsy_imaging.calibration import CombineSettings, PreparedMasters, calibrate_light, combine_frames
from obsy_imaging.calibration.backend import cupy_status, select_backend
from tests.support.calibration_frames import Sensor, add_cosmic_rays

_cupy, _reason = cupy_status()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_cupy is None, reason=f"no GPU backend: {_reason}")]


@pytest.fixture(scope="module")
def darks():
    sensor = Sensor(rows=300, cols=400)
    rng = np.random.default_rng(2)
    frames = [sensor.dark_frame(60.0, rng) for _ in range(21)]
    for frame in frames[:8]:
        add_cosmic_rays(frame, 50, rng)
    frames[5] = frames[5].astype(np.float32)
    frames[5][7, 9] = np.nan
    return sensor, frames


@pytest.mark.parametrize("method", ["median", "mean", "sigma_clip", "winsorized_sigma_clip"])
@pytest.mark.parametrize("spread", ["std", "mad_std"])
def test_gpu_masters_equal_numba(darks, method, spread):
    _, frames = darks
    settings = CombineSettings(method=method, spread=spread)
    cpu = combine_frames(frames, settings, backend="numba")
    gpu = combine_frames(frames, settings, backend="cupy")
    np.testing.assert_array_equal(gpu.kept, cpu.kept)
    np.testing.assert_allclose(gpu.data, cpu.data, rtol=1e-6)


def test_gpu_calibration_equals_numba(darks):
    sensor, frames = darks
    master = combine_frames(frames, CombineSettings()).data
    light = sensor.light_frame(400.0, 60.0, np.random.default_rng(3))
    prepared = PreparedMasters.from_arrays(dark=master, flat=sensor.flat.astype(np.float32))
    cpu = calibrate_light(light, prepared, backend="numba")
    gpu = calibrate_light(light, prepared, backend="cupy")
    np.testing.assert_allclose(gpu.data, cpu.data, rtol=1e-6)
    assert gpu.nan_pixels == cpu.nan_pixels


def test_auto_picks_the_gpu():
    assert select_backend("auto").name == "cupy"
