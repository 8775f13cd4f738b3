"""The web's preview cache: drawn once, read back, and bounded by removing the least recently used."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from obsy_web.previews import PreviewCache, PreviewError


def write_fits(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    fits.PrimaryHDU(rng.normal(1000, 30, (96, 128)).astype(np.float32)).writeto(path)
    return path


def cached_files(folder: Path) -> set[Path]:
    return set(folder.glob("*.jpg"))


def test_a_preview_is_drawn_once_and_then_read_from_the_cache(tmp_path: Path) -> None:
    cache = PreviewCache(tmp_path / "previews")
    source = write_fits(tmp_path / "light.fits", 1)
    first = cache.jpeg(source, 64)
    assert first[:2] == b"\xff\xd8"  # a JPEG
    (kept,) = cached_files(cache.folder)
    kept.write_bytes(b"from the cache")
    assert cache.jpeg(source, 64) == b"from the cache"


def test_the_cache_stays_under_its_bound_and_keeps_what_was_used_last(tmp_path: Path) -> None:
    folder = tmp_path / "previews"
    sources = [write_fits(tmp_path / f"light{i}.fits", i) for i in range(8)]
    size = len(PreviewCache(tmp_path / "probe").jpeg(sources[0], 96))
    cache = PreviewCache(folder, max_bytes=int(size * 6.5))  # room for six previews
    previews: dict[int, Path] = {}
    past = time.time() - 1000
    for i, source in enumerate(sources[:4]):
        before = cached_files(folder)
        cache.jpeg(source, 96)
        (previews[i],) = cached_files(folder) - before
        os.utime(previews[i], (past + i, past + i))  # drawn one after the other
    cache.jpeg(sources[0], 96)  # the oldest, used again: it becomes the most recent
    for source in sources[4:]:
        cache.jpeg(source, 96)
        total = sum(path.stat().st_size for path in cached_files(folder))
        assert total <= cache.max_bytes
    assert previews[0] in cached_files(folder), "the preview used last was pruned"
    assert previews[1] not in cached_files(folder), "the least recently used preview was kept"


def test_a_file_that_is_not_fits_is_refused_with_its_name(tmp_path: Path) -> None:
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"not a FITS file at all")
    with pytest.raises(PreviewError, match=r"broken\.fits"):
        PreviewCache(tmp_path / "previews").jpeg(broken, 64)
