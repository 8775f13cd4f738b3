"""Sky-simulator light frames for the photometry and plate-solving tests: written as the main camera
writes them, optionally with the TAN WCS a capture program's own solve would add, and calibrated with
the simulator's known answers (the noise-free master dark and the flat field)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy_imaging.photometry.aperture import CcdNoise
from obsy_skysim.field import FieldFrame, FieldRenderer
from obsy_skysim.fitsfile import FrameDescription, fits_bytes
from tests.support.skysim import SITE


def write_light(
    path: Path, renderer: FieldRenderer, frame: FieldFrame, *, with_wcs: bool = False, calibrated: bool = False
) -> Path:
    """The frame as a FITS file with the main camera's keywords (pointing, focal length, site)."""
    spec = renderer.sensor.spec
    description = FrameDescription(
        instrument="SkySim Camera",
        frame_type="light",
        exposure_s=frame.exposure_s,
        gain=frame.gain,
        offset_adu=spec.offset_adu,
        temperature_c=spec.temperature_c,
        pixel_um=spec.pixel_um,
        binning=1,
        started=frame.when,
        latitude=SITE[0],
        longitude=SITE[1],
        simulator={
            "RA": (frame.pointing[0], "pointing, ICRS (degrees)"),
            "DEC": (frame.pointing[1], "pointing, ICRS (degrees)"),
            "FOCALLEN": (renderer.optics.focal_length_mm, "focal length (mm)"),
        },
    )
    path.write_bytes(fits_bytes(frame.image, description))
    if with_wcs or calibrated:
        header = fits.getheader(path)
        data = fits.getdata(path)
        if calibrated:
            data = calibrate(renderer, frame)
            for key in ("BZERO", "BSCALE"):  # a float image has no integer scaling
                header.remove(key, ignore_missing=True)
        if with_wcs:
            header.update(simulator_wcs(renderer, frame.pointing))
        fits.PrimaryHDU(data, header).writeto(path, overwrite=True)
    return path


def calibrate(renderer: FieldRenderer, frame: FieldFrame) -> np.ndarray:
    """(light − master dark) / flat, with the simulator's noise-free master and flat."""
    dark = renderer.sensor.master(frame.exposure_s, frame.gain)
    return ((frame.image.astype(np.float32) - dark) / renderer.flat_field(1)).astype(np.float32)


def simulator_wcs(renderer: FieldRenderer, pointing: tuple[float, float]) -> dict[str, object]:
    """The TAN projection the simulator renders with (north up, east left, position angle 0)."""
    s = renderer.sensor.spec
    scale = renderer.arcsec_per_pixel / 3600.0
    return {
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "CRVAL1": pointing[0],
        "CRVAL2": pointing[1],
        "CRPIX1": (s.width - 1) / 2.0 + 1.0,  # FITS pixels count from 1
        "CRPIX2": (s.height - 1) / 2.0 + 1.0,
        # The image's row 0 is the top (north up): y grows southwards, x westwards.
        "CD1_1": -scale,
        "CD1_2": 0.0,
        "CD2_1": 0.0,
        "CD2_2": -scale,
    }


def noise_of(renderer: FieldRenderer, gain: float, exposure_s: float, *, calibrated: bool) -> CcdNoise:
    spec = renderer.sensor.spec
    return CcdNoise(
        gain_e_per_adu=1.0 / spec.adu_per_electron(gain),
        read_noise_e=spec.read_noise_e,
        dark_e_per_px=spec.dark_current() * exposure_s,
        pedestal_adu=0.0 if calibrated else spec.offset_adu,
    )


def saturation_of(renderer: FieldRenderer, gain: float) -> float:
    spec = renderer.sensor.spec
    return spec.full_well_e * spec.adu_per_electron(gain) + spec.offset_adu


def when_each(start: datetime, count: int, step_s: float) -> list[datetime]:
    from datetime import timedelta

    return [start + timedelta(seconds=i * step_s) for i in range(count)]
