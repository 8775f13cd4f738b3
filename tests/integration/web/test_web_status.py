"""The web service's status board shows what every service says about itself on the bus."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from obsy.config import load_config
from obsy.runner import ServiceRunner
from tests.support.configs import write_config
from tests.support.ports import free_port
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.loads(reply.read())


def test_status_api_reflects_availability_and_health(mosquitto, tmp_path):
    port = free_port()
    # Anonymous read-only access (off by default) lets a plain HTTP client see the status.
    web = {"port": port, "anonymous_read": True}
    config = load_config(write_config(tmp_path, mosquitto, web=web, run_dir=str(tmp_path)))
    from obsy_web.service import WebService  # FastAPI and the rest of the service: when a test runs

    runner = ServiceRunner(WebService, config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    try:
        watcher.wait_payload("obsy/web/availability", b"online", timeout=60)
        watcher.publish("obsy/weather/availability", "offline", retain=True)
        watcher.publish("obsy/mcp/availability", "online", retain=True)
        health = {"service": "mcp", "heartbeat_interval_s": 5, "status": "ok", "invalid_messages": 3}
        watcher.publish("obsy/mcp/health", json.dumps(health), retain=True)
        watcher.publish("obsy/mcp/health", b"{not json", retain=False)

        deadline = time.monotonic() + 30
        while True:
            services = get_json(f"http://127.0.0.1:{port}/api/v1/status")["services"]
            done = services["mcp"]["invalid_messages"] == 3 and services["weather"]["availability"] == "offline"
            if done and runner.bus.invalid_messages == 1:  # the broken health arrives after the retained one
                break
            assert time.monotonic() < deadline, (services, runner.bus.invalid_messages)
            time.sleep(0.1)
        assert services["mcp"]["availability"] == "online"
        assert services["mcp"]["status"] == "ok"
        assert services["web"]["availability"] == "online"
        assert services["scheduler"]["availability"] == "unknown"
        assert runner.bus.invalid_messages == 1

        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "Test site" in page
        # Anonymous visitors may look, never act.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/commands/roof", data=b'{"action": "CLOSE"}', method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401
    finally:
        watcher.close()
        runner.request_stop()
        thread.join(20)
    assert not thread.is_alive()


def test_port_in_use_is_a_clear_start_failure(mosquitto, tmp_path):
    import socket

    from obsy_web.service import WebService

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = load_config(write_config(tmp_path, mosquitto, web={"port": port}, run_dir=str(tmp_path)))
        runner = ServiceRunner(WebService, config)
        assert runner.run() == 1
