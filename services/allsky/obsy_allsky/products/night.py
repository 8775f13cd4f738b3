"""Keogram and star trails of a night, built frame by frame (memory bounded by one frame and the product).

Both read the stored JPEGs in time order (the file names sort by time). A frame that cannot
be read is skipped and counted, never fatal; frames of a different size than the first are
skipped too (a camera change mid-night).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("obsy.allsky.products")

Progress = Callable[[int, int], None]


@dataclass
class Product:
    image: np.ndarray | None  # 8-bit RGB; None when no frame could be used
    used: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def night_frames(night_dir: Path) -> list[Path]:
    """The night's JPEGs in time order (temporary files of a write in progress start with a dot)."""
    return sorted(p for p in night_dir.glob("*.jpg") if not p.name.startswith("."))


def _read(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _frames(paths: Iterable[Path], product: Product, progress: Progress | None):
    paths = list(paths)
    shape = None
    for index, path in enumerate(paths):
        if progress is not None:
            progress(index, len(paths))
        image = _read(path)
        if image is None:
            log.warning("skipping unreadable frame %s", path, extra={"event": "product_frame_unreadable"})
            product.skip("unreadable")
            continue
        if shape is None:
            shape = image.shape
        elif image.shape != shape:
            product.skip("other size")
            continue
        yield image


def keogram(paths: Iterable[Path], center_x: float = 0.5, progress: Progress | None = None) -> Product:
    """One column per frame: the vertical line through the image-circle centre (north-south when aligned)."""
    product = Product(image=None)
    columns = []
    for image in _frames(paths, product, progress):
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
    for image in _frames(paths, product, progress):
        if float(image.mean()) / 255 > max_brightness:
            product.skip("too bright")
            continue
        stack = image.copy() if stack is None else np.maximum(stack, image, out=stack)
        product.used += 1
    product.image = stack
    return product
