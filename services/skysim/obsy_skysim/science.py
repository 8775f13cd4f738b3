"""A night of science over the simulator: a variable star and an exoplanet transit that happens *tonight*,
and everything OBSY's services need to observe, reduce and report them.

Given a site, a start time (UTC) and the main camera's settings (sensor and telescope: the field's
geometry), :func:`write_science_night` writes into one folder:

* ``scenario.yaml`` (:mod:`obsy_skysim.scenario`; the main camera's ``scenario``): a sine variable
  (``SIM-V1``: 10.5 mag, ±0.3 mag, a 24 min period, so that ten minutes show it change) and a
  transiting planet's host (``SIM-T1``, 10.0 mag) whose transit is short and soon: by default its
  mid-time 6 min after ``start``, 4 min from first to last contact, 2.5 % deep. The transit is the
  physical form (a limb-darkened star, a circular orbit): the imaging service's fit models exactly
  that, taking the period from the ephemeris and fitting the mid-time, Rp/R*, a/R* and the
  inclination. A 4 min transit of a 12 h orbit needs a/R* ≈ 64 (no real star is so small for its
  planet; the fit does not ask);
* ``planets.csv``: the planet ``SIM-T1 b`` as a NASA Exoplanet Archive export
  (:func:`obsy.transits.ephemeris.format_archive_csv`; ``scheduler.transits.ephemeris_file``): its
  mid-time ten orbits back in BJD_TDB, with small uncertainties, so that the scheduler's prediction
  of tonight's transit is the scenario's mid-time to well under a second;
* ``photometry-target.yaml``: the variable as an ``imaging.photometry`` target with the observer's
  own comparison stars: the simulator's isolated stars of similar brightness (9.5 to 12.5 mag by
  default) inside both fields, their catalogue magnitudes (V, as the simulator renders them), the
  nearest to the variable, the last of them the check star ``K``; it lists the transit target
  among its ``fields`` (the transit's frames hold the variable too);
* ``index/``: astrometry.net index files of the simulator's stars around both fields
  (:mod:`obsy_skysim.index`), for ``imaging.photometry.index_dirs`` and ``imaging.transits.index_dirs``;
* ``manifest.yaml``: the three targets for the scheduler (web API bodies: the transit target named
  as the planet, the variable as a time-series target, and an LRGB target near the zenith, the
  "nebula"), the configuration fragments that put the files above to use, and the truth.

Where: the transit host sits where no other star disturbs it, near the spot ``hour_angle_min``
west of the meridian at ``start`` and 5° from the zenith towards the equator (high, past the
meridian, so a German mount does not flip during the transit), or up to 2° north or south of there
where the field holds stars to compare the host with (:data:`TRANSIT_COMPARISONS`); the variable a sixth of the field's
shorter side north of it. The "nebula" field is 30 min east of the meridian at the site's latitude.
The simulator renders no nebulae: it is a star field observed like one (L, R, G, B), unless the
caller names a real one.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import yaml
from astropy.time import Time

from obsy import astro
from obsy.files import write_atomic
from obsy.transits.ephemeris import Ephemeris, format_archive_csv, transit_duration
from obsy.transits.predict import bjd_tdb
from obsy_skysim.allsky import Site
from obsy_skysim.config import MainCameraSettings, SiteSettings
from obsy_skysim.field import FieldRenderer, FieldStars, gnomonic, isolated
from obsy_skysim.scenario import Scenario, SineVariable, TransitHost, load_scenario

VARIABLE_NAME = "SIM-V1"
HOST_NAME = "SIM-T1"
PLANET_NAME = "SIM-T1 b"
NEBULA_NAME = "SIM-N1"
SCENARIO_FILE = "scenario.yaml"
EPHEMERIS_FILE = "planets.csv"
PHOTOMETRY_FILE = "photometry-target.yaml"
INDEX_DIR = "index"
MANIFEST_FILE = "manifest.yaml"
#: The ephemeris' mid-time lies this many orbits before tonight's transit.
EPOCHS_BACK = 10
#: A star disturbs a scripted star or a comparison when it lies this close and gives this share of its light.
ISOLATION_ARCSEC = 25.0
ISOLATION_SHARE = 0.01
#: The transit's field must hold at least ``TRANSIT_COMPARISONS`` isolated stars from ``TRANSIT_COMPARISON_MAGS``
#: (brighter, fainter) around the host, 50 px inside: an ensemble to divide the host by (the imaging service's
#: reduction takes stars within a factor 6 of the host's flux, 1.95 mag, and needs two). The sky near the
#: zenith can be that sparse (once a single one at Dec +14°); then the field goes north or south of its
#: nominal place by ``FIELD_SHIFTS_DEG``, the first that holds them (else the one that holds most).
TRANSIT_COMPARISONS = 4
TRANSIT_COMPARISON_MAGS = (1.5, 1.9)
FIELD_SHIFTS_DEG = (0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 2.0, -2.0)


class ScienceNightError(ValueError):
    """Settings that make no science night; the message names the setting and what is wrong."""


@dataclass(frozen=True)
class ScienceNightSettings:
    """What the night holds; every default is the one the module's docstring describes."""

    variable_mag: float = 10.5
    variable_amplitude: float = 0.3
    variable_period_min: float = 24.0
    host_mag: float = 10.0
    transit_mid_min: float = 6.0  # after start
    transit_duration_min: float = 4.0  # first to last contact (T14)
    transit_depth: float = 0.025  # (Rp/R*)², a fraction
    transit_period_h: float = 12.0
    transit_impact: float = 0.3  # b = a/R* cos i
    hour_angle_min: float = 10.0  # the science field's hour angle at start, west positive
    exposure_s: float = 10.0  # the variable's and the transit's frames
    filter: str | None = None  # their filter (None: whatever the camera has; photometry reads it as CV)
    cadence_min: float = 2.0  # the variable's time series
    frames_per_visit: int = 3
    series_start_min: float = 0.0  # its window opens this long after start
    series_window_min: float = 60.0
    baseline_min: float = 2.0  # out of transit before T1 and after T4 (scheduler.transits.baseline_min)
    nebula_filters: tuple[str, ...] = ("L", "R", "G", "B")
    nebula_exposure_s: float = 30.0
    nebula_count: int = 10  # per filter
    comparisons: int = 6  # and one check star
    comparison_mags: tuple[float, float] = (9.5, 12.5)

    def check(self) -> None:
        problems = []
        if not 0 < self.transit_duration_min < 24 * 60:
            problems.append(f"transit_duration_min must be above 0, not {self.transit_duration_min}")
        if not 0 < self.transit_depth < 0.25:
            problems.append(f"transit_depth must be a fraction above 0 and below 0.25, not {self.transit_depth}")
        if not 0 <= self.transit_impact < 1 - math.sqrt(max(self.transit_depth, 0)):
            problems.append(
                f"transit_impact must be 0 or more and keep the planet wholly on the star, not {self.transit_impact}"
            )
        if self.transit_period_h * 60 <= 4 * self.transit_duration_min:
            problems.append(
                f"transit_period_h {self.transit_period_h} is too short for a {self.transit_duration_min} min transit"
            )
        if not self.variable_period_min > 0:
            problems.append(f"variable_period_min must be above 0, not {self.variable_period_min}")
        if not 0 < self.variable_amplitude <= 2:
            problems.append(f"variable_amplitude must be above 0 and at most 2 mag, not {self.variable_amplitude}")
        if not abs(self.hour_angle_min) <= 180:
            problems.append(f"hour_angle_min must be within ±180 min, not {self.hour_angle_min}")
        if self.exposure_s <= 0 or self.nebula_exposure_s <= 0:
            problems.append("exposure_s and nebula_exposure_s must be above 0")
        if self.series_start_min < 0 or self.series_window_min <= 0 or self.cadence_min <= 0:
            problems.append("series_start_min must be 0 or more, series_window_min and cadence_min above 0")
        if self.comparisons < 1:
            problems.append(f"comparisons must be 1 or more, not {self.comparisons}")
        if self.comparison_mags[0] >= self.comparison_mags[1]:
            problems.append(f"comparison_mags {self.comparison_mags} must be (brightest, faintest)")
        if problems:
            raise ScienceNightError("; ".join(problems))


@dataclass(frozen=True)
class VariableTruth:
    name: str
    ra: float
    dec: float
    mag: float  # mean
    amplitude: float
    period_min: float
    epoch: datetime  # mean brightness, getting fainter

    def magnitude(self, when: datetime) -> float:
        phase = (when - self.epoch).total_seconds() / 60.0 / self.period_min
        return self.mag + self.amplitude * math.sin(2 * math.pi * phase)


@dataclass(frozen=True)
class TransitTruth:
    planet: str
    host: str
    ra: float
    dec: float
    mag: float  # out of transit
    mid_utc: datetime  # at the site (the simulator's clock)
    mid_bjd_tdb: float
    ingress_utc: datetime  # first contact (T1)
    egress_utc: datetime  # fourth contact (T4)
    period_h: float
    depth: float  # (Rp/R*)²
    rp_rs: float
    a_rs: float
    inc: float  # degrees


@dataclass(frozen=True)
class ComparisonStar:
    label: str
    ra: float
    dec: float
    mag: float
    catalogued: bool  # from the bright-star catalogue (else the simulator's synthetic sky)


@dataclass(frozen=True)
class ScienceNight:
    """What :func:`write_science_night` wrote, and the truth to compare the results with."""

    folder: Path
    scenario: Path
    ephemeris: Path
    photometry: Path
    index_dir: Path | None  # None when the index was not asked for
    manifest: Path
    site: Site
    start: datetime
    variable: VariableTruth
    transit: TransitTruth
    transit_field: tuple[float, float]  # (RA, Dec) the transit target points at, ICRS degrees
    variable_field: tuple[float, float]
    comparisons: list[ComparisonStar]
    targets: list[dict[str, Any]]  # the web API's target bodies: transit, time series, nebula
    photometry_target: dict[str, Any]  # an imaging.photometry.targets entry
    config: dict[str, Any] = field(default_factory=dict)  # sections to merge: skysim, scheduler, imaging


def lst_deg(site: Site, when: datetime) -> float:
    """The site's local apparent sidereal time, degrees."""
    with astro._quiet():
        return float(Time(when).sidereal_time("apparent", longitude=site.longitude * u.deg).to_value(u.deg))


def _offset(ra0: float, dec0: float, east_arcsec: float, north_arcsec: float) -> tuple[float, float]:
    """The position ``east_arcsec``/``north_arcsec`` from (ra0, dec0) in the tangent plane."""
    xi, eta = np.radians(east_arcsec / 3600.0), np.radians(north_arcsec / 3600.0)
    d0 = math.radians(dec0)
    denominator = math.cos(d0) - eta * math.sin(d0)
    ra = ra0 + np.degrees(np.arctan2(xi, denominator))
    dec = np.degrees(np.arctan2(math.sin(d0) + eta * math.cos(d0), np.hypot(xi, denominator)))
    return float(ra % 360.0), float(dec)


def _tangent_arcsec(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    xi, eta, _ = gnomonic(np.asarray(ra, float), np.asarray(dec, float), ra0, dec0)
    return np.degrees(xi) * 3600.0, np.degrees(eta) * 3600.0


def quiet_spot(
    stars: FieldStars,
    ra0: float,
    dec0: float,
    mag: float,
    *,
    search_arcsec: float,
    step_arcsec: float = 15.0,
    extra: list[tuple[float, float, float]] = (),
) -> tuple[float, float]:
    """The spot nearest (ra0, dec0), within ``search_arcsec``, where a star of ``mag`` would be
    isolated (:func:`~obsy_skysim.field.isolated`: no star within ``ISOLATION_ARCSEC`` with more
    than ``ISOLATION_SHARE`` of its light) from ``stars`` and the ``extra`` (ra, dec, mag) stars."""
    sx, sy = _tangent_arcsec(stars.ra, stars.dec, ra0, dec0)
    smag = stars.mag
    if extra:
        ex, ey = _tangent_arcsec(np.array([e[0] for e in extra]), np.array([e[1] for e in extra]), ra0, dec0)
        sx, sy, smag = np.concatenate([sx, ex]), np.concatenate([sy, ey]), np.concatenate([smag, [e[2] for e in extra]])
    reach = search_arcsec + ISOLATION_ARCSEC
    near = (np.abs(sx) <= reach) & (np.abs(sy) <= reach)
    sx, sy, smag = sx[near], sy[near], smag[near]
    n = int(search_arcsec // step_arcsec)
    grid = np.arange(-n, n + 1) * step_arcsec
    gx, gy = (a.ravel() for a in np.meshgrid(grid, grid))
    order = np.argsort(np.hypot(gx, gy), kind="stable")
    gx, gy = gx[order], gy[order]
    ok = isolated(
        gx, gy, np.full(len(gx), mag), others=(sx, sy, smag), radius=ISOLATION_ARCSEC, max_share=ISOLATION_SHARE
    )
    if not ok.any():
        raise ScienceNightError(
            f"no spot within {search_arcsec:.0f}″ of ({ra0:.3f}, {dec0:+.3f}) where a {mag} mag star is isolated"
        )
    i = int(np.argmax(ok))
    return _offset(ra0, dec0, float(gx[i]), float(gy[i]))


def _inside(renderer: FieldRenderer, ra: np.ndarray, dec: np.ndarray, pointing: tuple[float, float], margin_px: float):
    x, y = renderer.to_pixels(ra, dec, *pointing)
    s = renderer.sensor.spec
    inside_x = (x > margin_px) & (x < s.width - 1 - margin_px)
    return np.isfinite(x) & inside_x & (y > margin_px) & (y < s.height - 1 - margin_px)


def pick_comparisons(
    renderer: FieldRenderer,
    stars: FieldStars,
    *,
    scripted: list[tuple[float, float, float]],
    pointings: list[tuple[float, float]],
    near: tuple[float, float],
    mags: tuple[float, float],
    count: int,
) -> list[ComparisonStar]:
    """The observer's own comparison stars: the simulator's stars of ``mags`` inside every pointing's
    field (50 px from its edges), isolated from all others and the ``scripted`` (ra, dec, mag) stars
    (and 60″ from these), the ``count`` + 1 nearest to ``near``; the last is the check star ``K``."""
    ra0, dec0 = near
    x, y = _tangent_arcsec(stars.ra, stars.dec, ra0, dec0)
    sx, sy = _tangent_arcsec(np.array([s[0] for s in scripted]), np.array([s[1] for s in scripted]), ra0, dec0)
    others = (np.concatenate([x, sx]), np.concatenate([y, sy]), np.concatenate([stars.mag, [s[2] for s in scripted]]))
    ok = (stars.mag >= mags[0]) & (stars.mag <= mags[1])
    ok &= np.hypot(x[:, None] - sx[None, :], y[:, None] - sy[None, :]).min(axis=1) > 60.0
    for pointing in pointings:
        ok &= _inside(renderer, stars.ra, stars.dec, pointing, 50.0)
    candidates = np.flatnonzero(ok)
    alone = isolated(
        x[candidates], y[candidates], stars.mag[candidates], others=others,
        radius=ISOLATION_ARCSEC, max_share=ISOLATION_SHARE,
    )  # fmt: skip
    chosen = [int(i) for i in candidates[alone]]
    chosen = sorted(chosen, key=lambda i: float(np.hypot(x[i], y[i])))[: count + 1]
    if len(chosen) < 2:
        raise ScienceNightError(
            f"only {len(chosen)} isolated stars of {mags[0]:g} to {mags[1]:g} mag in the field: too few for "
            "a comparison and a check star (a larger field, or wider comparison_mags)"
        )
    labels = [f"C{j + 1}" for j in range(len(chosen) - 1)] + ["K"]
    return [
        ComparisonStar(label, round(float(stars.ra[i]), 6), round(float(stars.dec[i]), 6),
                       round(float(stars.mag[i]), 3), bool(stars.catalogued[i]))
        for label, i in zip(labels, chosen, strict=True)
    ]  # fmt: skip


def transit_geometry(duration_min: float, depth: float, impact: float, period_h: float) -> tuple[float, float, float]:
    """(Rp/R*, a/R*, inclination in degrees) of a circular orbit whose transit lasts ``duration_min``
    (T14) at impact parameter ``impact``: ``sin(π T14 / P) = √((1 + k)² − b²) / (a sin i)`` with
    ``a cos i = b``."""
    k = math.sqrt(depth)
    s = math.sin(math.pi * duration_min / (period_h * 60.0))
    a_rs = math.sqrt(((1 + k) ** 2 - impact**2) / s**2 + impact**2)
    return k, a_rs, math.degrees(math.acos(impact / a_rs))


def write_science_night(
    out: str | Path,
    site: Site,
    start: datetime,
    camera: MainCameraSettings | None = None,
    *,
    settings: ScienceNightSettings | None = None,
    nebula: tuple[str, float, float] | None = None,
    index: bool = True,
) -> ScienceNight:
    """Write the night's files into ``out`` (made if missing); see the module's docstring.

    ``camera`` gives the field's geometry and the stars (the main camera's sensor and telescope; its
    own site is not used: ``site`` is). ``nebula`` names a real (name, RA, Dec) for the LRGB target
    instead of the field near the zenith. ``index=False`` leaves the astrometry.net index out (it
    takes seconds to minutes and needs ``build-astrometry-index``).
    """
    from obsy_skysim.driver import MainCamera
    from obsy_skysim.index import build_index

    settings = settings or ScienceNightSettings()
    settings.check()
    if start.tzinfo is None:
        raise ScienceNightError(f"the start {start.isoformat()} needs a time zone (UTC: ...Z)")
    start = start.astimezone(UTC)
    folder = Path(out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    camera = (camera or MainCameraSettings()).model_copy(update={"site": SiteSettings.model_validate(asdict(site))})
    renderer = MainCamera.make_renderer(camera)
    lst = lst_deg(site, start)
    stars, host_at, variable_at, separation = _places(renderer, site, lst, settings)

    variable = SineVariable(
        name=VARIABLE_NAME, ra=round(variable_at[0], 6), dec=round(variable_at[1], 6), kind="sine",
        mag=settings.variable_mag, amplitude=settings.variable_amplitude,
        period_h=settings.variable_period_min / 60.0, epoch=start,
    )  # fmt: skip
    k, a_rs, inc = transit_geometry(
        settings.transit_duration_min, settings.transit_depth, settings.transit_impact, settings.transit_period_h
    )
    host = TransitHost(
        name=HOST_NAME, ra=round(host_at[0], 6), dec=round(host_at[1], 6), kind="transit", mag=settings.host_mag,
        mid=start + timedelta(minutes=settings.transit_mid_min), period_h=settings.transit_period_h,
        rp_rs=k, a_rs=a_rs, inc=inc,
    )  # fmt: skip
    scenario_path = folder / SCENARIO_FILE
    _write_scenario(scenario_path, Scenario(variables=[variable, host]))
    transit = _transit_truth(host, site)
    ephemeris_path = folder / EPHEMERIS_FILE
    _write_ephemeris(ephemeris_path, transit, start)

    # The variable's comparison stars, inside both fields (the transit's frames hold the variable too).
    transit_field, variable_field = (host.ra, host.dec), (variable.ra, variable.dec)
    comparisons = pick_comparisons(
        renderer,
        stars,
        scripted=[(host.ra, host.dec, host.mag), (variable.ra, variable.dec, variable.mag - variable.amplitude)],
        pointings=[transit_field, variable_field],
        near=variable_field,
        mags=settings.comparison_mags,
        count=settings.comparisons,
    )
    photometry_target: dict[str, Any] = {
        "name": VARIABLE_NAME,
        "ra": variable.ra,
        "dec": variable.dec,
        "fields": [PLANET_NAME],
        "comparisons": [{"label": c.label, "ra": c.ra, "dec": c.dec, "mag": c.mag} for c in comparisons],
        "check": comparisons[-1].label,
    }
    photometry_path = folder / PHOTOMETRY_FILE
    photometry_path.write_text(
        "# The science night's variable as an imaging.photometry.targets entry (own comparison stars).\n"
        + yaml.safe_dump(photometry_target, sort_keys=False)
    )

    index_dir = None
    if index:  # both fields, and a margin for the mount's pointing
        centre = _offset(*host_at, 0.0, separation / 2.0)
        index_dir = folder / INDEX_DIR
        build_index(renderer, *centre, renderer.field_radius_deg * 1.2 + separation / 3600.0, index_dir)

    if nebula is None:
        nebula = (NEBULA_NAME, round((lst + 7.5) % 360.0, 4), round(max(-85.0, min(85.0, site.latitude)), 4))
    index_dirs = [str(index_dir)] if index_dir else []
    config = {
        "skysim": {"camera": {"scenario": str(scenario_path)}},
        "scheduler": {"transits": {"ephemeris_file": str(ephemeris_path), "baseline_min": settings.baseline_min}},
        "imaging": {
            "photometry": {"index_dirs": index_dirs, "targets": [photometry_target]},
            "transits": {"index_dirs": index_dirs, "baseline_min": settings.baseline_min},
        },
    }
    variable_truth = VariableTruth(
        VARIABLE_NAME, variable.ra, variable.dec, variable.mag, variable.amplitude, settings.variable_period_min, start
    )
    night = ScienceNight(
        folder, scenario_path, ephemeris_path, photometry_path, index_dir, folder / MANIFEST_FILE, site, start,
        variable_truth, transit, transit_field, variable_field, comparisons,
        _targets(settings, transit, variable_truth, nebula), photometry_target, config,
    )  # fmt: skip
    night.manifest.write_text(
        "# The sky simulator's science night (obsy-skysim science-night; docs/skysim.md).\n"
        + yaml.safe_dump(manifest(night), sort_keys=False)
    )
    return night


def move_transit(night: ScienceNight, by: timedelta) -> ScienceNight:
    """The same night with its transit and the variable's window ``by`` later: the scenario and the
    ephemeris written again (the main camera and the services read them again when they change), the
    places, the index and the comparison stars as they were.

    The main camera reads its scenario from its start, so a night observed by a test is written before
    the observatory starts; moved once the observatory is up, its science comes as soon as it can
    whatever the start-up took."""
    scenario = load_scenario(night.scenario)
    variables = [
        v.model_copy(update={"mid": v.mid + by}) if isinstance(v, TransitHost) else v for v in scenario.variables
    ]
    host = next(v for v in variables if isinstance(v, TransitHost) and v.name == night.transit.host)
    transit = _transit_truth(host, night.site)
    _write_ephemeris(night.ephemeris, transit, night.start)
    _write_scenario(night.scenario, Scenario(variables=variables))
    targets = [dict(t) for t in night.targets]
    for target in targets:
        if target["name"] == transit.planet:
            target["notes"] = f"the science night's transit: mid-time {transit.mid_utc:%H:%M:%S} UTC"
        if series := target.get("time_series"):
            target["time_series"] = {
                **series,
                **{k: _plain(datetime.fromisoformat(series[k]) + by) for k in ("window_start", "window_end")},
            }
    moved = replace(night, transit=transit, targets=targets)
    moved.manifest.write_text(
        "# The sky simulator's science night (obsy-skysim science-night; docs/skysim.md).\n"
        + yaml.safe_dump(manifest(moved), sort_keys=False)
    )
    return moved


def _write_scenario(path: Path, scenario: Scenario) -> None:
    text = "# A science night for the sky simulator (obsy-skysim science-night): the main camera's scenario.\n"
    write_atomic(path, text + yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True), sort_keys=False))
    load_scenario(path)  # what the camera will read must read back


def _write_ephemeris(path: Path, transit: TransitTruth, start: datetime) -> None:
    preamble = f"The sky simulator's science night of {start:%Y-%m-%d %H:%M} UTC"
    write_atomic(path, format_archive_csv([_ephemeris(transit)], preamble=preamble))


def _places(
    renderer: FieldRenderer, site: Site, lst: float, settings: ScienceNightSettings
) -> tuple[FieldStars, tuple[float, float], tuple[float, float], float]:
    """The field's stars, the host's and the variable's places, and their nominal separation (arcsec):
    the host ``hour_angle_min`` past the meridian and 5° from the zenith towards the equator (or north
    or south of there, where the field holds comparison stars for the transit:
    :data:`TRANSIT_COMPARISONS`), the variable a sixth of the field's shorter side north of it, each
    where no star disturbs it."""
    s = renderer.sensor.spec
    shorter = min(s.width, s.height) * renderer.arcsec_per_pixel
    nominal_dec = max(-80.0, min(80.0, site.latitude - math.copysign(5.0, site.latitude)))
    ra = (lst - settings.hour_angle_min / 4.0) % 360.0
    separation = shorter / 6.0
    best = host_field(renderer, (ra, nominal_dec), settings.host_mag)  # its errors are the night's
    for shift in FIELD_SHIFTS_DEG[1:]:
        if best[0] >= TRANSIT_COMPARISONS:
            break
        with contextlib.suppress(ScienceNightError):  # no quiet spot there: the other places remain
            found = host_field(renderer, (ra, max(-80.0, min(80.0, nominal_dec + shift))), settings.host_mag)
            best = max(best, found, key=lambda field: field[0])
    _found, stars, host_at = best
    variable_at = quiet_spot(
        stars,
        *_offset(*host_at, 0.0, separation),
        settings.variable_mag - settings.variable_amplitude,
        search_arcsec=separation / 2.0,
        extra=[(*host_at, settings.host_mag)],
    )
    return stars, host_at, variable_at, separation


def host_field(
    renderer: FieldRenderer, nominal: tuple[float, float], host_mag: float
) -> tuple[int, FieldStars, tuple[float, float]]:
    """Near ``nominal``: the stars around it, the host's quiet spot and how many comparison stars the
    field pointed there holds (:func:`transit_comparisons`)."""
    s = renderer.sensor.spec
    shorter = min(s.width, s.height) * renderer.arcsec_per_pixel
    stars = renderer.stars_near(*nominal, renderer.field_radius_deg + 2 * shorter / 6.0 / 3600.0 + 0.1)
    host_at = quiet_spot(stars, *nominal, host_mag, search_arcsec=shorter / 4.0)
    return transit_comparisons(renderer, stars, host_at, host_mag), stars, host_at


def transit_comparisons(
    renderer: FieldRenderer, stars: FieldStars, host_at: tuple[float, float], host_mag: float
) -> int:
    """How many isolated stars of :data:`TRANSIT_COMPARISON_MAGS` around ``host_mag`` the field pointed at
    the host holds, 50 px inside its edges."""
    brighter, fainter = TRANSIT_COMPARISON_MAGS
    similar = (stars.mag >= host_mag - brighter) & (stars.mag <= host_mag + fainter)
    similar &= _inside(renderer, stars.ra, stars.dec, host_at, 50.0)
    candidates = np.flatnonzero(similar)
    x, y = _tangent_arcsec(stars.ra, stars.dec, *host_at)
    alone = isolated(
        x[candidates], y[candidates], stars.mag[candidates], others=(x, y, stars.mag),
        radius=ISOLATION_ARCSEC, max_share=ISOLATION_SHARE,
    )  # fmt: skip
    return int(alone.sum())


def _transit_truth(host: TransitHost, site: Site) -> TransitTruth:
    mid_bjd = float(bjd_tdb(Time(host.mid), host.ra, host.dec, astro.location(site)))
    half = timedelta(days=transit_duration(host.period_h / 24.0, host.rp_rs, host.a_rs, host.inc) / 2.0)
    return TransitTruth(
        PLANET_NAME, HOST_NAME, host.ra, host.dec, host.mag, host.mid, mid_bjd, host.mid - half, host.mid + half,
        host.period_h, host.rp_rs**2, host.rp_rs, host.a_rs, host.inc,
    )  # fmt: skip


def _ephemeris(t: TransitTruth) -> Ephemeris:
    """The planet as the archive would list it: its mid-time ``EPOCHS_BACK`` orbits ago, small errors."""
    period = t.period_h / 24.0
    return Ephemeris(
        name=t.planet, host=t.host, t0=t.mid_bjd_tdb - EPOCHS_BACK * period, t0_err=0.0002, period=period,
        period_err=2e-7, duration=(t.egress_utc - t.ingress_utc).total_seconds() / 86400.0, depth=t.depth,
        rp_rs=t.rp_rs, rp_rs_err=0.005, a_rs=t.a_rs, a_rs_err=0.03 * t.a_rs, inc=t.inc, inc_err=0.2,
        ra=t.ra, dec=t.dec, teff=5800.0, logg=4.4,
    )  # fmt: skip


def _targets(
    settings: ScienceNightSettings, transit: TransitTruth, variable: VariableTruth, nebula: tuple[str, float, float]
) -> list[dict[str, Any]]:
    """The transit, the time series and the nebula, as the web API's target bodies."""
    light: dict[str, Any] = {"exposure_s": settings.exposure_s, "count": 1}
    if settings.filter:
        light["filter"] = settings.filter
    window_start = variable.epoch + timedelta(minutes=settings.series_start_min)
    window_end = window_start + timedelta(minutes=settings.series_window_min)
    return [
        {
            "name": transit.planet, "ra_deg": transit.ra, "dec_deg": transit.dec, "priority": 9,
            "exposure_plans": [dict(light)],
            "notes": f"the science night's transit: mid-time {transit.mid_utc:%H:%M:%S} UTC",
        },
        {
            "name": variable.name, "ra_deg": variable.ra, "dec_deg": variable.dec, "priority": 8,
            "exposure_plans": [dict(light)],
            "time_series": {
                "cadence_min": settings.cadence_min, "window_start": _plain(window_start),
                "window_end": _plain(window_end), "frames_per_visit": settings.frames_per_visit,
            },
            "notes": f"the science night's variable: period {settings.variable_period_min:g} min",
        },
        {
            "name": nebula[0], "ra_deg": nebula[1], "dec_deg": nebula[2], "priority": 5,
            "exposure_plans": [
                {"filter": f, "exposure_s": settings.nebula_exposure_s, "count": settings.nebula_count}
                for f in settings.nebula_filters
            ],
            "notes": "the science night's LRGB target near the zenith",
        },
    ]  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def manifest(night: ScienceNight) -> dict[str, Any]:
    """The manifest's content: the files, the targets, the configuration fragments and the truth."""
    return _plain(
        {
            "site": asdict(night.site),
            "start": night.start,
            "files": {
                "scenario": night.scenario,
                "ephemeris": night.ephemeris,
                "photometry_target": night.photometry,
                "index_dir": night.index_dir,
            },
            "fields": {"transit": night.transit_field, "variable": night.variable_field},
            "targets": night.targets,
            "config": night.config,
            "truth": {
                "variable": asdict(night.variable),
                "transit": asdict(night.transit),
                "comparisons": [asdict(c) for c in night.comparisons],
            },
        }
    )
