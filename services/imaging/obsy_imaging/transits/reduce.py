"""A transit night from its frames: calibrated lights of one target → the host's light curve against
an ensemble of comparison stars chosen automatically.

Two passes over the night, so that a full-size night never sits in memory at once:

1. **Headers** (every frame): the normalised header, the WCS (the header's, else a plate solve:
   :func:`obsy_imaging.photometry.light.open_light`), the host's pixel position, BJD_TDB and the
   host's airmass at mid-exposure (:func:`~obsy_imaging.headers.normalise.exposure_timing`; the
   airmass for all frames at once, :func:`~obsy_imaging.headers.normalise.airmasses`; the site from
   the header or the one given).
2. **Reference frame**: of a few frames spread over the night, the one with the sharpest stars
   among those that show most of them. Its sources (``sep``, the grader's extraction) give the
   comparison candidates: unsaturated (peak below ``linearity`` × saturation), clear of the edge,
   isolated (no other detection within ``isolation_apertures`` aperture radii), and within a
   factor ``brightness_range`` of the host's flux. No catalogue colour is used: the simulator's and
   most observers' frames carry none offline, so a colour difference shows as a slow airmass trend
   that the fit's detrending takes (``Detrending``), and is not a reason to drop a star.
3. **Photometry** (every frame): the host and the candidates placed by the WCS, shifted by the
   frame's median centroid offset (guiding drift, a WCS off by a pixel), aperture sums with the
   local sky from :mod:`obsy_imaging.photometry.aperture` (radius ``aperture_fwhm`` × the frame's
   FWHM: the median of the stars' second moments, the grader's definition without a source
   extraction of the whole frame), errors from the CCD equation.
4. **The night**: frames whose comparisons gave less than ``cloud_fraction`` of their median flux
   are rejected (clouds); each candidate's relative light curve against the others is fitted with a
   straight line in airmass, and the one with the largest robust scatter for its expected noise is
   dropped while it stands out (a variable or noisy star), the rest weighted by the inverse variance
   of their relative curves, the best ``max_comparisons`` kept. Host / ensemble is the light curve,
   its error the host's and the ensemble's propagated.

A frame that cannot be measured is rejected with its reason; only a night with nothing usable left
raises :class:`TransitReductionError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from obsy import astro
from obsy_imaging.grading.measure import GAUSSIAN_FWHM_PER_SIGMA, Extraction, extract_stars
from obsy_imaging.headers.model import FrameHeader, FrameType
from obsy_imaging.headers.normalise import Site, airmasses, exposure_timing
from obsy_imaging.photometry.aperture import Apertures, CcdNoise, StarFlag, measure
from obsy_imaging.photometry.light import open_light, read_pixels
from obsy_imaging.transits.lightcurve import LightCurve

#: Flags that make a star's flux in a frame unusable.
UNUSABLE = StarFlag.OFF_FRAME | StarFlag.SATURATED | StarFlag.NON_LINEAR | StarFlag.NO_SKY
MIN_POINTS = 10  # what a transit fit takes (LightCurve)


class TransitReductionError(ValueError):
    """A night with nothing usable left; the message says why."""


@dataclass(frozen=True)
class TransitReductionSettings:
    aperture_fwhm: float = 1.5  # aperture radius in FWHMs of the frame
    sky_inner_fwhm: float = 3.0
    sky_outer_fwhm: float = 5.0
    max_comparisons: int = 10
    candidates: int = 25  # measured in every frame; the ensemble is chosen from them
    min_comparisons: int = 2
    brightness_range: float = 6.0  # comparisons within this factor of the host's flux, either way
    isolation_apertures: float = 3.0  # no other source within this many aperture radii
    linearity: float = 0.8  # share of the saturation level a comparison's peak must stay below
    saturation_adu: float | None = None  # else the header's SATURATE/DATAMAX, else from the data
    noise: CcdNoise | None = None  # else EGAIN/RDNOISE from the header, else 1 e/ADU and no read noise
    clip_sigma: float = 4.0  # a comparison whose scatter stands this far out (robustly) is dropped
    cloud_fraction: float = 0.5  # frames whose comparisons give less than this of their median: clouds
    max_missing: float = 0.2  # a candidate not measurable in more than this share of frames is dropped
    reference_samples: int = 5  # frames tried as the reference
    solve_timeout_s: float = 30.0
    index_dirs: tuple[Path, ...] = ()  # astrometry.net's index folders; empty = the system's
    keep_solutions: bool = False  # a plate solve kept beside each frame, reused (astrometry/kept.py)
    filter_code: str | None = None  # the AAVSO filter code; else the header's FILTER, else "CV"


@dataclass(frozen=True)
class ComparisonStar:
    ra_deg: float
    dec_deg: float
    mean_flux: float  # ADU per second, over the night
    scatter: float  # robust scatter of its relative curve against the others, relative
    weight: float  # in the ensemble, normalised to a sum of 1 (0 for a rejected star)


@dataclass(frozen=True)
class FramePoint:
    path: Path
    bjd_tdb: float  # mid-exposure
    flux: float  # host / ensemble
    error: float
    airmass: float
    background: float  # sky per pixel about the host, ADU
    fwhm: float  # pixels
    x: float  # the host's position, 0-based pixels
    y: float
    comparisons: tuple[int, ...]  # indices into the ensemble of the stars used in this frame


@dataclass(frozen=True)
class NightLightCurve:
    light_curve: LightCurve
    points: list[FramePoint]
    ensemble: list[ComparisonStar]
    rejected_comparisons: list[tuple[ComparisonStar, str]]
    rejected_frames: list[tuple[Path, str]]
    reference: Path
    notes: tuple[str, ...] = ()
    #: Wall-clock seconds of each stage: headers, reference, photometry, ensemble.
    stage_seconds: dict[str, float] = field(default_factory=dict)


# --- pass 1: headers, positions, times ----------------------------------------------------
@dataclass
class _Planned:
    path: Path
    header: FrameHeader
    raw: dict
    wcs: WCS
    shape: tuple[int, int]  # height, width
    bjd_tdb: float
    airmass: float  # NaN until _plan_all has computed it
    exposure_s: float
    mid_utc: datetime
    site: Site


def _plan(
    path: Path, host: SkyCoord, site: Site, settings: TransitReductionSettings
) -> tuple[_Planned | None, str | None]:
    light = open_light(
        path,
        site=site,
        solve_timeout_s=settings.solve_timeout_s,
        with_pixels=False,
        index_dirs=list(settings.index_dirs),
        keep_solution=settings.keep_solutions,
    )
    if light.problem is not None:
        return None, light.problem
    h, raw = light.header, light.raw_header
    if h.frame_type is not FrameType.LIGHT:
        return None, f"not a light frame ({h.frame_type.value})"
    if h.date_obs is None or not h.exposure_s:
        return None, "no exposure start (DATE-OBS) or exposure time (EXPTIME)"
    width, height = int(raw.get("NAXIS1", 0)), int(raw.get("NAXIS2", 0))
    x, y = (float(v) for v in light.solution.wcs.all_world2pix(host.ra.deg, host.dec.deg, 0))
    if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= width - 1 and 0 <= y <= height - 1):
        return None, f"host off the frame (at x {x:.0f}, y {y:.0f} of {width} × {height})"
    latitude = h.site_latitude if h.site_latitude is not None else site.latitude
    longitude = h.site_longitude if h.site_longitude is not None else site.longitude
    elevation = h.site_elevation_m if h.site_elevation_m is not None else site.elevation
    timing = exposure_timing(
        h.date_obs,
        exposure_s=h.exposure_s,
        ra=host.ra.deg,
        dec=host.dec.deg,
        latitude=latitude,
        longitude=longitude,
        elevation=elevation,
        need_airmass=False,  # for all frames at once, by _plan_all
    )
    mid = h.date_obs + timedelta(seconds=h.exposure_s / 2)
    planned = _Planned(
        path,
        h,
        dict(raw),
        light.solution.wcs,
        (height, width),
        timing.bjd_tdb_mid,
        math.nan,
        h.exposure_s,
        mid,
        Site(latitude, longitude, elevation),
    )
    return planned, None


def _plan_all(
    frames: Sequence[Path],
    host: SkyCoord,
    site: Site,
    settings: TransitReductionSettings,
    rejected: list[tuple[Path, str]],
) -> list[_Planned]:
    """The frames that can be placed, in time order; the others into ``rejected``."""
    plans = [(Path(path), *_plan(Path(path), host, site, settings)) for path in frames]
    # The host's airmass in one coordinate transform per site, not one per frame (5 ms each).
    placed = [p for _, p, _ in plans if p is not None]
    for at in {p.site for p in placed}:
        here = [p for p in placed if p.site == at]
        times = Time([p.mid_utc for p in here], scale="utc", location=astro.location(at))
        for p, airmass in zip(here, airmasses(times, host.ra.deg, host.dec.deg), strict=True):
            p.airmass = float(airmass)
    planned = []
    for path, p, why in plans:
        if p is None:
            rejected.append((path, why))
        elif not math.isfinite(p.airmass):
            rejected.append((path, "host below 3° altitude at mid-exposure"))
        else:
            planned.append(p)
    if not planned:
        raise TransitReductionError(_nothing_left(len(frames), rejected, "no frame could be placed"))
    return sorted(planned, key=lambda p: p.bjd_tdb)


# --- the reference frame and the candidates -----------------------------------------------
def _saturation(settings: TransitReductionSettings, raw: dict, image: np.ndarray) -> tuple[float, str | None]:
    """The level at which a pixel clips: the settings', the header's, or the data's plateau."""
    if settings.saturation_adu is not None:
        return settings.saturation_adu, None
    for key in ("SATURATE", "DATAMAX"):
        value = raw.get(key)
        if isinstance(value, int | float) and value > 0:
            return float(value), None
    top = float(np.nanmax(image))
    if np.count_nonzero(image >= 0.995 * top) >= 4:  # a clipped plateau
        return 0.995 * top, f"saturation taken from the data's plateau: {0.995 * top:.0f} ADU"
    return 65535.0, "no saturation level in the settings, the header or the data: 65535 ADU assumed"


def _noise(settings: TransitReductionSettings, raw: dict) -> tuple[CcdNoise, str | None]:
    if settings.noise is not None:
        return settings.noise, None
    gain, read = raw.get("EGAIN"), raw.get("RDNOISE")
    if isinstance(gain, int | float) and gain > 0:
        read_e = float(read) if isinstance(read, int | float) and read >= 0 else 0.0
        return CcdNoise(float(gain), read_e), None
    return CcdNoise(1.0, 0.0), "no camera gain (settings or EGAIN): errors assume 1 e/ADU and no read noise"


@dataclass
class _Reference:
    planned: _Planned
    fwhm: float
    saturation: float
    x: np.ndarray  # candidates' positions on the reference
    y: np.ndarray
    ra: np.ndarray
    dec: np.ndarray


def _choose_reference(
    planned: list[_Planned], host: SkyCoord, settings: TransitReductionSettings
) -> tuple[_Planned, np.ndarray, Extraction, float, str | None]:
    """Of a few frames spread over the night, judged in a window about the host: the sharpest among
    those showing at least 70 % of the most stars found. Returns (frame, its image, the extraction
    of the whole frame, the saturation level, a note)."""
    count = min(settings.reference_samples, len(planned))
    picks = sorted({round(i) for i in np.linspace(0, len(planned) - 1, count)})
    judged = []  # (stars, FWHM, frame)
    for i in picks:
        p = planned[i]
        try:
            image = read_pixels(p.path)
        except (OSError, ValueError, TypeError):
            continue  # the photometry pass rejects it with its reason
        saturation, _ = _saturation(settings, p.raw, image)
        x, y = (float(v) for v in p.wcs.all_world2pix(host.ra.deg, host.dec.deg, 0))
        stars, fwhm = _stars_and_seeing(extract_stars(image[_window(image.shape, x, y, 1024)], saturation=saturation))
        judged.append((stars, fwhm, p))
    most = max((j[0] for j in judged), default=0)
    if most == 0:
        raise TransitReductionError(f"no stars found in the {len(picks)} frames tried as the reference (clouds?)")
    best = min((j for j in judged if j[0] >= 0.7 * most), key=lambda j: j[1])[2]
    image = read_pixels(best.path)
    saturation, note = _saturation(settings, best.raw, image)
    return best, image, extract_stars(image, saturation=saturation), saturation, note


def _stars_and_seeing(found: Extraction) -> tuple[int, float]:
    """How many clean stars an extraction found, and their median FWHM (inf for none)."""
    s = found.sources
    if len(s) == 0:
        return 0, math.inf
    return len(s), float(np.median(GAUSSIAN_FWHM_PER_SIGMA * np.sqrt((s["a"] ** 2 + s["b"] ** 2) / 2.0)))


def _window(shape: tuple[int, int], x: float, y: float, size: int) -> tuple[slice, slice]:
    """A ``size`` square about (x, y), moved inside the image."""
    height, width = shape
    x0 = int(min(max(0, round(x) - size // 2), max(0, width - size)))
    y0 = int(min(max(0, round(y) - size // 2), max(0, height - size)))
    return slice(y0, min(height, y0 + size)), slice(x0, min(width, x0 + size))


def _candidates(
    planned: _Planned,
    image: np.ndarray,
    found: Extraction,
    host: SkyCoord,
    *,
    saturation: float,
    noise: CcdNoise,
    settings: TransitReductionSettings,
) -> tuple[_Reference, list[tuple[ComparisonStar, str]]]:
    s = found.sources
    _, fwhm = _stars_and_seeing(found)
    if not math.isfinite(fwhm):
        raise TransitReductionError(f"no stars found on the reference frame {planned.path.name}")
    apertures = _apertures(fwhm, settings)
    hx, hy = (float(v) for v in planned.wcs.all_world2pix(host.ra.deg, host.dec.deg, 0))
    hx, hy, _ = _centroid(image, np.array([hx]), np.array([hy]), fwhm)
    host_m = measure(image, hx, hy, apertures, noise, saturation_adu=saturation)
    host_flux = float(host_m.flux[0])
    if not host_flux > 0 or host_m.flags[0] & UNUSABLE:
        why = _describe(StarFlag(int(host_m.flags[0]))) or "no light above the sky"
        raise TransitReductionError(f"the host cannot be measured on the reference frame {planned.path.name}: {why}")
    x, y = s["x"].astype(float), s["y"].astype(float)
    m = measure(image, x, y, apertures, noise, saturation_adu=saturation, linearity_adu=settings.linearity * saturation)
    ra, dec = planned.wcs.all_pix2world(x, y, 0)
    ratio = m.flux / host_flux
    similar = (ratio >= 1.0 / settings.brightness_range) & (ratio <= settings.brightness_range)
    not_host = np.hypot(x - hx[0], y - hy[0]) > 2.0 * apertures.radius
    detections = found.detections if found.detections is not None else s
    from scipy.spatial import cKDTree  # here, not at the top: importing the module stays light

    tree = cKDTree(np.column_stack([detections["x"], detections["y"]]))
    isolation = settings.isolation_apertures * apertures.radius
    nearest = np.full(len(x), np.inf)
    for i in np.flatnonzero(similar & not_host):  # the nearest other detection (the star itself is at 0)
        distance, _ = tree.query([x[i], y[i]], k=2, distance_upper_bound=isolation)
        nearest[i] = distance[1] if distance[0] < 0.5 else distance[0]
    rejected: list[tuple[ComparisonStar, str]] = []
    keep = []
    for i in np.flatnonzero(similar & not_host):
        star = ComparisonStar(float(ra[i]), float(dec[i]), float(m.flux[i] / planned.exposure_s), math.nan, 0.0)
        if m.flags[i] & UNUSABLE:
            rejected.append((star, f"on the reference frame: {_describe(StarFlag(int(m.flags[i])))}"))
        elif nearest[i] < isolation:
            rejected.append((star, f"a neighbour {nearest[i]:.1f} px away (isolation {isolation:.1f} px)"))
        else:
            keep.append(i)
    keep = sorted(keep, key=lambda i: abs(math.log(ratio[i])))
    for i in keep[settings.candidates :]:
        star = ComparisonStar(float(ra[i]), float(dec[i]), float(m.flux[i] / planned.exposure_s), math.nan, 0.0)
        rejected.append((star, f"more than {settings.candidates} candidates: farther from the host's brightness"))
    keep = np.array(keep[: settings.candidates], dtype=int)
    reference = _Reference(planned, fwhm, saturation, x[keep], y[keep], ra[keep], dec[keep])
    return reference, rejected


def _apertures(fwhm: float, settings: TransitReductionSettings) -> Apertures:
    return Apertures.from_fwhm(
        fwhm, aperture=settings.aperture_fwhm, inner=settings.sky_inner_fwhm, outer=settings.sky_outer_fwhm
    )


def _describe(flags: StarFlag) -> str:
    words = {
        StarFlag.OFF_FRAME: "off the frame",
        StarFlag.SATURATED: "saturated",
        StarFlag.NON_LINEAR: "beyond the linear range",
        StarFlag.NO_SKY: "no clean sky around it",
    }
    return ", ".join(text for flag, text in words.items() if flags & flag)


def _centroid(
    image: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intensity-weighted centroids in a box of ±1.5 FWHM (at least ±3 px) about each position, above
    the box's median, twice (the second about the first); and each star's FWHM from the second
    moments there (a Gaussian's 2.3548 σ; NaN where the box is empty or off the image)."""
    half = max(3, math.ceil(1.5 * fwhm))
    height, width = image.shape
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    cx, cy = x.astype(float).copy(), y.astype(float).copy()
    size = np.full(len(x), np.nan)
    for _ in range(2):
        ix, iy = np.rint(cx).astype(int), np.rint(cy).astype(int)
        ok = (ix - half >= 0) & (iy - half >= 0) & (ix + half < width) & (iy + half < height)
        ix, iy = np.where(ok, ix, half), np.where(ok, iy, half)
        boxes = image[iy[:, None, None] + oy[None], ix[:, None, None] + ox[None]].astype(np.float64)
        level = np.median(boxes.reshape(len(x), -1), axis=1)
        w = np.clip(boxes - level[:, None, None], 0.0, None)
        total = w.sum(axis=(1, 2))
        good = ok & (total > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mx = (w * ox[None]).sum(axis=(1, 2)) / total
            my = (w * oy[None]).sum(axis=(1, 2)) / total
            r2 = (w * ((ox[None] - mx[:, None, None]) ** 2 + (oy[None] - my[:, None, None]) ** 2)).sum(axis=(1, 2))
            size = np.where(good, GAUSSIAN_FWHM_PER_SIGMA * np.sqrt(r2 / total / 2.0), np.nan)
        cx, cy = np.where(good, ix + mx, cx), np.where(good, iy + my, cy)
    return cx, cy, size


# --- pass 2: photometry of each frame -------------------------------------------------------
@dataclass
class _Measured:
    planned: _Planned
    host_flux: float  # ADU per second
    host_err: float
    background: float
    fwhm: float
    x: float
    y: float
    flux: np.ndarray  # candidates, ADU per second (NaN where unusable)
    err: np.ndarray


class _Stamps:
    """The pixels about given positions (a few hundred kilobytes of a 50 MB frame) into a canvas of NaN
    kept from frame to frame: the aperture code ignores NaN sky pixels, and the apertures themselves
    lie well inside their stamps. Unscaled pixels (the calibrated float lights) are sliced from the
    file's memory map, which reads only the pages a stamp touches; scaled ones (16-bit integers with
    BZERO) by FITS sections, which scale only the stamp but read it row by row (ten times the CPU)."""

    def __init__(self) -> None:
        self.canvas: np.ndarray | None = None
        self.filled: list[tuple[slice, slice]] = []

    def read(self, path: Path, shape: tuple[int, int], x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
        if self.canvas is None or self.canvas.shape != shape:
            self.canvas = np.full(shape, np.nan, dtype=np.float32)
            self.filled = []
        for part in self.filled:
            self.canvas[part] = np.nan
        self.filled = []
        height, width = shape
        with fits.open(path) as hdul:
            hdu = hdul[0]
            if tuple(hdu.shape) != shape:
                raise ValueError(f"image {hdu.shape} does not match its header")
            scaled = hdu.header.get("BZERO", 0) != 0 or hdu.header.get("BSCALE", 1) != 1
            pixels = hdu.section if scaled else hdu.data
            for xi, yi in zip(x, y, strict=True):
                if not (math.isfinite(xi) and math.isfinite(yi)):
                    continue
                ix, iy = round(xi), round(yi)
                part = (
                    slice(max(0, iy - half), min(height, iy + half + 1)),
                    slice(max(0, ix - half), min(width, ix + half + 1)),
                )
                if part[0].start >= part[0].stop or part[1].start >= part[1].stop:
                    continue
                self.canvas[part] = pixels[part]
                self.filled.append(part)
        return self.canvas


def _measure_frame(
    p: _Planned,
    host: SkyCoord,
    ref: _Reference,
    noise: CcdNoise,
    *,
    settings: TransitReductionSettings,
    stamps: _Stamps,
) -> tuple[_Measured | None, str | None]:
    ra = np.concatenate([[host.ra.deg], ref.ra])
    dec = np.concatenate([[host.dec.deg], ref.dec])
    x, y = p.wcs.all_world2pix(ra, dec, 0)
    half = math.ceil(1.6 * settings.sky_outer_fwhm * ref.fwhm) + 8  # room for worse seeing and drift
    try:
        image = stamps.read(p.path, p.shape, x, y, half)
    except (OSError, ValueError, TypeError, IndexError) as exc:
        return None, f"cannot read {p.path.name}: {exc}"
    cx, cy, sizes = _centroid(image, x, y, ref.fwhm)
    shift = np.hypot(cx - x, cy - y)
    moved = np.isfinite(sizes) & (shift < 2.0 * ref.fwhm + 2.0)  # one that ran off to a neighbour says nothing
    if not moved.any():
        return None, "no stars where the WCS puts them (clouds, or a wrong WCS)"
    x = x + float(np.median((cx - x)[moved]))
    y = y + float(np.median((cy - y)[moved]))
    fwhm = float(np.median(sizes[moved]))
    if settings.sky_outer_fwhm * fwhm + float(np.max(shift[moved])) + 2 > half:
        image = read_pixels(p.path)  # seeing far worse than the reference's: the whole frame
    m = measure(
        image,
        x,
        y,
        _apertures(fwhm, settings),
        noise,
        saturation_adu=ref.saturation,
    )
    why = _host_problem(StarFlag(int(m.flags[0])), float(m.flux[0]))
    if why is not None:
        return None, why
    usable = (m.flags[1:] & UNUSABLE) == 0
    flux = np.where(usable, m.flux[1:], np.nan) / p.exposure_s
    err = np.where(usable, m.flux_err[1:], np.nan) / p.exposure_s
    measured = _Measured(
        p,
        float(m.flux[0]) / p.exposure_s,
        float(m.flux_err[0]) / p.exposure_s,
        float(m.sky_per_px[0]),
        float(fwhm),
        float(x[0]),
        float(y[0]),
        flux,
        err,
    )
    return measured, None


def _host_problem(flags: StarFlag, flux: float) -> str | None:
    if flags & StarFlag.OFF_FRAME:
        return "host too near the edge for its aperture and sky"
    if flags & (StarFlag.SATURATED | StarFlag.NON_LINEAR):
        return "saturated host (or beyond the linear range)"
    if flags & StarFlag.NO_SKY:
        return "no clean sky around the host"
    if not flux > 0:
        return "no light from the host above the sky (clouds?)"
    return None


# --- the night: clouds, the ensemble, the light curve ----------------------------------------
def _robust_std(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if len(values) < 3:
        return math.inf
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _relative_scatter(n: np.ndarray, weights: np.ndarray, airmass: np.ndarray, j: int) -> float:
    """Robust scatter of candidate ``j``'s normalised flux against the weighted mean of the others,
    about a straight line in airmass (a colour difference's extinction is not variability)."""
    others = np.delete(np.arange(n.shape[1]), j)
    w = np.where(np.isfinite(n[:, others]), weights[others][None, :], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ensemble = np.nansum(np.nan_to_num(n[:, others]) * w, axis=1) / w.sum(axis=1)
        ratio = n[:, j] / ensemble
    good = np.isfinite(ratio)
    if good.sum() < 3:
        return math.inf
    design = np.column_stack([np.ones(good.sum()), airmass[good] - airmass[good].mean()])
    coef, *_ = np.linalg.lstsq(design, ratio[good], rcond=None)
    return _robust_std(ratio[good] - design @ coef)


def _select_ensemble(
    measured: list[_Measured], settings: TransitReductionSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """(indices of the chosen candidates, their weights summing to 1, each candidate's scatter,
    [(candidate, why dropped)])."""
    flux = np.array([m.flux for m in measured])
    err = np.array([m.err for m in measured])
    airmass = np.array([m.planned.airmass for m in measured])
    dropped: list[tuple[int, str]] = []
    missing = np.mean(~np.isfinite(flux), axis=0)
    active = []
    for j in range(flux.shape[1]):
        if missing[j] > settings.max_missing:
            dropped.append((j, f"not measurable in {missing[j]:.0%} of the frames (saturated, off or no sky)"))
        else:
            active.append(j)
    scale = np.nanmedian(flux, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = flux / scale[None, :]
        expected = np.nanmedian(err / flux, axis=0)  # each star's typical relative error
    weights = np.where(np.isfinite(expected) & (expected > 0), 1.0 / expected**2, 0.0)
    scatter = np.full(flux.shape[1], math.inf)
    while len(active) > settings.min_comparisons:
        idx = np.array(active)
        sub = n[:, idx]
        scatter[idx] = [_relative_scatter(sub, weights[idx], airmass, k) for k in range(len(idx))]
        quality = scatter[idx] / expected[idx]  # 1 for a star as steady as its photon noise
        middle = float(np.median(quality))
        spread = _robust_std(quality)
        limit = max(middle + settings.clip_sigma * spread, 1.5 * middle)
        worst = int(np.argmax(quality))
        if not quality[worst] > limit:
            break
        j = int(idx[worst])
        dropped.append(
            (j, f"variable or noisy: scatter {scatter[j] * 1e3:.1f} ppt, {quality[worst]:.1f}× its expected noise")
        )
        active.remove(j)
        weights[idx] = np.where(np.isfinite(scatter[idx]) & (scatter[idx] > 0), 1.0 / scatter[idx] ** 2, weights[idx])
    idx = np.array(active, dtype=int)
    if len(idx) > 1:
        sub = n[:, idx]
        scatter[idx] = [_relative_scatter(sub, weights[idx], airmass, k) for k in range(len(idx))]
    w = np.where(np.isfinite(scatter[idx]) & (scatter[idx] > 0), 1.0 / scatter[idx] ** 2, weights[idx])
    order = np.argsort(-w)
    for k in order[settings.max_comparisons :]:
        dropped.append((int(idx[k]), f"not among the {settings.max_comparisons} best weighted"))
    keep = np.sort(order[: settings.max_comparisons])
    chosen, w = idx[keep], w[keep]
    return chosen, w / w.sum() if w.sum() > 0 else w, scatter, dropped


def reduce_night(
    frames: Sequence[Path],
    host: SkyCoord,
    *,
    site: Site,
    settings: TransitReductionSettings = TransitReductionSettings(),
) -> NightLightCurve:
    """The host's light curve of one night from its calibrated light frames (any order)."""
    rejected_frames: list[tuple[Path, str]] = []
    notes: list[str] = []
    clock = _Stopwatch()
    planned = _plan_all(frames, host, site, settings, rejected_frames)
    clock.lap("headers")
    reference, image, found, saturation, note = _choose_reference(planned, host, settings)
    if note:
        notes.append(note)
    noise, note = _noise(settings, reference.raw)
    if note:
        notes.append(note)
    ref, rejected = _candidates(reference, image, found, host, saturation=saturation, noise=noise, settings=settings)
    del image, found
    clock.lap("reference")
    if len(ref.ra) < settings.min_comparisons:
        raise TransitReductionError(
            f"only {len(ref.ra)} comparison candidates on the reference frame {reference.path.name} "
            f"(at least {settings.min_comparisons} are needed; {len(rejected)} similar stars were unsuitable)"
        )

    measured: list[_Measured] = []
    stamps = _Stamps()
    for p in planned:
        m, why = _measure_frame(p, host, ref, noise, settings=settings, stamps=stamps)
        if m is None:
            rejected_frames.append((p.path, why))
        else:
            measured.append(m)
    clock.lap("photometry")
    measured = _drop_cloudy(measured, rejected_frames, settings)
    measured = _drop_repeated_times(measured, rejected_frames)
    if len(measured) < MIN_POINTS:
        raise TransitReductionError(
            _nothing_left(len(frames), rejected_frames, f"{len(measured)} usable frames, a fit needs {MIN_POINTS}")
        )

    chosen, weights, scatter, dropped = _select_ensemble(measured, settings)
    stars = _stars(measured, ref, scatter)
    for j, why in dropped:
        rejected.append((stars[j], why))
    ensemble = [
        ComparisonStar(stars[j].ra_deg, stars[j].dec_deg, stars[j].mean_flux, stars[j].scatter, float(w))
        for j, w in zip(chosen, weights, strict=True)
    ]
    if len(ensemble) < settings.min_comparisons:
        raise TransitReductionError(f"only {len(ensemble)} steady comparison stars are left")
    points = _points(measured, chosen, weights)
    if len(points) < MIN_POINTS:
        raise TransitReductionError(_nothing_left(len(frames), rejected_frames, "too few frames with comparisons"))
    filter_code = settings.filter_code or reference.header.filter or "CV"
    exposure_s = float(np.median([m.planned.exposure_s for m in measured]))
    light_curve = _light_curve(points, filter_code, exposure_s)
    clock.lap("ensemble")
    return NightLightCurve(
        light_curve, points, ensemble, rejected, rejected_frames, reference.path, tuple(notes), clock.seconds
    )


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self._last
        self._last = now


def _light_curve(points: list[FramePoint], filter_code: str, exposure_s: float) -> LightCurve:
    """The fit's input: one point per frame, with the background, FWHM and position as regressors."""
    return LightCurve(
        time=np.array([p.bjd_tdb for p in points]),
        flux=np.array([p.flux for p in points]),
        flux_err=np.array([p.error for p in points]),
        airmass=np.array([p.airmass for p in points]),
        filter=filter_code,
        exposure_s=exposure_s,
        regressors={name: np.array([getattr(p, name) for p in points]) for name in ("background", "fwhm", "x", "y")},
    )


def _stars(measured: list[_Measured], ref: _Reference, scatter: np.ndarray) -> list[ComparisonStar]:
    flux = np.array([m.flux for m in measured])
    mean = np.nanmean(flux, axis=0)
    return [
        ComparisonStar(float(ref.ra[j]), float(ref.dec[j]), float(mean[j]), float(scatter[j]), 0.0)
        for j in range(len(ref.ra))
    ]


def _drop_cloudy(
    measured: list[_Measured], rejected: list[tuple[Path, str]], settings: TransitReductionSettings
) -> list[_Measured]:
    """Frames whose candidates gave less than ``cloud_fraction`` of their median flux (per second)."""
    if not measured:
        return measured
    flux = np.array([m.flux for m in measured])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nanmedian(flux / np.nanmedian(flux, axis=0)[None, :], axis=1)
    keep = []
    for m, s in zip(measured, share, strict=True):
        if not np.isfinite(s):
            rejected.append((m.planned.path, "no comparison star measurable"))
        elif s < settings.cloud_fraction:
            rejected.append((m.planned.path, f"clouds: the comparison stars gave {s:.0%} of their median flux"))
        else:
            keep.append(m)
    return keep


def _drop_repeated_times(measured: list[_Measured], rejected: list[tuple[Path, str]]) -> list[_Measured]:
    keep: list[_Measured] = []
    for m in measured:
        if keep and m.planned.bjd_tdb <= keep[-1].planned.bjd_tdb:
            rejected.append((m.planned.path, f"the same mid-exposure time as {keep[-1].planned.path.name}"))
        else:
            keep.append(m)
    return keep


def _points(measured: list[_Measured], chosen: np.ndarray, weights: np.ndarray) -> list[FramePoint]:
    flux = np.array([m.flux for m in measured])[:, chosen]
    err = np.array([m.err for m in measured])[:, chosen]
    scale = np.nanmedian(flux, axis=0)
    points = []
    for i, m in enumerate(measured):
        ok = np.isfinite(flux[i])
        if not ok.any():
            continue
        w = weights[ok] / weights[ok].sum()
        ensemble = float(np.sum(w * flux[i, ok] / scale[ok]))
        ensemble_err = float(math.sqrt(np.sum((w * err[i, ok] / scale[ok]) ** 2)))
        ratio = m.host_flux / ensemble
        error = ratio * math.hypot(m.host_err / m.host_flux, ensemble_err / ensemble)
        points.append(
            FramePoint(
                m.planned.path,
                m.planned.bjd_tdb,
                ratio,
                error,
                m.planned.airmass,
                m.background,
                m.fwhm,
                m.x,
                m.y,
                tuple(int(k) for k in np.flatnonzero(ok)),
            )
        )
    return points


def _nothing_left(total: int, rejected: list[tuple[Path, str]], what: str) -> str:
    reasons: dict[str, int] = {}
    for _, why in rejected:
        key = why.split(":")[0] if why.startswith(("cannot read", "header", "no WCS")) else why
        reasons[key] = reasons.get(key, 0) + 1
    common = "; ".join(f"{why} ({count})" for why, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:4])
    return f"nothing usable in {total} frames: {what}" + (f"; rejected: {common}" if common else "")


__all__ = [
    "ComparisonStar",
    "FramePoint",
    "NightLightCurve",
    "TransitReductionError",
    "TransitReductionSettings",
    "reduce_night",
]
