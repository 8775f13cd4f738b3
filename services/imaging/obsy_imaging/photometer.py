"""Variable-star photometry at work on the repository: each calibrated, accepted light of a configured
target measured, stored, and its night's AAVSO report rewritten (docs/imaging-photometry.md).

For each light, oldest calibration first:

1. its targets are looked up among ``imaging.photometry.targets`` by the frame's OBJECT (case and
   blanks ignored, aliases too), with every target that lists that OBJECT in its ``fields`` (a field
   holding several variables: each measured and reported on its own); lights of other targets are
   not photometry's business;
2. its filter gives the AAVSO filter code (the target's ``filters`` map, else the code itself, else
   the usual names: no filter or a luminance/clear filter is ``CV``, Red/Green/Blue ``TR``/``TG``/``TB``);
3. the sequence of that target and band: its VSP chart (a file, or from the chart cache, fetched
   there when ``fetch_charts`` is on) or the observer's own comparison stars;
4. :func:`~obsy_imaging.photometry.reduce.reduce_frame` on the calibrated light (header WCS or a
   plate solve, apertures from the FWHM, the CCD equation with the configured camera noise);
5. one row per target in ``imaging_photometry``: the magnitude and error (transformed to the
   standard system when a coefficient for the band and the target's colour are configured), times
   (JD, HJD, BJD_TDB), check star and its residual, airmass, comparisons, or (status ``failed``) the
   reasons there is none;
6. the AAVSO Extended report of that night and target rewritten from its rows, validated
   (:func:`~obsy_imaging.photometry.aavso.validate_report`) before it replaces the old one:
   ``reports/aavso/<night>/<target>.txt`` under the repository root; with ``bin_frames`` or
   ``bin_minutes`` the frames are binned (:mod:`~obsy_imaging.photometry.binning`).

A light whose target has no usable sequence (a missing chart, no comparison in the band) is stored
as ``no_sequence`` with the reason, and tried again when the service next starts, so that a chart
added later is used.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from astropy.io import fits
from sqlalchemy import delete, func, select

from obsy.config import SiteConfig
from obsy.files import write_atomic
from obsy_imaging.config import ImagingPhotometryConfig, PhotometryTargetConfig
from obsy_imaging.headers.normalise import Site
from obsy_imaging.photometry.aavso import (
    ENSEMBLE,
    FILTERS,
    Observation,
    ReportError,
    ReportHeader,
    field_problems,
    observation_fields,
    validate_report,
    write_report,
)
from obsy_imaging.photometry.aperture import CcdNoise
from obsy_imaging.photometry.binning import bin_observations
from obsy_imaging.photometry.differential import Sequence, Star
from obsy_imaging.photometry.reduce import ReducedFrame, reduce_frame
from obsy_imaging.photometry.transform import colour_terms, transform_for_filter
from obsy_imaging.photometry.vsp import Chart, ChartError, chart_sequence, load_chart, own_sequence
from obsy_imaging.repository.layout import folder_name
from obsy_imaging.repository.models import Calibration, Frame, Grade, PhotometryMeasurement
from obsy_imaging.repository.store import Repository, usable_lights

log = logging.getLogger("obsy.imaging.photometry")

MEASURED, FAILED, NO_SEQUENCE = "measured", "failed", "no_sequence"
SOFTWARE = "OBSY imaging 0.1 (sep aperture photometry)"
#: How long a chart that could not be loaded is not asked for again (a fetch that failed: offline).
CHART_RETRY_S = 300.0
#: Filter names capture programs use for filters that are not AAVSO codes themselves.
USUAL_FILTERS = {
    "": "CV",
    "L": "CV",
    "LUM": "CV",
    "LUMINANCE": "CV",
    "CLEAR": "CV",
    "C": "CV",
    "NONE": "CV",
    "RED": "TR",
    "GREEN": "TG",
    "BLUE": "TB",
    "RC": "R",
    "IC": "I",
    "JOHNSON V": "V",
    "JOHNSON B": "B",
    "CV": "CV",
}


@dataclass
class Measured:
    """A light after photometry: its stored row, and the report rewritten for its night and target."""

    frame: Frame
    row: PhotometryMeasurement
    path: str
    report: str | None = None
    report_problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    """A night's report for one target: its text (None when there is nothing to report) and path."""

    text: str | None
    path: Path
    observations: int
    left_out: list[str]


def band_for(filter_name: str | None, target: PhotometryTargetConfig) -> str | None:
    """The AAVSO filter code of a frame's filter for this target, or None when it has none."""
    return aavso_filter_code(filter_name, target.filters)


def aavso_filter_code(filter_name: str | None, names: dict[str, str] | None = None) -> str | None:
    """The AAVSO filter code of a frame's filter (``names`` first: the observer's own map), or None."""
    name = (filter_name or "").strip()
    for key, code in (names or {}).items():
        if key.strip().casefold() == name.casefold():
            return code
    if name.upper() in FILTERS:
        return name.upper()
    return USUAL_FILTERS.get(name.upper())


class Photometer:
    def __init__(
        self, repository: Repository, settings: ImagingPhotometryConfig, site: SiteConfig, data_dir: Path
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.site = Site(site.latitude, site.longitude, site.elevation)
        self.cache_dir = settings.chart_cache_dir(data_dir)
        self.reports_root = (settings.reports or repository.root / "reports" / "aavso").resolve()
        self._charts: dict[str, tuple[float, Chart | ChartError]] = {}
        self._colour_terms = colour_terms(settings.transformation)

    # --- which lights ------------------------------------------------------------------
    def pending(self, limit: int = 100) -> list[int]:
        """Calibrated lights of configured targets not measured yet for every target their field holds,
        or calibrated again since (a better master: those rows are replaced), accepted by grading (or
        not graded), oldest calibration first."""
        done = (  # the light's rows measured on its present calibration
            select(func.count())
            .select_from(PhotometryMeasurement)
            .where(
                PhotometryMeasurement.frame_id == Frame.id,
                PhotometryMeasurement.measured_at >= Calibration.calibrated_at,
            )
            .scalar_subquery()
        )
        most = max((len(self.settings.targets_in(name)) for name in self.settings.frame_names()), default=0)
        query = (
            usable_lights(Frame.id, Frame.target, done, names=self.settings.frame_names())
            .where(done < most)
            .order_by(Calibration.calibrated_at, Calibration.id)
        )
        found: list[int] = []
        with self.repository.sessions() as session:
            for frame_id, target, rows in session.execute(query):
                if rows < len(self.settings.targets_in(target)):
                    found.append(frame_id)
                    if len(found) >= limit:
                        break
        return found

    def unmeasured(self, frame_id: int) -> list[PhotometryTargetConfig]:
        """The targets a light holds that have no row for it yet, or one measured before its present
        calibration (it was calibrated again)."""
        with self.repository.sessions() as session:
            frame = session.get(Frame, frame_id)
            calibrated_at = session.scalar(select(Calibration.calibrated_at).where(Calibration.frame_id == frame_id))
            rows = session.execute(
                select(PhotometryMeasurement.target, PhotometryMeasurement.measured_at).where(
                    PhotometryMeasurement.frame_id == frame_id
                )
            ).all()
        done = {name for name, measured_at in rows if calibrated_at is None or not _before(measured_at, calibrated_at)}
        return [t for t in self.settings.targets_in(frame.target if frame else None) if t.name not in done]

    def measure_all(self, frame_id: int) -> list[Measured]:
        """Every target of the light not measured yet, each in its own row and report."""
        return [self.measure(frame_id, target) for target in self.unmeasured(frame_id)]

    def retry_without_sequence(self) -> int:
        """Forget the lights that had no sequence (a chart may have been added): they are measured again."""
        with self.repository.sessions.begin() as session:
            result = session.execute(delete(PhotometryMeasurement).where(PhotometryMeasurement.status == NO_SEQUENCE))
        return result.rowcount or 0

    # --- one light ---------------------------------------------------------------------
    def measure(self, frame_id: int, target: PhotometryTargetConfig | None = None) -> Measured:
        """One target's photometry on one light (by default the target its OBJECT names)."""
        # Before the file is read: a light calibrated again while it is measured is measured once more.
        started = datetime.now(UTC)
        with self.repository.sessions() as session:
            frame = session.get(Frame, frame_id)
            calibration = session.scalar(select(Calibration).where(Calibration.frame_id == frame_id))
            # Grading measured the seeing already (the same stars, before calibration): the apertures
            # take it instead of a second star search over the whole frame (most of a frame's time).
            seeing = session.scalar(select(Grade.fwhm_px).where(Grade.frame_id == frame_id))
        target = target or next(iter(self.settings.targets_in(frame.target)), None)
        assert target is not None and calibration is not None and calibration.path, "measure() of a pending light"
        row = PhotometryMeasurement(
            frame_id=frame.id,
            night=frame.night,
            target=target.name,
            filter=frame.filter,
            status=FAILED,
            comparisons=[],
            reasons=[],
            jd=frame.jd_mid,
            bjd_tdb=frame.bjd_tdb_mid,
        )
        path = self.repository.root / calibration.path
        band = band_for(frame.filter, target)
        sequence: Sequence | None = None
        if band is None:
            row.status = NO_SEQUENCE
            row.reasons = [
                f"filter {frame.filter!r} is not an AAVSO filter code: map it in the target's filters "
                "(imaging.photometry.targets[].filters, e.g. {Ha: HA})"
            ]
        else:
            row.band = band
            try:
                sequence = self.sequence(target, band)
            except ChartError as exc:
                row.status = NO_SEQUENCE
                row.reasons = [f"no sequence: {exc}"]
        if sequence is not None:
            row.chart_id = sequence.chart_id
            noise, why = self._noise(path, frame)
            transform, untransformed = transform_for_filter(band, self._colour_terms, target.colours)
            if noise is None:
                row.reasons = [why]
            else:
                reduced = reduce_frame(
                    path,
                    sequence,
                    noise,
                    site=self.site,
                    saturation_adu=self.settings.saturation_adu,
                    solve_timeout_s=self.settings.solve_timeout,
                    index_dirs=self.settings.index_dirs,
                    keep_solution=True,  # the transit reduction of the same light reuses it
                    fwhm_px=seeing or None,
                    transform=transform,
                )
                _fill(row, reduced)
                if untransformed:
                    row.reasons = [*row.reasons, untransformed]
        row.measured_at = started
        with self.repository.sessions.begin() as session:
            session.merge(row)
        done = Measured(frame, row, calibration.path)
        if row.status == MEASURED:
            try:
                report = self.write_report(row.night, row.target)
            except (ReportError, OSError) as exc:
                done.report_problems = [f"the report was not written: {exc}"]
            else:
                done.report = self._relative(report.path) if report.text is not None else None
                done.report_problems = [p for p in report.left_out if p.startswith(f"frame {frame.id}:")]
        return done

    def give_up(self, frame_id: int, reason: str, target: PhotometryTargetConfig | None = None) -> list[Measured]:
        """A light photometry failed on unexpectedly: stored as failed for ``target``, else for each
        target not measured yet (not tried every pass), with the reason."""
        with self.repository.sessions() as session:
            frame = session.get(Frame, frame_id)
            calibration = session.scalar(select(Calibration).where(Calibration.frame_id == frame_id))
        names = [target.name] if target else [t.name for t in self.unmeasured(frame_id)] or [frame.target or "unknown"]
        path = calibration.path if calibration is not None and calibration.path else frame.path
        given_up = []
        for name in names:
            row = PhotometryMeasurement(
                frame_id=frame.id,
                night=frame.night,
                target=name,
                filter=frame.filter,
                status=FAILED,
                comparisons=[],
                reasons=[reason],
                measured_at=datetime.now(UTC),
            )
            with self.repository.sessions.begin() as session:
                session.merge(row)
            given_up.append(Measured(frame, row, path))
        return given_up

    def _noise(self, path: Path, frame: Frame) -> tuple[CcdNoise | None, str]:
        gain = self.settings.gain_e_per_adu
        if gain is None:
            try:
                egain = fits.getheader(path).get("EGAIN")
            except (OSError, ValueError) as exc:
                return None, f"cannot read {path.name}: {exc}"
            gain = float(egain) if isinstance(egain, int | float) and egain > 0 else None
        if gain is None:
            return None, "no camera gain: set imaging.photometry.gain_e_per_adu (the header has no EGAIN)"
        dark = self.settings.dark_current_e_per_s * (frame.exposure_s or 0.0)
        return CcdNoise(gain, self.settings.read_noise_e, dark_e_per_px=dark), ""

    # --- sequences ---------------------------------------------------------------------
    def sequence(self, target: PhotometryTargetConfig, band: str) -> Sequence:
        """The target's sequence in one band; raises :class:`ChartError` with the reason."""
        if target.comparisons:
            stars = [Star(s.label, s.ra, s.dec, s.mag, s.mag_err, colours=s.colours) for s in target.comparisons]
            assert target.ra is not None and target.dec is not None  # the configuration checks it
            return own_sequence(target.name, target.ra, target.dec, stars, check=target.check)
        chart = self.chart(target)
        return chart_sequence(
            chart,
            band=band,
            target=target.name,
            target_ra_deg=target.ra,
            target_dec_deg=target.dec,
            check=target.check,
            comparisons=target.use,
        )

    def chart(self, target: PhotometryTargetConfig) -> Chart:
        cached = self._charts.get(target.name)
        if cached is not None and (isinstance(cached[1], Chart) or time.monotonic() - cached[0] < CHART_RETRY_S):
            if isinstance(cached[1], ChartError):
                raise cached[1]
            return cached[1]
        try:
            chart = load_chart(
                chart_file=target.chart_file,
                chart_id=target.chart_id,
                star=target.name if target.fetch_by_name else None,
                cache_dir=self.cache_dir,
                fetch=self.settings.fetch_charts,
                base_url=self.settings.vsp_url,
                timeout_s=self.settings.fetch_timeout,
                fov_arcmin=target.fov if target.fetch_by_name else None,
                maglimit=target.maglimit if target.fetch_by_name else None,
            )
        except ChartError as exc:
            self._charts[target.name] = (time.monotonic(), exc)
            raise
        self._charts[target.name] = (time.monotonic(), chart)
        return chart

    # --- reports -----------------------------------------------------------------------
    def report_path(self, night: str, target: str) -> Path:
        return self.reports_root / night / f"{folder_name(target)}.txt"

    def report(self, night: str, target: str) -> Report:
        """The AAVSO Extended report of one night and target from its stored magnitudes (not written)."""
        target_config = self.settings.target_for(target)
        name = target_config.name if target_config is not None else target
        with self.repository.sessions() as session:
            rows = session.scalars(
                select(PhotometryMeasurement)
                .where(
                    PhotometryMeasurement.night == night,
                    PhotometryMeasurement.target == name,
                    PhotometryMeasurement.status == MEASURED,
                )
                .order_by(PhotometryMeasurement.jd, PhotometryMeasurement.frame_id)
            ).all()
        header = ReportHeader(
            obscode=self.settings.observer_code or "NONE",
            software=SOFTWARE,
            date_type=self.settings.date_type,
            obstype=self.settings.obstype,
        )
        observations: list[Observation] = []
        left_out = []
        for row in rows:
            observation, why = self._observation(row)
            if observation is None:
                left_out.append(f"frame {row.frame_id}: {why}")
                continue
            problems = field_problems(observation_fields(observation), header.delimiter)
            if problems:
                left_out.append(f"frame {row.frame_id}: " + "; ".join(problems))
                continue
            observations.append(observation)
        observations = bin_observations(
            observations, frames=self.settings.bin_frames, minutes=self.settings.bin_minutes
        )
        path = self.report_path(night, name)
        if not observations:
            return Report(None, path, 0, left_out)
        return Report(write_report(header, observations), path, len(observations), left_out)

    def write_report(self, night: str, target: str) -> Report:
        """Write (replace) the night's report of a target, after checking it as AAVSO would."""
        report = self.report(night, target)
        if report.text is None:
            return report
        problems = validate_report(report.text)
        if problems:
            raise ReportError(f"{report.path.name}: " + "; ".join(problems))
        report.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(report.path, report.text.encode("ascii", errors="replace"))
        return report

    def _observation(self, row: PhotometryMeasurement) -> tuple[Observation | None, str]:
        date = row.hjd if self.settings.date_type == "HJD" else row.jd
        if date is None or row.magnitude is None or row.band is None:
            return None, f"no {self.settings.date_type}, magnitude or filter"
        comparisons = row.comparisons or []
        single = len(comparisons) == 1
        has_check = (
            row.check_label is not None and row.check_instrumental is not None and row.check_magnitude is not None
        )
        return (
            Observation(
                name=row.target,
                date=date,
                mag=row.magnitude,
                mag_err=row.error,
                filter=row.band,
                comparison=comparisons[0]["label"] if single else ENSEMBLE,
                comparison_instrumental=comparisons[0]["instrumental_mag"] if single else None,
                check=row.check_label if has_check else None,
                check_instrumental=row.check_instrumental if has_check else None,
                airmass=row.airmass,
                transformed=bool(row.transformed),
                chart=row.chart_id,
            ),
            "",
        )

    def _relative(self, path: Path) -> str:
        try:
            return str(PurePosixPath(path.relative_to(self.repository.root.resolve())))
        except ValueError:
            return str(path)


def _fill(row: PhotometryMeasurement, reduced: ReducedFrame) -> None:
    m, h = reduced.magnitudes, reduced.header
    row.reasons = list(m.reasons)
    row.wcs_source = reduced.solution.source if reduced.solution is not None else None
    row.fwhm_px = reduced.fwhm_px
    row.airmass = reduced.target_airmass if reduced.target_airmass is not None else (h.airmass if h else None)
    row.hjd = reduced.hjd_mid
    if h is not None:
        row.jd = h.jd_mid if h.jd_mid is not None else row.jd
        row.bjd_tdb = h.bjd_tdb_mid if h.bjd_tdb_mid is not None else row.bjd_tdb
    row.comparisons = [
        {"label": c.star.label, "catalogue_mag": c.star.mag, "instrumental_mag": round(c.instrumental_mag, 5)}
        for c in m.comparisons_used
    ]
    if m.check is not None:
        row.check_label = m.check.star.label
        row.check_instrumental = m.check.instrumental_mag if m.check_mag is not None else None
    row.check_magnitude = m.check_mag
    row.check_residual = m.check_residual
    row.transformed = m.transformed
    if m.mag is not None:
        row.status = MEASURED
        row.magnitude = m.mag
        row.error = m.mag_err
    elif not row.reasons:
        row.reasons = ["no magnitude"]


def _before(measured_at: datetime, calibrated_at: datetime) -> bool:
    """Whether a row was measured before the light's calibration (SQLite gives the times back naive, in UTC)."""
    if (measured_at.tzinfo is None) != (calibrated_at.tzinfo is None):
        measured_at, calibrated_at = measured_at.replace(tzinfo=None), calibrated_at.replace(tzinfo=None)
    return measured_at < calibrated_at
