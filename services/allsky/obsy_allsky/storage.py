"""Where frames go: ``<data_dir>/allsky/<night YYYY-MM-DD>/<frame id>.jpg`` (and ``.fits`` when kept).

Files are written to a temporary name in the same folder and renamed, so a reader (the
clouddetect service, the web service) never sees half a file, and a failed write (a full disk)
leaves nothing behind and nothing already stored damaged. Every OSError becomes a
:class:`StorageError` naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import cv2
import numpy as np


class StorageError(OSError):
    """A frame could not be stored; the message names the path and the reason (e.g. disk full)."""


@dataclass(frozen=True)
class StoredFrame:
    frame_id: str
    night: str
    jpeg_path: Path
    fits_path: Path | None

    @property
    def url(self) -> str:
        """``file://`` URL of the JPEG (clouddetect resolves it under its data_dir)."""
        return self.jpeg_path.resolve().as_uri()


def encode_jpeg(rgb: np.ndarray, quality: int = 90, max_width: int | None = None) -> bytes:
    """JPEG bytes of an 8-bit RGB image, shrunk to ``max_width`` (area average) when it is wider."""
    image = rgb
    if max_width is not None and image.shape[1] > max_width:
        height = round(image.shape[0] * max_width / image.shape[1])
        image = cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {rgb.shape}")
    return buffer.tobytes()


class FrameStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "allsky"

    def night_dir(self, night: date) -> Path:
        return self.root / night.isoformat()

    def save(self, night: date, taken_at: datetime, jpeg: bytes, fits_bytes: bytes | None = None) -> StoredFrame:
        frame_id = taken_at.strftime("%Y%m%dT%H%M%S") + f"{taken_at.microsecond // 1000:03d}Z"
        folder = self.night_dir(night)
        jpeg_path = folder / f"{frame_id}.jpg"
        fits_path = folder / f"{frame_id}.fits" if fits_bytes is not None else None
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        write_atomic(jpeg_path, jpeg)
        if fits_path is not None:
            try:
                write_atomic(fits_path, fits_bytes)
            except StorageError:
                with contextlib.suppress(OSError):
                    jpeg_path.unlink()  # a frame is stored whole or not at all
                raise
        return StoredFrame(frame_id=frame_id, night=night.isoformat(), jpeg_path=jpeg_path, fits_path=fits_path)


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename: readers see all of it or nothing."""
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
