"""One light frame on disk to the target's magnitude: the normalised header (mid-exposure JD,
BJD_TDB), the WCS (header or plate solve), apertures scaled to the frame's FWHM (the grader's
measurement), differential photometry; and the AAVSO observation of the result."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from astropy.time import Time
from astropy.utils.exceptions import AstropyWarning

from obsy import astro
from obsy.barycentre import light_travel_time_s
from obsy_imaging.astrometry.solve import Solution
from obsy_imaging.grading.measure import measure as measure_quality
from obsy_imaging.headers.model import FrameHeader
from obsy_imaging.headers.normalise import Site, exposure_timing
from obsy_imaging.photometry.aavso import ENSEMBLE, Observation
from obsy_imaging.photometry.aperture import Apertures, CcdNoise
from obsy_imaging.photometry.differential import FrameMagnitudes, Sequence, measure_sequence
from obsy_imaging.photometry.light import open_light
from obsy_imaging.photometry.transform import Transform


@dataclass
class ReducedFrame:
    path: Path
    header: FrameHeader | None = None
    solution: Solution | None = None
    fwhm_px: float | None = None
    target_airmass: float | None = None
    #: Heliocentric JD (UTC) at mid-exposure towards the target.
    hjd_mid: float | None = None
    magnitudes: FrameMagnitudes = field(default_factory=FrameMagnitudes)

    @property
    def reasons(self) -> list[str]:
        return self.magnitudes.reasons


def reduce_frame(
    path: str | Path,
    sequence: Sequence,
    noise: CcdNoise,
    *,
    site: Site | None = None,
    saturation_adu: float | None = None,
    solve_timeout_s: float = 30.0,
    fwhm_px: float | None = None,
    transform: Transform | None = None,
    index_dirs: list[Path] | None = None,
    keep_solution: bool = False,
) -> ReducedFrame:
    """Never raises for bad input: what went wrong is in ``reasons``. ``keep_solution``: see
    :func:`~obsy_imaging.photometry.light.open_light`."""
    light = open_light(
        path, site=site, solve_timeout_s=solve_timeout_s, index_dirs=index_dirs, keep_solution=keep_solution
    )
    reduced = ReducedFrame(light.path, header=light.header, solution=light.solution)
    if light.problem is not None:
        reduced.reasons.append(light.problem)
        return reduced
    h, raw_header, image = light.header, light.raw_header, light.image
    saturation = saturation_adu if saturation_adu is not None else float(raw_header.get("DATAMAX", 65535))
    if fwhm_px is None:
        fwhm_px = measure_quality(image, saturation=saturation).fwhm_px
    if fwhm_px is None:
        reduced.reasons.append("no stars to measure the seeing (FWHM) by")
        return reduced
    reduced.fwhm_px = fwhm_px
    reduced.magnitudes = measure_sequence(
        image,
        reduced.solution.wcs,
        sequence,
        Apertures.from_fwhm(fwhm_px),
        noise,
        saturation_adu=saturation,
        transform=transform,
    )
    reduced.target_airmass = _target_airmass(h, sequence)
    reduced.hjd_mid = _heliocentric_jd(h, sequence)
    return reduced


def _heliocentric_jd(h: FrameHeader, sequence: Sequence) -> float | None:
    t = sequence.target
    if None in (h.jd_mid, t.ra_deg, t.dec_deg, h.site_latitude, h.site_longitude):
        return None
    mid = Time(h.jd_mid, format="jd", scale="utc")
    where = astro.location(Site(h.site_latitude, h.site_longitude, h.site_elevation_m or 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)  # IERS predictions past their end: ms, not s
        seconds = light_travel_time_s(mid.tdb, t.ra_deg, t.dec_deg, where, heliocentric=True)
    return h.jd_mid + seconds / 86400.0


def _target_airmass(h: FrameHeader, sequence: Sequence) -> float | None:
    """The airmass towards the target itself (not the frame's centre), from the header's time and site."""
    t = sequence.target
    if None in (h.date_obs, h.exposure_s, t.ra_deg, t.dec_deg, h.site_latitude, h.site_longitude):
        return None
    return exposure_timing(
        h.date_obs,
        exposure_s=h.exposure_s,
        ra=t.ra_deg,
        dec=t.dec_deg,
        latitude=h.site_latitude,
        longitude=h.site_longitude,
        elevation=h.site_elevation_m or 0.0,
    ).airmass


def aavso_observation(
    reduced: ReducedFrame, sequence: Sequence, *, band: str, date_type: str = "JD", group: str | None = None
) -> Observation:
    """The AAVSO line of a reduced frame, dated at mid-exposure in JD (UTC) or HJD as the report's
    ``date_type`` says; raises ValueError if the frame has no magnitude or no such date."""
    m, h = reduced.magnitudes, reduced.header
    if m.mag is None or h is None or h.jd_mid is None:
        raise ValueError(f"{reduced.path.name} has no magnitude: {'; '.join(m.reasons) or 'not reduced'}")
    date = h.jd_mid if date_type == "JD" else reduced.hjd_mid if date_type == "HJD" else None
    if date is None:
        raise ValueError(f"{reduced.path.name} has no {date_type} (an HJD needs the target's coordinates and the site)")
    single = len(m.comparisons_used) == 1
    return Observation(
        name=sequence.target.label,
        date=date,
        mag=m.mag,
        mag_err=m.mag_err,
        filter=band,
        comparison=m.comparisons_used[0].star.label if single else ENSEMBLE,
        comparison_instrumental=m.comparisons_used[0].instrumental_mag if single else None,
        check=m.check.star.label if m.check is not None and m.check_mag is not None else None,
        check_instrumental=m.check.instrumental_mag if m.check is not None and m.check_mag is not None else None,
        airmass=reduced.target_airmass if reduced.target_airmass is not None else h.airmass,
        transformed=m.transformed,
        group=group,
        chart=sequence.chart_id,
    )
