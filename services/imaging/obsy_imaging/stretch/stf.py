"""Stack previews: shrunk, then stretched by the screen-transfer-function stretch of ``obsy.stretch``
(which the web service uses too, for a light's preview)."""

from __future__ import annotations

import cv2
import numpy as np

from obsy.stretch import MAD_TO_SIGMA, StretchParameters, autostretch, midtones_transfer, stretch_parameters

__all__ = [
    "MAD_TO_SIGMA",
    "StretchParameters",
    "autostretch",
    "midtones_transfer",
    "preview_jpeg",
    "stretch_parameters",
]


def preview_jpeg(
    image: np.ndarray,
    *,
    max_width: int = 1024,
    quality: int = 85,
    shadows_clip: float = -2.8,
    target_background: float = 0.25,
) -> bytes:
    """A grey JPEG of a linear mono image: shrunk to ``max_width`` (area average), then autostretched.

    Shrinking first averages the noise the stretch would otherwise blow up, and makes the
    stretch's statistics cheap.
    """
    small = np.asarray(image, dtype=np.float32)
    if small.shape[1] > max_width:
        height = max(1, round(small.shape[0] * max_width / small.shape[1]))
        # INTER_AREA spreads a NaN over its block: fill with the median first, black it out after.
        missing = ~np.isfinite(small)
        if missing.any():
            small = np.where(missing, np.float32(np.nanmedian(small[::4, ::4])), small)
            gone = cv2.resize(missing.astype(np.float32), (max_width, height), interpolation=cv2.INTER_AREA) > 0.5
        else:
            gone = None
        small = cv2.resize(small, (max_width, height), interpolation=cv2.INTER_AREA)
        if gone is not None:
            small[gone] = np.nan
    stretched = autostretch(small, shadows_clip=shadows_clip, target_background=target_background)
    pixels = np.rint(stretched * 255.0).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the preview as JPEG")
    return encoded.tobytes()
