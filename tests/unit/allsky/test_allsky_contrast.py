"""Dehaze, clarity and the tone curve on synthetic images with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from obsy_allsky.backend import NumpyBackend
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.contrast import clarity, dehaze

VEIL = np.array([0.55, 0.5, 0.4], np.float32)


@pytest.fixture(scope="module")
def be():
    return NumpyBackend()


def night_sky(band: bool) -> np.ndarray:
    """A dark sky with bright blobs, and optionally a lit cloud band across it."""
    rng = np.random.default_rng(4)
    height, width = 240, 320
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = np.full((height, width, 3), 0.02, np.float32)
    for _ in range(60):
        x, y = rng.uniform(10, width - 10), rng.uniform(10, height - 10)
        sky += (0.7 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2)))[:, :, None]
    if band:
        sky[100:130] += np.float32(0.3) * np.array([0.9, 0.9, 1.0], np.float32)
    return np.clip(sky, 0, 1)


@pytest.fixture(scope="module")
def night_and_haze():
    """The truth, and the same seen through a veil that lets 60 % through."""
    truth = night_sky(band=True)
    transmission = np.float32(0.6)
    return truth, (truth * transmission + VEIL * (1 - transmission)).astype(np.float32)


def michelson(image: np.ndarray) -> float:
    lum = tone.luminance(image)
    high, low = np.percentile(lum, 99.5), np.percentile(lum, 5)
    return float((high - low) / (high + low))


def test_dehaze_raises_contrast_and_comes_closer_to_the_truth(be, night_and_haze):
    truth, hazy = night_and_haze
    out = dehaze(be, hazy.copy(), strength=0.95, patch_px=15)
    assert michelson(out) > 1.5 * michelson(hazy)
    assert np.abs(out - truth).mean() < np.abs(hazy - truth).mean() / 3
    # The veil's colour goes with it: the sky background is dark and nearly neutral again.
    sky = np.median(out[5:40, 5:60].reshape(-1, 3), axis=0)
    assert sky.max() < 0.1


def test_dehaze_leaves_a_clear_image_nearly_as_it_is(be):
    # A black sky: the dark channel says there is no veil. (A large grey cloud would read as veil:
    # the dark-channel prior cannot tell them apart.)
    clear = np.clip(night_sky(band=False) - 0.02, 0, 1)
    out = dehaze(be, clear.copy(), strength=0.95)
    assert np.abs(out - clear).mean() < 0.005


def test_dehaze_leaves_the_outside_of_the_circle_alone(be, night_and_haze):
    _, hazy = night_and_haze
    mask = tone.circle_mask(be, 240, 320, (0.5, 0.5), 0.4)
    out = dehaze(be, hazy.copy(), mask=mask)
    assert np.allclose(out[~mask], hazy[~mask], atol=1e-5)
    assert not np.allclose(out[mask], hazy[mask], atol=1e-2)


def test_clarity_raises_local_contrast_in_the_midtones_only(be):
    _, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    pattern = 0.05 * np.sin(2 * np.pi * xx / 48)  # detail on a ~32 px scale
    image = np.repeat((0.5 + pattern)[:, :, None], 3, axis=2).astype(np.float32)
    out = clarity(be, image.copy(), amount=0.8, levels=5)
    inner = (slice(32, -32), slice(32, -32))
    assert out[inner].std() > 1.3 * image[inner].std()
    assert out[inner].mean() == pytest.approx(image[inner].mean(), abs=0.01)
    # Flat areas, black sky and white highlights do not move.
    for level in (0.0, 0.4, 1.0):
        flat = np.full((128, 128, 3), level, np.float32)
        assert np.allclose(clarity(be, flat.copy(), amount=0.8), level, atol=1e-5)
    softer = clarity(be, image.copy(), amount=-0.8, levels=5)
    assert softer[inner].std() < image[inner].std()


@pytest.mark.parametrize("method", ["asinh", "reinhard", "gamma"])
def test_tone_curves_are_monotonic_keep_colour_and_end_points(be, method):
    ramp = np.linspace(0, 1, 256, dtype=np.float32)
    image = np.stack([ramp * 0.5, ramp, ramp * 0.25], axis=1)[None].astype(np.float32)  # colour R:G:B = 2:4:1
    lum_before = tone.luminance(image)[0]
    out = tone.tone_map(be, image.copy(), method, strength=2.0)
    lum = tone.luminance(out)[0]
    assert lum[0] == 0 and np.all(np.diff(lum) >= -1e-6)
    # Colour ratios kept wherever nothing clips.
    unclipped = out[0].max(axis=1) < 0.999
    assert np.allclose(out[0][unclipped, 0] * 2, out[0][unclipped, 1], atol=2e-3)
    # Shadows lifted relative to highlights: the slope at the bottom is above the slope at the top.
    assert lum[10] / lum_before[10] > lum[200] / lum_before[200]


def test_reinhard_maps_the_white_point_to_one(be):
    image = np.full((1, 3, 3), 0.0, np.float32)
    image[0, 1] = 0.5
    image[0, 2] = 2.0
    out = tone.tone_map(be, image, "reinhard", strength=3.0, white=2.0)
    assert out[0, 2] == pytest.approx(1.0, abs=1e-5)
    assert 0.5 < out[0, 1, 0] < 1.0


def test_unknown_tone_curve_is_named(be):
    with pytest.raises(ValueError, match="unknown tone mapping 'filmic'"):
        tone.tone_map(be, np.zeros((2, 2, 3), np.float32), "filmic")
