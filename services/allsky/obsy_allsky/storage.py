"""Where frames go: ``<data_dir>/allsky/<night YYYY-MM-DD>/<frame id>.<jpg|png>``, FITS beside it.

Beside the picture (JPEG or PNG, per ``pipeline.output.format``) a frame may keep
``<frame id>.fits``, the longest raw exposure as the camera sent it (``keep_fits``), and
``<frame id>.linear.fits``, the fused linear RGB before the finish (``pipeline.output.keep_linear``).
Where an overlay is drawn, the picture without it goes to ``<night>/clean/<frame id>.jpg`` for
clouddetect to judge; only the newest :data:`CLEAN_KEEP` of them are kept (they are for analysis
within minutes, not an archive).
Files are written to a temporary name in the same folder and renamed, so a reader (the
clouddetect service, the web service) never sees half a file, and a failed write (a full disk)
leaves nothing behind and nothing already stored damaged: a frame is stored whole or not at all.
Every OSError becomes a :class:`StorageError` naming the path and the cause.

The encoders are the pipeline's (:mod:`obsy_allsky.pipeline.output`); :func:`encode_jpeg` only
shrinks first, for previews and thumbnails.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import cv2
import numpy as np

from obsy import files
from obsy_allsky.pipeline.output import encode_jpeg_cpu

#: Suffixes of the files a frame may keep beside its picture.
RAW_FITS_SUFFIX = ".fits"
LINEAR_FITS_SUFFIX = ".linear.fits"
#: The pictures without the overlay kept per night (the newest; clouddetect reads one within minutes).
CLEAN_KEEP = 20
CLEAN_FOLDER = "clean"


class StorageError(OSError):
    """A frame could not be stored; the message names the path and the reason (e.g. disk full)."""


@dataclass(frozen=True)
class StoredFrame:
    frame_id: str
    night: str
    image_path: Path
    fits_path: Path | None = None  # the longest raw exposure
    linear_path: Path | None = None  # the fused linear RGB
    clean_path: Path | None = None  # the picture without the overlay (JPEG)

    @property
    def url(self) -> str:
        """``file://`` URL of the picture (clouddetect resolves it under its data_dir)."""
        return self.image_path.resolve().as_uri()

    @property
    def clean_url(self) -> str | None:
        """``file://`` URL of the picture without the overlay, where one was drawn."""
        return self.clean_path.resolve().as_uri() if self.clean_path is not None else None


def encode_jpeg(rgb: np.ndarray, quality: int = 90, max_width: int | None = None) -> bytes:
    """JPEG bytes of an 8-bit RGB image, shrunk to ``max_width`` (area average) when it is wider."""
    image = rgb
    if max_width is not None and image.shape[1] > max_width:
        height = round(image.shape[0] * max_width / image.shape[1])
        image = cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)
    return encode_jpeg_cpu(image, quality)


def frame_id_of(taken_at: datetime) -> str:
    """``YYYYMMDDTHHMMSSmmmZ``: file names sort by time."""
    return taken_at.strftime("%Y%m%dT%H%M%S") + f"{taken_at.microsecond // 1000:03d}Z"


class FrameStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "allsky"

    def night_dir(self, night: date) -> Path:
        return self.root / night.isoformat()

    def save_crop(self, frame: StoredFrame, number: int, kind: str, data: bytes) -> Path:
        """A streak's crop (PNG) of a stored frame as ``<night>/streaks/<frame id>-<number>-<kind>.png``."""
        folder = frame.image_path.parent / "streaks"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        path = folder / f"{frame.frame_id}-{number}-{kind}.png"
        write_atomic(path, data)
        return path

    def save(
        self,
        night: date,
        taken_at: datetime,
        image: bytes,
        extension: str = "jpg",
        *,
        fits_bytes: bytes | None = None,
        linear_fits: bytes | None = None,
        clean_jpeg: bytes | None = None,
    ) -> StoredFrame:
        """Store the picture (``extension`` without the dot) and the other files given, all or none."""
        frame_id = frame_id_of(taken_at)
        folder = self.night_dir(night)
        image_path = folder / f"{frame_id}.{extension}"
        fits_path = folder / f"{frame_id}{RAW_FITS_SUFFIX}" if fits_bytes is not None else None
        linear_path = folder / f"{frame_id}{LINEAR_FITS_SUFFIX}" if linear_fits is not None else None
        clean_path = folder / CLEAN_FOLDER / f"{frame_id}.jpg" if clean_jpeg is not None else None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if clean_path is not None:
                clean_path.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        written: list[Path] = []
        files = ((image_path, image), (fits_path, fits_bytes), (linear_path, linear_fits), (clean_path, clean_jpeg))
        try:
            for path, data in files:
                if path is not None:
                    write_atomic(path, data)
                    written.append(path)
        except StorageError:
            for path in written:  # a frame is stored whole or not at all
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        stored = StoredFrame(
            frame_id=frame_id,
            night=night.isoformat(),
            image_path=image_path,
            fits_path=fits_path,
            linear_path=linear_path,
            clean_path=clean_path,
        )
        if clean_path is not None:
            prune_clean(clean_path.parent)
        return stored


def prune_clean(folder: Path, keep: int = CLEAN_KEEP) -> None:
    """Remove all but the newest ``keep`` pictures without overlay (names sort by time)."""
    with contextlib.suppress(OSError):
        for old in sorted(folder.glob("*.jpg"))[:-keep]:
            old.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` whole and durably (:func:`obsy.files.write_atomic`); a failure is a :class:`StorageError`."""
    try:
        files.write_atomic(path, data, durable=True)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
