"""The Alpaca service as a process for the tests, and the weather messages it reads."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from obsy.indi import IndiClient
from obsy.messages import SafetyReason, SafetyVerdict
from tests.support.configs import write_config
from tests.support.mosquitto import MosquittoBroker
from tests.support.ports import free_port, wait_for_port
from tests.support.watcher import Watcher

REPO = Path(__file__).resolve().parents[2]
SAFETY = "obsy/weather/safety"
STATE = "obsy/weather/state"
WEATHER_AVAILABILITY = "obsy/weather/availability"


@dataclass
class AlpacaProcess:
    process: subprocess.Popen[bytes]
    port: int
    discovery_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AlpacaProcesses:
    """Starts ``obsy-alpaca`` processes on one broker; stops them (and checks they ended well) on exit."""

    def __init__(self, tmp_path: Path, broker: MosquittoBroker) -> None:
        self.tmp_path, self.broker = tmp_path, broker
        self.started: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> AlpacaProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(20)
            assert process.returncode == 0, "the service ended badly (see alpaca.log)"

    def start(self, *, max_verdict_age: float = 60.0, discovery_port: int | None = None) -> AlpacaProcess:
        port, udp = free_port(), discovery_port or free_udp_port()
        settings = {
            "enabled": True,
            "host": "127.0.0.1" if discovery_port is None else "0.0.0.0",
            "port": port,
            "discovery_port": udp,
            "max_verdict_age": max_verdict_age,
            "heartbeat_interval": 1,
        }
        config = write_config(self.tmp_path, self.broker, alpaca=settings)
        env = {**os.environ, "OBSY_RUN_DIR": str(self.tmp_path), "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(
            [sys.executable, "-m", "obsy_alpaca", "run", "--config", str(config), "--log-format", "text"],
            cwd=self.tmp_path,
            env=env,
            stdout=(self.tmp_path / "alpaca.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        wait_for_port(port, timeout=30)
        return AlpacaProcess(process, port, udp)


def verdict(safe: bool, *, age: float = 0.0) -> bytes:
    reasons = [] if safe else [SafetyReason(quantity="rain", message="rain detected", value=True, limit=False)]
    timestamp = datetime.now(UTC) - timedelta(seconds=age)
    return SafetyVerdict(safe=safe, reasons=reasons, timestamp=timestamp).to_json()


def publish_weather(watcher: Watcher, *, safe: bool, availability: str = "online", age: float = 0.0) -> None:
    watcher.publish(WEATHER_AVAILABILITY, availability, retain=True)
    watcher.publish(SAFETY, verdict(safe, age=age), retain=True)


def eventually(read: Callable[[], object], expected: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        assert time.monotonic() < deadline, f"still {value!r}, expected {expected!r}"
        time.sleep(0.1)


#: The device Debian's indi_weather_safety_proxy defines.
SAFETY_PROXY = "Weather Safety Proxy"


def configure_safety_proxy(indi: IndiClient, url: str) -> None:
    """Set the proxy up as docs/alpaca.md tells users to: fetch ``url``, SOFT_ERROR_MAX 0.

    Its options are defined a moment after the device appears: wait for each before setting it.
    """
    indi.wait_device(SAFETY_PROXY)
    for name in ("SCRIPT_OR_CURL", "WEATHER_SAFETY_URLS", "SOFT_ERROR_HYSTERESIS"):
        indi.wait_property(SAFETY_PROXY, name)
    indi.set_switch(SAFETY_PROXY, "SCRIPT_OR_CURL", "Use url")
    indi.set_text(SAFETY_PROXY, "WEATHER_SAFETY_URLS", {"WEATHER_SAFETY_URL": url})
    indi.set_number(SAFETY_PROXY, "SOFT_ERROR_HYSTERESIS", {"SOFT_ERROR_MAX": 0})
