"""Small JPEGs for galleries: one per frame (``<night>/thumbs/``) and one per product (``products/thumbs/``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from obsy_allsky.products.night import Product, read_frame
from obsy_allsky.products.progress import Progress
from obsy_allsky.storage import encode_jpeg, write_atomic

THUMBS = "thumbs"
QUALITY = 80


def thumbnail_path(folder: Path, name: str) -> Path:
    """The thumbnail of the file ``name`` in ``folder``: ``folder/thumbs/<stem>.jpg``."""
    return folder / THUMBS / f"{Path(name).stem}.jpg"


def write_thumbnail(rgb: np.ndarray, path: Path, width: int) -> Path:
    """A JPEG at most ``width`` wide (area-averaged), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, encode_jpeg(rgb, QUALITY, max_width=width))
    return path


def frame_thumbnails(paths: Iterable[Path], width: int, progress: Progress | None = None) -> Product:
    """Thumbnails of the frames that have none yet (a night stored before thumbnails, or a gap)."""
    paths = list(paths)
    product = Product(image=None)
    for index, path in enumerate(paths, start=1):
        target = thumbnail_path(path.parent, path.name)
        if target.exists():
            product.skip("already there")
        else:
            image = read_frame(path)
            if image is None:
                product.skip("unreadable")
            else:
                write_thumbnail(image, target, width)
                product.used += 1
        if progress is not None:
            progress(index, len(paths))
    return product
