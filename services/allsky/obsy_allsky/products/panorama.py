"""The 360° panorama: an allsky frame unrolled from the fisheye into an equirectangular strip.

The output covers azimuth 0–360° from left to right (north at the left edge, then east, south,
west) and altitude 90° (top row, the zenith) down to 0° (bottom row, the horizon), one pixel
per ``360 / width`` degrees both ways, so it is ``width`` × ``width / 4``. Pixel centres sit
at ``az = (u + ½)·360/W`` and ``alt = 90 − (v + ½)·90/H``.

Where each (alt, az) falls in the frame comes from an equidistant :class:`obsy.skymodel.SkyModel`
(zenith at ``center``, the horizon at ``radius``, ``rotation`` and ``mirrored`` as in the
sky model), so the panorama and the sky model the rest of the system uses agree. The look-up
maps are computed once per frame size and settings; the unrolling itself is one
``cv2.remap`` (bilinear) on the CPU.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from obsy.skymodel import SkyModel
from obsy_allsky.config import AllskyPanoramaConfig, AllskyPipelineConfig


def sky_model_for(width: int, height: int, settings: AllskyPanoramaConfig, pipeline: AllskyPipelineConfig) -> SkyModel:
    """The equidistant sky model of a ``width`` × ``height`` frame under these settings."""
    cx, cy = settings.center if settings.center is not None else pipeline.circle_center
    radius = settings.radius if settings.radius is not None else pipeline.circle_radius
    horizon_px = radius * min(width, height)
    return SkyModel(
        zenith_x=cx * width - 0.5,  # a fraction of the width; the sky model counts from pixel centres
        zenith_y=cy * height - 0.5,
        scale=horizon_px / (math.pi / 2),
        rotation=settings.rotation,
        mirrored=settings.mirrored,
        projection="equidistant",
    )


def panorama_grid(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Altitude (rows) and azimuth (columns) in degrees of each output pixel's centre."""
    height = width // 4
    az = (np.arange(width) + 0.5) * 360.0 / width
    alt = 90.0 - (np.arange(height) + 0.5) * 90.0 / height
    return alt, az


@functools.lru_cache(maxsize=4)
def _maps(model: SkyModel, width: int) -> tuple[np.ndarray, np.ndarray]:
    alt, az = panorama_grid(width)
    x, y = model.altaz_to_pixel(alt[:, None], az[None, :])
    return x.astype(np.float32), y.astype(np.float32)


def panorama(image: np.ndarray, settings: AllskyPanoramaConfig, pipeline: AllskyPipelineConfig) -> np.ndarray:
    """The equirectangular panorama (``settings.width`` × ``width / 4``) of one fisheye frame."""
    height, width = image.shape[:2]
    model = sky_model_for(width, height, settings, pipeline)
    map_x, map_y = _maps(model, settings.width)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
