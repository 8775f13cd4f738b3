"""Product progress on a real Mosquitto: the CLI's jobs and the service's end-of-night build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from obsy.bus import Bus
from obsy.config import load_config
from obsy.messages import AllskyFrame, AllskyProgress, CloudState
from obsy_allsky.products import framelog
from obsy_allsky.products.jobs import existing_products, product_path
from obsy_allsky.products.nightly import NightlyProducts
from obsy_allsky.products.thumbnails import thumbnail_path
from obsy_allsky.service import main
from obsy_allsky.storage import FrameStore, encode_jpeg
from tests.support.configs import write_config
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.unit.allsky.test_allsky_products import star_frame

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")

TOPIC = "obsy/allsky/progress"


def store_frames(data_dir, night: date, count: int) -> list[str]:
    store = FrameStore(data_dir)
    start = datetime.combine(night, datetime.min.time(), tzinfo=UTC) + timedelta(hours=20)
    return [
        store.save(night, start + timedelta(minutes=i), encode_jpeg(star_frame(20 + 3 * i, 60))).frame_id
        for i in range(count)
    ]


def progress_of(watcher: Watcher) -> list[AllskyProgress]:
    return [AllskyProgress.model_validate_json(m.payload) for m in watcher.on(TOPIC)]


def seen(**fields):
    """A watcher predicate: a progress message with these field values has arrived."""

    def predicate(messages) -> bool:
        for m in messages:
            if m.topic == TOPIC:
                data = json.loads(m.payload)
                if all(data.get(k) == v for k, v in fields.items()):
                    return True
        return False

    return predicate


def test_a_cli_job_publishes_its_progress_retained(mosquitto, tmp_path, capsys):
    config_path = write_config(tmp_path, mosquitto, allsky={"products": {"timelapse": {"encoder": "libx264"}}})
    data_dir = load_config(config_path).data_dir
    store_frames(data_dir, date(2026, 11, 21), 40)
    watcher = Watcher(mosquitto.port, [TOPIC])
    try:
        assert main(["timelapse", "2026-11-21", "--config", str(config_path)]) == 0
        watcher.wait_for(seen(status="done"))
        sent = progress_of(watcher)
    finally:
        watcher.close()
    assert sent[0].status == "running" and (sent[0].job, sent[0].night) == ("timelapse", "2026-11-21")
    assert (sent[0].done, sent[0].total) == (0, 40)
    assert sent[-1].status == "done" and sent[-1].percent == 100
    assert sent[-1].output == "allsky/2026-11-21/products/timelapse.mp4"
    assert "40 frames with libx264" in sent[-1].message
    assert "timelapse [" in capsys.readouterr().err
    late = Watcher(mosquitto.port, [TOPIC])  # a dashboard opened afterwards still sees the outcome
    try:
        late.wait_for(lambda msgs: len(msgs) == 1)
        assert late.messages[0].retain and AllskyProgress.model_validate_json(late.messages[0].payload) == sent[-1]
    finally:
        late.close()


def test_a_failed_job_is_reported_as_failed(mosquitto, tmp_path, capsys):
    config_path = write_config(tmp_path, mosquitto)
    watcher = Watcher(mosquitto.port, [TOPIC])
    try:
        assert main(["keogram", "2026-11-30", "--config", str(config_path)]) == 1
        watcher.wait_for(seen(status="failed"))
        failed = progress_of(watcher)[-1]
    finally:
        watcher.close()
    assert failed.status == "failed" and failed.output is None and "no frames in" in failed.message


def test_the_service_side_builds_a_finished_night_with_progress(mosquitto, tmp_path):
    config_path = write_config(
        tmp_path, mosquitto, allsky={"products": {"nightly": ["keogram", "timelapse", "summary"]}}
    )
    config = load_config(config_path)
    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    store_frames(config.data_dir, night1, 12)  # a night that ended while the service was down
    watcher = Watcher(mosquitto.port, [TOPIC])
    bus = Bus(config.broker, "allsky")
    built: list[tuple[date, list[Path]]] = []  # what the service sends to a fleet's centre
    products = NightlyProducts(config, bus, on_built=lambda night, files: built.append((night, files)))
    try:
        assert bus.start(wait=10)
        products.start(tonight=night2)  # catches up night1: it has frames and no summary
        watcher.wait_for(seen(job="summary", night="2026-11-20", status="done"), 60)
        assert set(existing_products(config.data_dir, night1)) == {"keogram", "timelapse", "summary"}
        deadline = time.monotonic() + 10
        while not built and time.monotonic() < deadline:
            time.sleep(0.05)
        ((night, files),) = built
        folder = config.data_dir / "allsky" / "2026-11-20" / "products"
        assert night == night1 and all(path.is_file() and path.is_relative_to(folder) for path in files)
        names = {path.name for path in files}
        assert {"keogram.jpg", "timelapse.mp4", "summary.json"} <= names, names
        finished = [(p.job, p.status) for p in progress_of(watcher) if p.status != "running"]
        assert finished == [("keogram", "done"), ("timelapse", "done"), ("summary", "done")]

        # The frames of tonight: a thumbnail and a log line each, with the cloud verdict of the moment.
        bus.publish(bus.topics.clouddetect_state, CloudState(clear=True, label="clear"), qos=1, retain=True)
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while products.cloud is None and datetime.now(UTC) < deadline:
            bus.wait_idle(1)
        for frame_id in store_frames(config.data_dir, night2, 3):
            frame = AllskyFrame(frame_id=frame_id, night=night2.isoformat(), exposure_s=20, stars=50, url="file:///x")
            products.frame_stored(frame, star_frame(40, 60))
        night2_dir = config.data_dir / "allsky" / night2.isoformat()
        assert [r["clear"] for r in framelog.read(night2_dir).records] == [True, True, True]
        assert thumbnail_path(night2_dir, f"{frame_id}.jpg").exists()
        assert not product_path(config.data_dir, night2, "summary").exists()

        # The first frame of the next night ends tonight: its products follow.
        next_frame = AllskyFrame(frame_id="20261122T200000000Z", night="2026-11-22", exposure_s=20, url="file:///y")
        products.frame_stored(next_frame, star_frame(40, 60))
        watcher.wait_for(seen(job="summary", night="2026-11-21", status="done"), 60)
        summary = json.loads(product_path(config.data_dir, night2, "summary").read_text())
        assert summary["frames"] == 3 and summary["clear_fraction"] == 1.0 and summary["stars"]["median"] == 50
        deadline = time.monotonic() + 10  # the list is extended just after the last message
        while len(products.nights_built) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert products.nights_built == [night1, night2]
    finally:
        products.stop()
        bus.stop()
        watcher.close()


def test_stopping_the_service_side_ends_a_running_job_without_a_product(mosquitto, tmp_path):
    config_path = write_config(
        tmp_path, mosquitto, allsky={"products": {"nightly": ["timelapse"], "timelapse": {"width": 0}}}
    )
    config = load_config(config_path)
    night = date(2026, 11, 20)
    noise = np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    first = FrameStore(config.data_dir).save(night, datetime(2026, 11, 20, 20, tzinfo=UTC), encode_jpeg(noise, 95))
    for i in range(1, 300):  # the same bytes under 300 names: slow to encode, cheap to store
        os.link(first.image_path, first.image_path.with_name(f"20261120T20{i // 60:02d}{i % 60:02d}000Z.jpg"))
    watcher = Watcher(mosquitto.port, [TOPIC])
    bus = Bus(config.broker, "allsky")
    products = NightlyProducts(config, bus)
    try:
        assert bus.start(wait=10)
        products.schedule(night)
        products.start(tonight=date(2026, 11, 21))
        watcher.wait_for(lambda msgs: any(p.done > 0 for p in progress_of(watcher)), 60)
        products.stop()
        watcher.wait_for(seen(status="failed"), 20)
        last = progress_of(watcher)[-1]
        assert last.status == "failed" and "cancelled" in last.message and last.done < 300
        folder = product_path(config.data_dir, night, "timelapse").parent
        assert not folder.exists() or not any(folder.iterdir())  # neither the video nor a part of it
    finally:
        products.stop()
        bus.stop()
        watcher.close()


def test_a_cli_job_without_a_broker_still_builds_and_says_so(tmp_path, capsys):
    broker = MosquittoBroker(tmp_path)  # configured, never started: nothing listens on its port
    config_path = write_config(tmp_path, broker)
    store_frames(load_config(config_path).data_dir, date(2026, 11, 21), 3)
    assert main(["keogram", "2026-11-21", "--config", str(config_path)]) == 0
    err = capsys.readouterr().err
    assert f"no broker at 127.0.0.1:{broker.port}; progress is not published" in err
    assert product_path(load_config(config_path).data_dir, "2026-11-21", "keogram").exists()


def test_progress_passes_the_deployed_acl_as_the_allsky_user(tmp_path, monkeypatch):
    """With the project's ACL, the allsky user may connect for the CLI (its Last Will included) and publish progress."""
    acl = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "acl"
    passwords = tmp_path / "passwords"
    passwords.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "allsky", "pw"], check=True)
    broker = MosquittoBroker(tmp_path, persistence=False)
    settings = broker.config_path.read_text().replace("allow_anonymous true", "allow_anonymous false")
    broker.config_path.write_text(settings + f"password_file {passwords}\nacl_file {acl}\n")
    broker.start()
    received: list[AllskyProgress] = []
    config_path = write_config(tmp_path, broker)
    monkeypatch.setenv("OBSY_BROKER__USERNAME", "allsky")  # as the compose service sets it
    monkeypatch.setenv("OBSY_BROKER__PASSWORD", "pw")
    config = load_config(config_path)
    listener = Bus(config.broker, "allsky")
    listener.subscribe(listener.topics.allsky_progress, lambda _t, m: received.append(m), AllskyProgress)
    try:
        assert listener.start(wait=10)
        store_frames(config.data_dir, date(2026, 11, 21), 3)
        assert main(["keogram", "2026-11-21", "--config", str(config_path)]) == 0
        deadline = time.monotonic() + 10
        while not any(m.status == "done" for m in received) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m.status for m in received][-1] == "done" and received[0].total == 3
    finally:
        listener.stop()
        broker.stop()
