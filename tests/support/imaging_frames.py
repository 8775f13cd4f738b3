"""Small FITS frames for the imaging tests, written from a capture program's header dump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

HEADERS = Path(__file__).resolve().parents[1] / "fixtures" / "imaging" / "headers"
#: Cards that describe the data layout: astropy writes them from the array.
STRUCTURAL = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE")


def header_dump(name: str) -> fits.Header:
    return fits.Header.fromstring((HEADERS / f"{name}.txt").read_text(), sep="\n")


def frame_header(program: str = "indi_ccd_simulator_light", **cards: Any) -> fits.Header:
    """A dump's header without its layout cards; ``cards`` set (or, with None, remove) keys."""
    header = header_dump(program)
    for key in STRUCTURAL:
        header.remove(key, ignore_missing=True, remove_all=True)
    for name, value in cards.items():
        key = name.replace("_", "-") if name in ("DATE_OBS", "CCD_TEMP", "SET_TEMP") else name
        if value is None:
            header.remove(key, ignore_missing=True)
        else:
            header[key] = value
    return header


def pixels(seed: int = 0, shape: tuple[int, int] = (48, 64), dtype: Any = np.uint16) -> np.ndarray:
    """A different image for every seed, so every frame has its own hash."""
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 1000 + 100).astype(dtype)


def write_frame(
    path: Path,
    *,
    program: str = "indi_ccd_simulator_light",
    seed: int = 0,
    data: np.ndarray | None = None,
    compressed: bool = False,
    **cards: Any,
) -> Path:
    """A FITS frame with a real program's header; uint16 data stored with BZERO as cameras do."""
    header = frame_header(program, **cards)
    image = pixels(seed) if data is None else data
    path.parent.mkdir(parents=True, exist_ok=True)
    if compressed:
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, header=header)]).writeto(path)
    else:
        fits.PrimaryHDU(image, header=header).writeto(path)
    return path


def frame_bytes(**kwargs: Any) -> bytes:
    """The bytes of a frame as :func:`write_frame` writes it (for writing it slowly)."""
    import io

    header = frame_header(kwargs.pop("program", "indi_ccd_simulator_light"), **kwargs.pop("cards", {}))
    buffer = io.BytesIO()
    fits.PrimaryHDU(pixels(kwargs.pop("seed", 0)), header=header).writeto(buffer)
    return buffer.getvalue()


def star_field(
    *,
    fwhm_x: float = 3.0,
    fwhm_y: float | None = None,
    stars: int = 120,
    background: float = 500.0,
    shape: tuple[int, int] = (512, 640),
    seed: int = 0,
) -> np.ndarray:
    """A uint16 sky with Gaussian stars of a known FWHM (x, y) and Poisson noise: a known truth to grade."""
    rng = np.random.default_rng(seed)
    height, width = shape
    sigma_x, sigma_y = fwhm_x / 2.3548, (fwhm_y or fwhm_x) / 2.3548
    image = np.full(shape, background)
    box = int(4 * max(sigma_x, sigma_y)) + 2
    yy, xx = np.mgrid[-box : box + 1, -box : box + 1]
    for _ in range(stars):
        x0, y0 = rng.uniform(box + 2, width - box - 2), rng.uniform(box + 2, height - box - 2)
        ix, iy = int(x0), int(y0)
        dx, dy = xx + ix - x0, yy + iy - y0
        star = rng.uniform(800, 6000) * np.exp(-(dx**2) / (2 * sigma_x**2) - dy**2 / (2 * sigma_y**2))
        image[iy - box : iy + box + 1, ix - box : ix + box + 1] += star
    return rng.poisson(image).clip(0, 65535).astype(np.uint16)
