"""The repository: registering frames (deduplicated by content hash) and quarantined files."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.exc import IntegrityError

from obsy_imaging.config import photometry_name_key
from obsy_imaging.grading.measure import FrameQuality
from obsy_imaging.ingest.inspect import InspectedFrame
from obsy_imaging.repository import placement
from obsy_imaging.repository.database import session_factory
from obsy_imaging.repository.layout import frame_folder
from obsy_imaging.repository.models import Calibration, Frame, Grade, QuarantinedFile

log = logging.getLogger("obsy.imaging.repository")


@dataclass(frozen=True)
class Registered:
    frame: Frame
    #: False when the same bytes were registered before (by this or another route).
    created: bool


@dataclass(frozen=True)
class Counts:
    frames_tonight: int
    lights_tonight: int
    accepted_tonight: int
    frames_total: int
    quarantined_since: int


#: The calibration frame types a plan can ask for (the scheduler plans no dark flats).
CALIBRATION_PLANS = ("dark", "bias", "flat")


def usable_lights(*columns: Any, names: Iterable[str] | None = None) -> Select:
    """A query of calibrated lights that grading accepted (or did not grade): what photometry and the
    transit fits measure. ``names``: only lights whose OBJECT is one of them in a first cut (spaces
    and case ignored in SQL; tabs and such are rare in OBJECT): the caller matches exactly."""
    query = (
        select(*columns)
        .join(Calibration, Calibration.frame_id == Frame.id)
        .outerjoin(Grade, Grade.frame_id == Frame.id)
        .where(
            Frame.frame_type == "light",
            Calibration.status == "calibrated",
            (Grade.id.is_(None)) | (Grade.accepted.is_(True)),
        )
    )
    if names is not None:
        loose = func.lower(func.replace(func.coalesce(Frame.target, ""), " ", ""))
        query = query.where(loose.in_(sorted({photometry_name_key(name) for name in names})))
    return query


class Repository:
    def __init__(self, engine: Engine, root: Path, quarantine_root: Path) -> None:
        self.engine = engine
        self.root = root
        self.quarantine_root = quarantine_root
        self.sessions = session_factory(engine)

    # --- what is known ------------------------------------------------------------------
    def frame_by_hash(self, sha256: str) -> Frame | None:
        with self.sessions() as session:
            return session.scalar(select(Frame).where(Frame.sha256 == sha256))

    def seen(self, source: Path, size: int, mtime_ns: int) -> bool:
        """Whether this version of this file was registered or quarantined before (resuming an import)."""
        text = str(source)
        with self.sessions() as session:
            for model in (Frame, QuarantinedFile):
                hit = session.scalar(
                    select(model.id)
                    .where(model.source_path == text, model.size_bytes == size, model.source_mtime_ns == mtime_ns)
                    .limit(1)
                )
                if hit is not None:
                    return True
        return False

    def counts(self, night: str, since: datetime) -> Counts:
        with self.sessions() as session:
            tonight = session.execute(
                select(Frame.frame_type, func.count()).where(Frame.night == night).group_by(Frame.frame_type)
            ).all()
            total = session.scalar(select(func.count()).select_from(Frame)) or 0
            quarantined = (
                session.scalar(
                    select(func.count()).select_from(QuarantinedFile).where(QuarantinedFile.quarantined_at >= since)
                )
                or 0
            )
            accepted = (
                session.scalar(
                    select(func.count()).select_from(Grade).where(Grade.night == night, Grade.accepted.is_(True))
                )
                or 0
            )
        by_type = dict(tonight)
        return Counts(sum(by_type.values()), by_type.get("light", 0), accepted, total, quarantined)

    def accepted_lights(self) -> list[tuple[str, str | None, float, int, str]]:
        """Accepted lights, and the calibration frames taken for a target (Ekos names the job's
        target in their OBJECT), of every night as (target, filter, exposure_s, count, frame type),
        sorted. Calibration frames are not graded: every registered one counts.

        Frames without a target cannot count towards a plan and are left out, lights without an
        exposure too; exposures equal to the millisecond are one group.
        """
        with self.sessions() as session:
            lights = session.execute(
                select(Frame.target, Frame.filter, Frame.exposure_s, Frame.frame_type, func.count())
                .join(Grade, Grade.frame_id == Frame.id)
                .where(
                    Grade.accepted.is_(True),
                    Frame.frame_type == "light",
                    Frame.target.is_not(None),
                    Frame.exposure_s > 0,
                )
                .group_by(Frame.target, Frame.filter, Frame.exposure_s, Frame.frame_type)
            ).all()
            calibration = session.execute(
                select(Frame.target, Frame.filter, Frame.exposure_s, Frame.frame_type, func.count())
                .where(Frame.frame_type.in_(CALIBRATION_PLANS), Frame.target.is_not(None), Frame.exposure_s >= 0)
                .group_by(Frame.target, Frame.filter, Frame.exposure_s, Frame.frame_type)
            ).all()
        groups: dict[tuple[str, str | None, float, str], int] = {}
        for target, filter_name, exposure, frame_type, count in [*lights, *calibration]:
            if not target.strip():
                continue
            key = (target, filter_name, round(float(exposure), 3), frame_type)
            groups[key] = groups.get(key, 0) + int(count)
        return sorted(
            ((t, f, e, n, k) for (t, f, e, k), n in groups.items()),
            key=lambda row: (row[0], row[4] != "light", row[4], row[1] or "", row[2]),
        )

    # --- frames -------------------------------------------------------------------------
    def register(self, frame: InspectedFrame, night: str, route: str) -> Registered:
        """Put the frame in its place and its header in the database, unless the bytes are known.

        Raises :class:`~obsy_imaging.repository.placement.StorageFullError` when the disk is full:
        nothing is lost (the original is untouched), the caller tries again later.
        """
        existing = self.frame_by_hash(frame.sha256)
        if existing is not None:
            return Registered(existing, created=False)
        placed, how = placement.place(frame.path, self.root / frame_folder(frame.header, night))
        header = frame.header
        row = Frame(
            sha256=frame.sha256,
            path=placed.relative_to(self.root).as_posix(),
            placement=how,
            source_path=str(frame.path),
            source_mtime_ns=frame.mtime_ns,
            size_bytes=frame.size,
            route=route,
            ingested_at=datetime.now(UTC),
            frame_type=header.frame_type.value,
            program=header.program,
            night=night,
            target=header.target,
            filter=header.filter,
            exposure_s=header.exposure_s,
            binning_x=header.binning_x,
            binning_y=header.binning_y,
            gain=header.gain,
            offset=header.offset,
            readout_mode=header.readout_mode,
            sensor_temp_c=header.sensor_temp_c,
            setpoint_temp_c=header.setpoint_temp_c,
            camera=header.camera,
            telescope=header.telescope,
            focal_length_mm=header.focal_length_mm,
            pixel_size_um=header.pixel_size_um,
            ra_deg=header.ra_deg,
            dec_deg=header.dec_deg,
            site_latitude=header.site_latitude,
            site_longitude=header.site_longitude,
            site_elevation_m=header.site_elevation_m,
            date_obs=header.date_obs,
            jd_mid=header.jd_mid,
            bjd_tdb_mid=header.bjd_tdb_mid,
            airmass=header.airmass,
            width=header.width,
            height=header.height,
            bitpix=frame.bitpix,
            compressed=frame.compressed,
            header=[list(card) for card in frame.cards],
            notes="; ".join(header.notes),
        )
        try:
            with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            # Another route registered the same bytes between our check and our insert: keep theirs.
            placed.unlink(missing_ok=True)
            winner = self.frame_by_hash(frame.sha256)
            if winner is None:
                raise
            return Registered(winner, created=False)
        return Registered(row, created=True)

    # --- grades -------------------------------------------------------------------------
    def night_qualities(self, night: str, target: str | None, filter_name: str | None) -> list[FrameQuality]:
        """Quality figures of the lights graded so far for this night, target and filter."""
        with self.sessions() as session:
            grades = session.scalars(
                select(Grade).where(
                    Grade.night == night,
                    Grade.target.is_(None) if target is None else Grade.target == target,
                    Grade.filter.is_(None) if filter_name is None else Grade.filter == filter_name,
                )
            ).all()
        return [
            FrameQuality(g.stars, g.fwhm_px, g.hfr_px, g.eccentricity, g.background, g.noise, g.snr) for g in grades
        ]

    def add_grade(self, grade: Grade) -> Grade:
        with self.sessions.begin() as session:
            session.add(grade)
        return grade

    def grade_of(self, frame_id: int) -> Grade | None:
        with self.sessions() as session:
            return session.scalar(select(Grade).where(Grade.frame_id == frame_id))

    # --- quarantine ---------------------------------------------------------------------
    def quarantine(
        self, source: Path, problem: str, reason: str, *, route: str, size: int, mtime_ns: int
    ) -> QuarantinedFile | None:
        """Record why ``source`` cannot be taken and set a copy aside; None when recorded before.

        The original is never moved or deleted: a full disk or an unreadable file still gets its
        record (without a copy), so the reason is never lost either.
        """
        if self.seen(source, size, mtime_ns):
            return None
        now = datetime.now(UTC)
        aside: str | None = None
        folder = self.quarantine_root / now.strftime("%Y-%m-%d")
        try:
            placed, _how = placement.place(source, folder)
            placed.with_name(placed.name + ".reason.txt").write_text(
                f"{source}\n{problem}: {reason}\n", encoding="utf-8"
            )
            aside = placed.relative_to(self.quarantine_root).as_posix()
        except OSError as exc:
            log.warning("cannot set %s aside in %s: %s (the original stays)", source, folder, exc)
        row = QuarantinedFile(
            source_path=str(source),
            source_mtime_ns=mtime_ns,
            size_bytes=size,
            problem=problem,
            reason=reason,
            quarantined_path=aside,
            route=route,
            quarantined_at=now,
        )
        try:
            with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            return None
        return row
