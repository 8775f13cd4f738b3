"""A real Mosquitto broker on a free loopback port, started and stopped by the tests."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

from obsy.config import BrokerConfig
from tests.support.ports import free_port, wait_for_port, wait_port_closed

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class MosquittoBroker:
    """One mosquitto process; ``stop()``/``start()`` keep the port and the persistence file."""

    def __init__(self, workdir: Path, *, persistence: bool = True, extra_config: str = "") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"
        lines = [
            # Started as root, mosquitto drops to the user 'mosquitto', which cannot read the test's files.
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
            extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def broker_config(self, **overrides: object) -> BrokerConfig:
        values = {"host": self.host, "port": self.port, "reconnect_min_delay": 0.2, "reconnect_max_delay": 1.0}
        values.update(overrides)
        return BrokerConfig.model_validate(values)

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None
        wait_port_closed(self.port)
