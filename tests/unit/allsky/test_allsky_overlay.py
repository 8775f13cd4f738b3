"""Overlays: the text lands where it should (info top left, N/E/S/W by the camera's orientation, labels)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from obsy.config import AllskyOverlayStage, AllskyPipelineConfig
from obsy_allsky.backend import NumpyBackend
from obsy_allsky.pipeline.chain import FramePipeline
from obsy_allsky.pipeline.overlay import FrameInfo, info_lines, overlay
from tests.support.allsky_frames import bracket, make_scene

HEIGHT, WIDTH = 480, 640
INFO = FrameInfo(
    taken_at=datetime(2026, 11, 21, 22, 15, 3, tzinfo=UTC),
    exposure_s=20.0,
    gain=200,
    bracket=5,
    sun_altitude=-35.2,
    moon_altitude=12.4,
    moon_illumination=0.76,
)


@pytest.fixture(scope="module")
def be():
    return NumpyBackend()


def draw(be, info=INFO, **settings) -> np.ndarray:
    stage = AllskyOverlayStage.model_validate({"stage": "overlay", **settings})
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    return overlay(be, image, stage, info, stars=1234, sqm=21.4, circle_center=(0.5, 0.5), circle_radius=0.5)


def lit(image: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> bool:
    """Whether any pixel in the box (fractions of width and height) was drawn on."""
    box = image[int(y0 * HEIGHT) : int(y1 * HEIGHT), int(x0 * WIDTH) : int(x1 * WIDTH)]
    return bool(box.max() > 0.5)


def test_info_lines_say_what_is_known():
    lines = info_lines(INFO, ["time", "exposure", "sun_moon", "stars"], "%Y-%m-%d %H:%M:%S %Z", 1234, 21.4)
    assert lines == [
        "2026-11-21 22:15:03 UTC",
        "Exposure 20 s (HDR x5)  gain 200",
        "Sun -35.2 deg  Moon +12.4 deg (76 %)",
        "Stars 1234  SQM 21.40",
    ]
    assert info_lines(FrameInfo(), ["time", "exposure", "sun_moon"], "%H", None, None) == []


def test_info_top_left_and_cardinals_north_up_east_left(be):
    image = draw(be)
    assert lit(image, 0.0, 0.45, 0.0, 0.25)  # the info block
    # The circle (radius 240 px) centred: N top centre, S bottom centre, E left, W right (view from below).
    assert lit(image, 0.45, 0.55, 0.0, 0.12)
    assert lit(image, 0.45, 0.55, 0.88, 1.0)
    assert lit(image, 0.12, 0.2, 0.45, 0.55)
    assert lit(image, 0.8, 0.88, 0.45, 0.55)
    assert not lit(image, 0.3, 0.7, 0.3, 0.7)  # the sky itself stays clean


#: Where the four points of the circle fall: (x0, x1, y0, y1) fractions of width and height.
TOP, BOTTOM, LEFT, RIGHT = (
    (0.45, 0.55, 0.0, 0.12),
    (0.45, 0.55, 0.88, 1.0),
    (0.12, 0.2, 0.4, 0.6),
    (0.8, 0.88, 0.4, 0.6),
)


def glyph(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The drawn letter in a box, cropped to its lit pixels."""
    x0, x1, y0, y1 = box
    ink = image[int(y0 * HEIGHT) : int(y1 * HEIGHT), int(x0 * WIDTH) : int(x1 * WIDTH), 0] > 0.5
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def same_letter(a: np.ndarray, b: np.ndarray) -> bool:
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    if abs(a.shape[0] - b.shape[0]) > 1 or abs(a.shape[1] - b.shape[1]) > 1:
        return False
    a, b = a[:h, :w], b[:h, :w]
    return (a & b).sum() / (a | b).sum() > 0.8


def test_cardinals_follow_rotation_and_mirror(be):
    plain = draw(be, show=[])
    north, east, south, west = (glyph(plain, box) for box in (TOP, LEFT, BOTTOM, RIGHT))
    assert not same_letter(north, east) and not same_letter(east, west) and not same_letter(north, south)
    # Rotated by 90° (azimuth + 90): N goes to the left, E to the bottom.
    rotated = draw(be, show=[], rotation=90)
    assert same_letter(glyph(rotated, LEFT), north)
    assert same_letter(glyph(rotated, BOTTOM), east)
    # Mirrored: N stays at the top, E and W swap sides.
    mirrored = draw(be, show=[], mirrored=True)
    assert same_letter(glyph(mirrored, TOP), north)
    assert same_letter(glyph(mirrored, RIGHT), east)
    assert same_letter(glyph(mirrored, LEFT), west)


def test_labels_and_colour(be):
    image = draw(be, show=[], cardinals=False, labels=[{"text": "Home", "x": 0.7, "y": 0.9}], colour=(1.0, 0.0, 0.0))
    assert lit(image, 0.7, 0.85, 0.85, 0.92)
    assert not lit(image, 0.0, 0.6, 0.0, 0.8)
    drawn = image[image.max(axis=2) > 0.5]
    assert drawn[:, 1].max() < 0.5  # red text: no green in it
    per_frame = draw(be, info=FrameInfo(labels=("cloudy",)), show=[], cardinals=False)
    assert lit(per_frame, 0.0, 0.3, 0.9, 1.0)


def test_text_reads_on_a_white_sky(be):
    stage = AllskyOverlayStage(stage="overlay", show=["time"], cardinals=False)
    image = np.ones((HEIGHT, WIDTH, 3), np.float32)
    out = overlay(be, image, stage, INFO, stars=None, sqm=None, circle_center=(0.5, 0.5), circle_radius=0.5)
    assert out[: int(0.1 * HEIGHT), : int(0.5 * WIDTH)].min() < 0.1  # the dark outline


def test_overlay_as_a_chain_stage():
    scene = make_scene(640, 480, n_stars=50, seed=2)
    raw = bracket(scene, [10.0])[0]
    config = AllskyPipelineConfig(backend="numpy", finish=[{"stage": "stretch"}, {"stage": "mask"}])
    with_overlay = config.model_copy(update={"finish": [*config.finish, AllskyOverlayStage(stage="overlay")]})
    plain = FramePipeline(config).process([raw], [10.0]).image
    out = FramePipeline(with_overlay).process([raw], [10.0], info=INFO).image
    changed = np.abs(out.astype(int) - plain.astype(int)).max(axis=2) > 40
    assert changed[: HEIGHT // 4, : WIDTH // 2].any()
    assert not changed[HEIGHT // 3 : 2 * HEIGHT // 3, WIDTH // 3 : 2 * WIDTH // 3].any()
