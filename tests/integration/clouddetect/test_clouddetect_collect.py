"""``obsy-clouddetect collect`` as a process on a real Mosquitto: every Nth frame into class folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from obsy.messages import AllskyFrame, CloudState
from tests.support.configs import write_config
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
COLLECT_ARGS = ["--every", "2", "--count", "3", "--out"]


def test_collect_files_every_nth_frame_under_the_current_label(mosquitto, tmp_path):
    config = write_config(tmp_path, mosquitto, run_dir=str(tmp_path))
    frames = tmp_path / "data" / "frames"
    frames.mkdir(parents=True)
    out = tmp_path / "collected"
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    watcher.publish("obsy/clouddetect/state", CloudState(label="Partly Cloudy").to_json(), retain=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "obsy_clouddetect", "collect", "--config", str(config), *COLLECT_ARGS, str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        watcher.wait_payload("obsy/clouddetect-collect/availability", b"online", timeout=90)
        for i in range(6):
            (frames / f"{i}.jpg").write_bytes(f"jpeg {i}".encode())
            if i == 3:
                watcher.publish("obsy/clouddetect/state", CloudState(label="Clear").to_json(), retain=True)
                time.sleep(0.5)
            event = AllskyFrame(frame_id=f"night-{i}", night="2026-01-15", exposure_s=10, url=f"frames/{i}.jpg")
            watcher.publish("obsy/allsky/frames", event.to_json())
            time.sleep(0.2)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        watcher.close()
    assert process.returncode == 0, output.decode()
    saved = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert saved == ["Clear/night-4.jpg", "Partly_Cloudy/night-0.jpg", "Partly_Cloudy/night-2.jpg"]
    assert (out / "Clear" / "night-4.jpg").read_bytes() == b"jpeg 4"
