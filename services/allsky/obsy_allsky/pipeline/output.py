"""The stored picture: JPEG (on the GPU with nvImageCodec where installed), lossless PNG, FITS.

JPEG on the GPU backend uses NVIDIA's nvImageCodec (``pip install obsy-allsky[gpu]`` brings
``nvidia-nvimgcodec-cu12``) straight from device memory; everywhere else, or when it cannot
run, OpenCV (libjpeg-turbo) encodes on the host and the reason is logged once. PNG is
OpenCV's, 8 or 16 bits per channel. FITS keeps the fused linear RGB (float32, one plane per
colour) with a header.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from astropy.io import fits

from obsy_allsky.backend import Backend

log = logging.getLogger("obsy.allsky.pipeline")


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    extension: str  # "jpg" or "png", without the dot
    content_type: str
    encoder: str  # "nvimgcodec" or "opencv"


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, :, ::-1])


def encode_png(rgb: np.ndarray, compression: int = 3) -> bytes:
    """Lossless PNG of an (H, W, 3) uint8 or uint16 RGB image."""
    if rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG takes 8- or 16-bit images, not {rgb.dtype}")
    ok, buffer = cv2.imencode(".png", _bgr(rgb), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError(f"PNG encoding failed for a {rgb.shape} {rgb.dtype} image")
    return buffer.tobytes()


def encode_jpeg_cpu(rgb: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", _bgr(rgb), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {rgb.shape} {rgb.dtype} image")
    return buffer.tobytes()


def encode_fits(linear_rgb: np.ndarray, header: Mapping[str, Any] | None = None) -> bytes:
    """FITS bytes of an (H, W, 3) float image as a (3, H, W) float32 cube (NAXIS3 = R, G, B)."""
    hdu = fits.PrimaryHDU(np.ascontiguousarray(np.moveaxis(np.asarray(linear_rgb, np.float32), 2, 0)))
    hdu.header["COLORSPC"] = ("linear RGB", "planes R, G, B")
    for key, value in (header or {}).items():
        hdu.header[key] = value
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


class ImageEncoder:
    """Encodes finished frames per :class:`obsy_allsky.config.AllskyOutputConfig` on a backend."""

    def __init__(self, backend: Backend, config: Any) -> None:
        self.backend = backend
        self.config = config
        self._gpu_jpeg: Any | None = None
        if config.format == "jpeg" and config.gpu_jpeg and backend.name == "cupy":
            self._gpu_jpeg = _nvimgcodec_encoder()

    @property
    def jpeg_on_gpu(self) -> bool:
        return self._gpu_jpeg is not None

    def encode(self, image: Any, jpeg_quality: int = 90) -> EncodedImage:
        """Encode an (H, W, 3) RGB image, uint8 (or uint16 for 16-bit PNG), on the host or the device."""
        if self.config.format == "png":
            data = encode_png(self.backend.to_host(image), self.config.png_compression)
            return EncodedImage(data, "png", "image/png", "opencv")
        if self._gpu_jpeg is not None:
            try:
                return EncodedImage(self._gpu_jpeg(image, jpeg_quality), "jpg", "image/jpeg", "nvimgcodec")
            except Exception as exc:  # a codec failure must not lose the frame: encode on the host
                log.warning("GPU JPEG encoding failed (%s); OpenCV from now on", exc, extra={"event": "jpeg_cpu"})
                self._gpu_jpeg = None
        data = encode_jpeg_cpu(self.backend.to_host(image), jpeg_quality)
        return EncodedImage(data, "jpg", "image/jpeg", "opencv")


def _nvimgcodec_encoder() -> Any | None:
    """A function (device image, quality) → JPEG bytes on the GPU, or None (logged) where it cannot run."""
    try:
        from nvidia import nvimgcodec
    except ImportError as exc:
        log.info("JPEG on the CPU (OpenCV): nvImageCodec is not installed (%s)", exc, extra={"event": "jpeg_cpu"})
        return None
    try:
        encoder = nvimgcodec.Encoder()
    except Exception as exc:
        log.info("JPEG on the CPU (OpenCV): nvImageCodec cannot start (%s)", exc, extra={"event": "jpeg_cpu"})
        return None

    def params(quality: int) -> Any:
        try:  # nvImageCodec ≥ 0.6
            return nvimgcodec.EncodeParams(quality_type=nvimgcodec.QualityType.QUALITY, quality_value=quality)
        except (AttributeError, TypeError):
            return nvimgcodec.EncodeParams(quality=quality)

    def encode(image: Any, quality: int) -> bytes:
        out = encoder.encode(nvimgcodec.as_image(image), "jpeg", params=params(quality))
        if out is None:
            raise RuntimeError("nvImageCodec returned no data")
        return bytes(out)

    log.info("JPEG on the GPU (nvImageCodec)", extra={"event": "jpeg_gpu"})
    return encode
