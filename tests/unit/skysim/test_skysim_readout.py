"""The sensor's fused read-out (one numba pass per row) against the sensor model's own formulas: the
normal deviates are Gaussian, a flat light frame has the mean and variance the gain, offset, dark
current and read noise say, full well clips, hot pixels sit where the pattern puts them, and the
noise-free master is what many darks average to."""

from __future__ import annotations

import math

import numpy as np
import pytest

from obsy_skysim import readout
from obsy_skysim.sensor import Sensor, SensorSpec


def test_the_deviates_are_standard_normal_in_the_body_and_the_tails() -> None:
    from scipy import stats  # here: scipy.stats costs every collecting worker half a second

    z = readout.standard_normal((1000, 4000), seed=5).ravel()
    n = z.size
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert z.var() == pytest.approx(1.0, abs=4 * math.sqrt(2 / n))
    assert abs(stats.skew(z)) < 4 * math.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 4 * math.sqrt(24 / n)
    # Against the normal CDF in 100 bins from -4.5 to 4.5 (the ziggurat's tail starts at 3.65).
    edges = np.concatenate([[-np.inf], np.linspace(-4.5, 4.5, 99), [np.inf]])
    counts, _ = np.histogram(z, edges)
    expected = n * np.diff(stats.norm.cdf(edges))
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert stats.chi2.sf(chi2, len(counts) - 1) > 1e-4, chi2
    for t in (3.0, readout.ZIGGURAT_R, 4.0, 4.5):
        beyond, want = np.count_nonzero(np.abs(z) > t), n * 2 * stats.norm.sf(t)
        assert abs(beyond - want) < 5 * math.sqrt(want), (t, beyond, want)
    # Neighbours along a row and down a column are independent (each row has its own stream).
    grid = z.reshape(1000, 4000)
    assert abs(np.corrcoef(grid[:, :-1].ravel(), grid[:, 1:].ravel())[0, 1]) < 4 / math.sqrt(n)
    assert abs(np.corrcoef(grid[:-1].ravel(), grid[1:].ravel())[0, 1]) < 4 / math.sqrt(n)


def test_a_seed_gives_the_same_deviates_on_any_number_of_threads() -> None:
    one = readout.standard_normal((64, 300), seed=9, threads=1)
    assert np.array_equal(one, readout.standard_normal((64, 300), seed=9, threads=3))
    assert not np.array_equal(one, readout.standard_normal((64, 300), seed=10))
    assert not np.array_equal(readout.standard_normal((64, 300), None), readout.standard_normal((64, 300), None))


SPEC = SensorSpec(
    width=512,
    height=512,
    bayer=None,
    read_noise_e=2.5,
    full_well_e=40000.0,
    offset_adu=64.0,
    dark_current_e_s=0.5,
    hot_pixel_share=1e-3,
    column_noise_adu=0.0,
)


def test_a_flat_light_frame_has_the_mean_and_variance_of_the_sensor_model() -> None:
    sensor = Sensor(SPEC)
    hot_index, _ = sensor.hot_pixels
    ordinary = np.ones(SPEC.width * SPEC.height, dtype=bool)
    ordinary[hot_index] = False
    exposure, signal = 10.0, 1000.0
    dark = SPEC.dark_current() * exposure
    for gain in (0.0, 100.0):
        g = SPEC.adu_per_electron(gain)
        light = np.full((SPEC.height, SPEC.width), signal, dtype=np.float32)
        frame = sensor.read_out(light, exposure, gain, seed=3)
        assert frame.dtype == np.uint16
        values = frame.reshape(-1)[ordinary].astype(np.float64)
        mean = g * (signal + dark) + SPEC.offset_adu
        variance = g**2 * (signal + dark + SPEC.read_noise_e**2) + 1 / 12  # + the rounding to whole ADU
        assert values.mean() == pytest.approx(mean, abs=5 * math.sqrt(variance / values.size))
        assert values.var() == pytest.approx(variance, rel=5 * math.sqrt(2 / values.size))
        # The same light as a uniform level (the flat frame's and the field's sky path) reads the same.
        level = sensor.read_out(None, exposure, gain, seed=4, level_e=signal).reshape(-1)[ordinary]
        assert level.mean() == pytest.approx(mean, abs=5 * math.sqrt(variance / values.size))
        assert level.var() == pytest.approx(variance, rel=5 * math.sqrt(2 / values.size))
        # The light is not the read-out's scratch space any more.
        assert np.all(light == signal)


def test_a_level_through_the_flat_field_follows_the_flat() -> None:
    sensor = Sensor(SPEC)
    xx = np.arange(SPEC.width)[None, :].repeat(SPEC.height, axis=0)
    flat = (1.0 - 0.5 * (xx / SPEC.width)).astype(np.float32)  # 1 on the left, 0.5 on the right
    g = SPEC.adu_per_electron(0.0)
    level = 20000.0
    frame = sensor.read_out(None, 0.0, 0.0, seed=1, level_e=level, flat=flat).astype(np.float64)
    hot_index, _ = sensor.hot_pixels
    frame.reshape(-1)[hot_index] = np.nan  # (no dark current at 0 s, but keep the test about the flat)
    columns = np.nanmean(frame, axis=0)
    want = g * level * flat[0] + SPEC.offset_adu
    sigma = g * np.sqrt(level * flat[0] + SPEC.read_noise_e**2) / np.sqrt(SPEC.height)
    z = (columns - want) / sigma
    assert np.max(np.abs(z)) < 5
    assert z.std() == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match="flat must be float32"):
        sensor.read_out(None, 0.0, 0.0, level_e=1.0, flat=flat.astype(np.float64))


def test_full_well_and_the_adc_clip_the_frame() -> None:
    sensor = Sensor(SPEC)
    shape = (SPEC.height, SPEC.width)
    g = SPEC.adu_per_electron(0.0)
    full = math.floor(SPEC.full_well_e * g + SPEC.offset_adu + 0.5)
    near = sensor.read_out(np.full(shape, SPEC.full_well_e, dtype=np.float32), 0.0, 0.0, seed=2)
    assert near.max() == full  # about half the pixels are over full well: they read full well, no more
    assert 0.4 < np.mean(near == full) < 0.6
    flooded = sensor.read_out(np.full(shape, 1e7, dtype=np.float32), 1.0, 0.0, seed=2)
    assert np.all(flooded == full)
    # At high gain full well is past the ADC's range: the ADC clips at 65535.
    assert np.all(sensor.read_out(np.full(shape, 1e7, dtype=np.float32), 1.0, 300.0, seed=2) == 65535)
    # Nothing reads below zero, not even a negative light (no such light is rendered, but no wrap-around).
    assert sensor.read_out(np.full(shape, -1e4, dtype=np.float32), 1.0, 0.0, seed=2).max() == 0


def test_the_mean_of_many_darks_is_the_noise_free_master_hot_pixels_glow_and_columns_included() -> None:
    spec = SensorSpec(
        width=400,
        height=300,
        bayer=None,
        dark_current_e_s=0.2,
        hot_pixel_share=2e-3,
        amp_glow_e_s=5.0,
        column_noise_adu=3.0,
    )
    sensor = Sensor(spec)
    exposure, gain, count = 60.0, 100.0, 48
    truth = sensor.master(exposure, gain).astype(np.float64)
    darks = np.stack([sensor.read_out(None, exposure, gain, seed=50 + i) for i in range(count)]).astype(np.float64)
    g = spec.adu_per_electron(gain)
    # Per pixel the frames scatter by the sensor model's noise about the master.
    expected_var = g * (truth - spec.offset_adu - sensor.column_offsets[None, :]) + g**2 * spec.read_noise_e**2
    z = (darks.mean(axis=0) - truth) / np.sqrt((expected_var + 1 / 12) / count)
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert z.std() == pytest.approx(1.0, abs=0.03)
    assert np.mean(darks.var(axis=0, ddof=1) / expected_var) == pytest.approx(1.0, abs=0.02)
    # The hot pixels are there, at their known places and levels, far above the ordinary ones.
    hot_index, _ = sensor.hot_pixels
    assert len(hot_index) > 100
    hot_z = z.reshape(-1)[hot_index]
    assert abs(hot_z.mean()) < 4 / math.sqrt(hot_z.size)
    assert hot_z.std() == pytest.approx(1.0, abs=0.2)
    ordinary = np.ones(z.size, dtype=bool)
    ordinary[hot_index] = False
    far_from_glow = ordinary & (np.arange(z.size) % spec.width < spec.width // 4)
    assert np.percentile(darks[0].reshape(-1)[hot_index], 10) > np.percentile(darks[0].reshape(-1)[far_from_glow], 99.9)


def test_a_seed_gives_the_same_frame_twice() -> None:
    sensor = Sensor(SPEC)
    light = np.full((SPEC.height, SPEC.width), 500.0, dtype=np.float32)
    first = sensor.read_out(light, 10.0, 50.0, seed=11)
    assert np.array_equal(first, sensor.read_out(light, 10.0, 50.0, seed=11))
    assert not np.array_equal(first, sensor.read_out(light, 10.0, 50.0, seed=12))


def test_the_command_line_warms_the_kernel_up(capsys) -> None:
    from obsy_skysim.cli import main

    assert main(["warm-up"]) == 0
    assert "read-out and star kernels compiled (or loaded from cache)" in capsys.readouterr().out
