"""White balance from star colours: the stars of a synthetic frame with a known colour cast come out white."""

from __future__ import annotations

import numpy as np
import pytest

from obsy.config import AllskyPipelineConfig
from obsy_allsky.backend import NumpyBackend
from obsy_allsky.pipeline import tone
from obsy_allsky.pipeline.chain import FramePipeline
from obsy_allsky.pipeline.debayer import debayer, normalize
from obsy_allsky.pipeline.stars import star_colour_gains
from tests.support.allsky_frames import CHANNEL_RESPONSE, FULL_SCALE, bracket, make_scene

#: The gains that undo the synthetic camera's colour response (R 0.8, G 1, B 0.7).
TRUE_GAINS = (1 / CHANNEL_RESPONSE[0], 1.0, 1 / CHANNEL_RESPONSE[2])
#: An orange sky glow (sodium light pollution) on top: gray world would neutralise it, star colours must not.
GLOW = np.array([0.03, 0.015, 0.004], np.float32)


@pytest.fixture(scope="module")
def be():
    return NumpyBackend()


@pytest.fixture(scope="module")
def scene():
    return make_scene(800, 600, n_stars=150, seed=3)


@pytest.fixture(scope="module")
def glowing_rgb(be, scene):
    raw = bracket(scene, [10.0])[0]
    rgb = debayer(be, normalize(be, raw, FULL_SCALE, np.full(raw.shape, 500, np.float32)), "RGGB")
    return rgb + GLOW


def test_star_colours_recover_the_cast_despite_a_coloured_sky(be, scene, glowing_rgb):
    gains = star_colour_gains(be, glowing_rgb, scene.stars)
    assert gains is not None
    assert gains == pytest.approx(TRUE_GAINS, rel=0.02)
    # Gray world is fooled by the glow: it would turn the orange sky grey and the stars blue.
    mask = tone.circle_mask(be, 600, 800, (0.5, 0.5), 0.5)
    gray = tone.white_balance(be, glowing_rgb.copy(), "gray_world", mask=mask)
    stars = tone.white_balance(be, glowing_rgb.copy(), "stars", mask=mask, stars=scene.stars)
    ours, theirs = box_colour(stars, scene.stars), box_colour(gray, scene.stars)
    assert ours == pytest.approx((1.0, 1.0, 1.0), rel=0.03)
    assert theirs[2] > 1.5  # gray world: blue stars


def test_too_few_stars_fall_back_to_gray_world(be, glowing_rgb, scene, caplog):
    mask = tone.circle_mask(be, 600, 800, (0.5, 0.5), 0.5)
    assert star_colour_gains(be, glowing_rgb, scene.stars[:5], min_stars=20) is None
    with caplog.at_level("INFO", logger="obsy.allsky.pipeline"):
        fallback = tone.white_balance(be, glowing_rgb.copy(), "stars", mask=mask, stars=scene.stars[:5], min_stars=20)
    gray = tone.white_balance(be, glowing_rgb.copy(), "gray_world", mask=mask)
    assert np.array_equal(fallback, gray)
    assert "too few measurable stars" in caplog.text


def test_clipped_stars_and_stars_at_the_edge_are_left_out(be):
    image = np.full((100, 100, 3), 0.01, np.float32)
    image[48:53, 48:53] = (1.0, 0.2, 0.2)  # a clipped red blob: would make the gains absurd
    positions = np.array([[50.0, 50.0], [2.0, 50.0]])
    assert star_colour_gains(be, image, positions, min_stars=1) is None


def test_chain_balances_on_the_stars_it_found(scene):
    raw = bracket(scene, [10.0])[0]
    finish = [{"stage": "white_balance", "method": "stars"}]
    plain = FramePipeline(AllskyPipelineConfig(backend="numpy", finish=[])).process([raw], [10.0])
    balanced = FramePipeline(AllskyPipelineConfig(backend="numpy", finish=finish)).process([raw], [10.0])
    assert box_colour(plain.image, scene.stars) == pytest.approx(CHANNEL_RESPONSE, rel=0.05)
    assert box_colour(balanced.image, scene.stars) == pytest.approx((1.0, 1.0, 1.0), rel=0.05)


def box_colour(image: np.ndarray, positions: np.ndarray, brightest: int = 20) -> tuple[float, ...]:
    """Median R/G, 1, B/G of the brightest stars: 11×11 box sums minus the box border's median.

    Deliberately simpler than the stage's own photometry, so that it checks it independently.
    """
    image = image.astype(np.float64)
    fluxes = []
    for x, y in np.rint(positions).astype(int):
        box = image[y - 5 : y + 6, x - 5 : x + 6]
        if box.shape[:2] != (11, 11) or box.max() >= 250:  # edge, or clipped in 8 bits
            continue
        border = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])
        fluxes.append((box - np.median(border, axis=0)).sum(axis=(0, 1)))
    fluxes = np.array(fluxes)
    fluxes = fluxes[np.argsort(-fluxes[:, 1])[:brightest]]
    return tuple(float(v) for v in np.median(fluxes / fluxes[:, 1:2], axis=0))
