"""The FITS file a simulated camera sends: a 16-bit image with the keywords INDI's CCD drivers write.

INDI's ``INDI::CCD::addFITSKeywords`` writes ROWORDER, INSTRUME, EXPTIME, DARKTIME, CCD-TEMP,
PIXSIZE1/2, XBINNING/YBINNING, XPIXSZ/YPIXSZ, FRAME, IMAGETYP, GAIN, OFFSET, BAYERPAT with
XBAYROFF/YBAYROFF for colour sensors, DATE-OBS (UTC, the start of the exposure), the site
when it knows one, and OBJECT and OBSERVER where a client set them (its ``FITS_HEADER``). The
simulator adds what it knows to be true under SIM* keywords.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from astropy.io import fits

FRAME_KEYWORDS = {
    "light": ("Light", "Light Frame"),
    "dark": ("Dark", "Dark Frame"),
    "bias": ("Bias", "Bias Frame"),
    "flat": ("Flat Field", "Flat Frame"),
}


@dataclass(frozen=True)
class FrameDescription:
    instrument: str
    frame_type: str
    exposure_s: float
    gain: float
    offset_adu: float
    temperature_c: float
    pixel_um: float
    binning: int
    started: datetime
    bayer: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    simulator: dict[str, tuple[Any, str]] | None = None  # SIM* keywords: value and comment
    texts: dict[str, str] | None = None  # OBJECT, OBSERVER: what a client set through FITS_HEADER


def fits_bytes(image: np.ndarray, d: FrameDescription) -> bytes:
    """The FITS file (bytes) of a uint16 image, top row first (ROWORDER TOP-DOWN, as INDI sends)."""
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint16 image, not {image.dtype} {image.shape}")
    hdu = fits.PrimaryHDU(image)  # astropy writes uint16 as BITPIX 16 with BZERO 32768
    h = hdu.header
    frame, imagetyp = FRAME_KEYWORDS[d.frame_type]
    started = d.started.astimezone(UTC).replace(tzinfo=None)
    cards: list[tuple[str, Any, str]] = [
        ("ROWORDER", "TOP-DOWN", "Order of rows in image array"),
        ("INSTRUME", d.instrument, "CCD Name"),
        ("EXPTIME", float(d.exposure_s), "Total Exposure Time (s)"),
        ("DARKTIME", float(d.exposure_s), "Total Dark Exposure Time (s)"),
        ("CCD-TEMP", round(float(d.temperature_c), 2), "CCD Temperature (Celsius)"),
        ("PIXSIZE1", float(d.pixel_um), "Pixel Size 1 (microns)"),
        ("PIXSIZE2", float(d.pixel_um), "Pixel Size 2 (microns)"),
        ("XBINNING", int(d.binning), "Binning factor in width"),
        ("YBINNING", int(d.binning), "Binning factor in height"),
        ("XPIXSZ", float(d.pixel_um * d.binning), "X binned pixel size in microns"),
        ("YPIXSZ", float(d.pixel_um * d.binning), "Y binned pixel size in microns"),
        ("FRAME", frame, "Frame Type"),
        ("IMAGETYP", imagetyp, "Frame Type"),
        ("GAIN", float(d.gain), "Gain"),
        ("OFFSET", float(d.offset_adu), "Offset"),
    ]
    if d.bayer and d.binning == 1:
        cards += [
            ("XBAYROFF", 0, "X offset of Bayer array"),
            ("YBAYROFF", 0, "Y offset of Bayer array"),
            ("BAYERPAT", d.bayer, "Bayer color pattern"),
        ]
    if d.latitude is not None and d.longitude is not None:
        cards += [("SITELAT", float(d.latitude), "Latitude (degrees)"), ("SITELONG", float(d.longitude), "Longitude")]
    cards.append(("DATE-OBS", started.isoformat(timespec="milliseconds"), "UTC start date of observation"))
    for key, text in (d.texts or {}).items():
        cards.append((key, text, key.capitalize()))
    for key, (value, comment) in (d.simulator or {}).items():
        cards.append((key, value, comment))
    for key, value, comment in cards:
        h[key] = (value, comment)
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()
