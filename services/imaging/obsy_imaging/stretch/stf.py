"""Stack previews: shrunk, then stretched by the screen-transfer-function stretch of ``obsy.stretch``
(which the web service uses too, for a light's preview)."""

from __future__ import annotations

import numpy as np

from obsy.stretch import (
    MAD_TO_SIGMA,
    StretchParameters,
    apply_stretch,
    autostretch,
    autostretch_colour,
    midtones_transfer,
    stretch_parameters,
)
from obsy_imaging.stretch.jpeg import encode_jpeg, shrink

#: Pixels a band of a mono preview is stretched at a time.
STRETCH_BAND_PIXELS = 4_000_000

__all__ = [
    "MAD_TO_SIGMA",
    "StretchParameters",
    "apply_stretch",
    "autostretch",
    "autostretch_colour",
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
    """A JPEG of a linear mono (or h x w x 3 colour, stretched linked) image: shrunk to ``max_width``
    (area average), then autostretched.

    Shrinking first averages the noise the stretch would otherwise blow up, and makes the
    stretch's statistics cheap.
    """
    small = shrink(np.asarray(image, dtype=np.float32), max_width)
    if small.ndim == 3:
        stretched = autostretch_colour(small, shadows_clip=shadows_clip, target_background=target_background)
        return encode_jpeg(stretched, quality)
    # A band of rows at a time into 8 bits: the stretch's float32 temporaries of a full-size sample
    # (26 MP: several of 104 MB at once) would be most of a project stack's peak memory.
    parameters = stretch_parameters(small, shadows_clip=shadows_clip, target_background=target_background)
    pixels = np.empty(small.shape, dtype=np.uint8)
    rows = max(1, STRETCH_BAND_PIXELS // max(1, small.shape[1]))
    for r0 in range(0, small.shape[0], rows):
        pixels[r0 : r0 + rows] = np.rint(apply_stretch(small[r0 : r0 + rows], parameters) * 255.0)
    return encode_jpeg(pixels, quality)
