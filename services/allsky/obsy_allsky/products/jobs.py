"""Building a night's products into ``<data_dir>/allsky/<night>/products/``: one entry for the CLI and the service.

Layout of a night::

    <night>/<frame id>.jpg           frames (the frame listing reads only these)
    <night>/frames.jsonl             what was measured on each frame (framelog)
    <night>/thumbs/<frame id>.jpg    frame thumbnails
    <night>/products/keogram.jpg, startrails.jpg, timelapse.mp4, panorama.jpg, summary.json, summary.jpg
    <night>/products/thumbs/<product>.jpg

Every file is written under a temporary name and renamed, so the web service never serves
half a product. A product that cannot be made (no usable frame) raises :class:`ProductError`
naming why; the progress topic says ``failed`` with the same text.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from obsy.config import PRODUCT_KINDS, ObsyConfig
from obsy_allsky.products import framelog
from obsy_allsky.products.night import Product, keogram, night_frames, read_frame, star_trails
from obsy_allsky.products.panorama import panorama
from obsy_allsky.products.progress import JobCancelledError, JobProgress
from obsy_allsky.products.summary import night_summary, write_summary
from obsy_allsky.products.thumbnails import frame_thumbnails, thumbnail_path, write_thumbnail
from obsy_allsky.products.timelapse import TimelapseError, make_timelapse
from obsy_allsky.storage import encode_jpeg, write_atomic

PRODUCTS = "products"
FILE_NAMES = {
    "keogram": "keogram.jpg",
    "startrails": "startrails.jpg",
    "timelapse": "timelapse.mp4",
    "panorama": "panorama.jpg",
    "summary": "summary.json",
}
#: Every job the command line can run: the products, and thumbnails of the frames.
JOBS = (*PRODUCT_KINDS, "thumbnails")


class ProductError(RuntimeError):
    """A product could not be made; the message says why (no frames, all skipped, ffmpeg failed)."""


def night_dir(data_dir: Path, night: date | str) -> Path:
    return Path(data_dir) / "allsky" / (night if isinstance(night, str) else night.isoformat())


def product_path(data_dir: Path, night: date | str, kind: str) -> Path:
    """Where a night's product goes: beside the frames, in a folder the frame listing does not read."""
    return night_dir(data_dir, night) / PRODUCTS / FILE_NAMES[kind]


def existing_products(data_dir: Path, night: date | str) -> dict[str, str]:
    """kind -> path (relative to the data directory) of the products already written."""
    found = {}
    for kind, name in FILE_NAMES.items():
        path = night_dir(data_dir, night) / PRODUCTS / name
        if path.is_file():
            found[kind] = path.relative_to(data_dir).as_posix()
    return found


def _skipped(product: Product) -> str:
    return ", ".join(f"{n} {why}" for why, n in product.skipped.items()) or "none"


def _write_image(rgb: np.ndarray, out: Path, thumb_width: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, encode_jpeg(rgb, 92))
    write_thumbnail(rgb, thumbnail_path(out.parent, out.name), thumb_width)


def _panorama_source(folder: Path, frames: list[Path], frame_id: str | None) -> Path:
    """The named frame; else the one with the most stars in the frame log; else the middle frame."""
    if frame_id is not None:
        chosen = folder / f"{frame_id}.jpg"
        if chosen not in frames:
            raise ProductError(f"no frame {frame_id!r} in {folder}")
        return chosen
    measured = [r for r in framelog.read(folder).records if isinstance(r.get("stars"), int)]
    by_stars = sorted(measured, key=lambda r: r["stars"], reverse=True)
    for record in by_stars:
        path = folder / f"{record['frame_id']}.jpg"
        if path in frames:
            return path
    return frames[len(frames) // 2]


def build(
    kind: str,
    night: date,
    config: ObsyConfig,
    progress: JobProgress,
    *,
    frame_id: str | None = None,
) -> tuple[Path, str]:
    """Build one product (or the frames' thumbnails) of ``night``; (its path, a note on what was skipped)."""
    if kind not in JOBS:
        raise ProductError(f"unknown product {kind!r} (one of {', '.join(JOBS)})")
    settings = config.allsky.products
    folder = night_dir(config.data_dir, night)
    frames = night_frames(folder)
    if not frames:
        raise ProductError(f"no frames in {folder}")
    thumb = settings.thumbnail_width
    if kind == "thumbnails":
        progress.start(len(frames))
        result = frame_thumbnails(frames, thumb, progress)
        return folder / "thumbs", f"{result.used} written; skipped: {_skipped(result)}"
    out = product_path(config.data_dir, night, kind)
    if kind in ("keogram", "startrails"):
        progress.start(len(frames))
        if kind == "keogram":
            product = keogram(frames, config.allsky.pipeline.circle_center[0], progress=progress)
        else:
            product = star_trails(frames, settings.startrails_max_brightness, progress=progress)
        if product.image is None:
            raise ProductError(f"no usable frame in {folder} (skipped: {_skipped(product)})")
        _write_image(product.image, out, thumb)
        return out, f"{product.used} frames; skipped: {_skipped(product)}"
    if kind == "timelapse":
        progress.start(len(frames))
        video = make_timelapse(frames, out, settings.timelapse, progress)
        if video.path is None:
            raise ProductError(f"no usable frame in {folder} (skipped: {_skipped(video)})")
        middle = read_frame(frames[len(frames) // 2])
        if middle is not None:
            write_thumbnail(middle, thumbnail_path(out.parent, out.name), thumb)
        return out, f"{video.used} frames with {video.encoder}; skipped: {_skipped(video)}"
    if kind == "panorama":
        progress.start(1)
        source = _panorama_source(folder, frames, frame_id)
        image = read_frame(source)
        if image is None:
            raise ProductError(f"cannot read {source}")
        _write_image(panorama(image, settings.panorama, config.allsky.pipeline), out, thumb)
        progress(1, 1)
        return out, f"from {source.name}"
    # summary: last, so that it lists the products made before it
    progress.start(1)
    summary = night_summary(night, frames, existing_products(config.data_dir, night), config.site)
    json_path, image_path = write_summary(summary, out)
    write_thumbnail(read_frame(image_path), thumbnail_path(out.parent, image_path.name), thumb)
    progress(1, 1)
    return json_path, f"{summary['frames']} frames, {summary['measured_frames']} measured"


def run_job(
    kind: str,
    night: date,
    config: ObsyConfig,
    progress: JobProgress,
    *,
    frame_id: str | None = None,
) -> Path | None:
    """:func:`build` with the outcome reported on ``progress`` (log line, progress topic); None on failure."""
    try:
        path, note = build(kind, night, config, progress, frame_id=frame_id)
    except JobCancelledError:
        progress.finish(None, "cancelled: the service is stopping")
        raise
    except (ProductError, TimelapseError, OSError) as exc:
        progress.finish(None, str(exc))
        return None
    progress.finish(path.relative_to(config.data_dir).as_posix(), note)
    return path
