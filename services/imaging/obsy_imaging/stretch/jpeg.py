"""Shrinking linear images for a preview, and encoding stretched ones (0..1) as JPEG."""

from __future__ import annotations

import cv2
import numpy as np


def shrink(image: np.ndarray, max_width: int) -> np.ndarray:
    """The image (mono, or h x w x 3) area-averaged down to ``max_width`` pixels wide; NaN kept as NaN
    where most of a block had no data. Narrower images are returned as they are."""
    if image.shape[1] <= max_width:
        return image
    height = max(1, round(image.shape[0] * max_width / image.shape[1]))
    # INTER_AREA spreads a NaN over its block: fill with the median first, black it out after.
    missing = ~np.isfinite(image)
    gone = None
    if missing.any():
        image = np.where(missing, np.float32(np.nanmedian(image[::4, ::4])), image)
        gone = cv2.resize(missing.astype(np.float32), (max_width, height), interpolation=cv2.INTER_AREA) > 0.5
    small = cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)
    if gone is not None:
        small[gone] = np.nan
    return small


def encode_jpeg(stretched: np.ndarray, quality: int = 85) -> bytes:
    """A JPEG of a stretched image, 0..1 (or 0..255 as uint8): grey (h x w) or colour (h x w x 3, red first)."""
    if stretched.dtype == np.uint8:
        pixels = stretched
    else:
        pixels = np.rint(np.clip(np.nan_to_num(stretched), 0.0, 1.0) * 255.0).astype(np.uint8)
    if pixels.ndim == 3:
        pixels = np.ascontiguousarray(pixels[..., ::-1])  # OpenCV writes BGR
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return encoded.tobytes()
