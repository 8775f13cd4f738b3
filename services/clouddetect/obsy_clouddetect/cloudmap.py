"""The cloud map as a small picture: the sky seen from below, north up, east left.

Green where the stars shine through, red where they are lost, grey where nothing could be
judged (too low, near the Moon, no bright enough stars), black below ``min_altitude``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from obsy.files import write_atomic
from obsy_clouddetect.transmission.analyser import CloudMap


def render_cloud_map(cloud_map: CloudMap, size: int = 256) -> np.ndarray:
    """A BGR uint8 image of the map in an equidistant projection."""
    half = (size - 1) / 2.0
    ys, xs = np.mgrid[0:size, 0:size]
    dx, dy = (xs - half) / half, (ys - half) / half
    zenith_distance = np.hypot(dx, dy) * 90.0
    alt = 90.0 - zenith_distance
    az = np.mod(np.degrees(np.arctan2(-dx, -dy)), 360.0)
    alt_axis = cloud_map.alt[0]
    az_axis = cloud_map.az[:, 0]
    step_alt = alt_axis[1] - alt_axis[0] if len(alt_axis) > 1 else 90.0
    step_az = az_axis[1] - az_axis[0] if len(az_axis) > 1 else 360.0
    i_az = np.clip(np.rint((az - az_axis[0]) / step_az).astype(int) % len(az_axis), 0, len(az_axis) - 1)
    i_alt = np.clip(np.rint((alt - alt_axis[0]) / step_alt).astype(int), 0, len(alt_axis) - 1)
    t = cloud_map.transmission[i_az, i_alt]
    inside = alt >= alt_axis[0] - step_alt / 2
    image = np.zeros((size, size, 3), np.uint8)
    known = inside & np.isfinite(t)
    level = np.clip(np.nan_to_num(t), 0.0, 1.0)
    image[..., 1] = np.where(known, 60 + 180 * level, 0).astype(np.uint8)
    image[..., 2] = np.where(known, 60 + 180 * (1 - level), 0).astype(np.uint8)
    image[inside & ~known] = (90, 90, 90)
    for label, (x, y) in {"N": (half, 10), "E": (8, half), "S": (half, size - 6), "W": (size - 14, half)}.items():
        cv2.putText(image, label, (int(x) - 4, int(y) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return image


def save_cloud_map(cloud_map: CloudMap, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", render_cloud_map(cloud_map))
    if not ok:
        raise OSError("PNG encoding of the cloud map failed")
    write_atomic(path, data.tobytes())
