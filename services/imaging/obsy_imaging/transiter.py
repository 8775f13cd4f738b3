"""Exoplanet transits at work on the repository: each planet's transit night reduced, fitted,
stored and reported once its window is over (docs/imaging-transits.md, "In the service").

A planet is one of the ephemeris file (``imaging.transits.ephemeris_file``, else the scheduler's):
its lights are the calibrated, accepted lights whose OBJECT names the planet (``pl_name``) or its
host (case and blanks ignored, as the photometry's target names). For each night and planet:

1. the night's transit windows at the site (:func:`~obsy.transits.predict.transits_between`, with
   the baseline before and after); a night whose window has not ended yet (and that is not over)
   is stored as ``waiting``; a night without a transit of the planet as ``failed`` with the reason;
2. the lights of the night (in the filter most of them have) go to
   :func:`~obsy_imaging.transits.reduce.reduce_night`: plate solve, the host against an ensemble of
   comparison stars, one point per frame in BJD_TDB with its airmass and regressors;
3. :func:`~obsy_imaging.transits.fit.fit_transit` with the configured airmass law and regressors;
4. one row in ``imaging_transit_fits`` and one per light in ``imaging_transit_points`` (its flux,
   the model and the residual, or why it was not used);
5. the ``#TYPE=EXOPLANET`` report, checked with :func:`~obsy_imaging.transits.report.validate_report`
   before it replaces an old one, the plot (PNG) and the points (CSV):
   ``reports/exoplanet/<night>/<planet>.{txt,png,csv}`` under the repository root.

Anything that stops a fit (an unreadable ephemeris file, too few lights, a reduction with nothing
usable left, a fit that does not converge) is stored as ``failed`` with the reason; the night is
tried again when new lights of it arrive.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time
from sqlalchemy import delete, func, select

from obsy import astro
from obsy.config import SchedulerTransitsConfig, SiteConfig
from obsy.files import write_atomic
from obsy.transits.ephemeris import Ephemeris, EphemerisError, EphemerisTable, read_archive_csv
from obsy.transits.predict import TransitWindow, transits_between
from obsy_imaging.config import ImagingTransitsConfig, photometry_name_key
from obsy_imaging.headers.normalise import Site
from obsy_imaging.photometer import aavso_filter_code
from obsy_imaging.photometry.aperture import CcdNoise
from obsy_imaging.repository.layout import folder_name
from obsy_imaging.repository.models import Calibration, Frame, TransitFit, TransitPoint
from obsy_imaging.repository.store import Repository, usable_lights
from obsy_imaging.transits.fit import McmcSettings, fit_transit
from obsy_imaging.transits.fit import TransitFit as FitResult
from obsy_imaging.transits.lightcurve import LightCurve
from obsy_imaging.transits.limbdarkening import PASSBANDS
from obsy_imaging.transits.reduce import TransitReductionError, TransitReductionSettings, reduce_night
from obsy_imaging.transits.report import ObservationInfo, ReportError, validate_report, write_report

log = logging.getLogger("obsy.imaging.transits")

FITTED, FAILED, WAITING = "fitted", "failed", "waiting"
SOFTWARE = "OBSY imaging 0.1 (differential photometry, batman + emcee)"
#: The regressors a light curve can carry (``imaging.transits.regressors``) and the points' columns of each.
REGRESSOR_COLUMNS = {"background": ("background",), "fwhm": ("fwhm",), "position": ("x", "y")}


class TransitError(Exception):
    """Why a night has no fit; stored as the fit's reason."""


@dataclass
class NightPoint:
    """One light of the night as the reduction left it; ``reason`` says why it is not in the light curve."""

    frame_id: int | Path | None  # the reduction names a frame by its path; the transiter maps it to the id
    bjd_tdb: float | None = None
    flux: float | None = None
    error: float | None = None
    airmass: float | None = None
    background: float | None = None
    fwhm: float | None = None
    x: float | None = None
    y: float | None = None
    model: float | None = None  # the fitted transit × systematics, on the flux's scale
    reason: str | None = None

    @property
    def residual(self) -> float | None:
        return None if self.model is None or self.flux is None else self.flux - self.model


@dataclass
class NightData:
    """A night's light curve for the fit: the :class:`LightCurve` (its points in order, the used
    :class:`NightPoint` s the same order), the lights left out, and the ensemble's size."""

    light_curve: LightCurve | None
    points: list[NightPoint]
    ensemble_size: int | None = None
    comparison: dict[str, str | None] | None = None  # the main comparison star, for the report

    @property
    def used(self) -> list[NightPoint]:
        return [p for p in self.points if p.reason is None]

    @classmethod
    def of_light_curve(cls, lc: LightCurve, frame_ids: Sequence[int | Path | None], **extra: Any) -> NightData:
        """A light curve made elsewhere (a simulated night), one frame per point."""
        points = [
            NightPoint(frame_id=i, bjd_tdb=float(t), flux=float(f), error=float(e), airmass=float(x))
            for i, t, f, e, x in zip(frame_ids, lc.time, lc.flux, lc.flux_err, lc.airmass, strict=True)
        ]
        return cls(lc, points, **extra)


@dataclass(frozen=True)
class Seen:
    """A night's usable lights of a planet: how many, the newest frame id, when the last was calibrated."""

    lights: int
    newest: int
    calibrated: datetime


@dataclass(frozen=True)
class Light:
    frame_id: int
    night: str
    target: str | None
    filter: str | None
    path: str  # the calibrated light, relative to the repository root
    exposure_s: float | None
    binning: str


@dataclass
class Done:
    """A night after the fit (or its failure): the stored row and the problems with its files."""

    row: TransitFit
    problems: list[str] = field(default_factory=list)


#: The reduction's entry point: calibrated frames and the host's position → the night's light curve.
Reducer = Callable[[list[Path], Ephemeris, Site], NightData]


class Transiter:
    def __init__(
        self,
        repository: Repository,
        settings: ImagingTransitsConfig,
        scheduler: SchedulerTransitsConfig,
        site: SiteConfig,
        *,
        reducer: Reducer | None = None,
        mcmc: McmcSettings = McmcSettings(),
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.site = site
        self.location = EarthLocation.from_geodetic(site.longitude * u.deg, site.latitude * u.deg, site.elevation * u.m)
        self.ephemeris_file = settings.ephemeris_path(scheduler)
        self.baseline_days = settings.baseline_minutes(scheduler) / 1440.0
        self.reports_root = (settings.reports or repository.root / "reports" / "exoplanet").resolve()
        self.reducer = reducer or partial(reduce_with_library, settings=settings)
        self.mcmc = mcmc
        self._table: tuple[float, EphemerisTable] | None = None  # the file's mtime, what it held

    # --- ephemerides ---------------------------------------------------------------------
    def ephemerides(self) -> EphemerisTable:
        """The ephemeris file's planets (read again when the file changes); :class:`EphemerisError` if unusable."""
        if self.ephemeris_file is None:
            raise EphemerisError("no ephemeris file: set imaging.transits.ephemeris_file")
        try:
            mtime = self.ephemeris_file.stat().st_mtime
        except OSError as exc:
            raise EphemerisError(f"the ephemeris file {self.ephemeris_file} cannot be read: {exc.strerror}") from None
        if self._table is None or self._table[0] != mtime:
            self._table = (mtime, read_archive_csv(self.ephemeris_file))
        return self._table[1]

    def planets_for(self, table: EphemerisTable, target: str | None) -> list[Ephemeris]:
        """The planets a frame's OBJECT names: the planet itself, or every planet of a host so named."""
        key = photometry_name_key(target)
        if not key:
            return []
        named = [e for e in table.values() if photometry_name_key(e.name) == key]
        return named or [e for e in table.values() if e.host and photometry_name_key(e.host) == key]

    # --- which nights ----------------------------------------------------------------------
    def nights(self, table: EphemerisTable) -> dict[tuple[str, str], Seen]:
        """Every night with usable lights of a planet: how many, the newest, when the last was calibrated."""
        names = [name for e in table.values() for name in (e.name, e.host) if name]
        if not names:
            return {}
        query = usable_lights(
            Frame.night, Frame.target, func.count(Frame.id), func.max(Frame.id), func.max(Calibration.calibrated_at),
            names=names,
        ).group_by(Frame.night, Frame.target)  # fmt: skip
        found: dict[tuple[str, str], Seen] = {}
        with self.repository.sessions() as session:
            rows = session.execute(query).all()
        for night, target, count, newest, calibrated_at in rows:
            calibrated = _aware(calibrated_at)
            for ephemeris in self.planets_for(table, target):
                seen = found.get((night, ephemeris.name), Seen(0, 0, calibrated))
                found[(night, ephemeris.name)] = Seen(
                    seen.lights + count, max(seen.newest, newest), max(seen.calibrated, calibrated)
                )
        return found

    def due(self, now: datetime) -> list[tuple[str, str]]:
        """Nights and planets to fit now: window over (or night over), not fitted since their last light.

        Nights whose window is still open are stored as ``waiting`` (once). Raises
        :class:`EphemerisError` when the ephemeris file cannot be used.
        """
        table = self.ephemerides()
        tonight = astro.night_of(self.site, now).isoformat()
        with self.repository.sessions() as session:
            stored = {
                (r.night, r.planet): r
                for r in session.scalars(select(TransitFit).where(TransitFit.status != WAITING)).all()
            }
        due = []
        quiet = timedelta(seconds=self.settings.quiet_time)
        for (night, planet), seen in sorted(self.nights(table).items()):
            row = stored.get((night, planet))
            if row is not None and row.lights == seen.lights and row.last_frame_id == seen.newest:
                continue  # fitted (or failed) with these very lights
            if night >= tonight:
                open_until = self._open_until(table[planet], night, now)
                if open_until is not None:
                    self._store_waiting(
                        night, planet, seen, f"the transit window ends at {open_until:%Y-%m-%d %H:%M} UTC"
                    )
                    continue
            if now - seen.calibrated < quiet:
                continue  # lights are still coming in (a night imported, the target still imaged): fitted once
            due.append((night, planet))
        return due

    def _open_until(self, ephemeris: Ephemeris, night: str, now: datetime) -> datetime | None:
        """When the planet's transit window that is under way ends, if one is (begun by ``now``, ending
        after it); else None. A window still to come is not waited for: a planet of a short period has
        another transit later the same night (in daylight, perhaps), and its lights, if any come, make the
        night due again."""
        try:
            windows = self.windows(ephemeris, night)
        except EphemerisError:
            return None  # no window to wait for: the fit says why
        ends = [w.end_utc.to_datetime(timezone=UTC) for w in windows if w.start_utc.to_datetime(timezone=UTC) <= now]
        latest = max(ends, default=None)
        return latest if latest is not None and latest > now else None

    def windows(self, ephemeris: Ephemeris, night: str) -> list[TransitWindow]:
        """The planet's transits from the night's local noon to the next, with the baseline."""
        start = self.night_start(night)
        return transits_between(
            ephemeris,
            Time(start),
            Time(start + timedelta(days=1)),
            self.location,
            baseline_days=self.baseline_days,
        )

    def night_start(self, night: str) -> datetime:
        zone = ZoneInfo(self.site.timezone)
        return datetime.combine(date.fromisoformat(night), time(12), tzinfo=zone).astimezone(UTC)

    def _store_waiting(self, night: str, planet: str, seen: Seen, why: str) -> None:
        with self.repository.sessions.begin() as session:
            row = session.scalar(select(TransitFit).where(TransitFit.night == night, TransitFit.planet == planet))
            if row is not None and row.status == WAITING and row.lights == seen.lights:
                return
            now = datetime.now(UTC)
            if row is None:
                row = TransitFit(night=night, planet=planet, created_at=now, points_used=0, points_rejected=0)
                session.add(row)
            row.status, row.lights, row.last_frame_id, row.updated_at = WAITING, seen.lights, seen.newest, now
            row.reason = f"{seen.lights} light(s) so far; {why}"

    # --- one night -----------------------------------------------------------------------
    def lights(self, table: EphemerisTable, night: str, planet: str) -> list[Light]:
        """The night's usable lights of the planet (its name or its host's), in time order."""
        ephemeris = table[planet]
        names = [n for n in (ephemeris.name, ephemeris.host) if n]
        query = usable_lights(
            Frame.id, Frame.target, Frame.filter, Calibration.path, Frame.exposure_s, Frame.binning_x, Frame.binning_y,
            names=names,
        ).where(Frame.night == night).order_by(Frame.jd_mid, Frame.id)  # fmt: skip
        with self.repository.sessions() as session:
            rows = session.execute(query).all()
        return [
            Light(i, night, target, filt, path, exposure, f"{bx}x{by}")
            for i, target, filt, path, exposure, bx, by in rows
            if path and any(e.name == planet for e in self.planets_for(table, target))
        ]

    def process(self, night: str, planet: str) -> Done:
        """Reduce and fit one night of one planet, store it and write its files (a failure is stored too)."""
        lights: list[Light] = []
        ephemeris: Ephemeris | None = None
        try:
            table = self.ephemerides()
            ephemeris = table.get(planet)
            if ephemeris is None:
                why = table.skipped.get(planet)
                raise TransitError(
                    f"{planet} is not in the ephemeris file {self.ephemeris_file}" + (f" ({why})" if why else "")
                )
            lights = self.lights(table, night, planet)
            return self.fit_night(night, ephemeris, lights, self._reduce(night, ephemeris, lights))
        except (TransitError, EphemerisError) as exc:
            return self.store_failure(night, planet, str(exc), lights, target=_target(lights, ephemeris))

    def _reduce(self, night: str, ephemeris: Ephemeris, lights: list[Light]) -> NightData:
        if not self.windows(ephemeris, night):
            raise TransitError(f"no transit of {ephemeris.name} is predicted on the night of {night}")
        if len(lights) < self.settings.min_points:
            raise TransitError(
                f"{len(lights)} usable light(s) of {ephemeris.name} on the night of {night}: fewer than "
                f"imaging.transits.min_points ({self.settings.min_points})"
            )
        site = Site(self.site.latitude, self.site.longitude, self.site.elevation)
        used, other = _one_filter(lights)
        paths = [self.repository.root / light.path for light in used]
        data = self.reducer(paths, ephemeris, site)
        if data.light_curve is not None:
            data.light_curve = replace(data.light_curve, filter=filter_code(used[0].filter))
        by_path = {str(path.resolve()): light.frame_id for path, light in zip(paths, used, strict=True)}
        for point in data.points:
            if isinstance(point.frame_id, Path):
                point.frame_id = by_path.get(str(point.frame_id.resolve()))
        data.points += [NightPoint(light.frame_id, reason=reason) for light, reason in other]
        return data

    def fit_night(self, night: str, ephemeris: Ephemeris, lights: list[Light], data: NightData) -> Done:
        """Fit a night's light curve, store the fit and its points, write the report, the plot and the CSV."""
        used = data.used
        if data.light_curve is None or len(used) < self.settings.min_points:
            raise TransitError(
                f"{len(used)} point(s) left after the reduction: fewer than imaging.transits.min_points "
                f"({self.settings.min_points})"
            )
        lc = self._with_regressors(data.light_curve, used)
        try:
            fit = fit_transit(lc, ephemeris, detrending=self.settings.detrending, mcmc=self.mcmc)
        except (ValueError, RuntimeError) as exc:
            raise TransitError(f"the fit failed: {exc}") from exc
        row = self._row(night, ephemeris, lights, data, fit)
        model = fit.transit * fit.systematics
        for point, m in zip(used, model, strict=True):
            point.model = float(m)
        files = self._files(night, ephemeris.name)
        problems = self._write_files(
            files=files, row=row, fit=fit, ephemeris=ephemeris, lc=lc, lights=lights, data=data
        )
        return Done(self._save(row, data.points), problems)

    def _with_regressors(self, lc: LightCurve, used: list[NightPoint]) -> LightCurve:
        """The light curve with the configured regressors (``imaging.transits.regressors``) from the points."""
        regressors: dict[str, np.ndarray] = {}
        for name in self.settings.regressors:
            for column in REGRESSOR_COLUMNS[name]:
                values = np.array([getattr(p, column) for p in used], dtype=float)
                if values.shape == (len(lc.time),) and np.all(np.isfinite(values)):
                    regressors[column] = values
                else:
                    log.warning("regressor %s left out: not measured on every frame", column)
        return replace(lc, regressors=regressors) if regressors else lc

    def _row(
        self, night: str, ephemeris: Ephemeris, lights: list[Light], data: NightData, fit: FitResult
    ) -> TransitFit:
        contact = None
        if fit.partial:
            contact = "egress" if fit.egress_observed else "ingress" if fit.ingress_observed else "neither"
        return TransitFit(
            night=night,
            planet=ephemeris.name,
            target=_target(lights, ephemeris),
            status=FITTED,
            reason=None,
            filter=data.light_curve.filter if data.light_curve is not None else None,
            epoch=fit.epoch,
            tc=fit.tc.value,
            tc_err=fit.tc.error,
            predicted_tc=fit.predicted_tc,
            o_minus_c=fit.o_minus_c.value,
            o_minus_c_err=fit.o_minus_c.error,
            rp_rs=fit.rp_rs.value,
            rp_rs_err=fit.rp_rs.error,
            a_rs=fit.a_rs.value,
            a_rs_err=fit.a_rs.error,
            inc=fit.inc.value,
            inc_err=fit.inc.error,
            depth=fit.depth.value,
            depth_err=fit.depth.error,
            duration=fit.duration.value,
            duration_err=fit.duration.error,
            partial=fit.partial,
            contact=contact,
            detrending=fit.detrending,
            points_used=len(data.used),
            points_rejected=len(data.points) - len(data.used),
            ensemble_size=data.ensemble_size,
            chi2_reduced=fit.chi2_reduced,
            red_noise_beta=fit.red_noise_beta,
            error_scale=fit.error_scale,
            **_seen(lights),
        )

    # --- files ---------------------------------------------------------------------------
    def _files(self, night: str, planet: str) -> dict[str, Path]:
        stem = self.reports_root / night / folder_name(planet)
        return {kind: stem.with_suffix(f".{kind}") for kind in ("txt", "png", "csv")}

    def _write_files(
        self,
        *,
        files: dict[str, Path],
        row: TransitFit,
        fit: FitResult,
        ephemeris: Ephemeris,
        lc: LightCurve,
        lights: list[Light],
        data: NightData,
    ) -> list[str]:
        """The report (validated first), the plot and the CSV; a file not written is a problem, not a failure."""
        problems = []
        files["txt"].parent.mkdir(parents=True, exist_ok=True)
        try:
            text = write_report(self._observation(lights, data), fit, ephemeris, lc.filter)
            invalid = validate_report(text)
            if invalid:
                raise ReportError("; ".join(invalid))
            write_atomic(files["txt"], text.encode("ascii", errors="replace"))
            row.report_path = self._relative(files["txt"])
        except (ReportError, OSError) as exc:
            problems.append(f"the report was not written: {exc}")
        try:
            from obsy_imaging.transits import plot  # matplotlib (most of a second) only when a night is plotted

            write_atomic(files["png"], plot.light_curve_png(fit, _title(row)))
            row.plot_path = self._relative(files["png"])
        except (OSError, ValueError) as exc:
            problems.append(f"the plot was not written: {exc}")
        try:
            write_atomic(files["csv"], points_csv(data.points).encode())
            row.points_path = self._relative(files["csv"])
        except OSError as exc:
            problems.append(f"the points were not written: {exc}")
        return problems

    def _observation(self, lights: list[Light], data: NightData) -> ObservationInfo:
        exposures = [light.exposure_s for light in lights if light.exposure_s]
        notes = [n for n in (self.settings.camera, self.settings.telescope, self.settings.notes) if n]
        if data.ensemble_size:
            notes.append(f"ensemble of {data.ensemble_size} comparison stars")
        return ObservationInfo(
            obscode=self.settings.observer_code or "",
            software=SOFTWARE,
            obstype=self.settings.obstype,
            secondary_obscodes=",".join(self.settings.secondary_observer_codes),
            binning=Counter(light.binning for light in lights).most_common(1)[0][0] if lights else "1x1",
            exposure_s=float(np.median(exposures)) if exposures else None,
            comparison=data.comparison,
            notes="; ".join(notes),
        )

    def _relative(self, path: Path) -> str:
        try:
            return str(PurePosixPath(path.relative_to(self.repository.root.resolve())))
        except ValueError:
            return str(path)

    # --- storing -------------------------------------------------------------------------
    def store_failure(
        self, night: str, planet: str, reason: str, lights: list[Light], *, target: str | None = None
    ) -> Done:
        """A night without a fit, stored with the reason (and its lights, so it is tried again when more arrive)."""
        log.info("no fit of %s on %s: %s", planet, night, reason)
        row = TransitFit(
            night=night,
            planet=planet,
            target=target,
            status=FAILED,
            reason=reason[:2000],
            points_used=0,
            points_rejected=0,
            **_seen(lights),
        )
        return Done(self._save(row, []))

    def give_up(self, night: str, planet: str, reason: str) -> Done:
        """A night the fit failed on unexpectedly: stored as failed with its lights (tried again when they change)."""
        try:
            lights = self.lights(self.ephemerides(), night, planet)
        except Exception:  # the reason stored is the first problem's
            lights = []
        return self.store_failure(night, planet, reason, lights, target=_target(lights, None))

    def _save(self, row: TransitFit, points: list[NightPoint]) -> TransitFit:
        """Replace the night's row of the planet and its points (one transaction)."""
        now = datetime.now(UTC)
        columns = [c.key for c in TransitFit.__table__.columns if c.key not in ("id", "created_at")]
        with self.repository.sessions.begin() as session:
            stored = session.scalar(
                select(TransitFit).where(TransitFit.night == row.night, TransitFit.planet == row.planet)
            )
            if stored is None:
                stored = TransitFit(created_at=now)
                session.add(stored)
            else:
                session.execute(delete(TransitPoint).where(TransitPoint.fit_id == stored.id))
            for column in columns:
                setattr(stored, column, getattr(row, column))
            stored.updated_at = now
            session.flush()
            session.add_all(
                TransitPoint(
                    fit_id=stored.id,
                    frame_id=p.frame_id if isinstance(p.frame_id, int) else None,
                    bjd_tdb=p.bjd_tdb,
                    flux=p.flux,
                    error=p.error,
                    airmass=p.airmass,
                    background=p.background,
                    fwhm=p.fwhm,
                    x=p.x,
                    y=p.y,
                    model=p.model,
                    residual=p.residual,
                    used=p.reason is None,
                    reason=p.reason,
                )
                for p in points
            )
        return stored


def reduce_with_library(
    paths: list[Path], ephemeris: Ephemeris, site: Site, *, settings: ImagingTransitsConfig
) -> NightData:
    """The light curve of the host from the calibrated frames (:mod:`obsy_imaging.transits.reduce`)."""
    if ephemeris.ra is None or ephemeris.dec is None:
        raise TransitError(f"{ephemeris.name}: the ephemeris file gives no coordinates (ra, dec) of the host")
    noise = None
    if settings.gain_e_per_adu is not None:
        noise = CcdNoise(settings.gain_e_per_adu, settings.read_noise_e or 0.0)
    # The calibrated lights' plate solves are kept: the photometry of a variable in the field reuses them.
    reduction = TransitReductionSettings(
        noise=noise, saturation_adu=settings.saturation_adu, index_dirs=tuple(settings.index_dirs), keep_solutions=True
    )
    host = SkyCoord(ephemeris.ra * u.deg, ephemeris.dec * u.deg)
    try:
        night = reduce_night(paths, host, site=site, settings=reduction)
    except TransitReductionError as exc:
        raise TransitError(f"the reduction failed: {exc}") from exc
    points = [
        NightPoint(
            frame_id=p.path,
            bjd_tdb=p.bjd_tdb,
            flux=p.flux,
            error=p.error,
            airmass=p.airmass,
            background=p.background,
            fwhm=p.fwhm,
            x=p.x,
            y=p.y,
        )
        for p in night.points
    ]
    points += [NightPoint(frame_id=path, reason=str(reason)) for path, reason in night.rejected_frames]
    main = max(night.ensemble, key=lambda star: star.weight, default=None)
    comparison = None
    if main is not None:
        comparison = {"ra": f"{main.ra_deg:.6f}", "dec": f"{main.dec_deg:.6f}", "x": None, "y": None}
    return NightData(night.light_curve, points, ensemble_size=len(night.ensemble), comparison=comparison)


def _one_filter(lights: list[Light]) -> tuple[list[Light], list[tuple[Light, str]]]:
    """The lights in the filter most of them have, and the others with the reason they are left out."""
    common = Counter(light.filter for light in lights).most_common(1)[0][0]
    used = [light for light in lights if light.filter == common]
    other = [
        (light, f"filter {light.filter!r}: the night's light curve is in {common!r}")
        for light in lights
        if light.filter != common
    ]
    return used, other


def filter_code(filter_name: str | None) -> str:
    """The AAVSO filter code the report and the limb darkening take (``CV`` for an unknown filter)."""
    code = aavso_filter_code(filter_name)
    return code if code in PASSBANDS else "CV"


def _target(lights: list[Light], ephemeris: Ephemeris | None) -> str | None:
    if lights:
        return Counter(light.target for light in lights).most_common(1)[0][0]
    return None if ephemeris is None else ephemeris.name


def _aware(when: datetime | None) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives them back naive)."""
    if when is None:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _seen(lights: list[Light]) -> dict[str, Any]:
    return {"lights": len(lights), "last_frame_id": max((light.frame_id for light in lights), default=None)}


def _title(row: TransitFit) -> str:
    minutes = 1440.0
    oc = f"O−C {row.o_minus_c * minutes:+.1f} ± {(row.o_minus_c_err or 0) * minutes:.1f} min"
    tc = f"Tc {row.tc:.5f} ± {row.tc_err:.5f}"
    depth = f"depth {100 * row.depth:.2f} ± {100 * (row.depth_err or 0):.2f} %"
    partial = f" (partial: {row.contact})" if row.partial else ""
    return f"{row.planet} {row.night}{partial}\n{tc} BJD_TDB, {depth}, {oc}"


CSV_COLUMNS = ("frame_id", "bjd_tdb", "flux", "error", "airmass", "background", "fwhm", "x", "y", "model", "residual")


def points_csv(points: list[NightPoint]) -> str:
    """The night's points: one row per light, the model and residual where it was used, else why not."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*CSV_COLUMNS, "used", "reason"))
    for p in sorted(points, key=lambda p: (p.bjd_tdb is None, p.bjd_tdb or 0.0)):
        values = {**p.__dict__, "residual": p.residual}
        cells = ["" if values.get(c) is None else _cell(values[c]) for c in CSV_COLUMNS]
        writer.writerow((*cells, "yes" if p.reason is None else "no", p.reason or ""))
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(round(value, 9))
    return str(value)
