"""The service's side of the products: per-frame thumbnail and log line, and the end-of-night job.

:class:`NightlyProducts` is told of every stored frame. It writes the frame's thumbnail (from
the image already in memory) and its line in the frame log (with the cloud verdict clouddetect
last published). When a frame belongs to a new night (the night turns at local noon, see
``obsy.astro.night_of``), the previous night is complete: its ``allsky.products.nightly``
products are built on a background thread, one after another, with progress on
``allsky/progress``. At start the latest earlier night without a summary is built too, so a
service that was down at noon catches up. Nothing here may stop the capture: every failure
is logged and reported on the progress topic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from obsy.bus import Bus
from obsy.config import ObsyConfig
from obsy.messages import AllskyFrame, AllskyProgress, CloudState
from obsy_allsky.products import framelog
from obsy_allsky.products.jobs import PRODUCTS, night_dir, product_path, run_job
from obsy_allsky.products.night import night_frames
from obsy_allsky.products.progress import JobCancelledError, JobProgress
from obsy_allsky.products.thumbnails import thumbnail_path, write_thumbnail

log = logging.getLogger("obsy.allsky.products")


class NightlyProducts:
    def __init__(
        self, config: ObsyConfig, bus: Bus, on_built: Callable[[date, list[Path]], None] | None = None
    ) -> None:
        """``on_built(night, files)``: called after a night's products are built, with every file of its
        products folder (the service sends them to a fleet's centre)."""
        self.config = config
        self.on_built = on_built
        self.bus = bus
        self.settings = config.allsky.products
        self.cloud: CloudState | None = None
        self.current_night: date | None = None
        self.nights_built: list[date] = []
        self._stop = threading.Event()
        self._queue: list[date] = []
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------
    def start(self, tonight: date) -> None:
        """Listen to clouddetect's verdict; build the latest unfinished earlier night (catch-up)."""
        self.bus.subscribe(self.bus.topics.clouddetect_state, self._on_cloud, CloudState)
        self.current_night = tonight
        self._worker = threading.Thread(target=self._work, name="allsky-products", daemon=True)
        self._worker.start()
        pending = self.unfinished_night(tonight)
        if pending is not None:
            self.schedule(pending)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the running job at its next frame (its product is not written) and the worker."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)

    def unfinished_night(self, tonight: date) -> date | None:
        """The latest night before ``tonight`` with frames and no summary, if the summary is built nightly."""
        if "summary" not in self.settings.nightly:
            return None
        root = night_dir(self.config.data_dir, tonight).parent
        for folder in sorted(root.glob("????-??-??"), reverse=True):
            try:
                night = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if night >= tonight:
                continue
            if night_frames(folder) and not product_path(self.config.data_dir, night, "summary").exists():
                return night
            return None  # only the latest earlier night is caught up; older ones are left to the CLI
        return None

    # --- per frame ------------------------------------------------------------------
    def frame_stored(self, frame: AllskyFrame, image: np.ndarray) -> None:
        """Thumbnail and log line of a stored frame; a new night schedules the previous night's products."""
        night = date.fromisoformat(frame.night)
        folder = night_dir(self.config.data_dir, night)
        try:
            write_thumbnail(image, thumbnail_path(folder, f"{frame.frame_id}.jpg"), self.settings.thumbnail_width)
            framelog.append(folder, framelog.frame_record(frame, self.cloud))
        except OSError as exc:  # a full disk: the frame itself is stored, its extras are not
            log.warning(
                "no thumbnail or log line for %s: %s", frame.frame_id, exc, extra={"event": "frame_extras_failed"}
            )
        except Exception:  # never let the extras stop the capture
            log.exception("thumbnail or log line for %s failed", frame.frame_id, extra={"event": "frame_extras_failed"})
        previous, self.current_night = self.current_night, night
        if previous is not None and night > previous:
            self.schedule(previous)

    def _on_cloud(self, _topic: str, state: CloudState) -> None:
        self.cloud = state

    # --- the job thread -------------------------------------------------------------
    def schedule(self, night: date) -> None:
        if not self.settings.nightly:
            return
        with self._wake:
            if night not in self._queue:
                self._queue.append(night)
            self._wake.notify_all()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._queue and not self._stop.is_set():
                    self._wake.wait()
                if self._stop.is_set():
                    return
                night = self._queue.pop(0)
            try:
                self.build_night(night)
            except JobCancelledError:
                return
            except Exception:  # a product bug must not end the service
                log.exception("nightly products of %s failed", night, extra={"event": "nightly_products_failed"})

    def build_night(self, night: date) -> None:
        """Every configured product of ``night``, in order (the summary last, listing the others)."""
        log.info("building the products of %s: %s", night, ", ".join(self.settings.nightly))
        kinds = sorted(self.settings.nightly, key=lambda k: k == "summary")
        for kind in kinds:
            progress = JobProgress(kind, night.isoformat(), publish=self._publish, stop=self._stop)
            run_job(kind, night, self.config, progress)
        self.nights_built.append(night)
        if self.on_built is not None:
            folder = night_dir(self.config.data_dir, night) / PRODUCTS
            self.on_built(night, sorted(path for path in folder.rglob("*") if path.is_file()))

    def _publish(self, message: AllskyProgress) -> None:
        self.bus.publish(self.bus.topics.allsky_progress, message, qos=1, retain=True)
