"""The clouddetect service on a real Mosquitto: frames in, debounced verdict out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from obsy.config import load_config
from obsy.messages import CloudState
from obsy.runner import EXIT_FAILED
from obsy_clouddetect.classifier.demo import generate, make_demo_model
from obsy_clouddetect.transmission.synthetic import UniformCloud
from tests.support.clouddetect_frames import DAY, FrameFactory
from tests.support.configs import write_config
from tests.support.service_thread import ServiceThread
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

STATE = "obsy/clouddetect/state"
FRAMES = "obsy/allsky/frames"
HEALTH = "obsy/clouddetect/health"
NO_AGE_LIMIT = 10**9  # the synthetic frames are dated on a fixed night


class Running(ServiceThread):
    def __init__(self, tmp_path: Path, mosquitto, **clouddetect: Any) -> None:
        settings = {"max_frame_age": NO_AGE_LIMIT, "heartbeat_interval": 1, **clouddetect}
        config = load_config(write_config(tmp_path, mosquitto, clouddetect=settings, run_dir=str(tmp_path)))
        from obsy_clouddetect.service import CloudDetectService  # SciPy's spatial index: when a test runs

        super().__init__(CloudDetectService, config, stop_timeout=20)


def states(watcher: Watcher) -> list[CloudState]:
    return [CloudState.model_validate_json(m.payload) for m in watcher.on(STATE)]


def send_and_wait(watcher: Watcher, event, timeout: float = 60.0) -> CloudState:
    watcher.publish(FRAMES, event.to_json())
    watcher.wait_for(lambda _: any(s.frame_id == event.frame_id for s in states(watcher)), timeout=timeout)
    return next(s for s in states(watcher) if s.frame_id == event.frame_id)


def test_frames_in_debounced_verdict_out(mosquitto, watcher, tmp_path):
    frames = FrameFactory(tmp_path / "data")
    with Running(tmp_path, mosquitto, debounce_frames=2):
        watcher.wait_payload("obsy/clouddetect/availability", b"online", timeout=20)
        first = states(watcher)[0]
        assert first.clear is None and first.label == "unknown" and first.reason == "no frame yet"

        clear1 = send_and_wait(watcher, frames.frame())
        assert clear1.label == "Clear" and clear1.cloud_cover is not None and clear1.cloud_cover < 10
        assert clear1.clear is None, "one clear frame is not yet enough"
        assert clear1.methods == ["transmission"] and clear1.stars_expected > 100
        map_path = Path(clear1.cloud_map_url.removeprefix("file://"))
        assert map_path.read_bytes().startswith(b"\x89PNG")

        clear2 = send_and_wait(watcher, frames.frame(url_style="path"))  # a path relative to data_dir
        assert clear2.clear is True

        overcast1 = send_and_wait(watcher, frames.frame(UniformCloud(0.02)))
        assert overcast1.label == "Overcast" and overcast1.cloud_cover > 90
        assert overcast1.clear is True, "debounced: one cloudy frame does not flip the verdict"
        overcast2 = send_and_wait(watcher, frames.frame(UniformCloud(0.02)))
        assert overcast2.clear is False

        def judged_four(messages) -> bool:
            return any(m.topic == HEALTH and json.loads(m.payload)["details"]["judged"] == 4 for m in messages)

        watcher.wait_for(judged_four, timeout=10)
        health = json.loads(
            next(m for m in watcher.on(HEALTH) if json.loads(m.payload)["details"]["judged"] == 4).payload
        )
        assert health["details"]["sky_model"]["projection"] == "equisolid" and health["details"]["zero_point"]

        # The fitted sky model and clear-sky zero point were kept for the next start.
        saved = json.loads((tmp_path / "data" / "clouddetect" / "sky_model.json").read_text())
        assert abs(saved["rotation"] - 37.0) < 0.5
        assert (tmp_path / "data" / "clouddetect" / "zero_point.json").exists()


def test_the_picture_without_the_overlay_is_the_one_judged(mosquitto, watcher, tmp_path):
    """allsky names ``clean_url`` where it draws an overlay (text and names defeat the star match):
    clouddetect reads that one. Here the annotated ``url`` does not even exist, so reading it would
    fail the frame."""
    frames = FrameFactory(tmp_path / "data")
    with Running(tmp_path, mosquitto, debounce_frames=1):
        watcher.wait_payload("obsy/clouddetect/availability", b"online", timeout=60)
        clean = frames.frame()
        annotated = (tmp_path / "data" / "frames" / "annotated-missing.jpg").resolve().as_uri()
        judged = send_and_wait(watcher, clean.model_copy(update={"url": annotated, "clean_url": clean.url}))
        assert judged.label == "Clear" and judged.clear is True and judged.stars_seen > 1000, judged


def test_bad_input_is_counted_and_changes_nothing(mosquitto, watcher, tmp_path):
    frames = FrameFactory(tmp_path / "data")
    (tmp_path / "data" / "frames" / "broken.png").write_bytes(b"\x89PNG but not really")
    with Running(tmp_path, mosquitto, debounce_frames=1):
        watcher.wait_payload("obsy/clouddetect/availability", b"online", timeout=20)
        good = send_and_wait(watcher, frames.frame())
        assert good.clear is True
        watcher.publish(FRAMES, b"{not json")
        watcher.publish(FRAMES, json.dumps({"frame_id": "x"}))  # required fields missing
        for url in ("frames/broken.png", "frames/missing.png", "../../etc/passwd", "ftp://host/x.png"):
            watcher.publish(FRAMES, frames.event(url, good.frame_time, url).to_json())
        last = send_and_wait(watcher, frames.frame())  # still judged after all that
        assert last.clear is True
        assert [s.frame_id for s in states(watcher) if s.frame_id and "frame-" not in s.frame_id] == []

        def health_counts(messages) -> bool:
            payloads = [json.loads(m.payload) for m in messages if m.topic == HEALTH]
            # Frames that arrive while one is judged replace each other (only the newest waits).
            return any(
                p["invalid_messages"] >= 2
                and p["details"]["failed"] >= 1
                and p["details"]["failed"] + p["details"]["skipped"] >= 4
                for p in payloads
            )

        watcher.wait_for(health_counts, timeout=10)


def test_daytime_uses_the_classifier_alone(mosquitto, watcher, tmp_path):
    model = make_demo_model(tmp_path / "model")
    frames = FrameFactory(tmp_path / "data")
    skies = generate(per_class=1, seed=42)  # 8-bit frames like those the demo model learnt from
    with Running(tmp_path, mosquitto, classifier={"model": str(model)}, debounce_frames=1):
        watcher.wait_payload("obsy/clouddetect/availability", b"online", timeout=20)
        overcast = send_and_wait(watcher, frames.save(skies["Overcast"][0], DAY))
        assert overcast.methods == ["classifier"]
        assert overcast.label == "Overcast" and overcast.clear is False
        assert overcast.cloud_cover is None and "daytime" in overcast.reason
        assert overcast.confidence is not None and overcast.confidence >= 0.6
        clear = send_and_wait(watcher, frames.save(skies["Clear"][0], DAY))
        assert clear.label == "Clear" and clear.clear is True


def test_daytime_without_a_classifier_is_unknown_never_clear(mosquitto, watcher, tmp_path):
    frames = FrameFactory(tmp_path / "data")
    with Running(tmp_path, mosquitto, debounce_frames=1):
        watcher.wait_payload("obsy/clouddetect/availability", b"online", timeout=20)
        state = send_and_wait(watcher, frames.frame(when=DAY))
        assert state.label == "unknown" and state.clear is None and "daytime" in state.reason


def test_silence_makes_the_verdict_unknown(mosquitto, watcher, tmp_path):
    frames = FrameFactory(tmp_path / "data")
    with Running(tmp_path, mosquitto, debounce_frames=1) as running:
        watcher.wait_payload("obsy/clouddetect/availability", b"online", timeout=20)
        assert send_and_wait(watcher, frames.frame()).clear is True
        running.runner.service.settings.max_frame_age = 1.0  # as if hours had passed
        watcher.wait_for(lambda _: states(watcher)[-1].clear is None, timeout=15)
        assert "no allsky frame" in states(watcher)[-1].reason


@pytest.mark.parametrize("problem", ["corrupt", "wrong_shape"])
def test_a_bad_model_stops_the_service_at_start(mosquitto, watcher, tmp_path, caplog, problem):
    from obsy_clouddetect.classifier import pooled

    model = tmp_path / "model.tflite"
    (tmp_path / "labels.txt").write_text("Clear\nCloudy\n")
    if problem == "corrupt":
        model.write_bytes(b"TFL3 garbage" * 10)
    else:
        features = (112 // pooled.CELL) ** 2 * 3
        pooled.write_tflite(model, np.zeros((2, features), "f4"), np.zeros(2, "f4"), 112)
    running = Running(tmp_path, mosquitto, classifier={"model": str(model)})
    started = time.monotonic()
    assert running.runner.run() == EXIT_FAILED
    assert time.monotonic() - started < 15
    expected = "not a usable TFLite model" if problem == "corrupt" else "input shape [1, 112, 112, 3]"
    assert any(expected in r.getMessage() for r in caplog.records)
    watcher.wait_payload("obsy/clouddetect/availability", b"offline", timeout=10)
