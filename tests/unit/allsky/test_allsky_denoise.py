"""ACDNR-style noise reduction: less noise in flat sky, edges and stars kept, colour noise smoothed harder."""

from __future__ import annotations

import numpy as np
import pytest

from obsy_allsky.backend import NumpyBackend
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.denoise import denoise, guided_filter, noise_sigma


@pytest.fixture(scope="module")
def be():
    return NumpyBackend()


@pytest.fixture(scope="module")
def noisy_edge():
    """A vertical step (0.3 → 0.6 grey) with Gaussian noise of 0.02 in each channel."""
    clean = np.full((200, 200, 3), 0.3, np.float32)
    clean[:, 100:] = 0.6
    rng = np.random.default_rng(0)
    return clean, clean + rng.normal(0, 0.02, clean.shape).astype(np.float32)


def edge_width(image: np.ndarray) -> float:
    """10–90 % rise of the luminance across the step, in pixels (row average)."""
    profile = tone.luminance(image)[50:150, 90:110].mean(axis=0)
    low, high = profile[:5].mean(), profile[-5:].mean()
    level = (profile - low) / (high - low)
    return float(np.argmax(level >= 0.9) - np.argmax(level >= 0.1))


def test_noise_falls_in_flat_areas_and_the_edge_stays_sharp(be, noisy_edge):
    clean, noisy = noisy_edge
    out = denoise(be, noisy.copy(), luminance_amount=1.0, chrominance_amount=1.0)
    flat = (slice(20, 180), slice(20, 80))
    assert out[flat].std(axis=(0, 1)).max() < noisy[flat].std(axis=(0, 1)).min() / 3
    assert edge_width(out) <= 2
    # A plain blur of the same reach removes the noise too, but smears the edge.
    blurred = be.box_filter(noisy, 5)
    assert edge_width(blurred) >= 4
    assert np.abs(out - clean)[flat].mean() < np.abs(noisy - clean)[flat].mean() / 3


def test_luminance_and_chrominance_are_separate(be, noisy_edge):
    _, noisy = noisy_edge
    flat = (slice(20, 180), slice(20, 80))
    colour_only = denoise(be, noisy.copy(), luminance_amount=0.0, chrominance_amount=1.0)
    lum_before, lum_after = tone.luminance(noisy)[flat], tone.luminance(colour_only)[flat]
    assert np.allclose(lum_after, lum_before, atol=1e-5)  # brightness untouched
    spread = lambda img: (img[flat][..., 0] - img[flat][..., 2]).std()  # noqa: E731
    assert spread(colour_only) < spread(noisy) / 3  # colour noise smoothed
    untouched = denoise(be, noisy.copy(), luminance_amount=0.0, chrominance_amount=0.0)
    assert np.allclose(untouched, noisy, atol=1e-5)


def test_a_faint_star_survives(be):
    rng = np.random.default_rng(1)
    image = np.full((64, 64, 3), 0.1, np.float32) + rng.normal(0, 0.005, (64, 64, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:64, 0:64]
    image += (0.1 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / (2 * 1.3**2)))[:, :, None].astype(np.float32)
    out = denoise(be, image.copy(), luminance_amount=1.0)
    assert out[32, 32].mean() - 0.1 > 0.8 * (image[32, 32].mean() - 0.1)


def test_noise_estimate_and_guided_filter(be):
    rng = np.random.default_rng(2)
    plane = (0.5 + rng.normal(0, 0.01, (300, 300))).astype(np.float32)
    assert noise_sigma(be, plane) == pytest.approx(0.01, rel=0.1)
    smooth = guided_filter(be, plane, plane, radius=4, eps=1.0)  # ε far above the variance: a box mean
    assert smooth[20:-20, 20:-20].std() < 0.002
