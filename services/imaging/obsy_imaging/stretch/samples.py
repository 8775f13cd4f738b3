"""The stretched JPEGs beside a stack: a full-size sample and a thumbnail, for people and pages.

``stack.fits`` gets ``stack.jpg`` (full size) and ``stack.thumb.jpg`` (``thumbnail_width`` px
wide); each written through a temporary file and a rename, so a reader never sees half a file.
Mono stacks are stretched with the STF autostretch, colour ones (h x w x 3) with the linked STF
or, already stretched, passed as 0..1 with ``stretched=True``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from obsy.files import write_atomic
from obsy_imaging.stretch.jpeg import encode_jpeg, shrink
from obsy_imaging.stretch.stf import preview_jpeg

THUMBNAIL_WIDTH = 400
JPEG_QUALITY = 90


def sample_path(stack_path: PurePosixPath) -> PurePosixPath:
    """The full-size stretched sample beside a stack: ``stack.fits`` -> ``stack.jpg``."""
    return stack_path.with_suffix(".jpg")


def thumbnail_path(stack_path: PurePosixPath) -> PurePosixPath:
    """The stretched thumbnail beside a stack: ``stack.fits`` -> ``stack.thumb.jpg``."""
    return stack_path.with_suffix(".thumb.jpg")


def write_samples(
    stack_file: Path,
    image: np.ndarray,
    *,
    thumbnail_width: int = THUMBNAIL_WIDTH,
    quality: int = JPEG_QUALITY,
    stretched: bool = False,
) -> None:
    """The sample and the thumbnail of ``image`` beside ``stack_file``."""
    width = image.shape[1]
    if stretched:
        sample = encode_jpeg(image, quality)
        thumbnail = encode_jpeg(shrink(image, min(width, thumbnail_width)), quality)
    else:
        sample = preview_jpeg(image, max_width=width, quality=quality)
        thumbnail = preview_jpeg(image, max_width=min(width, thumbnail_width), quality=quality)
    relative = PurePosixPath(stack_file.name)
    write_atomic(stack_file.with_name(sample_path(relative).name), sample)
    write_atomic(stack_file.with_name(thumbnail_path(relative).name), thumbnail)
