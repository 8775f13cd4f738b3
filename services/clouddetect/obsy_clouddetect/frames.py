"""Reading the frame an AllskyFrame event points at: file:// URLs, paths under data_dir, http(s).

JPEG, PNG and TIFF (8 or 16 bit) go through OpenCV; FITS (what INDI cameras send) through
astropy. Every failure is a :class:`FrameError` naming the URL and what went wrong.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")
MAX_FRAME_BYTES = 256 * 1024 * 1024


class FrameError(Exception):
    """A frame that cannot be fetched or decoded."""


def resolve_path(url: str, data_dir: Path) -> Path | None:
    """The local file of a file:// URL or a plain path (relative ones under ``data_dir``); None for http(s)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise FrameError(f"frame URL {url!r} names another host; only local file:// URLs are read")
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # a one-letter scheme is a Windows drive
        raise FrameError(f"frame URL {url!r} has unsupported scheme {parsed.scheme!r} (file, http, https or a path)")
    base = data_dir.resolve()
    path = (base / url).resolve()
    if not path.is_relative_to(base):
        raise FrameError(f"frame path {url!r} points outside data_dir {base}")
    return path


def read_bytes(url: str, data_dir: Path, timeout: float) -> bytes:
    path = resolve_path(url, data_dir)
    if path is None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read(MAX_FRAME_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise FrameError(f"cannot fetch frame {url}: {exc}") from None
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FrameError(f"cannot read frame {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError(f"frame {url} is larger than {MAX_FRAME_BYTES // 2**20} MiB")
    if not data:
        raise FrameError(f"frame {url} is empty")
    return data


def decode(data: bytes, name: str) -> np.ndarray:
    """An image array: (H, W) or (H, W, 3) BGR, uint8, uint16 or float32."""
    if name.lower().endswith(FITS_SUFFIXES) or data[:9] == b"SIMPLE  =":
        return _decode_fits(data, name)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameError(f"frame {name} is not an image OpenCV can read (JPEG, PNG, TIFF) nor FITS")
    return image


def _decode_fits(data: bytes, name: str) -> np.ndarray:
    import io
    import warnings

    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a broken header is reported below, once
            with fits.open(io.BytesIO(data), memmap=False) as hdus:
                hdu = next((h for h in hdus if getattr(h, "data", None) is not None and h.data.ndim >= 2), None)
                if hdu is None:
                    raise FrameError(f"FITS frame {name} holds no image")
                image = np.asarray(hdu.data, dtype=np.float32)
    except FrameError:
        raise
    except Exception as exc:  # astropy raises many kinds for broken files
        raise FrameError(f"FITS frame {name} cannot be read: {exc}") from None
    if image.ndim == 3:  # colour FITS is (3, H, W); OpenCV order is (H, W, BGR)
        image = np.ascontiguousarray(np.moveaxis(image[:3], 0, -1)[:, :, ::-1])
    return image


def load_frame(url: str, data_dir: Path, timeout: float = 10.0) -> np.ndarray:
    return decode(read_bytes(url, data_dir, timeout), urllib.parse.urlparse(url).path or url)
