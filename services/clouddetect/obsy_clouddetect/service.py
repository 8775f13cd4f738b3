"""The clouddetect service: allsky frames in, a debounced cloud verdict out.

Frames (``<p>/allsky/frames``) are judged on a worker thread, newest first: a frame that
arrives while another is being judged replaces any frame still waiting, so the verdict
never lags behind a backlog. Each judgement is published as the retained
``<p>/clouddetect/state``. A frame that cannot be read or judged is logged and counted and
leaves the state as it was; no frame for ``max_frame_age`` seconds makes the state unknown.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

from obsy.homeassistant import Entity
from obsy.messages import AllskyFrame, CloudState
from obsy.runner import Service
from obsy_clouddetect import ha
from obsy_clouddetect.classifier.runtime import ClassifierError, SkyClassifier
from obsy_clouddetect.cloudmap import save_cloud_map
from obsy_clouddetect.collect import Collector
from obsy_clouddetect.frames import FrameError, load_frame, read_bytes
from obsy_clouddetect.judge import UNKNOWN, FrameJudge
from obsy_clouddetect.verdict import Debouncer

CLOUD_MAP_FILE = "cloudmap.png"


class CloudDetectService(Service):
    name = "clouddetect"
    poll_interval = 5.0

    def start(self) -> None:
        settings = self.settings
        classifier = None
        if settings.classifier.model is not None:
            try:
                classifier = SkyClassifier(
                    settings.classifier.model, settings.classifier.labels, settings.classifier.threads
                )
            except ClassifierError as exc:
                self.log.error("classifier: %s", exc, extra={"event": "classifier_invalid"})
                raise RuntimeError(f"clouddetect cannot start: {exc}") from None
        self.workdir: Path = self.config.data_dir / "clouddetect"
        self.judge = FrameJudge(self.config, classifier)
        self.debouncer = Debouncer(settings.debounce_frames)
        self.collector = Collector(self.workdir / "collect", settings.collect_every) if settings.collect_every else None
        self.frames: queue.Queue[AllskyFrame] = queue.Queue(maxsize=1)
        self.counts = {"frames": 0, "judged": 0, "failed": 0, "skipped": 0}
        self.last_frame_at: float | None = None
        self.started_at = time.monotonic()
        self.stopping = threading.Event()
        self.state = CloudState(reason="no frame yet")
        self.publish(self.state)
        self.worker = threading.Thread(target=self._work, name="clouddetect-judge", daemon=True)
        self.worker.start()
        self.bus.subscribe(self.topics.allsky_frames, self._on_frame, AllskyFrame)

    def stop(self) -> None:
        self.stopping.set()
        self.worker.join(10)

    def publish(self, state: CloudState) -> None:
        self.state = state
        self.bus.publish(self.topics.clouddetect_state, state, qos=1, retain=True)

    # --- frames in ---------------------------------------------------------------------

    def _on_frame(self, topic: str, frame: AllskyFrame) -> None:
        self.counts["frames"] += 1
        try:
            self.frames.put_nowait(frame)
        except queue.Full:
            try:
                self.frames.get_nowait()
                self.counts["skipped"] += 1
            except queue.Empty:
                pass
            self.frames.put_nowait(frame)

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                frame = self.frames.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._judge(frame)
            except FrameError as exc:
                self.counts["failed"] += 1
                self.log.warning("frame %s: %s", frame.frame_id, exc, extra={"event": "frame_unreadable"})
            except Exception:
                self.counts["failed"] += 1
                self.log.exception("judging frame %s failed", frame.frame_id, extra={"event": "frame_failed"})

    def _judge(self, frame: AllskyFrame) -> None:
        settings = self.settings
        age = (self.clock() - frame.timestamp).total_seconds()
        if age > settings.max_frame_age:
            raise FrameError(f"frame is {age:.0f} s old (max_frame_age {settings.max_frame_age:.0f} s); not judged")
        source = frame.clean_url or frame.url  # never the overlay's text and names: they defeat the star match
        image = load_frame(source, self.config.data_dir, settings.fetch_timeout)
        judgement = self.judge.judge(image, frame.timestamp, frame.exposure_s, frame.gain)
        clear = self.debouncer.update(judgement.clear)
        map_url = None
        t = judgement.transmission
        if t is not None and t.cloud_map is not None:
            save_cloud_map(t.cloud_map, self.workdir / CLOUD_MAP_FILE)
            map_url = self._map_url()
        self.counts["judged"] += 1
        self.last_frame_at = time.monotonic()
        self.publish(
            CloudState(
                cloud_cover=judgement.cover,
                label=judgement.label,
                confidence=judgement.confidence,
                clear=clear,
                methods=judgement.methods,
                frame_id=frame.frame_id,
                frame_time=frame.timestamp,
                cloud_map_url=map_url,
                frame_age_s=round((self.clock() - frame.timestamp).total_seconds(), 1),
                transmission=None if t is None or t.transmission is None else round(t.transmission, 3),
                stars_expected=None if t is None else t.stars_expected,
                stars_seen=None if t is None else t.stars_seen,
                reason=judgement.reason,
            )
        )
        if self.collector is not None:
            self.collector.offer(frame, judgement.label, lambda: read_bytes(source, self.config.data_dir, 10))

    def _map_url(self) -> str:
        base = self.settings.cloud_map_url
        if base:
            return f"{base.rstrip('/')}/{CLOUD_MAP_FILE}"
        return (self.workdir / CLOUD_MAP_FILE).resolve().as_uri()

    # --- staleness ---------------------------------------------------------------------

    def poll(self) -> None:
        """No frame for max_frame_age seconds: the sky is unknown, and never still clear."""
        if not self.worker.is_alive():
            raise RuntimeError("the frame-judging thread stopped")
        limit = self.settings.max_frame_age
        since = self.last_frame_at if self.last_frame_at is not None else self.started_at
        if time.monotonic() - since > limit and (self.state.label != UNKNOWN or self.state.clear is not None):
            self.debouncer.update(None)
            self.publish(CloudState(reason=f"no allsky frame for more than {limit:.0f} s"))

    def health_details(self) -> dict[str, Any]:
        """Frame counters, and whether the star method has what it needs (a sky model, a zero point)."""
        analyser = self.judge.analyser
        model = analyser.model
        return {
            **self.counts,
            "sky_model": None
            if model is None
            else {k: round(float(v), 3) if isinstance(v, float) else v for k, v in model.to_dict().items()},
            "zero_point": analyser.zero_point.reference(None),
            "classifier": self.judge.classifier is not None,
        }

    # --- Home Assistant ----------------------------------------------------------------

    def ha_entities(self) -> list[Entity]:
        return ha.entities(self.topics)


def main(argv: list[str] | None = None) -> int:
    """The console script's entry, which lives in :mod:`obsy_clouddetect.main` (it starts without this module)."""
    from obsy_clouddetect.main import main as console_main

    return console_main(argv)
