"""The calibration library at work: masters from the repository's raw frames, lights calibrated as they come.

:class:`Calibrator` is what the service (and ``obsy-imaging calibrate``) runs; the library in
:mod:`obsy_imaging.calibration` does the pixels and the rules, this module the bookkeeping:

* every light registered gets a row in ``imaging_calibrated`` (``pending``); a pass tries it:
  ``calibrated`` (which masters, why, the output file) or ``waiting`` (what is missing). Waiting
  lights are tried again whenever the library gains a master;
* the raw calibration frames are grouped (:func:`~obsy_imaging.calibration.group_frames`); a
  group with ``min_frames`` frames, to which no frame was added for ``quiet_time`` seconds and
  that has no master of exactly its frames, is built (bias, darks and dark-flats before flats,
  which need one of them). A group that grew after its master was built is built again; the
  new master replaces the old one in the library (``superseded_by``), lights already
  calibrated keep their link to the one they used unless they are calibrated again (below);
* a master the user pins (:meth:`Calibrator.pin`) is chosen for the lights of its group over any
  newer one until unpinned;
* when the library changes (a master built, pinned or unpinned), the lights of the last
  ``recalibrate_nights`` nights for which another master would now be chosen are calibrated
  again (:meth:`Calibrator.recalibrate`): the calibrated file is replaced (atomically) and the
  earlier calibration kept in the row's ``history``;
* a frame that cannot be used (unreadable, no signal) is recorded in ``imaging_frame_problems``
  and left out of its group; a group that cannot be built is reported once (and again after a
  restart). Nothing here raises into the service for bad input: every problem is returned as a
  :class:`Problem` to publish.

Files: ``masters/<camera>/<kind>/<master id>.fits`` (and ``<id>.bpm.fits``, a dark's bad-pixel
map) and ``calibrated/<night>/<target>/<filter>/<raw name>.fits`` under the repository's root.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer

from obsy.messages import EventKind
from obsy_imaging import calibration as cal
from obsy_imaging.calibration.matching import setup_difference
from obsy_imaging.config import ImagingCalibrationConfig
from obsy_imaging.repository.layout import folder_name
from obsy_imaging.repository.models import Calibration, Frame, FrameProblem, Master, MasterInput
from obsy_imaging.repository.store import Repository

log = logging.getLogger("obsy.imaging.calibration")

#: The repository's frame types (FrameType values) as the library's kinds.
KINDS = {
    "bias": cal.FrameKind.BIAS,
    "dark": cal.FrameKind.DARK,
    "flat": cal.FrameKind.FLAT,
    "dark_flat": cal.FrameKind.DARK_FLAT,
    "light": cal.FrameKind.LIGHT,
}
#: Built before flats in a pass: a flat's frames need one of them taken off.
_FIRST = (cal.FrameKind.BIAS, cal.FrameKind.DARK, cal.FrameKind.DARK_FLAT)
#: Errors of bad input (files, groups), reported and survived; anything else is a bug and is raised.
INPUT_ERRORS = (cal.FrameError, cal.CombineError, cal.GroupError, OSError, ValueError)
PENDING, WAITING, CALIBRATED, FAILED = "pending", "waiting", "calibrated", "failed"


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time in the imaging tables is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def rules_of(settings: ImagingCalibrationConfig, min_frames: int | None = None) -> cal.MatchRules:
    return cal.MatchRules(
        temperature_tolerance=settings.temperature_tolerance,
        exposure_tolerance=settings.exposure_tolerance,
        flat_max_age=timedelta(days=settings.flat_max_age_days),
        master_max_age=None if settings.master_max_age_days is None else timedelta(days=settings.master_max_age_days),
        require_dark=settings.require_dark,
        require_flat=settings.require_flat,
        min_frames=min_frames or settings.min_frames,
    )


@dataclass(frozen=True)
class Problem:
    """Something that could not be done, worded for people: published as an error event."""

    kind: EventKind  # master_failed, frame_unusable, calibration_failed
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltMaster:
    master: Master
    frame_ids: tuple[int, ...]
    replaces: str | None
    bad_pixels: dict[str, Any] | None


@dataclass(frozen=True)
class CalibratedLight:
    frame: Frame
    calibration: Calibration
    masters: dict[str, str]  # kind → master id applied
    waited_s: float | None
    #: Calibrated again: the masters (kind → master id) of the calibration this one replaces.
    replaced: dict[str, str] | None = None


class PinError(ValueError):
    """A pin or unpin that cannot be done (an unknown master, a raw frame's id); the message names it."""


@dataclass(frozen=True)
class PinChange:
    master: Master
    pinned: bool
    #: Other masters of the same group that were pinned and are not any more (one pin per group).
    unpinned: tuple[str, ...] = ()


@dataclass
class PassResult:
    built: list[BuiltMaster] = field(default_factory=list)
    calibrated: list[CalibratedLight] = field(default_factory=list)
    #: Lights calibrated before and calibrated again with the masters that would now be chosen.
    recalibrated: list[CalibratedLight] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Ready groups not built yet, and why (still growing, waiting for a bias or dark-flat).
    waiting_groups: list[str] = field(default_factory=list)
    #: A ready group waits only for time to pass (frames may still be arriving): group again soon.
    due_later: bool = False


@dataclass(frozen=True)
class Counts:
    calibrated_tonight: int
    queue: int
    waiting_for: list[str]
    masters: int


class Calibrator:
    def __init__(self, repository: Repository, settings: ImagingCalibrationConfig, *, backend: str = "auto") -> None:
        self.repository = repository
        self.settings = settings
        self.rules = rules_of(settings)
        self.combine = cal.CombineSettings(
            method=settings.method, sigma_low=settings.sigma_low, sigma_high=settings.sigma_high
        )
        self.backend = backend
        #: Groups (their frame ids) that failed to build: reported once, tried again when they change.
        self._failed_groups: dict[frozenset[int], str] = {}
        self._prepared: tuple[tuple, cal.PreparedMasters] | None = None
        #: Checked between masters and between lights: the service sets it when it stops.
        self.cancelled: Callable[[], bool] = lambda: False
        self._last_library: tuple | None = None  # the library's signature at the last grouping
        self._groups_waiting = False  # a ready group waits for its quiet time: group again next pass
        self._last_masters: tuple | None = None  # the masters and pins at the last recalibration

    @property
    def root(self) -> Path:
        return self.repository.root

    # --- the repository's frames as the library sees them ---------------------------------
    def frame_info(self, frame: Frame) -> cal.FrameInfo:
        temperature = frame.sensor_temp_c if frame.sensor_temp_c is not None else frame.setpoint_temp_c
        return cal.FrameInfo(
            kind=KINDS[frame.frame_type],
            camera=frame.camera or "unknown",
            time=aware(frame.date_obs or frame.ingested_at),
            exposure=frame.exposure_s or 0.0,
            binning=(frame.binning_x, frame.binning_y),
            gain=frame.gain,
            offset=frame.offset,
            readout_mode=frame.readout_mode,
            temperature=temperature,
            filter=frame.filter,
            optical_train=self.optical_train(frame),
            shape=(frame.height, frame.width) if frame.height and frame.width else None,
            path=self.root / frame.path,
        )

    def master_info(self, master: Master) -> cal.MasterInfo:
        return cal.MasterInfo(
            kind=cal.FrameKind(master.kind),
            camera=master.camera,
            time=aware(master.time),
            exposure=master.exposure_s,
            binning=(master.binning_x, master.binning_y),
            gain=master.gain,
            offset=master.offset,
            readout_mode=master.readout_mode,
            temperature=master.temperature_c,
            filter=master.filter,
            optical_train=master.optical_train,
            shape=(master.height, master.width),
            path=self.root / master.path,
            master_id=master.master_id,
            frame_count=master.frame_count,
            built=aware(master.built_at),
            pinned=master.pinned_at is not None,
        )

    def optical_train(self, frame: Frame) -> str | None:
        """The frame's optical train, from the parts ``optical_train`` names (none known: no train).

        No capture program writes a train's name in the FITS header (Ekos 3.6 keeps its optical
        trains to itself), so the telescope (TELESCOP), focal length (FOCALLEN) and camera
        (INSTRUME) stand for it. A frame whose header lacks one of those named has no train.
        """
        values = {
            "telescope": frame.telescope,
            "focal_length": None if frame.focal_length_mm is None else f"{frame.focal_length_mm:g} mm",
            "camera": frame.camera,
        }
        names = self.settings.optical_train
        parts = [values[name] for name in names]
        if not parts or not all(parts) or set(names) <= {"camera"}:
            # A header without one of them has no train (it then matches by filter alone), and the
            # camera alone is no train: every master already has the light's camera.
            return None
        return ", ".join(parts)

    def library(self) -> list[Master]:
        """The masters in use: not replaced by a bigger master of the same group, or pinned by the user."""
        with self.repository.sessions() as session:
            in_use = or_(Master.superseded_by.is_(None), Master.pinned_at.is_not(None))
            return list(session.scalars(select(Master).where(in_use).order_by(Master.id)))

    # --- pins -----------------------------------------------------------------------------
    def pin(self, reference: str, *, by: str | None = None, now: datetime | None = None) -> PinChange:
        """Pin a master (its id, or its row number) for its group; another pinned master of the group is unpinned."""
        with self.repository.sessions.begin() as session:
            master = self._find_master(session, reference)
            info = self.master_info(master)
            unpinned = []
            for other in session.scalars(
                select(Master).where(Master.kind == master.kind, Master.pinned_at.is_not(None), Master.id != master.id)
            ):
                if self._same_group(self.master_info(other), info):
                    other.pinned_at, other.pinned_by = None, None
                    unpinned.append(other.master_id)
            master.pinned_at, master.pinned_by = now or datetime.now(UTC), by
        log.info("pinned %s%s", master.master_id, f" (unpinned {unpinned})" if unpinned else "")
        return PinChange(master, True, tuple(unpinned))

    def unpin(self, reference: str) -> PinChange:
        """Unpin a master: its group's lights get the usual choice again (a pin that was not there is no error)."""
        with self.repository.sessions.begin() as session:
            master = self._find_master(session, reference)
            master.pinned_at, master.pinned_by = None, None
        log.info("unpinned %s", master.master_id)
        return PinChange(master, False)

    def pinned(self) -> list[str]:
        """The ids of the pinned masters."""
        with self.repository.sessions() as session:
            query = select(Master.master_id).where(Master.pinned_at.is_not(None)).order_by(Master.id)
            return list(session.scalars(query))

    @staticmethod
    def _find_master(session, reference: str) -> Master:
        text = str(reference).strip()
        master = session.scalar(select(Master).where(Master.master_id == text))
        if master is None and text.isdigit():
            master = session.get(Master, int(text))
        if master is None:
            raise PinError(
                f"no master {text[:80]!r} in the calibration library (a master id such as dark-1a2b3c, or its number)"
            )
        return master

    def _same_group(self, a: cal.MasterInfo, b: cal.MasterInfo) -> bool:
        """Two masters that would serve the same lights: the same setup, exposure (darks), filter and train (flats)."""
        if a.kind != b.kind or setup_difference(a, b, self.rules) is not None:
            return False
        if a.kind in (cal.FrameKind.DARK, cal.FrameKind.DARK_FLAT):
            return abs(a.exposure - b.exposure) <= self.rules.exposure_tolerance * max(b.exposure, 1e-9)
        if a.kind == cal.FrameKind.FLAT:
            return (a.filter, a.optical_train) == (b.filter, b.optical_train)
        return True

    # --- one pass -------------------------------------------------------------------------
    def run(self, *, now: datetime | None = None, retry_waiting: bool = False) -> PassResult:
        """Queue new lights, build the masters that are due, calibrate what can be calibrated."""
        now = now or datetime.now(UTC)
        result = PassResult()
        self.queue_new_lights(now)
        library = self._library_signature()
        if library != self._last_library or self._groups_waiting:
            self.build_due(result, now=now)
            self._groups_waiting = result.due_later
            # The signature from before this grouping: a frame ingested while it ran (which it may not
            # have seen) changes the next pass's signature, so that pass groups again. Taking it after
            # the grouping lost such a frame for good: a flat group one frame short, never built.
            self._last_library = library
        self.calibrate(result, retry_waiting=retry_waiting or bool(result.built), now=now)
        masters = self._masters_signature()
        if masters != self._last_masters:
            self.recalibrate(result, now=now)
            self._last_masters = masters
        return result

    def _masters_signature(self) -> tuple:
        """Changes when a master is added, pinned or unpinned (another master may now be chosen)."""
        with self.repository.sessions() as session:
            return (
                session.scalar(select(func.max(Master.id))),
                session.scalar(select(func.count()).select_from(Master).where(Master.pinned_at.is_not(None))),
                session.scalar(select(func.max(Master.pinned_at))),
            )

    def _library_signature(self) -> tuple:
        """Changes when a calibration frame or a master is added or a frame found unusable (grouping is due)."""
        with self.repository.sessions() as session:
            return (
                session.scalar(select(func.max(Frame.id)).where(Frame.frame_type != "light")),
                session.scalar(select(func.count()).select_from(FrameProblem)),
                session.scalar(select(func.max(Master.id))),
            )

    def queue_new_lights(self, now: datetime | None = None) -> int:
        """A ``pending`` row for every light without one (new, imported, or there before this table)."""
        now = now or datetime.now(UTC)
        with self.repository.sessions.begin() as session:
            known = select(Calibration.frame_id)
            rows = session.execute(
                select(Frame.id, Frame.night).where(Frame.frame_type == "light", Frame.id.not_in(known))
            ).all()
            session.add_all(
                Calibration(
                    frame_id=frame_id, night=night, status=PENDING, queued_at=now, explanation=[], waiting_for=[]
                )
                for frame_id, night in rows
            )
        return len(rows)

    # --- masters --------------------------------------------------------------------------
    def build_due(
        self, result: PassResult, *, now: datetime | None = None, min_frames: int | None = None, force: bool = False
    ) -> PassResult:
        """Build every ready group without a master of exactly its frames (``force``: never mind ``quiet_time``)."""
        now = now or datetime.now(UTC)
        rules = rules_of(self.settings, min_frames)
        for first_round in (True, False):  # bias, darks, dark-flats; then flats, which use them
            for _attempt in range(20):  # a frame found unusable regroups its kind; bounded
                again = False
                frames, infos = self._raw_frames()
                built_inputs = self._built_inputs()
                for group in cal.group_frames(list(infos.values()), rules):
                    if self.cancelled():
                        return result
                    if not group.ready or (group.kind in _FIRST) != first_round:
                        continue
                    ids = frozenset(infos_key(infos, group.frames))
                    if ids in built_inputs or ids in self._failed_groups:
                        continue
                    newest = max(aware(frames[i].ingested_at) for i in ids)
                    quiet = self.settings.quiet_time + self.settings.quiet_exposures * group.first.exposure
                    if not force and (now - newest).total_seconds() < quiet:
                        result.waiting_groups.append(f"{_group_text(group)}: frames may still be arriving")
                        result.due_later = True
                        continue
                    outcome = self._build(group.kind, group.frames, ids, frames=frames, rules=rules, result=result)
                    if outcome == "regroup":
                        again = True
                        break
                if not again:
                    break
        return result

    def build_from(self, frame_ids: Sequence[int], result: PassResult) -> PassResult:
        """One master of exactly these frames (on command); they must belong together."""
        with self.repository.sessions() as session:
            found = {f.id: f for f in session.scalars(select(Frame).where(Frame.id.in_(list(frame_ids))))}
        missing = [i for i in frame_ids if i not in found]
        if missing:
            result.problems.append(Problem(EventKind.MASTER_FAILED, f"no frames with ids {missing} in the repository"))
            return result
        lights = [found[i].path for i in frame_ids if found[i].frame_type == "light"]
        if lights:
            result.problems.append(
                Problem(EventKind.MASTER_FAILED, f"lights are not combined into masters: {lights[:5]}")
            )
            return result
        infos = [self.frame_info(found[i]) for i in frame_ids]
        kind = infos[0].kind
        try:
            cal.check_group(kind, infos, self.rules)
        except cal.GroupError as exc:
            result.problems.append(
                Problem(
                    EventKind.MASTER_FAILED,
                    f"no master {kind} of frames {list(frame_ids)}: {exc}",
                    {"frame_ids": list(frame_ids)},
                )
            )
            return result
        ids = frozenset(frame_ids)
        if ids in self._built_inputs():
            result.problems.append(Problem(EventKind.MASTER_EXISTS, f"a master of exactly frames {sorted(ids)} exists"))
            return result
        self._build(
            kind, tuple(infos), ids, frames=found, rules=self.rules, result=result, report_unusable_as_failure=True
        )
        return result

    def _raw_frames(self) -> tuple[dict[int, Frame], dict[int, cal.FrameInfo]]:
        with self.repository.sessions() as session:
            unusable = select(FrameProblem.frame_id)
            query = select(Frame).where(Frame.frame_type != "light", Frame.id.not_in(unusable)).order_by(Frame.id)
            # Not the full headers (JSON, kilobytes each): grouping reads only the typed columns.
            frames = {f.id: f for f in session.scalars(query.options(defer(Frame.header), defer(Frame.notes)))}
        infos = {}
        for frame_id, frame in frames.items():
            try:
                infos[frame_id] = self.frame_info(frame)
            except ValueError as exc:  # a negative exposure: the ingest keeps such frames out, but never crash
                log.warning("frame %s left out of the calibration library: %s", frame.path, exc)
        return frames, infos

    def _built_inputs(self) -> dict[frozenset[int], Master]:
        with self.repository.sessions() as session:
            masters = {m.id: m for m in session.scalars(select(Master))}
            inputs: dict[int, set[int]] = {}
            for master_id, frame_id in session.execute(select(MasterInput.master_id, MasterInput.frame_id)):
                inputs.setdefault(master_id, set()).add(frame_id)
        return {frozenset(ids): masters[m] for m, ids in inputs.items()}

    def _build(
        self,
        kind: cal.FrameKind,
        infos: Sequence[cal.FrameInfo],
        ids: frozenset[int],
        *,
        frames: dict[int, Frame],
        rules: cal.MatchRules,
        result: PassResult,
        report_unusable_as_failure: bool = False,
    ) -> str:
        """Build one master; 'built', 'waiting', 'failed' or 'regroup' (a frame was found unusable)."""
        by_path = {self.root / frames[i].path: frames[i] for i in ids}
        # Each file must still be what the ingest saw (a file overwritten or truncated since is left out).
        for info in infos:
            try:
                source = cal.FitsFrame(info.path)
                if info.shape is not None and source.shape != info.shape:
                    raise cal.FrameError(f"{info.name}: the file is {source.shape}, the repository says {info.shape}")
            except INPUT_ERRORS as exc:
                frame = by_path[info.path]
                if report_unusable_as_failure:
                    result.problems.append(Problem(EventKind.MASTER_FAILED, str(exc), {"frame_id": frame.id}))
                    return "failed"
                self._unusable(frame, str(exc), result)
                return "regroup"
        bias = dark_flat = None
        under: Master | None = None
        if kind == cal.FrameKind.FLAT:
            under = self._flat_offset(infos[0], rules)
            if under is None:
                result.waiting_groups.append(f"{_group_text_of(kind, infos)}: waits for a master bias or dark-flat")
                return "waiting"
        try:
            if under is not None:
                loaded = cal.MasterFrame(
                    data=cal.load_master(self.master_info(under), infos[0].shape),
                    info=self.master_info(under),
                    provenance=cal.Provenance(product=f"master {under.kind}", inputs=()),
                )
                if under.kind == cal.FrameKind.BIAS:
                    bias = loaded
                else:
                    dark_flat = loaded
            master = cal.build_master(
                kind, infos, self.combine, bias=bias, dark_flat=dark_flat, rules=rules, backend=self.backend
            )
        except INPUT_ERRORS as exc:
            message = str(exc)
            culprit = _culprit(message, infos)
            if culprit is not None and not report_unusable_as_failure:
                self._unusable(by_path[culprit.path], message, result)
                return "regroup"
            self._failed_groups[ids] = message
            result.problems.append(
                Problem(
                    EventKind.MASTER_FAILED,
                    f"master {kind} of {len(infos)} frames ({_group_text_of(kind, infos)}) not built: {message}",
                    {"frame_ids": sorted(ids), "kind": str(kind)},
                )
            )
            return "failed"
        built = self._store(master, ids, under, result)
        return "built" if built else "failed"

    def _flat_offset(self, first: cal.FrameInfo, rules: cal.MatchRules) -> Master | None:
        """What to take off flat frames: a dark-flat (or a dark, as Ekos names them) of their exposure, else a bias."""
        candidates: list[tuple[int, Any, Master]] = []
        for master in self.library():
            info = self.master_info(master)
            if setup_difference(info, first, rules) is not None:
                continue
            same_exposure = abs(master.exposure_s - first.exposure) <= rules.exposure_tolerance * max(
                first.exposure, 1e-9
            )
            if master.kind in (cal.FrameKind.DARK_FLAT, cal.FrameKind.DARK) and same_exposure:
                rank = 2 if master.kind == cal.FrameKind.DARK_FLAT else 1
            elif master.kind == cal.FrameKind.BIAS:
                rank = 0
            else:
                continue
            candidates.append((rank, aware(master.built_at), master))
        if not candidates:
            return None
        return max(candidates, key=lambda c: (c[0], c[1], c[2].id))[2]

    def _store(self, master: cal.MasterFrame, ids: frozenset[int], under: Master | None, result: PassResult) -> bool:
        info = master.info
        folder = PurePosixPath("masters", folder_name(info.camera), str(info.kind))
        relative = folder / f"{info.master_id}.fits"
        bpm_relative: PurePosixPath | None = None
        bpm_summary: dict[str, Any] | None = None
        try:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            master.write(self.root / relative)
            if info.kind == cal.FrameKind.DARK and self.settings.bad_pixels:
                bias = self._matching_bias(info)
                bias_data = None if bias is None else cal.load_master(self.master_info(bias), info.shape)
                found = cal.find_bad_pixels(master.data, bias_data)
                bpm_relative = folder / f"{info.master_id}.bpm.fits"
                found.write(self.root / bpm_relative)
                bpm_summary = found.summary() | {"bias": None if bias is None else bias.master_id}
        except INPUT_ERRORS as exc:
            result.problems.append(
                Problem(
                    EventKind.MASTER_FAILED,
                    f"master {info.kind} {info.master_id} not written: {exc}",
                    {"kind": str(info.kind)},
                )
            )
            self._failed_groups[ids] = str(exc)
            return False
        provenance = master.provenance.as_dict()
        if bpm_summary is not None:
            provenance["bad_pixels"] = bpm_summary
        if under is not None:
            provenance["offset_master"] = under.master_id
        try:
            replaced = self._insert(master, ids, relative, bpm_relative, provenance)
        except IntegrityError:  # the same master, built at the same time by obsy-imaging calibrate
            log.info("master %s was built by another process", info.master_id)
            return False
        log.info("built %s from %d frames: %s", info.master_id, len(ids), relative, extra={"event": "master_built"})
        result.built.append(BuiltMaster(self._row(info.master_id), tuple(sorted(ids)), replaced, bpm_summary))
        return True

    def _row(self, master_id: str) -> Master:
        with self.repository.sessions() as session:
            return session.scalar(select(Master).where(Master.master_id == master_id))

    def _insert(self, master, ids, relative, bpm_relative, provenance) -> str | None:
        """Record a master, its inputs, and the masters it replaces; returns the id of the one it replaces."""
        info = master.info
        with self.repository.sessions.begin() as session:
            replaced = self._replaced(session, info.kind, ids)
            row = Master(
                master_id=info.master_id,
                kind=str(info.kind),
                camera=info.camera,
                binning_x=info.binning[0],
                binning_y=info.binning[1],
                gain=info.gain,
                offset=info.offset,
                readout_mode=info.readout_mode,
                temperature_c=info.temperature,
                exposure_s=info.exposure,
                filter=info.filter,
                optical_train=info.optical_train,
                width=info.shape[1],
                height=info.shape[0],
                time=info.time,
                built_at=info.built or datetime.now(UTC),
                frame_count=info.frame_count,
                path=relative.as_posix(),
                bad_pixel_path=None if bpm_relative is None else bpm_relative.as_posix(),
                method=self.combine.method,
                provenance=provenance,
            )
            session.add(row)
            session.flush()
            session.add_all(MasterInput(master_id=row.id, frame_id=i) for i in sorted(ids))
            for old in replaced:
                old.superseded_by = info.master_id
        return replaced[0].master_id if replaced else None

    def _replaced(self, session, kind: cal.FrameKind, ids: frozenset[int]) -> list[Master]:
        """Masters in use of the same kind whose frames are all in this bigger group."""
        replaced = []
        for old in session.scalars(select(Master).where(Master.kind == str(kind), Master.superseded_by.is_(None))):
            inputs = set(session.scalars(select(MasterInput.frame_id).where(MasterInput.master_id == old.id)))
            if inputs and inputs < ids:
                replaced.append(old)
        return replaced

    def _matching_bias(self, info: cal.MasterInfo) -> Master | None:
        biases = [
            m
            for m in self.library()
            if m.kind == cal.FrameKind.BIAS and setup_difference(self.master_info(m), info, self.rules) is None
        ]
        return max(biases, key=lambda m: (aware(m.built_at), m.id)) if biases else None

    def _unusable(self, frame: Frame, reason: str, result: PassResult) -> None:
        with self.repository.sessions.begin() as session:
            if session.get(FrameProblem, frame.id) is None:
                session.add(FrameProblem(frame_id=frame.id, reason=reason, found_at=datetime.now(UTC)))
        result.problems.append(
            Problem(
                EventKind.FRAME_UNUSABLE,
                f"{frame.frame_type} frame {frame.path} cannot be used for a master: {reason}",
                {"frame_id": frame.id, "path": frame.path, "frame_type": frame.frame_type},
            )
        )

    # --- lights ---------------------------------------------------------------------------
    def calibrate(
        self, result: PassResult, *, retry_waiting: bool = False, now: datetime | None = None, batch: int = 200
    ) -> PassResult:
        """Calibrate the pending lights (and the waiting ones when ``retry_waiting``), oldest first."""
        statuses = [PENDING, WAITING] if retry_waiting else [PENDING]
        masters = {m.id: m for m in self.library()}
        by_master_id = {m.master_id: m for m in masters.values()}
        library = [self.master_info(m) for m in masters.values()]
        for calibration, frame in self._lights_by_id(Calibration.status.in_(statuses), batch=batch):
            if self.cancelled():
                return result
            self._calibrate_one(
                calibration,
                frame,
                library=library,
                masters=by_master_id,
                result=result,
                now=now or datetime.now(UTC),
            )
        return result

    def _lights_by_id(self, *conditions: Any, batch: int) -> Iterator[tuple[Calibration, Frame]]:
        """The lights' calibration rows meeting ``conditions`` with their frames, in id order, read ``batch`` at a
        time in short sessions (the caller calibrates between them)."""
        last = 0
        while True:
            with self.repository.sessions() as session:
                rows = session.execute(
                    select(Calibration, Frame)
                    .join(Frame, Frame.id == Calibration.frame_id)
                    .where(*conditions, Calibration.id > last)
                    .order_by(Calibration.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for calibration, frame in rows:
                last = calibration.id
                yield calibration, frame

    def _calibrate_one(
        self,
        calibration,
        frame: Frame,
        *,
        library,
        masters,
        result: PassResult,
        now,
        replacing: cal.CalibrationPlan | None = None,
        masters_by_row: dict[int, str] | None = None,
    ) -> None:
        """Calibrate one light (``replacing``: one calibrated before, with the ready plan that now replaces it)."""
        tried = datetime.now(UTC)
        try:
            info = self.frame_info(frame)
            plan = replacing or cal.match_masters(info, library, self.rules)
        except INPUT_ERRORS as exc:
            self._finish(calibration.id, status=FAILED, error=str(exc), tried_at=tried)
            result.problems.append(self._calibration_problem(frame, str(exc)))
            return
        explanation = plan.explanation()
        if not plan.ready:
            self._finish(
                calibration.id, status=WAITING, waiting_for=plan.missing, explanation=explanation, tried_at=tried
            )
            return
        bias, dark, flat = self._applied(plan, masters)
        bpm = self._bad_pixels_of(dark)
        output = self.root / calibrated_path(frame)
        try:
            prepared = self._prepare(plan, bpm, frame)
            output.parent.mkdir(parents=True, exist_ok=True)
            done = cal.calibrate_light(info.path, prepared, output, backend=self.backend)
        except INPUT_ERRORS as exc:
            if replacing is not None:  # the calibration there stays: only this new attempt failed
                result.problems.append(self._calibration_problem(frame, f"not calibrated again: {exc}"))
                return
            self._finish(calibration.id, status=FAILED, error=str(exc), explanation=explanation, tried_at=tried)
            result.problems.append(self._calibration_problem(frame, str(exc)))
            return
        history = None
        if replacing is not None:
            history = [*(calibration.history or []), self._earlier(calibration, masters_by_row)]
        row = self._finish(
            calibration.id,
            **({} if history is None else {"history": history}),
            status=CALIBRATED,
            path=calibrated_path(frame).as_posix(),
            bias_id=None if bias is None else bias.id,
            dark_id=None if dark is None else dark.id,
            flat_id=None if flat is None else flat.id,
            bad_pixels_id=None if bpm is None else bpm.id,
            dark_scale=plan.dark.scale if dark is not None else None,
            explanation=explanation,
            waiting_for=[],
            provenance=done.provenance.as_dict(),
            nan_pixels=done.nan_pixels,
            error=None,
            tried_at=tried,
            calibrated_at=datetime.now(UTC),
        )
        used = {k: m.master_id for k, m in (("bias", bias), ("dark", dark), ("flat", flat)) if m is not None}
        if replacing is not None:
            replaced = {k: v for k, v in history[-1]["masters"].items() if v is not None}
            result.recalibrated.append(CalibratedLight(frame, row, used, None, replaced))
            return
        waited = (now - aware(calibration.queued_at)).total_seconds() if calibration.status == WAITING else None
        result.calibrated.append(CalibratedLight(frame, row, used, waited))

    @staticmethod
    def _applied(plan: cal.CalibrationPlan, masters: dict[str, Master]) -> tuple[Master | None, ...]:
        """The bias, dark, flat and bad-pixel masters a ready plan applies (the bias only where it is taken off)."""
        dark = masters[plan.dark.master.master_id] if plan.dark.found else None
        flat = masters[plan.flat.master.master_id] if plan.flat.found else None
        bias = masters[plan.bias.master.master_id] if plan.uses_bias else None
        return bias, dark, flat

    def _bad_pixels_of(self, dark: Master | None) -> Master | None:
        return dark if dark is not None and dark.bad_pixel_path and self.settings.bad_pixels else None

    @staticmethod
    def _earlier(calibration: Calibration, masters_by_row: dict[int, str]) -> dict[str, Any]:
        """A calibration about to be replaced, as it goes into the row's history."""
        ids = {"bias": calibration.bias_id, "dark": calibration.dark_id, "flat": calibration.flat_id}
        return {
            "masters": {kind: masters_by_row.get(row_id) for kind, row_id in ids.items() if row_id is not None},
            "dark_scale": calibration.dark_scale,
            "explanation": list(calibration.explanation or []),
            "calibrated_at": aware(calibration.calibrated_at).isoformat() if calibration.calibrated_at else None,
        }

    # --- lights calibrated again ----------------------------------------------------------
    def recalibrate(self, result: PassResult, *, now: datetime | None = None, batch: int = 200) -> PassResult:
        """Calibrate again the lights of the last ``recalibrate_nights`` nights whose masters would now be others.

        Idempotent: a light whose plan names the masters it was calibrated with is left alone,
        so a second call does nothing. A plan that is not ready now (a pinned master refused)
        never undoes a calibration that was made.
        """
        nights = self.settings.recalibrate_nights
        if nights <= 0:
            return result
        now = now or datetime.now(UTC)
        first_night = (now - timedelta(days=nights)).date().isoformat()
        rows_in_use = self.library()
        masters = {m.master_id: m for m in rows_in_use}
        with self.repository.sessions() as session:
            names = session.execute(select(Master.id, Master.master_id))
            masters_by_row = {row_id: master_id for row_id, master_id in names}
        library = [self.master_info(m) for m in rows_in_use]
        for calibration, frame in self._lights_by_id(
            Calibration.status == CALIBRATED, Calibration.night >= first_night, batch=batch
        ):
            if self.cancelled():
                return result
            try:
                plan = cal.match_masters(self.frame_info(frame), library, self.rules)
            except INPUT_ERRORS:
                continue  # it was calibrated with what it had; a light gone bad since is not undone
            if not plan.ready:
                continue
            bias, dark, flat = self._applied(plan, masters)
            now_ids = tuple(None if m is None else m.id for m in (bias, dark, flat))
            if now_ids == (calibration.bias_id, calibration.dark_id, calibration.flat_id):
                continue
            self._calibrate_one(
                calibration,
                frame,
                library=library,
                masters=masters,
                result=result,
                now=now,
                replacing=plan,
                masters_by_row=masters_by_row,
            )
        return result

    def _prepare(self, plan: cal.CalibrationPlan, bpm: Master | None, frame: Frame) -> cal.PreparedMasters:
        """The masters of a plan, loaded once for the lights that share them."""
        bayer = any(card and card[0] == "BAYERPAT" for card in frame.header or [])
        key = (
            plan.dark.master.master_id if plan.dark.found else None,
            plan.dark.scale,
            plan.flat.master.master_id if plan.flat.found else None,
            plan.bias.master.master_id if plan.uses_bias else None,
            None if bpm is None else bpm.master_id,
            bayer,
            plan.light.shape,
        )
        if self._prepared is not None and self._prepared[0] == key:
            return self._prepared[1]
        flags = None
        if bpm is not None:
            flags = cal.FitsFrame(self.root / bpm.bad_pixel_path).read()
        prepared = cal.PreparedMasters.from_plan(plan, bad_pixels=flags, bayer=bayer)
        self._prepared = (key, prepared)
        return prepared

    def _finish(self, calibration_id: int, **values: Any) -> Calibration:
        with self.repository.sessions.begin() as session:
            row = session.get(Calibration, calibration_id)
            for name, value in values.items():
                setattr(row, name, value)
        return row

    @staticmethod
    def _calibration_problem(frame: Frame, reason: str) -> Problem:
        return Problem(
            EventKind.CALIBRATION_FAILED,
            f"light {frame.path} not calibrated: {reason}",
            {"frame_id": frame.id, "path": frame.path},
        )

    # --- counts ---------------------------------------------------------------------------
    def counts(self, night: str) -> Counts:
        with self.repository.sessions() as session:
            calibrated = session.scalar(
                select(func.count())
                .select_from(Calibration)
                .where(Calibration.night == night, Calibration.status == CALIBRATED)
            )
            queue = session.scalar(
                select(func.count()).select_from(Calibration).where(Calibration.status.in_([PENDING, WAITING]))
            )
            masters = session.scalar(select(func.count()).select_from(Master).where(Master.superseded_by.is_(None)))
            reasons: Counter[str] = Counter()
            for (waiting,) in session.execute(
                select(Calibration.waiting_for).where(Calibration.status == WAITING).limit(5000)
            ):
                reasons.update(waiting or [])
        waiting_for = [f"{count} × {reason}" if count > 1 else reason for reason, count in reasons.most_common(20)]
        return Counts(calibrated or 0, queue or 0, waiting_for, masters or 0)


def calibrated_path(frame: Frame) -> PurePosixPath:
    """``lights/<night>/<target>/<filter>/x.fit`` → ``calibrated/<night>/<target>/<filter>/x.fits``."""
    raw = PurePosixPath(frame.path)
    parts = raw.parts[1:-1] if raw.parts and raw.parts[0] == "lights" else raw.parts[:-1]
    name = raw.name
    for suffix in (".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return PurePosixPath("calibrated", *parts, f"{name}.fits")


def infos_key(infos: dict[int, cal.FrameInfo], members: Iterable[cal.FrameInfo]) -> list[int]:
    """The frame ids of a group's members."""
    by_path = {info.path: frame_id for frame_id, info in infos.items()}
    return [by_path[m.path] for m in members]


def _culprit(message: str, infos: Sequence[cal.FrameInfo]) -> cal.FrameInfo | None:
    """The one frame an error is about: the library starts such messages with the file's name and a colon."""
    named = [info for info in infos if message.startswith(f"{info.name}:")]
    return named[0] if len(named) == 1 else None


def _group_text_of(kind: cal.FrameKind, infos: Sequence[cal.FrameInfo]) -> str:
    first = infos[0]
    parts = [f"{len(infos)} {kind}", first.camera, f"bin {first.binning[0]}x{first.binning[1]}"]
    if kind in (cal.FrameKind.DARK, cal.FrameKind.DARK_FLAT, cal.FrameKind.FLAT):
        parts.append(f"{first.exposure:g} s")
    if kind == cal.FrameKind.FLAT:
        parts.append(f"filter {first.filter}")
    return ", ".join(parts)


def _group_text(group: cal.FrameGroup) -> str:
    return _group_text_of(group.kind, group.frames)
