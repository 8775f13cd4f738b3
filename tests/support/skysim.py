"""Comparing simulator frames with their truth: star centroids against the catalogue through a lens."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from obsy.skymodel import SkyModel, load_bright_stars

if TYPE_CHECKING:
    from obsy_skysim.allsky import AllskyRenderer
    from obsy_skysim.clouds import Clouds

# A winter night at the tests' site (latitude 48.2, longitude 16.4, 180 m): the Sun far below.
SITE = (48.2, 16.4, 180.0)
# A lens that is nothing like the defaults: off-centre, rotated, equidistant and distorted.
LENS = SkyModel(652.5, 471.0, 292.0, 37.0, False, "equidistant", 0.03)


def expected_positions(
    lens: SkyModel, when: datetime, *, mag_range: tuple[float, float], min_altitude: float = 20.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, mag) of the catalogue's stars in ``mag_range`` above ``min_altitude``, computed from the
    catalogue and the lens alone (not from the simulator's own truth)."""
    stars = load_bright_stars()
    alt, az = stars.altaz(*SITE, when)
    keep = (alt >= min_altitude) & (stars.mag >= mag_range[0]) & (stars.mag <= mag_range[1])
    x, y = lens.altaz_to_pixel(alt[keep], az[keep])
    return x, y, stars.mag[keep]


def centroids(image: np.ndarray, x: np.ndarray, y: np.ndarray, half: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Light-weighted centroid in a (2 half + 1)² box at each rounded (x, y), after the median of the
    box's rim is taken off as the background."""
    image = image.astype(np.float64)
    out_x, out_y = np.full(len(x), np.nan), np.full(len(x), np.nan)
    for i, (px, py) in enumerate(zip(x, y, strict=True)):
        cx, cy = round(px), round(py)
        box = image[cy - half : cy + half + 1, cx - half : cx + half + 1]
        if box.shape != (2 * half + 1, 2 * half + 1):
            continue
        rim = np.concatenate([box[0], box[-1], box[1:-1, 0], box[1:-1, -1]])
        light = np.clip(box - np.median(rim), 0, None)
        total = light.sum()
        if total <= 0:
            continue
        offsets = np.arange(-half, half + 1)
        out_x[i] = cx + (light.sum(axis=0) * offsets).sum() / total
        out_y[i] = cy + (light.sum(axis=1) * offsets).sum() / total
    return out_x, out_y


# --- clouddetect's demonstration classifier on rendered skies ------------------------------------

#: The demo classifier's 8-bit stretch (``obsy_clouddetect.classifier.demo.stretch``) takes 100 ADU
#: as black and expects a clear night sky about this far above it, as in the frames it learnt from.
DEMO_CLEAR_SKY_ADU = 800.0
DEMO_BLACK_ADU = 100.0


def demo_classifier_exposure(renderer: AllskyRenderer, when: datetime) -> float:
    """The exposure (gain 0) that puts the clear sky's centre ``DEMO_CLEAR_SKY_ADU`` above the black
    level at ``when``: what an auto-exposure would choose (shorter under the Moon)."""
    probe = renderer.render(when, 1.0, 0.0, seed=0).image
    height, width = probe.shape
    centre = probe[height // 3 : 2 * height // 3, 3 * width // 8 : 5 * width // 8]
    sky = float(np.median(centre)) - renderer.sensor.spec.offset_adu
    return DEMO_CLEAR_SKY_ADU / max(sky, 1e-3)


def demo_classifier_picture(
    renderer: AllskyRenderer, when: datetime, clouds: Clouds, exposure_s: float, seed: int
) -> np.ndarray:
    """A rendered sky as the demo classifier's 8-bit picture (its black level moved to the sensor's offset)."""
    from obsy_clouddetect.classifier.demo import stretch

    frame = renderer.render(when, exposure_s, 0.0, clouds, seed=seed).image.astype(np.float32)
    return stretch(frame + np.float32(DEMO_BLACK_ADU - renderer.sensor.spec.offset_adu))
