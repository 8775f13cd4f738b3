"""Building a night's products into ``<data_dir>/allsky/<night>/products/``: one entry for the CLI and the service.

Layout of a night::

    <night>/<frame id>.{jpg,png}     frames (the frame listing reads only these; FITS may lie beside)
    <night>/frames.jsonl             what was measured on each frame (framelog)
    <night>/thumbs/<frame id>.jpg    frame thumbnails
    <night>/products/keogram.jpg, startrails.jpg, timelapse.mp4, panorama.jpg, summary.json, summary.jpg
    <night>/products/thumbs/<product>.jpg

Every file is written under a temporary name and renamed, so the web service never serves
half a product. A product that cannot be made (no usable frame) raises :class:`ProductError`
naming why; the progress topic says ``failed`` with the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from obsy.config import ObsyConfig
from obsy_allsky.config import AllskyProductsConfig
from obsy_allsky.products import framelog
from obsy_allsky.products.night import Product, keogram, night_frames, read_frame, star_trails
from obsy_allsky.products.panorama import panorama
from obsy_allsky.products.progress import JobCancelledError, JobProgress
from obsy_allsky.products.summary import night_summary, write_summary
from obsy_allsky.products.thumbnails import THUMBS, frame_thumbnails, thumbnail_path, write_thumbnail
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
    by_id = {path.stem: path for path in frames}
    if frame_id is not None:
        if frame_id not in by_id:
            raise ProductError(f"no frame {frame_id!r} in {folder}")
        return by_id[frame_id]
    measured = [r for r in framelog.read(folder).records if isinstance(r.get("stars"), int)]
    by_stars = sorted(measured, key=lambda r: r["stars"], reverse=True)
    for record in by_stars:
        if record["frame_id"] in by_id:
            return by_id[record["frame_id"]]
    return frames[len(frames) // 2]


@dataclass
class NightJob:
    """What every builder gets: the night, its frames, the settings and the progress callback."""

    night: date
    folder: Path
    frames: list[Path]
    config: ObsyConfig
    progress: JobProgress
    frame_id: str | None = None

    @property
    def settings(self) -> AllskyProductsConfig:
        return self.config.allsky.products

    def out(self, kind: str) -> Path:
        return product_path(self.config.data_dir, self.night, kind)


def _build_thumbnails(job: NightJob) -> tuple[Path, str]:
    job.progress.start(len(job.frames))
    result = frame_thumbnails(job.frames, job.settings.thumbnail_width, job.progress)
    return job.folder / THUMBS, f"{result.used} written; skipped: {_skipped(result)}"


def _build_keogram(job: NightJob) -> tuple[Path, str]:
    job.progress.start(len(job.frames))
    product = keogram(job.frames, job.config.allsky.pipeline.circle_center[0], progress=job.progress)
    return _finish_image(job, "keogram", product)


def _build_startrails(job: NightJob) -> tuple[Path, str]:
    job.progress.start(len(job.frames))
    product = star_trails(job.frames, job.settings.startrails_max_brightness, progress=job.progress)
    return _finish_image(job, "startrails", product)


def _finish_image(job: NightJob, kind: str, product: Product) -> tuple[Path, str]:
    if product.image is None:
        raise ProductError(f"no usable frame in {job.folder} (skipped: {_skipped(product)})")
    _write_image(product.image, job.out(kind), job.settings.thumbnail_width)
    return job.out(kind), f"{product.used} frames; skipped: {_skipped(product)}"


def _build_timelapse(job: NightJob) -> tuple[Path, str]:
    job.progress.start(len(job.frames))
    out = job.out("timelapse")
    video = make_timelapse(job.frames, out, job.settings.timelapse, job.progress)
    if video.path is None:
        raise ProductError(f"no usable frame in {job.folder} (skipped: {_skipped(video)})")
    middle = read_frame(job.frames[len(job.frames) // 2])
    if middle is not None:
        write_thumbnail(middle, thumbnail_path(out.parent, out.name), job.settings.thumbnail_width)
    return out, f"{video.used} frames with {video.encoder}; skipped: {_skipped(video)}"


def _build_panorama(job: NightJob) -> tuple[Path, str]:
    job.progress.start(1)
    source = _panorama_source(job.folder, job.frames, job.frame_id)
    image = read_frame(source)
    if image is None:
        raise ProductError(f"cannot read {source}")
    rgb = panorama(image, job.settings.panorama, job.config.allsky.pipeline)
    _write_image(rgb, job.out("panorama"), job.settings.thumbnail_width)
    job.progress(1, 1)
    return job.out("panorama"), f"from {source.name}"


def _build_summary(job: NightJob) -> tuple[Path, str]:
    """Built last of a night's products, so that it lists the others."""
    job.progress.start(1)
    data_dir = job.config.data_dir
    summary = night_summary(job.night, job.frames, existing_products(data_dir, job.night), job.config.site)
    json_path, image_path = write_summary(summary, job.out("summary"))
    card = read_frame(image_path)
    if card is not None:
        write_thumbnail(card, thumbnail_path(json_path.parent, image_path.name), job.settings.thumbnail_width)
    job.progress(1, 1)
    return json_path, f"{summary['frames']} frames, {summary['measured_frames']} measured"


BUILDERS: dict[str, Callable[[NightJob], tuple[Path, str]]] = {
    "keogram": _build_keogram,
    "startrails": _build_startrails,
    "timelapse": _build_timelapse,
    "panorama": _build_panorama,
    "summary": _build_summary,
    "thumbnails": _build_thumbnails,
}


def build(
    kind: str,
    night: date,
    config: ObsyConfig,
    progress: JobProgress,
    *,
    frame_id: str | None = None,
) -> tuple[Path, str]:
    """Build one product (or the frames' thumbnails) of ``night``; (its path, a note on what was skipped)."""
    builder = BUILDERS.get(kind)
    if builder is None:
        raise ProductError(f"unknown product {kind!r} (one of {', '.join(BUILDERS)})")
    folder = night_dir(config.data_dir, night)
    frames = night_frames(folder)
    if not frames:
        raise ProductError(f"no frames in {folder}")
    return builder(NightJob(night, folder, frames, config, progress, frame_id))


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
