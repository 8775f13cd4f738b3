"""Stacking sky-simulator frames: noise falls as 1/sqrt(N), trails and cosmic rays are rejected,
star fluxes keep the simulator's truth through registration and stacking."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from obsy_imaging.grading.measure import FrameQuality
from obsy_imaging.registration import detect_stars, find_transform
from obsy_imaging.stacking import (
    Rejection,
    StackFrame,
    StackOptions,
    array_reader,
    combine,
    fits_reader,
    frame_weights,
    stack,
)
from obsy_imaging.stacking.stack import band_rows
from tests.support.stacking import background_noise, flux_over_truth, offset_pointing, render

METHODS = ["sigma", "winsorized", "linear_fit"]


def as_frames(images: list[np.ndarray]) -> list[StackFrame]:
    return [StackFrame(f"f{i}", array_reader(im), im.shape) for i, im in enumerate(images)]


@pytest.fixture(scope="module")
def same_pointing() -> list[np.ndarray]:
    return [render(seed=100 + i).image for i in range(16)]


@pytest.mark.slow
def test_the_noise_of_n_frames_falls_as_one_over_root_n(same_pointing) -> None:
    single = np.mean([background_noise(im) for im in same_pointing])
    for method in METHODS:
        options = StackOptions(Rejection(method, 3.0, 3.0) if method != "linear_fit" else Rejection(method, 5.0, 5.0))
        result = stack(as_frames(same_pointing), options)
        ratio = background_noise(result.image) / single
        assert ratio == pytest.approx(1 / np.sqrt(16), rel=0.12), method
    assert result.coverage.min() == 16


@pytest.mark.slow
def test_a_satellite_trail_and_cosmic_rays_are_rejected(same_pointing) -> None:
    images = [im.copy() for im in same_pointing[:10]]
    rows = np.arange(800)
    trail = np.zeros((800, 1000), dtype=bool)
    for width in (-1, 0, 1):  # a 3-pixel trail across the frame
        trail[rows, np.clip((rows * 1.1 + 40 + width).astype(int), 0, 999)] = True
    images[3][trail] += 3000.0
    rng = np.random.default_rng(9)
    hits = (rng.integers(0, 800, 300), rng.integers(0, 1000, 300))
    images[6][hits] += 20000.0
    clean = stack(as_frames(same_pointing[:10]), StackOptions(Rejection("none"))).image
    noise = background_noise(clean)
    plain = stack(as_frames(images), StackOptions(Rejection("none"))).image
    assert np.max(np.abs(plain - clean)[trail]) > 100 * noise  # without rejection the trail shows
    for method in METHODS:
        options = StackOptions(Rejection(method))
        result = stack(as_frames(images), options)
        # Perfect rejection would give the stack without the spoilt frame there.
        without_trail = stack(as_frames([im for i, im in enumerate(same_pointing[:10]) if i != 3]), options).image
        without_hits = stack(as_frames([im for i, im in enumerate(same_pointing[:10]) if i != 6]), options).image
        assert np.percentile(np.abs(result.image - without_trail)[trail], 99) < noise, method
        assert np.max(np.abs(result.image - without_hits)[hits]) < 3 * noise, method
        assert (result.rejected[trail] >= 1).mean() > 0.99, method


@pytest.mark.slow
def test_star_fluxes_survive_registration_and_stacking_to_one_percent() -> None:
    reference = render(seed=200)
    dithers = [
        (0, 0, 0.0),
        (12.0, -20.0, 0.0),
        (-25.0, 9.0, 0.4),
        (30.0, 30.0, 180.0),
        (-8.0, -31.0, 180.0),
        (17.0, 5.0, 0.0),
    ]
    frames = []
    ref_stars = detect_stars(reference.image)
    for i, (east, north, pa) in enumerate(dithers):
        sim = reference if i == 0 else render(offset_pointing(east, north), position_angle=pa, seed=200 + i)
        transform = find_transform(ref_stars, detect_stars(sim.image)).transform if i else None
        frames.append(
            StackFrame(f"f{i}", array_reader(sim.image), sim.image.shape, *([transform] if transform else []))
        )
    result = stack(frames, StackOptions(Rejection("winsorized")))
    # Bright, unsaturated, isolated stars well inside every frame.
    ratio = flux_over_truth(result.image, reference)
    assert len(ratio) >= 10
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    assert np.sqrt(np.mean((ratio - 1) ** 2)) < 0.01


@pytest.mark.slow
def test_numba_and_numpy_give_the_same_stack() -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(100, 10, (12, 5000)).astype(np.float32)
    data[3, ::7] += 500
    data[5, ::11] -= 300
    data[2, ::13] = np.nan
    weights = rng.uniform(0.5, 1.5, 12)
    for method in ["none", *METHODS]:
        a, rejected_a = combine(data, weights, Rejection(method), engine="numba")
        b, rejected_b = combine(data, weights, Rejection(method), engine="numpy")
        assert np.allclose(a, b, rtol=1e-6) and np.array_equal(rejected_a, rejected_b), method


def test_numba_and_numpy_agree_where_few_frames_cover() -> None:
    """The edges of a dithered stack: pixels with 0, 1, 2 values (nothing to reject) beside full ones."""
    rng = np.random.default_rng(6)
    for frames in (1, 2, 3, 8):
        data = rng.normal(100, 10, (frames, 3000)).astype(np.float32)
        data[:, 2::7] = 50.0  # no spread
        data[:, ::3] = np.nan
        data[0, 1::5] = np.nan
        for method in ["none", *METHODS]:
            a, rejected_a = combine(data, np.ones(frames), Rejection(method), engine="numba")
            b, rejected_b = combine(data, np.ones(frames), Rejection(method), engine="numpy")
            assert np.allclose(a, b, rtol=1e-6, equal_nan=True), (frames, method)
            assert np.array_equal(rejected_a, rejected_b), (frames, method)
            assert np.isnan(a[::3]).all()


def test_winsorized_rejection_spares_good_values_of_few_frames() -> None:
    """Pure noise has nothing to reject (3σ bounds: 0.27 % by chance). The winsorized sigma of
    8 values is low by about 1/8 unless corrected, which dropped 2.7 % of these values."""
    data = np.random.default_rng(5).normal(0.0, 1.0, (8, 100_000)).astype(np.float32)
    for engine in ("numba", "numpy"):
        mean, rejected = combine(data, np.ones(8), Rejection("winsorized"), engine=engine)
        assert rejected.mean() / 8 < 0.02, engine
        assert float(np.std(mean)) < 1.05 / np.sqrt(8), engine


def test_normalisation_brings_a_hazy_frame_to_the_reference() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(1000, 20, (6, 64, 64)).astype(np.float32)
    base[2] = base[2] * 0.8 + 300  # thin haze: less signal, more sky
    result = stack(as_frames(list(base)), StackOptions(Rejection("sigma"), weighting="equal"))
    assert result.gains[2] == pytest.approx(1.25, rel=0.05)
    assert result.rejected.mean() < 0.1  # the hazy frame is not thrown away wholesale
    assert float(np.median(result.image)) == pytest.approx(1000, abs=2)


def test_weights_come_from_the_grades() -> None:
    def grade(fwhm: float, snr: float) -> FrameQuality:
        return FrameQuality(100, fwhm, fwhm / 2, 0.3, 500.0, 10.0, snr)

    weights = frame_weights("grades", [10.0, 10.0, 10.0], [1.0, 1.0, 1.0], [grade(2.0, 50), grade(4.0, 50), None])
    assert weights[0] == pytest.approx(4 * weights[1])
    assert weights.mean() == pytest.approx(1.0)
    noise = frame_weights("noise", [10.0, 20.0], [1.0, 1.0])
    assert noise[0] == pytest.approx(4 * noise[1])


def test_frames_are_read_from_fits_a_band_at_a_time(tmp_path) -> None:
    image = np.random.default_rng(3).integers(0, 65535, (50, 40)).astype(np.uint16)
    path = tmp_path / "light.fits"
    fits.PrimaryHDU(image).writeto(path)  # astropy writes uint16 as int16 with BZERO 32768
    read, shape = fits_reader(path)
    assert shape == (50, 40)
    assert np.array_equal(read(10, 20, 5, 30), image[10:20, 5:30].astype(np.float32))


def test_memory_is_bounded_by_the_band_height() -> None:
    options = StackOptions(memory_budget_mb=256)
    rows = band_rows(200, 6248, options)  # 200 frames of 26 MP, as on a Raspberry Pi
    assert rows >= 8
    assert rows * 200 * 6248 * 8 <= 256e6


def test_bad_input_is_named() -> None:
    frames = as_frames([np.zeros((10, 10), np.float32), np.zeros((12, 10), np.float32)])
    with pytest.raises(ValueError, match="f1 is 10x12, the reference 10x10"):
        stack(frames)
    with pytest.raises(ValueError, match="empty"):
        stack([])
    with pytest.raises(ValueError, match="unknown rejection 'median'"):
        Rejection("median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no spread"):
        stack(as_frames([np.ones((10, 10), np.float32)] * 3))


def test_the_band_height_does_not_change_the_stack() -> None:
    reference = render(seed=300)
    other = render(offset_pointing(21.0, -13.0), position_angle=180.2, seed=301)
    transform = find_transform(detect_stars(reference.image), detect_stars(other.image)).transform
    frames = [
        StackFrame("ref", array_reader(reference.image), reference.image.shape),
        StackFrame("flipped", array_reader(other.image), other.image.shape, transform),
        StackFrame("again", array_reader(reference.image + 1.0), reference.image.shape),
    ]
    bands: list[int] = []
    narrow = stack(frames, StackOptions(memory_budget_mb=0.01), progress=lambda done, total: bands.append(done))
    whole = stack(frames, StackOptions(memory_budget_mb=1000))
    assert len(bands) == 100 and bands[-1] == 800  # bands of 8 rows
    assert np.allclose(narrow.image, whole.image, equal_nan=True, atol=1e-3)
    assert np.array_equal(narrow.coverage, whole.coverage) and narrow.coverage.min() >= 2


def test_grades_weight_the_stack() -> None:
    rng = np.random.default_rng(4)
    images = [rng.normal(100.0, 10.0, (40, 40)).astype(np.float32) for _ in range(3)]
    images[1] += 30.0  # a frame the grades say is poor pulls the mean less
    sharp, soft = FrameQuality(50, 2.0, 1.0, 0.1, 100.0, 10.0, 40.0), FrameQuality(50, 6.0, 3.0, 0.1, 100.0, 10.0, 40.0)
    frames = [
        StackFrame(f"f{i}", array_reader(im), im.shape, grade=g)
        for i, (im, g) in enumerate(zip(images, [sharp, soft, sharp], strict=True))
    ]
    options = StackOptions(Rejection("none"), normalisation="none", weighting="grades")
    result = stack(frames, options)
    assert result.weights[1] == pytest.approx(result.weights[0] / 9)
    expected = (images[0] + images[1] / 9 + images[2]) / (2 + 1 / 9)
    assert np.allclose(result.image, expected, atol=1e-3)
