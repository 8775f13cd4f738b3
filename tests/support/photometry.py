"""Sky-simulator light frames for the photometry and plate-solving tests: written as the main camera
writes them, optionally with the TAN WCS a capture program's own solve would add, and calibrated with
the simulator's known answers (the noise-free master dark and the flat field)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy_imaging.photometry.aperture import CcdNoise
from obsy_skysim.field import FieldFrame, FieldRenderer
from obsy_skysim.fitsfile import FrameDescription, fits_bytes
from obsy_skysim.sky import sky_conditions_at
from tests.support.skysim import SITE


def main_camera_description(
    renderer: FieldRenderer,
    frame: FieldFrame,
    frame_type: str = "light",
    exposure_s: float | None = None,
    gain: float | None = None,
) -> FrameDescription:
    """The main camera's keywords of ``frame`` (pointing, focal length, site); ``exposure_s`` and
    ``gain``: the frame's own unless given."""
    spec = renderer.sensor.spec
    return FrameDescription(
        instrument="SkySim Camera",
        frame_type=frame_type,
        exposure_s=frame.exposure_s if exposure_s is None else exposure_s,
        gain=frame.gain if gain is None else gain,
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


def write_light(
    path: Path,
    renderer: FieldRenderer,
    frame: FieldFrame,
    *,
    with_wcs: bool = False,
    calibrated: bool = False,
    keywords: dict[str, tuple[object, str]] | None = None,
) -> Path:
    """The frame as a FITS file with the main camera's keywords (pointing, focal length, site), and
    ``keywords`` (name: (value, comment)) added, as a capture program adds its own."""
    raw = fits_bytes(frame.image, main_camera_description(renderer, frame))
    if not (with_wcs or calibrated or keywords):
        path.write_bytes(raw)
        return path
    with fits.open(io.BytesIO(raw)) as hdul:  # the camera's header, changed before the one write
        header, data = hdul[0].header.copy(), hdul[0].data.copy()
    if calibrated:
        data = calibrate(renderer, frame)
        for key in ("BZERO", "BSCALE"):  # a float image has no integer scaling
            header.remove(key, ignore_missing=True)
    if with_wcs:
        header.update(simulator_wcs(renderer, frame.pointing))
    for key, card in (keywords or {}).items():
        header[key] = card
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


# --- a night of a scripted variable: frames, the sequence, and the figures of its light curve ------
@dataclass(frozen=True)
class NightPoint:
    """One reduced frame of a night against the scenario's truth."""

    expected: float
    mag: float | None
    mag_err: float | None
    snr: float | None
    check_residual: float | None
    check_err: float | None
    airmass: float | None


def night_sequence(
    renderer: FieldRenderer, frame: FieldFrame, variable, *, far_px: float = 30.0, stars: int | None = None
):
    """The variable with an ensemble of isolated 10.5–12.5 mag field stars (the last one the check
    star) at least ``far_px`` from it; the catalogue magnitudes are the simulator's. ``stars``: only
    that many (comparisons and check star), the nearest to the variable, as a chart would give."""
    from obsy_imaging.photometry.differential import Sequence, Star
    from obsy_skysim.field import isolated

    truth, s = frame.truth, renderer.sensor.spec
    x, y, mag = truth.x, truth.y, truth.stars.mag
    inside = (x > 40) & (x < s.width - 40) & (y > 40) & (y < s.height - 40)
    alone = isolated(x, y, mag, others=(x, y, mag), radius=20.0, max_share=0.002)
    pick = np.flatnonzero(inside & alone & (mag >= 10.5) & (mag <= 12.5))
    where = truth.variables[variable.name]
    distance = np.hypot(x[pick] - where.x, y[pick] - where.y)
    pick = pick[distance > far_px]
    if stars is not None:
        pick = np.sort(pick[np.argsort(distance[distance > far_px])[:stars]])
    ra, dec = truth.stars.ra, truth.stars.dec
    comparisons = tuple(Star(f"C{j}", float(ra[i]), float(dec[i]), float(mag[i])) for j, i in enumerate(pick[:-1]))
    check = Star("K", float(ra[pick[-1]]), float(dec[pick[-1]]), float(mag[pick[-1]]))
    return Sequence(Star(variable.name, variable.ra, variable.dec), comparisons, check, chart_id=None)


def write_night(
    renderer: FieldRenderer,
    scenario,
    variable,
    *,
    pointing: tuple[float, float],
    times: list[datetime],
    folder: Path,
    exposure_s: float,
    gain: float,
    seed: int = 1000,
    stars: int | None = None,
):
    """Calibrated lights with a header WCS, one per start time; returns (paths, the variable's true
    magnitude at each mid-exposure, the sequence from the first frame)."""
    from datetime import timedelta

    paths, expected, sequence = [], [], None
    for i, (when, conditions) in enumerate(zip(times, sky_conditions_at(renderer.site, times), strict=True)):
        frame = renderer.render(
            when, pointing, exposure_s, gain, scenario=scenario, seed=seed + i, conditions=conditions
        )
        if sequence is None:
            sequence = night_sequence(renderer, frame, variable, stars=stars)
        paths.append(write_light(folder / f"light_{i:04d}.fits", renderer, frame, with_wcs=True, calibrated=True))
        expected.append(variable.magnitude(when + timedelta(seconds=exposure_s / 2)))
    return paths, expected, sequence


def night_point(reduced, expected: float) -> NightPoint:
    m = reduced.magnitudes
    return NightPoint(
        expected,
        m.mag,
        m.mag_err,
        m.target.snr if m.target is not None else None,
        m.check_residual,
        m.check_err,
        reduced.target_airmass,
    )


def night_figures(points: list[NightPoint]) -> dict[str, float]:
    """The light curve's figures: shares of points within 1, 2 and 3 of their errors of the truth
    (a Gaussian's: 68.3, 95.4 and 99.7 %), the median |error| at SNR ≥ 100, the residuals' scatter
    against the reported errors, and the check star's χ² about its weighted mean."""
    good = [p for p in points if p.mag is not None]
    residual = np.array([p.mag - p.expected for p in good])
    err = np.array([p.mag_err for p in good])
    snr = np.array([p.snr for p in good])
    z = residual / err
    bright = snr >= 100
    checked = [p for p in good if p.check_residual is not None]
    k = np.array([p.check_residual for p in checked])
    k_err = np.array([p.check_err for p in checked])
    w = 1.0 / k_err**2
    k_mean = float(np.sum(w * k) / np.sum(w))
    chi2 = float(np.sum(((k - k_mean) / k_err) ** 2))
    return {
        "frames": len(points),
        "with_magnitude": len(good),
        "within_1_sigma": float(np.mean(np.abs(z) <= 1)),
        "within_2_sigma": float(np.mean(np.abs(z) <= 2)),
        "within_3_sigma": float(np.mean(np.abs(z) <= 3)),
        "median_abs_error": float(np.median(np.abs(residual))),
        "snr_100_points": int(np.sum(bright)),
        "median_abs_error_snr_100": float(np.median(np.abs(residual[bright]))) if bright.any() else float("nan"),
        "rms": float(np.sqrt(np.mean(residual**2))),
        "mean_residual": float(np.mean(residual)),
        "scatter": float(np.std(residual)),
        "median_reported_error": float(np.median(err)),
        "reduced_chi2": float(np.mean(z**2)),  # against the truth: 1 when the errors are right
        "check_points": len(checked),
        "check_mean": k_mean,
        "check_scatter": float(np.std(k)),
        "check_median_error": float(np.median(k_err)) if len(k_err) else float("nan"),
        "check_chi2": chi2,
        "check_reduced_chi2": chi2 / max(len(k) - 1, 1),
    }


def describe_night(f: dict[str, float]) -> str:
    return (
        f"{f['with_magnitude']}/{f['frames']} frames with a magnitude; within 1σ {f['within_1_sigma']:.1%}, "
        f"2σ {f['within_2_sigma']:.1%}, 3σ {f['within_3_sigma']:.1%}; median |error| {f['median_abs_error']:.4f} mag "
        f"({f['median_abs_error_snr_100']:.4f} at SNR ≥ 100, {f['snr_100_points']} points); RMS {f['rms']:.4f} "
        f"(mean {f['mean_residual']:+.4f}, scatter {f['scatter']:.4f}) against a median reported error "
        f"{f['median_reported_error']:.4f}: reduced χ² {f['reduced_chi2']:.2f}; check star {f['check_points']} points, "
        f"mean {f['check_mean']:+.4f}, scatter {f['check_scatter']:.4f}, median error {f['check_median_error']:.4f}, "
        f"reduced χ² {f['check_reduced_chi2']:.2f}"
    )
