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
    else:
        stretched = autostretch(small, shadows_clip=shadows_clip, target_background=target_background)
    return encode_jpeg(stretched, quality)
