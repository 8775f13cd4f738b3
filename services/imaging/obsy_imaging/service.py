"""The imaging service: frames from the capture folders into the repository, counts on the bus.

Start: the imaging tables are migrated, the capture folders watched (and scanned, so frames
written while the service was down are taken too), the initial state published. Each frame
registered goes out as an :class:`~obsy.messages.ImagingFrame` on ``<p>/imaging/frames``; each
file set aside as an :class:`~obsy.messages.ImagingQuarantined` on ``<p>/imaging/quarantine`` and
a warning event. ``<p>/imaging/state`` (retained) carries tonight's counts and the queue depth;
it is republished when it changes and every ``publish_interval`` seconds.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from obsy import astro
from obsy.bus import Bus
from obsy.config import ImagingConfig, ObsyConfig
from obsy.homeassistant import Entity
from obsy.messages import Event, ImagingFrame, ImagingQuarantined, ImagingState, utc_now
from obsy.runner import Service, run_service
from obsy_imaging.grading.grader import Grader
from obsy_imaging.headers.normalise import warm_up
from obsy_imaging.ingest.ingestor import Ingestor, Outcome, Result
from obsy_imaging.ingest.watcher import CaptureWatcher
from obsy_imaging.repository import database
from obsy_imaging.repository.models import Frame, Grade
from obsy_imaging.repository.store import Repository


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

    def __init__(self, config: ObsyConfig, bus: Bus) -> None:
        super().__init__(config, bus)
        self.clock = utc_now
        self._settings: ImagingConfig = self.settings
        # Built in start(): nothing touches the disk or the database before the runner starts us.
        self.repository: Repository | None = None
        self.watcher: CaptureWatcher | None = None
        self.grader: Grader | None = None
        self._lock = threading.Lock()
        self._last_state: tuple[Any, ...] | None = None
        self._last_publish: datetime | None = None
        self._last_frame: str | None = None
        self.state: ImagingState | None = None

    # --- runner hooks -------------------------------------------------------------------
    def start(self) -> None:
        settings, data_dir = self._settings, self.config.data_dir
        engine = database.make_engine(settings.database(data_dir))
        database.upgrade(engine)
        self.repository = Repository(engine, settings.repository_dir(data_dir), settings.quarantine_dir(data_dir))
        for folder in (self.repository.root, self.repository.quarantine_root):
            folder.mkdir(parents=True, exist_ok=True)
        if settings.grading.enabled:
            self.grader = Grader(self.repository, settings.grading)
        self.watcher = CaptureWatcher(
            Ingestor(self.repository, self.config.site),
            settings.capture_dirs(data_dir, self.config.scheduler.ekos.fits_dir),
            suffixes=settings.suffixes,
            settle_time=settings.settle_time,
            incomplete_timeout=settings.incomplete_timeout,
            on_result=self.on_result,
        )
        warm_up()
        self.watcher.start()  # watches and scans the folders, takes files on its own thread
        self.refresh(force=True)

    def poll(self) -> None:
        if self.watcher is not None and self.watcher.missing:
            self.watcher.attach_folders()
        self.refresh()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.repository is not None:
            self.repository.engine.dispose()

    def health_details(self) -> dict[str, Any]:
        if self.watcher is None:
            return {}
        return {
            "queue": self.watcher.queue_depth,
            "watching": [str(p) for p in self.watcher.watching],
            "missing_folders": [str(p) for p in self.watcher.missing],
            "storage_error": self.watcher.storage_error,
        }

    # --- results ------------------------------------------------------------------------
    def on_result(self, result: Result) -> None:
        """Called on the watcher's thread for every file it finished with."""
        if result.outcome is Outcome.REGISTERED and result.frame is not None:
            message = frame_message(result.frame, self._grade(result.frame))
            self._last_frame = message.path
            self.bus.publish(self.topics.imaging_frames, message, qos=1)
            self.log.info("registered %s as %s", result.path, message.path, extra={"event": "frame_ingested"})
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
                    kind="frame_quarantined",
                    level="warning",
                    message=f"{result.path.name} set aside: {record.reason}",
                    data={"source": record.source_path, "problem": record.problem},
                )
            )
        elif result.outcome is Outcome.STORAGE_FULL:
            self.bus.publish_event(
                Event(
                    service=self.name,
                    kind="storage_full",
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
                storage_error=self.watcher.storage_error,
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
        state_topic = self.topics.imaging_state
        return [
            Entity(
                component="sensor",
                object_id="frames_tonight",
                name="Frames tonight",
                state_topic=state_topic,
                value_template="{{ value_json.frames_tonight }}",
                state_class="measurement",
                icon="mdi:image-multiple",
                json_attributes_topic=state_topic,
                json_attributes_template=(
                    "{{ {'night': value_json.night, 'lights': value_json.lights_tonight,"
                    " 'quarantined': value_json.quarantined_tonight} | tojson }}"
                ),
            ),
            Entity(
                component="sensor",
                object_id="accepted_fraction",
                name="Lights accepted tonight",
                state_topic=state_topic,
                value_template=(
                    "{{ (100 * value_json.accepted_tonight / value_json.lights_tonight) | round(0)"
                    " if value_json.lights_tonight else 'None' }}"
                ),
                unit_of_measurement="%",
                state_class="measurement",
                icon="mdi:check-decagram",
            ),
            Entity(
                component="sensor",
                object_id="queue",
                name="Frames waiting",
                state_topic=state_topic,
                value_template="{{ value_json.queue }}",
                state_class="measurement",
                icon="mdi:tray-full",
            ),
            Entity(
                component="sensor",
                object_id="quarantined_tonight",
                name="Frames quarantined tonight",
                state_topic=state_topic,
                value_template="{{ value_json.quarantined_tonight }}",
                state_class="measurement",
                icon="mdi:file-alert-outline",
            ),
        ]


def main(argv: list[str] | None = None) -> int:
    from obsy_imaging.cli import COMMANDS

    return run_service(ImagingService, argv, COMMANDS)
