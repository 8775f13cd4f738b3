"""Keogram and star trails of a night, built frame by frame (memory bounded by one frame and the product).

Both read the stored pictures (JPEG or PNG; a 16-bit PNG is read at 8 bits) in time order (the
file names sort by time). A frame that cannot be read is skipped and counted, never fatal;
frames of a different size than the first are skipped too (a camera change mid-night).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from obsy_allsky.products.progress import Progress

log = logging.getLogger("obsy.allsky.products")


@dataclass
class Product:
    image: np.ndarray | None  # 8-bit RGB; None when no frame could be used
    used: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


#: The stored pictures (``pipeline.output.format``: JPEG or PNG); the FITS files beside them are not frames.
FRAME_SUFFIXES = (".jpg", ".png")


def night_frames(night_dir: Path) -> list[Path]:
    """The night's pictures in time order (temporary files of a write in progress start with a dot)."""
    return sorted(p for p in night_dir.glob("*.*") if p.suffix in FRAME_SUFFIXES and not p.name.startswith("."))


#: ``cv2.imread`` flags that decode a JPEG at 1/2, 1/4 or 1/8 size directly (libjpeg's DCT scaling).
REDUCED_READ = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def read_frame(path: Path, color: str = "rgb", reduce: int = 1) -> np.ndarray | None:
    """An 8-bit frame as RGB (or BGR, as OpenCV keeps it), ``reduce`` times smaller; None when undecodable."""
    image = cv2.imread(str(path), REDUCED_READ[reduce])
    if image is None or color == "bgr":
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decoded_frames(
    paths: Iterable[Path], product: Product, progress: Progress | None = None, color: str = "rgb", reduce: int = 1
):
    """Yield the frames one at a time, skipping (and counting in ``product``) what cannot be used.

    ``progress(done, total)`` is called after each file, used or skipped, once the consumer
    has finished with the frame (so a slow consumer's time counts in the estimate).
    """
    paths = list(paths)
    shape = None
    for index, path in enumerate(paths, start=1):
        image = read_frame(path, color, reduce)
        if image is None:
            log.warning("skipping unreadable frame %s", path, extra={"event": "product_frame_unreadable"})
            product.skip("unreadable")
        elif shape is not None and image.shape != shape:
            product.skip("other size")
        else:
            shape = image.shape
            yield image
        if progress is not None:
            progress(index, len(paths))


def keogram(paths: Iterable[Path], center_x: float = 0.5, progress: Progress | None = None) -> Product:
    """One column per frame: the vertical line through the image-circle centre (north-south when aligned)."""
    product = Product(image=None)
    columns = []
    for image in decoded_frames(paths, product, progress):
        x = min(image.shape[1] - 1, round(center_x * image.shape[1]))
        columns.append(image[:, x].copy())
        product.used += 1
    if columns:
        product.image = np.stack(columns, axis=1)
    return product


def star_trails(paths: Iterable[Path], max_brightness: float = 0.35, progress: Progress | None = None) -> Product:
    """Per-pixel maximum of the dark frames; frames brighter than ``max_brightness`` (mean, 0–1) are left out."""
    product = Product(image=None)
    stack = None
    for image in decoded_frames(paths, product, progress):
        if float(image.mean()) / 255 > max_brightness:
            product.skip("too bright")
            continue
        stack = image.copy() if stack is None else np.maximum(stack, image, out=stack)
        product.used += 1
    product.image = stack
    return product
