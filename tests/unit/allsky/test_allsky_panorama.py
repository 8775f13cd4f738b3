"""The 360° panorama: known altitude/azimuth points of a synthetic fisheye land where they should."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from obsy.config import AllskyPanoramaConfig, AllskyPipelineConfig
from obsy_allsky.products.panorama import panorama

WIDTH, HEIGHT = 1000, 800  # a sensor wider than high, the circle a little off centre
CENTER, RADIUS = (0.52, 0.47), 0.45
POINTS = [(alt, az) for alt in (10, 30, 50, 70) for az in (20, 95, 160, 250, 330)]


def fisheye(points, rotation: float = 0.0, mirrored: bool = False) -> np.ndarray:
    """An equidistant fisheye with a small bright dot at each (alt, az), drawn from first principles.

    Zenith at the centre, the horizon at the circle's edge, north up (turned by ``rotation``
    degrees towards the west), east to the left as seen from below (to the right when mirrored).
    """
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    cx, cy = CENTER[0] * WIDTH - 0.5, CENTER[1] * HEIGHT - 0.5
    horizon = RADIUS * min(WIDTH, HEIGHT)
    cv2.circle(image, (round(cx), round(cy)), round(horizon), (20, 20, 20), -1)
    shift = 8  # sub-pixel positions for cv2.circle
    for alt, az in points:
        r = horizon * (90 - alt) / 90
        phi = math.radians(az + rotation)
        x = cx + (1 if mirrored else -1) * r * math.sin(phi)
        y = cy - r * math.cos(phi)
        cv2.circle(image, (round(x * 2**shift), round(y * 2**shift)), 3 << shift, (255, 255, 255), -1, shift=shift)
    return image


def expected_pixel(alt: float, az: float, width: int) -> tuple[float, float]:
    height = width // 4
    return az / 360 * width - 0.5, (90 - alt) / 90 * height - 0.5


def centroid_near(image: np.ndarray, x: float, y: float, half: int = 10) -> tuple[float, float, float]:
    """Brightness-weighted centroid of the bright pixels in a window around (x, y), and their peak."""
    grey = image[..., 0].astype(float)
    x0, y0 = max(0, round(x) - half), max(0, round(y) - half)
    window = grey[y0 : round(y) + half + 1, x0 : round(x) + half + 1]
    weights = np.where(window > 100, window, 0)
    if weights.sum() == 0:
        return math.nan, math.nan, float(window.max())
    ys, xs = np.indices(window.shape)
    return x0 + (xs * weights).sum() / weights.sum(), y0 + (ys * weights).sum() / weights.sum(), float(window.max())


def settings(**changes) -> AllskyPanoramaConfig:
    return AllskyPanoramaConfig(width=1440, center=CENTER, radius=RADIUS, **changes)


@pytest.mark.parametrize(("rotation", "mirrored"), [(0.0, False), (37.0, False), (-120.0, True)])
def test_known_sky_points_land_at_their_altitude_and_azimuth(rotation, mirrored):
    pano = panorama(
        fisheye(POINTS, rotation, mirrored), settings(rotation=rotation, mirrored=mirrored), AllskyPipelineConfig()
    )
    assert pano.shape == (360, 1440, 3)
    for alt, az in POINTS:
        ex, ey = expected_pixel(alt, az, 1440)
        x, y, peak = centroid_near(pano, ex, ey)
        assert peak > 200, (alt, az)
        assert abs(x - ex) < 1.0 and abs(y - ey) < 1.0, (alt, az, x, y, ex, ey)


def test_a_wrong_orientation_puts_the_points_elsewhere():
    image = fisheye(POINTS, rotation=0.0, mirrored=True)
    pano = panorama(image, settings(mirrored=False), AllskyPipelineConfig())  # east taken for west
    misses = sum(centroid_near(pano, *expected_pixel(alt, az, 1440), half=3)[2] < 100 for alt, az in POINTS)
    assert misses == len(POINTS)


def test_the_circle_fills_the_strip_and_the_pipeline_circle_is_the_default():
    image = fisheye([])
    pipeline = AllskyPipelineConfig(circle_center=CENTER, circle_radius=RADIUS)
    pano = panorama(image, AllskyPanoramaConfig(width=720), pipeline)
    assert pano.shape == (180, 720, 3)
    assert (pano[:-1, :, 0] == 20).all()  # all inside the image circle, from the zenith to just above the horizon
    wider = panorama(image, AllskyPanoramaConfig(width=720, center=CENTER, radius=RADIUS * 1.2), pipeline)
    assert (wider[-20:, :, 0] == 0).all()  # a horizon set beyond the circle shows the black around it
