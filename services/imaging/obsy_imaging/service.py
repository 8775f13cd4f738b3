"""The imaging service: frames from the capture folders into the repository, counts on the bus.

Start: the imaging tables are migrated, the capture folders watched (and scanned, so frames
written while the service was down are taken too), the initial state published. Each frame
registered goes out as an :class:`~obsy.messages.ImagingFrame` on ``<p>/imaging/frames``; each
file set aside as an :class:`~obsy.messages.ImagingQuarantined` on ``<p>/imaging/quarantine`` and
a warning event. ``<p>/imaging/state`` (retained) carries tonight's counts and the queue depth;
it is republished when it changes and every ``publish_interval`` seconds.

Calibration (``imaging.calibration``) runs on a thread of its own (:class:`CalibrationWorker`), so
that building a master never holds up the ingest: each master built goes out as an
:class:`~obsy.messages.ImagingMaster` on ``<p>/imaging/masters``, each light calibrated as an
:class:`~obsy.messages.ImagingCalibrated` on ``<p>/imaging/calibrated``, each problem (a frame
that cannot be used, a group that cannot be combined, a light that cannot be calibrated) as an
error event; ``<p>/imaging/masters/set`` builds masters on command.

The live stack (``imaging.live_stack``) runs on a third thread (:class:`LiveStackWorker`): each
light calibrated and accepted is registered and folded into the running stack of its night,
target and filter (:mod:`obsy_imaging.livestack`); the stack goes out as an
:class:`~obsy.messages.ImagingLiveStack` on ``<p>/imaging/livestack/state`` (retained) with its
stretched preview, a JPEG, on ``<p>/imaging/livestack/image`` (retained); a light that cannot be
registered as a ``live_stack_left_out`` warning event with the reason.

Variable-star photometry (``imaging.photometry``, off by default) runs on a fourth thread
(:class:`PhotometryWorker`): each calibrated, accepted light of a configured target is measured
(:mod:`obsy_imaging.photometer`), stored, published as an :class:`~obsy.messages.ImagingPhotometry`
on ``<p>/imaging/photometry``, and its night's AAVSO report rewritten; a light without a magnitude
goes out with its reasons and a ``photometry_failed`` warning event.

Exoplanet transits (``imaging.transits``, off by default) run on a fifth thread
(:class:`TransitWorker`): once a planet's transit window of a night is over (or the night is), its
calibrated, accepted lights are reduced and fitted (:mod:`obsy_imaging.transiter`), the fit stored,
the Exoplanet Watch report, plot and points written, and the result published as an
:class:`~obsy.messages.ImagingTransit` on ``<p>/imaging/transits``; a night without a fit goes out
as ``failed`` with the reason and a ``transit_failed`` warning event.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from obsy import astro
from obsy.bus import Bus
from obsy.config import ObsyConfig
from obsy.homeassistant import Entity
from obsy.messages import (
    AcquiredLights,
    Clock,
    CommandAnswer,
    CommandOrigin,
    Event,
    EventKind,
    FrameType,
    ImagingAcquired,
    ImagingCalibrated,
    ImagingFrame,
    ImagingIngestCommand,
    ImagingIngestState,
    ImagingLiveStack,
    ImagingMaster,
    ImagingMastersCommand,
    ImagingMastersState,
    ImagingNightStack,
    ImagingPhotometry,
    ImagingProjectStack,
    ImagingProjectStackCommand,
    ImagingProjectStackState,
    ImagingQuarantined,
    ImagingState,
    ImagingTransit,
    PhotometryComparison,
    excerpt,
    utc_now,
)
from obsy.runner import Service
from obsy.transits.ephemeris import EphemerisError
from obsy.upload.site import SiteUploads
from obsy_imaging import calibration, ha
from obsy_imaging.calibrator import BuiltMaster, CalibratedLight, Calibrator, PassResult, PinError
from obsy_imaging.calibrator import Counts as CalibrationCounts
from obsy_imaging.colour import ColourError
from obsy_imaging.config import ImagingConfig, scheduler_transits
from obsy_imaging.grading.grader import Grader
from obsy_imaging.headers.normalise import warm_up
from obsy_imaging.ingest.ekos_signal import CaptureSignalListener
from obsy_imaging.ingest.ingestor import Ingestor, Outcome, Result
from obsy_imaging.ingest.watcher import CaptureWatcher
from obsy_imaging.livestack import Folded, LeftOut, LiveStacker
from obsy_imaging.nightstack import Built, NightStacker, Skipped
from obsy_imaging.photometer import MEASURED, Measured, Photometer
from obsy_imaging.projectstack import ProjectSkipped, ProjectStacker
from obsy_imaging.repository import database
from obsy_imaging.repository.models import Frame, Grade
from obsy_imaging.repository.store import Repository

if TYPE_CHECKING:  # the transits (emcee, batman, matplotlib: a second) load only when they are on
    from obsy_imaging.transiter import Done, Transiter

#: The repository's frame types as the plans name them.
PLAN_FRAME_TYPES = {"light": FrameType.LIGHT, "dark": FrameType.DARK, "bias": FrameType.BIAS, "flat": FrameType.FLAT}
#: How often the service looks whether lights graded elsewhere (an import) changed the accepted counts.
ACQUIRED_CHECK_INTERVAL_S = 60.0


def frame_message(frame: Frame, grade: Grade | None = None) -> ImagingFrame:
    graded = {}
    if grade is not None:
        graded = {
            "accepted": grade.accepted,
            "rejected_because": grade.reasons,
            "stars": grade.stars,
            "fwhm_px": grade.fwhm_px,
            "fwhm_arcsec": grade.fwhm_arcsec,
            "hfr_px": grade.hfr_px,
            "eccentricity": grade.eccentricity,
            "background": grade.background,
            "noise": grade.noise,
            "snr": grade.snr,
        }
    return ImagingFrame(
        **graded,
        frame_id=frame.id,
        sha256=frame.sha256,
        path=frame.path,
        source=frame.source_path,
        frame_type=frame.frame_type,
        night=frame.night,
        target=frame.target,
        filter=frame.filter,
        exposure_s=frame.exposure_s,
        camera=frame.camera,
        binning=f"{frame.binning_x}x{frame.binning_y}",
        gain=frame.gain,
        offset=frame.offset,
        temperature_c=frame.sensor_temp_c,
        date_obs=frame.date_obs.astimezone(UTC) if frame.date_obs and frame.date_obs.tzinfo else frame.date_obs,
        jd_mid=frame.jd_mid,
        bjd_tdb_mid=frame.bjd_tdb_mid,
        width=frame.width,
        height=frame.height,
    )


class ImagingService(Service):
    name = "imaging"
    poll_interval = 1.0

    def __init__(self, config: ObsyConfig, bus: Bus, *, clock: Clock = utc_now) -> None:
        super().__init__(config, bus, clock=clock)
        self._settings: ImagingConfig = self.settings
        # Built in start(): nothing touches the disk or the database before the runner starts us.
        self.repository: Repository | None = None
        self.watcher: CaptureWatcher | None = None
        self.grader: Grader | None = None
        self._lock = threading.Lock()
        self._last_state: tuple[Any, ...] | None = None
        self._last_publish: datetime | None = None
        self._last_frame: str | None = None
        #: The accepted-light counts published last, and when they are next looked at again.
        self._acquired: list[tuple[str, str | None, float, int]] | None = None
        self._next_acquired_check = 0.0
        self._acquired_lock = threading.Lock()  # the watcher's thread and the runner's poll both publish
        self.state: ImagingState | None = None
        self.calibration: CalibrationWorker | None = None
        self.live_stack: LiveStackWorker | None = None
        self.photometry: PhotometryWorker | None = None
        self.night_stack: NightStackWorker | None = None
        self.project_stack: ProjectStackWorker | None = None
        self.transits: TransitWorker | None = None
        #: The live stack's previews to the centre by HTTP where this site is one of a fleet (``upload.url``).
        self.uploads: SiteUploads | None = None
        self.ekos_signal: CaptureSignalListener | None = None

    # --- runner hooks -------------------------------------------------------------------
    def start(self) -> None:
        settings, data_dir = self._settings, self.config.data_dir
        engine = database.make_engine(settings.database(data_dir))
        database.upgrade(engine)
        self.repository = Repository(engine, settings.repository_dir(data_dir), settings.quarantine_dir(data_dir))
        for folder in (self.repository.root, self.repository.quarantine_root):
            folder.mkdir(parents=True, exist_ok=True)
        self.uploads = SiteUploads.from_config(self.config)
        if settings.grading.enabled:
            self.grader = Grader(self.repository, settings.grading)
        self.watcher = CaptureWatcher(
            Ingestor(self.repository, self.config.site),
            settings.capture_dirs(
                data_dir, self.config.setting_of("scheduler", "ekos.fits_dir", None, kind=Path | None)
            ),
            suffixes=settings.suffixes,
            settle_time=settings.settle_time,
            incomplete_timeout=settings.incomplete_timeout,
            on_result=self.on_result,
        )
        self.bus.subscribe(self.topics.imaging_ingest_command, self.on_ingest_command, ImagingIngestCommand)
        warm_up()
        if settings.calibration.enabled:
            calibration.warm_up()  # the numba kernels compile (or load from cache) now, not on the first frame
            self.calibration = CalibrationWorker(self, Calibrator(self.repository, settings.calibration))
            pinned = self.calibration.calibrator.pinned()
            self.bus.publish(self.topics.imaging_masters_state, ImagingMastersState(pinned=pinned), qos=1, retain=True)
            self.bus.subscribe(self.topics.imaging_masters_command, self.calibration.on_command, ImagingMastersCommand)
            self._make_calibrated_light_workers(self.repository)
        if self.calibration is not None:
            workers = [w for w in (self.live_stack, self.photometry, self.transits) if w is not None]

            def wake_workers() -> None:
                for worker in workers:
                    worker.wake()

            self.calibration.on_calibrated = wake_workers
        self.watcher.start()  # watches and scans the folders, takes files on its own thread
        if settings.ekos_signal.enabled:  # frames Ekos reports saved join the watch's queue (route dbus)
            watcher = self.watcher
            self.ekos_signal = CaptureSignalListener(
                lambda path, _metadata: watcher.notice(path, closed=True, route="dbus"),
                bus_address=settings.ekos_signal.bus_address,
                retry_interval=settings.ekos_signal.retry_interval,
            )
            self.ekos_signal.start()
        if self.calibration is not None:
            self.calibration.start()
        if self.live_stack is not None:
            self.live_stack.start()  # lights calibrated before a restart and not stacked yet are taken first
        if self.photometry is not None:
            self.photometry.start()
        if self.night_stack is not None:
            self.bus.subscribe(self.topics.events("mcp"), self.night_stack.on_mcp_event, Event)
            self.night_stack.start()  # nights over and not stacked again yet (a restart at dawn) are taken first
        if self.project_stack is not None:
            self.project_stack.start()
            self.bus.subscribe(
                self.topics.imaging_project_stack_command, self.project_stack.on_command, ImagingProjectStackCommand
            )
        if self.transits is not None:
            self.transits.start()  # transit nights over and not fitted yet are taken first
        self.refresh(force=True)
        self.publish_acquired()

    def _make_calibrated_light_workers(self, repository: Repository) -> None:
        """The workers that take calibrated lights: live and night stacks, photometry, transits."""
        settings = self._settings
        if settings.live_stack.enabled:
            self.live_stack = LiveStackWorker(self, LiveStacker(repository, settings.live_stack))
        if self.live_stack is not None and settings.night_stack.enabled:
            self.night_stack = NightStackWorker(self, NightStacker(repository, settings.night_stack))
        if settings.project_stack.enabled:
            self.project_stack = ProjectStackWorker(self, ProjectStacker(repository, settings.project_stack))
        if settings.photometry.enabled:
            photometer = Photometer(repository, settings.photometry, self.config.site, self.config.data_dir)
            self.photometry = PhotometryWorker(self, photometer)
        if settings.transits.enabled:
            from obsy_imaging.transiter import Transiter

            transiter = Transiter(repository, settings.transits, scheduler_transits(self.config), self.config.site)
            self.transits = TransitWorker(self, transiter)

    def poll(self) -> None:
        if self.watcher is not None and self.watcher.missing:
            self.watcher.attach_folders()
        self.refresh()
        if monotonic() >= self._next_acquired_check:  # lights graded by an import in another process
            self.publish_acquired(only_if_changed=True)

    def stop(self) -> None:
        """Stops what :meth:`start` started (what is not there, disabled or not started yet, is passed
        over): the sources of frames first, then the workers they feed, the uploads, the database."""
        parts = (
            self.ekos_signal,
            self.watcher,
            self.calibration,
            self.live_stack,
            self.photometry,
            self.night_stack,
            self.project_stack,
            self.transits,
            self.uploads,
        )
        for part in parts:
            if part is not None:
                part.stop()
        if self.repository is not None:
            self.repository.engine.dispose()

    def disk_paths(self) -> dict[str, Path]:
        """The repository, and the capture folders the camera program fills (the disk it fills first)."""
        if self.repository is None or self.watcher is None:
            return {}
        paths = {"repository": self.repository.root}
        for n, folder in enumerate(self.watcher.folders):
            paths["capture" if n == 0 else f"capture {n + 1}"] = folder
        return paths

    def on_disk_level(self, level: str) -> None:
        """At ``critical`` no new frame is copied into the repository: they wait in the capture folders
        (nothing lost) and are taken once there is room again."""
        if self.watcher is not None:
            self.watcher.paused = "the disk is nearly full (critical)" if level == "critical" else None
            self.refresh(force=True)

    def health_details(self) -> dict[str, Any]:
        if self.watcher is None:
            return {}
        return {
            "uploads": self.uploads.health() if self.uploads is not None else None,
            "ingest_paused": self.watcher.paused,
            "queue": self.watcher.queue_depth,
            "watching": [str(p) for p in self.watcher.watching],
            "missing_folders": [str(p) for p in self.watcher.missing],
            "storage_error": self.watcher.storage_error,
            "ekos_signal": None
            if self.ekos_signal is None
            else {
                "connected": self.ekos_signal.connected,
                "frames": self.ekos_signal.signals,
                "error": self.ekos_signal.error,
            },
            "calibration_passes": None if self.calibration is None else self.calibration.passes,
            "calibration_errors": None if self.calibration is None else self.calibration.errors,
            "live_stack_folded": None if self.live_stack is None else self.live_stack.folded,
            "live_stack_left_out": None if self.live_stack is None else self.live_stack.left_out,
            "live_stack_errors": None if self.live_stack is None else self.live_stack.errors,
            "photometry_measured": None if self.photometry is None else self.photometry.measured,
            "photometry_failed": None if self.photometry is None else self.photometry.failed,
            "photometry_errors": None if self.photometry is None else self.photometry.errors,
            "night_stacks_built": None if self.night_stack is None else self.night_stack.built,
            "night_stack_errors": None if self.night_stack is None else self.night_stack.errors,
            "project_stacks_built": None if self.project_stack is None else self.project_stack.built,
            "project_stack_errors": None if self.project_stack is None else self.project_stack.errors,
            "transits_fitted": None if self.transits is None else self.transits.fitted,
            "transits_failed": None if self.transits is None else self.transits.failed,
            "transit_errors": None if self.transits is None else self.transits.errors,
        }

    # --- frames named by another route ---------------------------------------------------
    def on_ingest_command(self, _topic: str, command: ImagingIngestCommand) -> None:
        """A frame named by the post-capture script (or with no name: look in the folders again).

        The file joins the folder watch's queue under the command's route: one file is taken once,
        whichever route names it first, and the content hash keeps copies out.
        """
        watcher = self.watcher
        if watcher is None:
            return

        def answer(outcome: str, reason: str | None = None, result: Result | None = None) -> None:
            frame = None if result is None else result.frame
            self.bus.publish(
                self.topics.imaging_ingest_state,
                ImagingIngestState(
                    request_id=command.request_id,
                    path=command.path,
                    outcome=outcome,
                    frame_id=None if frame is None else frame.id,
                    sha256=None if frame is None else frame.sha256,
                    reason=reason if result is None else result.reason,
                ),
                qos=1,
            )

        def rejected(reason: str) -> None:
            self.bus.publish_event(_answer("ingest", value, command, False, [reason]).as_event("imaging"))
            answer("rejected", reason)

        value = "scan" if command.path is None else excerpt(command.path)
        if command.path is None:  # a walk of months of frames must not hold up the bus's thread
            threading.Thread(target=watcher.scan, name="imaging-scan", daemon=True).start()
            self.bus.publish_event(_answer("ingest", value, command, True).as_event("imaging"))
            answer("scanning", "the capture folders are looked at again")
            return
        path = Path(command.path)
        if not path.is_absolute():
            rejected(f"the path {command.path!r} is not absolute")
        elif not watcher.notice(
            path, closed=True, route=command.route, reply=lambda r: answer(r.outcome.value, result=r)
        ):
            rejected(f"{path.name} does not end in one of {', '.join(self._settings.suffixes)}")
        else:  # the outcome follows on imaging/ingest/state once the file is taken
            self.bus.publish_event(_answer("ingest", value, command, True).as_event("imaging"))

    # --- results ------------------------------------------------------------------------
    def on_result(self, result: Result) -> None:
        """Called on the watcher's thread for every file it finished with."""
        if result.outcome is Outcome.REGISTERED and result.frame is not None:
            message = frame_message(result.frame, self._grade(result.frame))
            self._last_frame = message.path
            self.bus.publish(self.topics.imaging_frames, message, qos=1)
            self.log.info("registered %s as %s", result.path, message.path, extra={"event": "frame_ingested"})
            if message.accepted:
                self.publish_acquired()
        elif result.outcome is Outcome.QUARANTINED and result.quarantined is not None:
            record = result.quarantined
            self.bus.publish(
                self.topics.imaging_quarantine,
                ImagingQuarantined(
                    source=record.source_path,
                    problem=record.problem,
                    reason=record.reason,
                    quarantined_as=record.quarantined_path,
                ),
                qos=1,
            )
            self.bus.publish_event(
                Event(
                    service=self.name,
                    kind=EventKind.FRAME_QUARANTINED,
                    level="warning",
                    message=f"{result.path.name} set aside: {record.reason}",
                    data={"source": record.source_path, "problem": record.problem},
                )
            )
        if result.outcome is Outcome.REGISTERED and self.calibration is not None:
            self.calibration.wake()
        if result.outcome is Outcome.STORAGE_FULL:
            self.bus.publish_event(
                Event(
                    service=self.name,
                    kind=EventKind.STORAGE_FULL,
                    level="error",
                    message=f"{result.path.name} waits: {result.reason}",
                    data={"source": str(result.path)},
                )
            )
        self.refresh()

    def _grade(self, frame: Frame) -> Grade | None:
        """Grade a light; a frame that cannot be measured is published ungraded, never lost."""
        if self.grader is None or frame.frame_type != "light":
            return None
        try:
            grade = self.grader.grade(frame)
        except Exception:
            self.log.exception("grading %s failed; it stays ungraded", frame.path, extra={"event": "grading_failed"})
            return None
        if not grade.accepted:
            self.log.info("rejected %s: %s", frame.path, "; ".join(grade.reasons), extra={"event": "frame_rejected"})
        return grade

    def publish_acquired(self, *, only_if_changed: bool = False) -> None:
        """Publish (retained) the accepted lights per target, filter and exposure, all nights."""
        assert self.repository is not None, "publish_acquired() before start()"
        with self._acquired_lock:
            self._next_acquired_check = monotonic() + ACQUIRED_CHECK_INTERVAL_S
            try:
                rows = self.repository.accepted_lights()
            except Exception:
                self.log.exception("counting the accepted lights failed", extra={"event": "acquired_failed"})
                return
            if only_if_changed and rows == self._acquired:
                return
            self._acquired = rows
            lights = [
                AcquiredLights(target=t, filter=f, exposure_s=e, accepted=n, frame_type=PLAN_FRAME_TYPES[k])
                for t, f, e, n, k in rows
            ]
            self.bus.publish(self.topics.imaging_acquired, ImagingAcquired(lights=lights), qos=1, retain=True)

    # --- state --------------------------------------------------------------------------
    def _night_start(self, night: str) -> datetime:
        """Local noon of the night's evening, the start of the observing night (as obsy.astro counts)."""
        zone = ZoneInfo(self.config.site.timezone)
        day = datetime.fromisoformat(night).date()
        return datetime.combine(day, time(12), tzinfo=zone).astimezone(UTC)

    def refresh(self, *, force: bool = False) -> ImagingState:
        assert self.repository is not None and self.watcher is not None, "refresh() before start()"
        with self._lock:
            now = self.clock()
            night = astro.night_of(self.config.site, now).isoformat()
            counts = self.repository.counts(night, self._night_start(night))
            calibrated = self.calibration.counts(night) if self.calibration is not None else None
            state = ImagingState(
                night=night,
                frames_tonight=counts.frames_tonight,
                lights_tonight=counts.lights_tonight,
                accepted_tonight=counts.accepted_tonight,
                quarantined_tonight=counts.quarantined_since,
                frames_total=counts.frames_total,
                queue=self.watcher.queue_depth,
                watching=[str(p) for p in self.watcher.watching],
                last_frame=self._last_frame,
                storage_error=self.watcher.storage_error or self.watcher.paused,
                calibrated_tonight=calibrated.calibrated_tonight if calibrated else 0,
                calibration_queue=calibrated.queue if calibrated else 0,
                waiting_for=calibrated.waiting_for if calibrated else [],
                masters_total=calibrated.masters if calibrated else 0,
                timestamp=now,
            )
            key = tuple(state.model_dump(exclude={"timestamp"}).values())
            due = (
                force
                or self._last_publish is None
                or now - self._last_publish >= timedelta(seconds=self._settings.publish_interval)
            )
            if due or key != self._last_state:
                self.bus.publish(self.topics.imaging_state, state, qos=1, retain=True)
                self._last_state, self._last_publish = key, now
            self.state = state
            return state

    # --- Home Assistant -----------------------------------------------------------------
    def ha_entities(self) -> list[Entity]:
        live_stack = self._settings.calibration.enabled and self._settings.live_stack.enabled
        return ha.entities(self.topics, live_stack=live_stack)


def master_message(built: BuiltMaster) -> ImagingMaster:
    master = built.master
    summary = built.bad_pixels or {}
    return ImagingMaster(
        master_id=master.master_id,
        kind=master.kind,
        path=master.path,
        camera=master.camera,
        binning=f"{master.binning_x}x{master.binning_y}",
        gain=master.gain,
        offset=master.offset,
        readout_mode=master.readout_mode,
        temperature_c=master.temperature_c,
        exposure_s=master.exposure_s,
        filter=master.filter,
        frames=master.frame_count,
        frame_ids=list(built.frame_ids),
        method=master.method,
        replaces=built.replaces,
        bad_pixel_map=master.bad_pixel_path,
        hot_pixels=summary.get("hot"),
        cold_pixels=summary.get("cold"),
        notes=list(master.provenance.get("notes", [])),
    )


def calibrated_message(done: CalibratedLight) -> ImagingCalibrated:
    frame, row = done.frame, done.calibration
    statistics = (row.provenance or {}).get("statistics", {})
    return ImagingCalibrated(
        frame_id=frame.id,
        light=frame.path,
        path=row.path or "",
        night=frame.night,
        target=frame.target,
        filter=frame.filter,
        bias=done.masters.get("bias"),
        dark=done.masters.get("dark"),
        flat=done.masters.get("flat"),
        dark_scale=row.dark_scale,
        explanation=list(row.explanation or []),
        nan_pixels=row.nan_pixels or 0,
        bad_pixels_repaired=statistics.get("bad_pixels_repaired"),
        waited_s=done.waited_s,
        recalibrated=done.replaced is not None,
        replaces=done.replaced,
    )


class PassWorker:
    """A thread that runs a pass when woken (:meth:`wake`) and every ``IDLE_PASS_S`` seconds.

    A pass that raises is a bug, not bad input (that comes back from the libraries as their
    results): it is logged, sent as an error event (``FAILED_EVENT``) and counted, and the
    thread goes on with the next pass. Subclasses write :meth:`_pass`.
    """

    IDLE_PASS_S = 5.0
    THREAD_NAME = "imaging-worker"
    WHAT = "pass"  # for the log and the event: "<WHAT> failed"
    FAILED_EVENT = EventKind.PASS_FAILED

    def __init__(self, service: ImagingService) -> None:
        self.service = service
        self.bus = service.bus
        self.topics = service.topics
        self.log = service.log
        self.errors = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.THREAD_NAME, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(60)

    def wake(self) -> None:
        self._wake.set()

    def _pass(self) -> None:
        raise NotImplementedError

    def _drain(self, pending: Callable[[], list[int]], handle: Callable[[int], None]) -> None:
        """``handle`` each id ``pending()`` lists, again until it lists none (or the service stops)."""
        while not self._stopping.is_set():
            ids = pending()
            if not ids:
                return
            for one in ids:
                if self._stopping.is_set():
                    return
                handle(one)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._pass()
            except Exception as exc:
                self.errors += 1
                self.log.exception("%s failed", self.WHAT, extra={"event": self.FAILED_EVENT})
                self._event(self.FAILED_EVENT, "error", f"{self.WHAT} failed: {exc}"[:500], {})
            self._wake.wait(self.IDLE_PASS_S)
            self._wake.clear()

    def _event(self, kind: EventKind, level: str, message: str, data: dict) -> None:
        self.bus.publish_event(Event(service="imaging", kind=kind, level=level, message=message, data=data))


class CalibrationWorker(PassWorker):
    """Runs the :class:`~obsy_imaging.calibrator.Calibrator` on its own thread and publishes what it did.

    A pass runs when a frame is registered (:meth:`wake`), on command, and every few seconds
    (a ready group waits for ``quiet_time``). An unexpected error in a pass is logged, sent as
    an error event and counted; the thread goes on with the next pass.
    """

    THREAD_NAME = "imaging-calibration"
    WHAT = "calibration pass"
    FAILED_EVENT = EventKind.CALIBRATION_PASS_FAILED

    def __init__(self, service: ImagingService, calibrator: Calibrator) -> None:
        super().__init__(service)
        self.calibrator = calibrator
        self.passes = 0
        self._first_pass = True
        self._commands: queue.Queue[ImagingMastersCommand] = queue.Queue(maxsize=20)
        calibrator.cancelled = self._stopping.is_set
        self._waiting_groups: set[str] = set()
        #: Called after a pass that calibrated lights (the live stack's wake-up).
        self.on_calibrated: Callable[[], None] | None = None
        self._counts: tuple[str, float, CalibrationCounts] | None = None  # night, when, counts

    def counts(self, night: str) -> CalibrationCounts:
        """The calibration's counts for the state: read again after each pass, else at most every 10 s."""
        cached = self._counts
        if cached is not None and cached[0] == night and monotonic() - cached[1] < 10.0:
            return cached[2]
        counts = self.calibrator.counts(night)
        self._counts = (night, monotonic(), counts)
        return counts

    def on_command(self, _topic: str, command: ImagingMastersCommand) -> None:
        """Queued for the worker (answered accepted: it runs in the next pass), or rejected when too many wait;
        what it did follows on ``imaging/masters/state`` with the same ``request_id``."""
        value = command.action if command.action == "build" else f"{command.action} {command.master_id}"
        try:
            self._commands.put_nowait(command)
        except queue.Full:
            reasons = ["too many masters commands waiting"]
            self.bus.publish_event(_answer("masters", value, command, False, reasons).as_event("imaging"))
            return
        self.bus.publish_event(_answer("masters", value, command, True).as_event("imaging"))
        self._wake.set()

    def _pass(self) -> None:
        while not self._commands.empty():
            self._run_command(self._commands.get_nowait())
        self._publish(self.calibrator.run(retry_waiting=self._first_pass))
        self._first_pass = False
        self.passes += 1

    def _run_command(self, command: ImagingMastersCommand) -> None:
        origin = command.origin or CommandOrigin()
        if command.action != "build":
            self._pin_command(command, origin)
            return
        self.bus.publish(
            self.topics.imaging_masters_state,
            ImagingMastersState(
                status="running", request_id=command.request_id, origin=command.origin, pinned=self.calibrator.pinned()
            ),
            qos=1,
            retain=True,
        )
        result = PassResult()
        if command.frame_ids:
            self.calibrator.build_from(command.frame_ids, result)
        else:
            self.calibrator.build_due(result, min_frames=command.min_frames, force=True)
        self._publish(result)  # the masters and the problems' events first, then the answer
        built = [b.master.master_id for b in result.built]
        errors = [p.message for p in result.problems]
        self._outcome(
            command,
            origin,
            "failed" if errors and not built else "done",
            errors,
            f"{len(built)} built" + (f", {len(errors)} problem(s): {'; '.join(errors)}"[:400] if errors else ""),
            built=built,
        )
        # Lights waiting for these masters are tried in the next pass (the library changed).
        if result.built:
            self._publish(self.calibrator.calibrate(PassResult(), retry_waiting=True))

    def _pin_command(self, command: ImagingMastersCommand, origin: CommandOrigin) -> None:
        """Pin or unpin a master; the lights it now serves are calibrated again in the pass that follows."""
        errors: list[str] = []
        text = ""
        if not command.master_id:
            errors.append(f"{command.action}: no master_id given")
        else:
            try:
                if command.action == "pin":
                    change = self.calibrator.pin(command.master_id, by=origin.describe()[:200])
                    text = f"master {change.master.master_id} pinned" + (
                        f" (unpinned {', '.join(change.unpinned)})" if change.unpinned else ""
                    )
                else:
                    text = f"master {self.calibrator.unpin(command.master_id).master.master_id} unpinned"
            except PinError as exc:
                errors.append(str(exc))
        status = "failed" if errors else "done"
        self._outcome(command, origin, status, errors, (text or "; ".join(errors))[:400], action=command.action)

    def _outcome(
        self,
        command: ImagingMastersCommand,
        origin: CommandOrigin,
        status: str,
        errors: list[str],
        summary: str,
        **done: Any,
    ) -> None:
        """A masters command's outcome: the retained masters state (with the pinned masters now) and an
        event; ``done``: what was done, ``built`` (master ids) or ``action``, in both."""
        state = ImagingMastersState(
            status=status,
            request_id=command.request_id,
            errors=errors,
            origin=command.origin,
            pinned=self.calibrator.pinned(),
            **done,
        )
        self.bus.publish(self.topics.imaging_masters_state, state, qos=1, retain=True)
        self._event(
            EventKind.MASTERS_COMMAND,
            "info" if status == "done" else "warning",
            f"masters (asked by {origin.describe()}): {summary}",
            {"origin": origin.as_data(), "request_id": command.request_id, **done},
        )

    def _publish(self, result: PassResult) -> None:
        for built in result.built:
            message = master_message(built)
            self.bus.publish(self.topics.imaging_masters, message, qos=1)
            self._event(
                EventKind.MASTER_BUILT,
                "info",
                f"master {message.kind} {message.master_id} built from {message.frames} frames"
                + (f" (replaces {message.replaces})" if message.replaces else ""),
                {"master_id": message.master_id, "kind": message.kind, "path": message.path},
            )
        for done in result.calibrated:
            message = calibrated_message(done)
            self.bus.publish(self.topics.imaging_calibrated, message, qos=1)
            self.log.info("calibrated %s as %s", message.light, message.path, extra={"event": "frame_calibrated"})
        if (result.calibrated or result.recalibrated) and self.on_calibrated is not None:
            self.on_calibrated()
        for done in result.recalibrated:  # the same message again, marked: consumers learn of the new file
            self.bus.publish(self.topics.imaging_calibrated, calibrated_message(done), qos=1)
        if result.recalibrated:
            frames = [done.frame.id for done in result.recalibrated]
            self._event(
                EventKind.LIGHTS_RECALIBRATED,
                "info",
                f"{len(frames)} light(s) calibrated again with masters that are now chosen for them",
                {"frame_ids": frames[:200], "nights": sorted({done.frame.night for done in result.recalibrated})},
            )
        for problem in result.problems:
            self.log.warning("%s", problem.message, extra={"event": problem.kind})
            self._event(problem.kind, "error", problem.message[:1000], problem.data)
        waiting = set(result.waiting_groups)
        for text in sorted(waiting - self._waiting_groups):
            self.log.info("master not built yet: %s", text, extra={"event": "master_waiting"})
        self._waiting_groups = waiting
        self._counts = None  # lights may have changed state (pending → waiting) even when nothing was done
        if result.built or result.calibrated or result.recalibrated or result.problems:
            self.service.refresh()


def live_stack_message(done: Folded) -> ImagingLiveStack:
    stack = done.stack
    dx, dy = done.transform.shift
    return ImagingLiveStack(
        stack_id=stack.id,
        night=stack.night,
        target=stack.target,
        filter=stack.filter,
        frames=stack.frame_count,
        integration_s=stack.integration_s,
        left_out=stack.left_out,
        reference=done.reference_path,
        path=stack.path,
        preview=stack.preview_path,
        frame_id=done.frame.id,
        weight=done.weight,
        shift_px=(round(dx, 3), round(dy, 3)),
        rotation_deg=round(done.transform.rotation_deg, 4),
        fold_s=round(done.fold_s, 3),
        rebuilt=done.rebuilt,
    )


class LiveStackWorker(PassWorker):
    """Runs the :class:`~obsy_imaging.livestack.LiveStacker` on its own thread and publishes each fold.

    A pass runs when the calibration calibrated lights (:meth:`wake`) and every few seconds (so
    lights calibrated before a restart are taken too). An unexpected error is logged, sent as an
    error event and counted; the thread goes on.
    """

    THREAD_NAME = "imaging-livestack"
    WHAT = "live stack pass"
    FAILED_EVENT = EventKind.LIVE_STACK_PASS_FAILED

    def __init__(self, service: ImagingService, stacker: LiveStacker) -> None:
        super().__init__(service)
        self.stacker = stacker
        self.folded = self.left_out = 0
        stacker.cancelled = self._stopping.is_set

    def _pass(self) -> None:
        self._drain(lambda: self.stacker.pending(since_night=self._since_night()), self._fold)
        for stack_id in self.stacker.stale(since_night=self._since_night()):  # lights calibrated again
            if self._stopping.is_set():
                return
            try:
                rebuilt = self.stacker.rebuild(stack_id)
            except Exception as exc:  # a light's file gone or unreadable: the stack stays as it was
                self.errors += 1
                self.log.exception("live stack %s not rebuilt", stack_id, extra={"event": "live_stack_rebuild_failed"})
                self.stacker.keep(stack_id)
                self._event(
                    EventKind.LIVE_STACK_REBUILD_FAILED,
                    "error",
                    f"live stack {stack_id} not rebuilt after lights were calibrated again: {exc}; it keeps their "
                    "earlier calibration"[:1000],
                    {"stack_id": stack_id},
                )
                continue
            self._publish(rebuilt)

    def _fold(self, frame_id: int) -> None:
        try:
            done = self.stacker.fold(frame_id)
        except Exception as exc:  # a bug: the light is left out (not retried every pass), the rest go on
            self.errors += 1
            self.log.exception("live stack of light %s failed", frame_id, extra={"event": "live_stack_pass_failed"})
            done = self.stacker.give_up(frame_id, f"unexpected error: {exc}"[:500])
        self._publish(done)

    def _since_night(self) -> str | None:
        """The oldest night stacked live (``imaging.live_stack.nights``): not an archive's old nights."""
        nights = self.stacker.settings.nights
        if nights is None:
            return None
        tonight = astro.night_of(self.service.config.site, self.service.clock())
        return (tonight - timedelta(days=nights - 1)).isoformat()

    def _publish(self, done: Folded | LeftOut) -> None:
        if isinstance(done, LeftOut):
            self.left_out += 1
            stack = done.stack
            where = f"{done.frame.target or 'unknown'} / {done.frame.filter or 'no filter'} / {done.frame.night}"
            self.bus.publish_event(
                Event(
                    service="imaging",
                    kind=EventKind.LIVE_STACK_LEFT_OUT,
                    level="warning",
                    message=f"{done.frame.path} left out of the live stack ({where}): {done.reason}"[:1000],
                    data={
                        "frame_id": done.frame.id,
                        "path": done.frame.path,
                        "stack_id": None if stack is None else stack.id,
                        "reason": done.reason[:500],
                    },
                )
            )
            return
        self.folded += 1
        # The picture first: whoever reacts to the state finds the matching preview retained.
        self.bus.publish(self.topics.imaging_live_stack_image, done.preview, qos=1, retain=True)
        self.bus.publish(self.topics.imaging_live_stack_state, live_stack_message(done), qos=1, retain=True)
        if self.service.uploads is not None:  # the same preview to the centre (replaced there at each fold)
            self.service.uploads.send(self.stacker.root / done.stack.preview_path)


def photometry_message(done: Measured) -> ImagingPhotometry:
    row = done.row
    return ImagingPhotometry(
        frame_id=row.frame_id,
        path=done.path,
        night=row.night,
        target=row.target,
        filter=row.filter,
        band=row.band,
        jd=row.jd,
        hjd=row.hjd,
        bjd_tdb=row.bjd_tdb,
        magnitude=row.magnitude,
        error=row.error,
        check=row.check_label,
        check_magnitude=row.check_magnitude,
        check_residual=row.check_residual,
        airmass=row.airmass,
        transformed=bool(row.transformed),
        comparisons=[PhotometryComparison(**c) for c in row.comparisons or []],
        chart=row.chart_id,
        wcs=row.wcs_source,
        fwhm_px=row.fwhm_px,
        reasons=list(row.reasons or []),
        report=done.report,
    )


class PhotometryWorker(PassWorker):
    """Runs the :class:`~obsy_imaging.photometer.Photometer` on its own thread and publishes each light.

    A pass runs when the calibration calibrated lights (:meth:`wake`) and every few seconds. The
    first pass forgets the lights that had no sequence, so a chart added since is used. A light
    that cannot be measured is stored with its reasons, published, and sent as a warning event;
    an unexpected error is logged, stored as the light's reason and counted; the thread goes on.
    """

    THREAD_NAME = "imaging-photometry"
    WHAT = "photometry pass"
    FAILED_EVENT = EventKind.PHOTOMETRY_PASS_FAILED

    def __init__(self, service: ImagingService, photometer: Photometer) -> None:
        super().__init__(service)
        self.photometer = photometer
        self.measured = self.failed = 0
        self._first_pass = True

    def _pass(self) -> None:
        if self._first_pass:
            self._first_pass = False
            retried = self.photometer.retry_without_sequence()
            if retried:
                self.log.info("%d light(s) without a sequence are measured again", retried)
        self._drain(self.photometer.pending, self._measure)

    def _measure(self, frame_id: int) -> None:
        """Every target the light holds; one published message per target."""
        for target in self.photometer.unmeasured(frame_id):
            try:
                done = [self.photometer.measure(frame_id, target)]
            except Exception as exc:  # a bug: stored as failed (not retried every pass), the rest go on
                self.errors += 1
                self.log.exception(
                    "photometry of light %s (%s) failed", frame_id, target.name, extra={"event": self.FAILED_EVENT}
                )
                done = self.photometer.give_up(frame_id, f"unexpected error: {exc}"[:500], target)
            for measured in done:
                self._publish(measured)

    def _publish(self, done: Measured) -> None:
        message = photometry_message(done)
        self.bus.publish(self.topics.imaging_photometry, message, qos=1)
        where = f"{message.target} / {message.band or message.filter or 'no filter'} / {message.night}"
        if done.row.status == MEASURED:
            self.measured += 1
            self.log.info(
                "%s: %s %.3f ± %.3f", done.path, where, message.magnitude, message.error or 0.0,
                extra={"event": "photometry_measured"},
            )  # fmt: skip
        else:
            self.failed += 1
            reasons = "; ".join(message.reasons) or "no magnitude"
            self._event(
                EventKind.PHOTOMETRY_FAILED,
                "warning",
                f"{done.path}: no magnitude ({where}): {reasons}"[:1000],
                {"frame_id": message.frame_id, "path": done.path, "target": message.target, "reasons": message.reasons},
            )
        if done.report_problems:
            self._event(
                EventKind.PHOTOMETRY_REPORT_LEFT_OUT,
                "warning",
                f"left out of the AAVSO report of {message.target} ({message.night}): "
                + "; ".join(done.report_problems)[:800],
                {"target": message.target, "night": message.night},
            )


def stack_fields(row: Any) -> dict[str, Any]:
    """What the messages of a night stack and of a project stack take alike from their database row."""
    return {
        "stack_id": row.id,
        "target": row.target,
        "filter": row.filter,
        "frames": row.frame_count,
        "integration_s": row.integration_s,
        "rejection": row.rejection,
        "rejected_fraction": row.rejected_fraction,
        "path": row.path,
        "seconds": round(row.seconds, 2),
    }


class StackWorker(PassWorker):
    """Builds stacks of one kind (``STACK``: "night stack", "project stack"), counted in ``built``: each
    stack built goes to the bus and is said in a ``BUILT_EVENT``, one not built in a ``SKIPPED_EVENT``."""

    STACK = "stack"
    SKIPPED_EVENT: EventKind
    BUILT_EVENT: EventKind

    def __init__(self, service: ImagingService) -> None:
        super().__init__(service)
        self.built = 0

    def _say_skipped(self, where: str, reason: str, data: dict[str, Any]) -> None:
        """The stack of ``where`` was not built, for ``reason``: said unless the service stops (then it
        was given up, and is no problem to report: the next start builds it)."""
        if self._stopping.is_set():
            return
        message = f"{self.STACK} of {where} not built: {reason}"
        self._event(self.SKIPPED_EVENT, "warning", message[:1000], {**data, "reason": reason[:500]})

    def _publish_built(
        self,
        topic: str,
        message: ImagingNightStack | ImagingProjectStack,
        where: str,
        summary: str,
        problems: tuple[str, list[str]],
    ) -> None:
        """Send the stack built (``message``, with its ``stack_id`` and ``path``) to ``topic`` and say it;
        ``problems``: (name, items) of what was left out, the event a warning when there are any."""
        self.built += 1
        self.bus.publish(topic, message, qos=1)
        name, items = problems
        self._event(
            self.BUILT_EVENT,
            "warning" if items else "info",
            f"{self.STACK} of {where}: {summary}",
            {"stack_id": message.stack_id, "path": message.path, name: items[:20]},
        )


class NightStackWorker(StackWorker):
    """Once a night is over, stacks each of its live stacks again with rejection (:mod:`obsy_imaging.nightstack`).

    Looks every minute (and at start: a service restarted after dawn catches up), and at once when
    the MCP's ``night_ended`` event says tonight is over (dawn, the schedule done, the operator's
    ABORT), so the stacks of record are there by dawn rather than at the calendar's noon. A live
    stack that cannot be stacked again (too few readable lights) is said once, then left until it grows.
    """

    IDLE_PASS_S = 60.0
    THREAD_NAME = "imaging-nightstack"
    WHAT = "night stack pass"
    FAILED_EVENT = EventKind.NIGHT_STACK_PASS_FAILED
    STACK = "night stack"
    SKIPPED_EVENT = EventKind.NIGHT_STACK_SKIPPED
    BUILT_EVENT = EventKind.NIGHT_STACK_BUILT

    def __init__(self, service: ImagingService, stacker: NightStacker) -> None:
        super().__init__(service)
        self.stacker = stacker
        self._skipped: dict[int, str] = {}  # live stack id -> the reason said for it
        self._ended: set[str] = set()  # nights the MCP said ended (kept while the service runs)
        stacker.cancelled = self._stopping.is_set

    def on_mcp_event(self, _topic: str, event: Event) -> None:
        """The MCP's ``night_ended`` (data ``night``, ISO date): that night's stacks are built now."""
        night = event.data.get("night") if event.kind == "night_ended" else None
        if not isinstance(night, str) or not night:
            return
        self._ended.add(night)
        self.wake()

    def _pass(self) -> None:
        tonight = astro.night_of(self.service.config.site, self.service.clock()).isoformat()
        for live_id in self.stacker.due(tonight, ended=set(self._ended)):
            if self._stopping.is_set():
                return
            if live_id in self._skipped:
                continue
            self._publish(self.stacker.build(live_id))

    def _publish(self, done: Built | Skipped) -> None:
        if isinstance(done, Skipped):
            if not self._stopping.is_set():  # given up because the service stops: the next start does it
                self._skipped[done.live_stack_id] = done.reason
            where = f"{done.target or 'unknown'} / {done.filter or 'no filter'} / {done.night}"
            self._say_skipped(where, done.reason, {"live_stack_id": done.live_stack_id})
            return
        row = done.row
        message = ImagingNightStack(
            **stack_fields(row), live_stack_id=row.live_stack_id, night=row.night, missing=len(done.missing)
        )
        self._publish_built(
            self.topics.imaging_night_stacks,
            message,
            f"{row.target or 'unknown'} / {row.filter or 'no filter'} / {row.night}",
            f"{row.frame_count} lights, {100 * row.rejected_fraction:.2f} % of values rejected"
            + (f", {len(done.missing)} light(s) could not be read" if done.missing else ""),
            ("missing", done.missing),
        )
        project = self.service.project_stack
        if project is not None and row.target and project.stacker.settings.rebuild_on_night_stack:
            project.request(row.target, row.filter)


class ProjectStackWorker(StackWorker):
    """Builds project stacks (:mod:`obsy_imaging.projectstack`) on request: a bus command, or a
    night stack of that target and filter built (``rebuild_on_night_stack``), then the target's
    colour images. Requests wait in order, one per target and filter; progress goes to the
    retained ``<p>/imaging/projectstack/state`` (at most every ``PROGRESS_S`` seconds and at
    each phase's start and end), each stack built to ``<p>/imaging/projectstacks``."""

    IDLE_PASS_S = 600.0
    THREAD_NAME = "imaging-projectstack"
    WHAT = "project stack pass"
    FAILED_EVENT = EventKind.PROJECT_STACK_PASS_FAILED
    STACK = "project stack"
    SKIPPED_EVENT = EventKind.PROJECT_STACK_SKIPPED
    BUILT_EVENT = EventKind.PROJECT_STACK_BUILT
    PROGRESS_S = 2.0
    MAX_WAITING = 100

    def __init__(self, service: ImagingService, stacker: ProjectStacker) -> None:
        super().__init__(service)
        self.stacker = stacker
        #: (target, filter, every filter of the target) -> the command that asked (None: a night stack did).
        self._requests: dict[tuple[str, str | None, bool], ImagingProjectStackCommand | None] = {}
        self._requests_lock = threading.Lock()
        stacker.cancelled = self._stopping.is_set

    def on_command(self, _topic: str, command: ImagingProjectStackCommand) -> None:
        """Queued for the worker's thread (which looks up the target's filters: no database on the bus's thread)."""
        value = command.target + (f" {command.filter}" if command.filter else "")
        if not self.request(command.target, command.filter, command, every_filter=command.filter is None):
            reasons = ["too many project stacks waiting"]
            self.bus.publish_event(_answer("projectstack", value, command, False, reasons).as_event("imaging"))
            return
        self.bus.publish_event(_answer("projectstack", value, command, True).as_event("imaging"))

    def request(
        self,
        target: str,
        filter_name: str | None,
        command: ImagingProjectStackCommand | None = None,
        *,
        every_filter: bool = False,
    ) -> bool:
        """Queue a project stack of ``target`` and ``filter_name`` (or of each of its filters), once
        however often asked; False when too many wait."""
        key = (target, None if every_filter else filter_name, every_filter)
        with self._requests_lock:
            if key not in self._requests and len(self._requests) >= self.MAX_WAITING:
                return False
            self._requests[key] = command or self._requests.get(key)
        self.wake()
        return True

    def _next(self) -> tuple[tuple[str, str | None, bool], ImagingProjectStackCommand | None] | None:
        with self._requests_lock:
            if not self._requests:
                return None
            key, command = next(iter(self._requests.items()))
            del self._requests[key]
        return key, command

    def _pass(self) -> None:
        targets: list[str] = []
        while not self._stopping.is_set() and (item := self._next()) is not None:
            (target, filter_name, every_filter), command = item
            filters = self.stacker.filters(target) if every_filter else [filter_name]
            if not filters:
                self._answer(
                    ImagingProjectStackState(
                        status="failed",
                        target=target,
                        reason=f"no accepted, calibrated lights of {target!r}"[:1000],
                        request_id=command.request_id if command else None,
                        origin=command.origin if command else None,
                    )
                )
                continue
            for one in filters:
                if not self._stopping.is_set():
                    self._build(target, one, command)
            if target not in targets:
                targets.append(target)
        for target in targets:
            if self._stopping.is_set():
                return
            self._colour(target)

    def _build(self, target: str, filter_name: str | None, command: ImagingProjectStackCommand | None) -> None:
        request_id, origin = (command.request_id, command.origin) if command else (None, None)
        last = [0.0, ""]

        def progress(phase: str, done: int, total: int) -> None:
            now = monotonic()
            if phase == last[1] and done < total and now - last[0] < self.PROGRESS_S:
                return
            last[0], last[1] = now, phase
            self._answer(
                ImagingProjectStackState(
                    status=phase, target=target, filter=filter_name, done=done, total=total,
                    request_id=request_id, origin=origin,
                )
            )  # fmt: skip

        done = self.stacker.build(target, filter_name, progress)
        where = f"{target} / {filter_name or 'no filter'}"
        if isinstance(done, ProjectSkipped):
            # Answered also when the service stops mid-way: the retained state must not stay "stacking".
            self._answer(
                ImagingProjectStackState(
                    status="failed", target=target, filter=filter_name, reason=done.reason[:1000],
                    request_id=request_id, origin=origin,
                )
            )  # fmt: skip
            self._say_skipped(where, done.reason, {"target": target, "filter": filter_name})
            return
        row = done.row
        message = ImagingProjectStack(
            **stack_fields(row),
            nights=list(row.nights),
            left_out=row.left_out,
            sample=done.sample,
            thumbnail=done.thumbnail,
        )
        self._publish_built(
            self.topics.imaging_project_stacks,
            message,
            where,
            f"{row.frame_count} lights of {len(row.nights)} night(s)"
            + (f", {len(done.left_out)} left out" if done.left_out else ""),
            ("left_out", done.left_out),
        )
        self._answer(
            ImagingProjectStackState(
                status="done", target=target, filter=filter_name, done=row.frame_count, total=row.frame_count,
                stack_id=row.id, path=row.path, request_id=request_id, origin=origin,
            )
        )  # fmt: skip

    def _colour(self, target: str) -> None:
        for palette in self.stacker.palettes(target):
            try:
                made = self.stacker.colour(target, palette)
            except ColourError as exc:
                self._event(
                    EventKind.PROJECT_COLOUR_SKIPPED,
                    "warning",
                    f"no {palette} image of {target}: {exc}"[:1000],
                    {"target": target, "palette": palette},
                )
                continue
            self._event(
                EventKind.PROJECT_COLOUR_BUILT,
                "info",
                f"{palette} image of {target}: {made.path}",
                {"target": target, "palette": palette, "path": made.path, "sample": made.sample},
            )

    def _answer(self, state: ImagingProjectStackState) -> None:
        self.bus.publish(self.topics.imaging_project_stack_state, state, qos=1, retain=True)


def transit_message(done: Done) -> ImagingTransit:
    row = done.row
    minutes, hours = 1440.0, 24.0

    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    return ImagingTransit(
        **{name: getattr(row, name) for name in _TRANSIT_AS_STORED},
        fit_id=row.id,
        o_minus_c_min=scaled(row.o_minus_c, minutes),
        o_minus_c_err_min=scaled(row.o_minus_c_err, minutes),
        duration_h=scaled(row.duration, hours),
        duration_err_h=scaled(row.duration_err, hours),
        report=row.report_path,
        plot=row.plot_path,
        points=row.points_path,
    )


#: The fields of :class:`ImagingTransit` that carry the stored fit's column of the same name as it is.
_TRANSIT_AS_STORED = (
    "night", "planet", "target", "status", "reason", "filter", "epoch", "tc", "tc_err", "predicted_tc",
    "rp_rs", "rp_rs_err", "a_rs", "a_rs_err", "inc", "inc_err", "depth", "depth_err", "partial", "contact",
    "points_used", "points_rejected", "ensemble_size", "chi2_reduced", "red_noise_beta",
)  # fmt: skip


class TransitWorker(PassWorker):
    """Runs the :class:`~obsy_imaging.transiter.Transiter` on its own thread and publishes each night.

    A pass runs when lights were calibrated (:meth:`wake`) and every minute (a window ends without
    a new light). A night without a fit is stored and published with its reason and sent as a
    warning event; an ephemeris file that cannot be read is said once per change of the file; an
    unexpected error is logged, stored as the night's reason and counted; the thread goes on.
    """

    IDLE_PASS_S = 60.0
    THREAD_NAME = "imaging-transits"
    WHAT = "transit pass"
    FAILED_EVENT = EventKind.TRANSIT_PASS_FAILED

    def __init__(self, service: ImagingService, transiter: Transiter) -> None:
        super().__init__(service)
        self.transiter = transiter
        self.fitted = self.failed = 0
        # A night is due once its lights have stopped coming for quiet_time: look again by then.
        self.IDLE_PASS_S = min(60.0, max(1.0, transiter.settings.quiet_time))
        self._ephemeris_problem: str | None = None
        self._tried: set[tuple[str, str]] = set()  # in this pass: a night is fitted at most once per pass

    def _pass(self) -> None:
        self._tried = set()
        self._drain(self._due, self._fit)

    def _due(self) -> list[tuple[str, str]]:
        try:
            due = self.transiter.due(self.service.clock())
        except EphemerisError as exc:
            if str(exc) != self._ephemeris_problem:  # said once, not every pass
                self._ephemeris_problem = str(exc)
                self._event(EventKind.TRANSIT_EPHEMERIDES_UNUSABLE, "error", f"no transit fits: {exc}"[:1000], {})
            return []
        self._ephemeris_problem = None
        return [night_planet for night_planet in due if night_planet not in self._tried]

    def _fit(self, night_planet: tuple[str, str]) -> None:
        night, planet = night_planet
        self._tried.add(night_planet)
        try:
            done = self.transiter.process(night, planet)
        except Exception as exc:  # a bug: the night is stored as failed (not tried every pass), the rest go on
            self.errors += 1
            self.log.exception("transit fit of %s on %s failed", planet, night, extra={"event": self.FAILED_EVENT})
            done = self.transiter.give_up(night, planet, f"unexpected error: {exc}"[:500])
        self.publish(done)

    def publish(self, done: Done) -> None:
        from obsy_imaging.transiter import FITTED

        message = transit_message(done)
        self.bus.publish(self.topics.imaging_transits, message, qos=1)
        where = f"{message.planet} ({message.night})"
        if message.status == FITTED:
            self.fitted += 1
            self._event(
                EventKind.TRANSIT_FITTED,
                "info",
                f"{where}: Tc {message.tc:.5f} ± {message.tc_err:.5f} BJD_TDB, O−C {message.o_minus_c_min:+.1f} ± "
                f"{message.o_minus_c_err_min:.1f} min, depth {100 * message.depth:.2f} %"
                + (f" (partial: {message.contact})" if message.partial else ""),
                {"fit_id": message.fit_id, "report": message.report, "plot": message.plot},
            )
        else:
            self.failed += 1
            self._event(
                EventKind.TRANSIT_FAILED,
                "warning",
                f"{where}: no transit fit: {message.reason}"[:1000],
                {"fit_id": message.fit_id, "planet": message.planet, "night": message.night},
            )
        for problem in done.problems:
            self._event(
                EventKind.TRANSIT_FILES_FAILED, "warning", f"{where}: {problem}"[:1000], {"fit_id": message.fit_id}
            )


def _answer(
    thing: str,
    value: str,
    command: ImagingMastersCommand | ImagingProjectStackCommand | ImagingIngestCommand,
    accepted: bool,
    reasons: list[str] | None = None,
) -> CommandAnswer:
    """The answer to one of the imaging service's commands (the one contract, :class:`CommandAnswer`)."""
    return CommandAnswer.of(
        thing, value, accepted=accepted, origin=command.origin, request_id=command.request_id, reasons=reasons or []
    )
