"""The one-command local run: obsy-local starts a broker, the INDI simulators and every service."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from obsy.config import SERVICE_NAMES
from tests.support.ports import free_port, wait_for_port, wait_port_closed
from tests.support.watcher import Watcher

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def local_config(tmp_path: Path, broker_port: int, indi_port: int, web_port: int) -> Path:
    data = yaml.safe_load((REPO / "config" / "obsy.example.yaml").read_text())
    data["broker"]["port"] = broker_port
    data["indi"]["port"] = indi_port
    data["web"]["port"] = web_port
    data["web"]["anonymous_read"] = True  # the status check below reads without an account
    data["data_dir"] = str(tmp_path / "data")
    data["run_dir"] = str(tmp_path / "run")
    (tmp_path / "run").mkdir()
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.skipif(shutil.which("indiserver") is None, reason="indiserver (Debian package indi-bin) is not installed")
def test_obsy_local_starts_and_stops_the_whole_system(tmp_path):
    broker_port, indi_port, web_port = free_port(), free_port(), free_port()
    config = local_config(tmp_path, broker_port, indi_port, web_port)
    output = (tmp_path / "launcher.out").open("wb")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "obsy.launcher", "--config", str(config)],
        cwd=REPO,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    watcher = None
    try:
        wait_for_port(broker_port, timeout=20)
        watcher = Watcher(broker_port, ["obsy/+/availability"])
        for name in SERVICE_NAMES:
            watcher.wait_payload(f"obsy/{name}/availability", b"online", timeout=60)
        wait_for_port(indi_port, timeout=5)
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/v1/status", timeout=5) as reply:
            status = json.loads(reply.read())
        assert set(SERVICE_NAMES) <= set(status["services"])

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(40) == 0
        for name in SERVICE_NAMES:
            watcher.wait_payload(f"obsy/{name}/availability", b"stopped", timeout=5)
    finally:
        if watcher is not None:
            watcher.close()
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    # What it started, it stopped.
    wait_port_closed(broker_port)
    wait_port_closed(indi_port)
    logs = tmp_path / "data" / "logs"
    assert {p.stem for p in logs.glob("*.log")} >= {*SERVICE_NAMES, "mosquitto", "indiserver"}


def test_obsy_local_stops_on_a_configuration_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("site:\n  latitude: 48\n  longitude: 16\nbroker:\n  prot: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "obsy.launcher", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown key 'broker.prot'" in result.stderr
