"""Notifications: events on the real broker reach a real HTTP receiver through Apprise's json:// URL.

The receiver is a plain HTTP server on loopback that records every request; the web service
runs whole, against Mosquitto and an SQLite file.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from obsy.config import DiskConfig
from obsy.messages import Event
from tests.support.notify_receiver import Receiver, receiver  # noqa: F401 (fixture)
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb

pytestmark = pytest.mark.integration


def mcp_event(kind: str, level: str, message: str, **data) -> str:
    return Event(service="mcp", kind=kind, level=level, message=message, data=data).model_dump_json()


def start_web(tmp_path, mosquitto, **notifications) -> RunningWeb:
    web = RunningWeb(tmp_path, mosquitto, f"sqlite:///{tmp_path / 'obsy.sqlite3'}", notifications=notifications)
    return web.start(timeout=60)


def test_unsafe_close_is_notified_once_and_repeats_are_held_back(mosquitto, tmp_path, receiver):  # noqa: F811
    web = start_web(tmp_path, mosquitto, urls=[receiver.url], repeat_after=3, min_level="warning")
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    try:
        closing = mcp_event(
            "roof_closing",
            "warning",
            "closing the roof: unsafe: rain detected",
            unsafe_reasons=["weather: rain detected"],
        )
        watcher.publish("obsy/mcp/events", closing)
        [first] = receiver.wait(1)
        assert first["title"] == "Test site: roof closing"
        assert "rain detected" in first["message"]
        assert first["type"] == "warning"

        # A flapping sensor: the same kind again and again is held back and counted.
        for _ in range(5):
            watcher.publish("obsy/mcp/events", closing)
        # An info event of a kind not listed stays out; an alarm (critical) goes at once.
        watcher.publish("obsy/mcp/events", mcp_event("device_action", "info", "roof: started"))
        watcher.publish("obsy/mcp/events", mcp_event("alarm", "critical", "closing failed: the roof did not move"))
        second = receiver.wait(2)[1]
        assert second["title"] == "Test site: ALARM"
        assert second["type"] == "failure"
        web.wait_until(lambda: web.service.notifier.health()["held_back"] == 5)
        time.sleep(0.5)
        assert len(receiver.received()) == 2

        # After repeat_after, the next one goes out and says how many were held back.
        time.sleep(3.2)
        watcher.publish("obsy/mcp/events", closing)
        third = receiver.wait(3)[2]
        assert third["title"] == "Test site: roof closing"
        assert "5 more like this held back" in third["message"]

        # A service that loses its connection (Last Will) is notified; its retained state at start is not.
        watcher.publish("obsy/weather/availability", "online", retain=True)
        time.sleep(0.3)
        watcher.publish("obsy/weather/availability", "offline", retain=True)
        fourth = receiver.wait(4)[3]
        assert fourth["title"] == "Test site: service offline"
        assert "weather" in fourth["message"]
        # The receiver has it as Apprise returns: the count follows a moment later.
        web.wait_until(lambda: web.service.notifier.health()["sent"] == 4)
        assert web.service.notifier.health()["failed"] == 0
    finally:
        watcher.close()
        web.stop()


def test_a_dead_or_hung_notification_service_does_not_hurt_the_web_service(mosquitto, tmp_path):
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    hung = Receiver(hang=30)
    web = start_web(
        tmp_path,
        mosquitto,
        urls=f"json://127.0.0.1:{dead_port}/x\n{hung.url}",  # as a secrets file gives them: one a line
        repeat_after=0,
        timeout=1.5,
    )
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    try:
        watcher.publish("obsy/mcp/events", mcp_event("alarm", "critical", "the roof did not close"))
        failed = watcher.wait_for(
            lambda got: any(
                json.loads(m.payload).get("kind") == "notification_failed" for m in got if m.topic == "obsy/web/events"
            ),
            timeout=20,
        )
        assert failed
        # Sending goes on after the failure, and the service keeps working: it still takes events and
        # answers HTTP while a notification hangs.
        for n in range(3):
            watcher.publish("obsy/mcp/events", mcp_event("alarm", "critical", f"still failing {n}"))
        web.wait_until(lambda: web.service.notifier.health()["failed"] >= 3, timeout=30)
        with web.client() as client:
            assert client.get("/healthz").status_code == 200
        assert web.thread.is_alive()
        health = web.service.notifier.health()
        assert health["failing"]
        assert "within 1.5 s" in health["last_error"] or "refused" in health["last_error"]
        # The failure is reported once, not for every notification.
        kinds = [json.loads(m.payload)["kind"] for m in watcher.on("obsy/web/events")]
        assert kinds.count("notification_failed") == 1
    finally:
        watcher.close()
        web.stop()
        hung.close()


def test_notification_urls_from_a_secrets_file(mosquitto, tmp_path, receiver, monkeypatch):  # noqa: F811
    secret = tmp_path / "notify_urls"
    secret.write_text(f"# the receiver\n{receiver.url}\n")
    monkeypatch.setenv("OBSY_WEB__NOTIFICATIONS__URLS_FILE", str(secret))
    web = start_web(tmp_path, mosquitto)
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    try:
        watcher.publish("obsy/mcp/events", mcp_event("roof_closed", "info", "roof closed: rain detected"))
        [note] = receiver.wait(1)
        assert note["title"] == "Test site: roof closed"
        assert note["type"] == "info"
        assert receiver.url not in json.dumps(web.service.health_details(), default=str)
    finally:
        watcher.close()
        web.stop()


def test_a_nearly_full_disk_is_notified_once_per_crossing_and_when_it_is_back(mosquitto, tmp_path, receiver):  # noqa: F811
    # An exabyte as the critical limit: the web service's real measurement of its SQLite folder is critical.
    critical = {"enabled": True, "interval": 1, "warning_free_gb": 1e9, "critical_free_gb": 1e9}
    web = RunningWeb(
        tmp_path,
        mosquitto,
        f"sqlite:///{tmp_path / 'obsy.sqlite3'}",
        sections={"disk": critical, "homeassistant": {"enabled": True}},
        notifications={"urls": [receiver.url], "repeat_after": 0},
    )
    watcher = Watcher(mosquitto.port, ["obsy/#", "homeassistant/#"])
    try:
        web.start(timeout=60)
        [note] = receiver.wait(1)
        assert note["title"] == "Test site: disk critical"
        assert note["type"] == "failure"
        assert str(tmp_path) in note["message"] and "below the critical level" in note["message"]
        # Measured every second, told once.
        web.wait_until(lambda: health_disk(watcher, "critical"), timeout=15)
        time.sleep(2.5)
        assert len(receiver.received()) == 1
        details = health_disk(watcher, "critical")
        assert details["paths"]["database"]["path"] == str(tmp_path.resolve())
        assert details["free_gb"] > 0
        # Home Assistant's sensor of the free space reads the health.
        [config] = [
            json.loads(m.payload) for m in watcher.messages if m.topic.endswith("/obsy_obsy_web/disk_free/config")
        ]
        assert (config["device_class"], config["unit_of_measurement"]) == ("data_size", "GB")
        assert config["state_topic"] == "obsy/web/health"

        # Room again (the limits lowered under the real free space): one recovery message.
        web.runner.disk.settings = DiskConfig(
            warning_free_gb=0.001, warning_free_percent=0, critical_free_gb=0.0005, critical_free_percent=0
        )
        second = receiver.wait(2)[1]
        assert second["title"] == "Test site: disk ok"
        assert second["type"] == "info"
        web.wait_until(lambda: health_disk(watcher, "ok"), timeout=15)
        kinds = [json.loads(m.payload)["kind"] for m in watcher.on("obsy/web/events")]
        assert kinds.count("disk_critical") == 1 and kinds.count("disk_ok") == 1
    finally:
        watcher.close()
        web.stop()


def health_disk(watcher: Watcher, level: str) -> dict | None:
    """The disk figures of the web service's last health, when at ``level``."""
    healths = watcher.on("obsy/web/health")
    if not healths:
        return None
    disk = json.loads(healths[-1].payload)["details"].get("disk")
    return disk if disk and disk["level"] == level else None
