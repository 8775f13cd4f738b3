"""Stack combination: numba and the array twin agree, ccdproc agrees, outliers go, bad stacks are refused."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.nddata import CCDData
from astropy.stats import mad_std

from obsy_imaging.calibration import CombineError, CombineSettings, combine_frames, select_backend
from obsy_imaging.calibration.kernels import sorting_network
from tests.support.calibration_frames import Sensor, add_cosmic_rays, add_satellite_trail

ccdproc = pytest.importorskip("ccdproc", reason="ccdproc is the reference (requirements-dev.txt)")

METHODS = ["median", "mean", "sigma_clip", "winsorized_sigma_clip"]
RELATIVE = 1e-5


def _stack(count=15, shape=(40, 56), seed=3, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    frames = [rng.normal(1000, 20, shape).astype(dtype) for _ in range(count)]
    frames[4][5, 5] = 60000  # one outlier
    frames[7][9, 11] = 20
    return frames


def _relative(ours, reference):
    return float(np.max(np.abs(ours - reference) / np.abs(reference)))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 30, 33])
def test_sorting_network_sorts(n):
    rng = np.random.default_rng(n)
    for _ in range(50):
        values = list(rng.normal(size=n))
        for a, b in sorting_network(n):
            if values[a] > values[b]:
                values[a], values[b] = values[b], values[a]
        assert values == sorted(values)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("spread", ["std", "mad_std"])
def test_numba_and_numpy_give_the_same_numbers(method, spread):
    frames = [f.astype(np.float32) for f in _stack(count=12)]
    frames[3][10, 10] = np.nan
    frames[2][0, :] = np.inf
    settings = CombineSettings(method=method, spread=spread)
    fast = combine_frames(frames, settings, backend="numba", block_bytes=40_000)
    twin = combine_frames(frames, settings, backend="numpy", block_bytes=40_000)
    np.testing.assert_array_equal(fast.kept, twin.kept)
    np.testing.assert_allclose(fast.data, twin.data, rtol=1e-7)
    assert fast.nonfinite_by_frame == {"frame 4": 1, "frame 3": 56}


@pytest.mark.parametrize("method", METHODS)
def test_block_size_does_not_change_the_result(method):
    frames = _stack(count=9)
    whole = combine_frames(frames, CombineSettings(method=method))
    banded = combine_frames(frames, CombineSettings(method=method), block_bytes=1)  # one row at a time
    np.testing.assert_array_equal(whole.data, banded.data)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_median_equals_ccdproc(backend):
    frames = _stack(count=14)
    reference = ccdproc.combine([CCDData(f.astype(float), unit="adu") for f in frames], method="median")
    ours = combine_frames(frames, CombineSettings(method="median"), backend=backend)
    assert _relative(ours.data, reference.data) < RELATIVE


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize(("spread", "dev_func"), [("std", np.ma.std), ("mad_std", mad_std)])
def test_sigma_clip_equals_ccdproc(backend, spread, dev_func):
    frames = _stack(count=15)
    reference = ccdproc.combine(
        [CCDData(f.astype(float), unit="adu") for f in frames],
        method="average",
        sigma_clip=True,
        sigma_clip_low_thresh=2.5,
        sigma_clip_high_thresh=3.0,
        sigma_clip_func=np.ma.median,
        sigma_clip_dev_func=dev_func,
    )
    settings = CombineSettings(method="sigma_clip", sigma_low=2.5, sigma_high=3.0, spread=spread, max_iterations=1)
    ours = combine_frames(frames, settings, backend=backend)
    assert _relative(ours.data, reference.data) < RELATIVE
    assert ours.rejected_fraction > 0


def test_scaled_and_offset_frames_equal_ccdproc():
    """Flats: a master taken off each frame, each frame scaled by 1/median, then clipped and averaged.

    ccdproc's ``combine(scale=...)`` clips the unscaled values and scales only for the average,
    which rejects whole frames of a stack whose levels differ; the reference is therefore given
    frames already brought to one level, which is what we clip.
    """
    rng = np.random.default_rng(5)
    offset = rng.normal(1000, 5, (30, 40)).astype(np.float32)
    frames = [
        (offset + rng.uniform(0.5, 2) * rng.normal(20000, 150, offset.shape)).astype(np.float32) for _ in range(9)
    ]
    frames[2][3, 4] = 60000
    corrected = [f.astype(float) - offset for f in frames]
    scales = [1 / np.median(c) for c in corrected]
    levelled = [CCDData(c * s, unit="adu") for c, s in zip(corrected, scales, strict=True)]
    reference = ccdproc.combine(levelled, method="average", sigma_clip=True, sigma_clip_func=np.ma.median)
    settings = CombineSettings(method="sigma_clip", max_iterations=1)
    ours = combine_frames(frames, settings, subtract=offset, frame_scales=scales)
    assert _relative(ours.data, reference.data) < RELATIVE
    assert ours.kept[3, 4] == 8


@pytest.mark.parametrize("method", ["sigma_clip", "winsorized_sigma_clip"])
def test_rejection_removes_cosmic_rays_and_a_satellite_trail(method):
    sensor = Sensor(rows=96, cols=128, hot_count=0, cold_count=0)
    rng = np.random.default_rng(8)
    frames = [sensor.dark_frame(60, rng) for _ in range(20)]
    hits = [add_cosmic_rays(frame, 30, rng) for frame in frames[:10]]
    trail = add_satellite_trail(frames[12], row0=20, slope=0.4)
    truth = sensor.bias + sensor.dark_current * 60
    clean = combine_frames(frames, CombineSettings(method=method))
    plain = combine_frames(frames, CombineSettings(method="mean"))
    noise = sensor.read_noise / np.sqrt(20)
    assert np.abs(plain.data[trail] - truth[trail]).max() > 100  # the trail shows in a plain mean
    assert np.abs(clean.data[trail] - truth[trail]).max() < 6 * noise
    for hit in hits:
        spots = tuple(hit.T)
        assert np.abs(clean.data[spots] - truth[spots]).max() < 6 * noise
    assert np.abs(clean.data - truth).max() < 8 * noise


def test_median_and_mean_of_identical_frames_are_the_frame():
    frame = np.arange(12, dtype=np.uint16).reshape(3, 4) * 100
    for method in METHODS:
        np.testing.assert_array_equal(combine_frames([frame] * 6, CombineSettings(method=method)).data, frame)


def test_bad_stacks_are_refused_with_the_reason():
    frames = _stack(count=8)
    with pytest.raises(CombineError, match="empty"):
        combine_frames([])
    with pytest.raises(CombineError, match=r"frame 3 is 50×40.*frame 1 is 56×40"):
        combine_frames([frames[0], frames[1], np.zeros((40, 50), np.uint16)])
    nan_frame = np.full(frames[0].shape, np.nan, np.float32)
    with pytest.raises(CombineError, match="frame 2 has no finite pixel"):
        combine_frames([frames[0].astype(np.float32), nan_frame, frames[1].astype(np.float32)])
    with pytest.raises(CombineError, match="master to subtract is 3×3"):
        combine_frames(frames, subtract=np.zeros((3, 3), np.float32))
    with pytest.raises(CombineError, match="frame_scales"):
        combine_frames(frames, frame_scales=[1.0, 2.0])
    with pytest.raises(CombineError, match="unknown combine method 'average'"):
        CombineSettings(method="average")
    with pytest.raises(CombineError, match="positive"):
        CombineSettings(sigma_low=0)


def test_a_pixel_without_any_finite_value_is_nan():
    frames = [np.ones((4, 4), np.float32) for _ in range(5)]
    for frame in frames:
        frame[1, 2] = np.nan
    result = combine_frames(frames, CombineSettings(method="median"))
    assert np.isnan(result.data[1, 2]) and result.empty_pixels == 1
    assert np.isfinite(np.delete(result.data.ravel(), 6)).all()


def test_auto_backend_on_this_machine_is_numba_or_the_gpu():
    assert select_backend("auto").name in ("numba", "cupy")


def test_frames_of_different_types_and_layouts_combine_alike(tmp_path):
    """uint16, float32 arrays and FITS files (int16+BZERO, float32, an image in an extension) give one result."""
    from astropy.io import fits

    frames = _stack(count=9)
    fits.PrimaryHDU(frames[0]).writeto(tmp_path / "int16.fits")
    fits.PrimaryHDU(frames[1].astype(np.float32)).writeto(tmp_path / "float.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(frames[2])]).writeto(tmp_path / "extension.fits")
    mixed = [
        tmp_path / "int16.fits",
        tmp_path / "float.fits",
        tmp_path / "extension.fits",
        frames[3].astype(np.float32),
    ]
    mixed += frames[4:]
    for method in METHODS:
        expected = combine_frames(frames, CombineSettings(method=method)).data
        np.testing.assert_array_equal(combine_frames(mixed, CombineSettings(method=method)).data, expected)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_camera_files_combined_from_their_bytes_equal_the_arrays(tmp_path, backend):
    """BITPIX 16 files go to the kernel as read (it swaps the bytes): the same result as the decoded arrays."""
    from astropy.io import fits

    frames = _stack(count=9)
    paths = []
    for i, frame in enumerate(frames):
        fits.PrimaryHDU(frame).writeto(tmp_path / f"f{i}.fits")  # uint16: int16 with BZERO 32768
        paths.append(tmp_path / f"f{i}.fits")
    for method in METHODS:
        settings = CombineSettings(method=method)
        expected = combine_frames(frames, settings, backend=backend)
        result = combine_frames(paths, settings, backend=backend, block_bytes=50_000)
        np.testing.assert_array_equal(result.data, expected.data)
        np.testing.assert_array_equal(result.kept, expected.kept)
