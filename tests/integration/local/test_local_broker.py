"""The one-command run's own Mosquitto lets anyone in without a password: it must listen on loopback only."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from obsy.config import ObsyConfig
from obsy_local.launcher import Launcher
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def own_outside_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (from ``ip``), or None when it has none."""
    if shutil.which("ip") is None:
        return None
    listing = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False).stdout
    for line in listing.splitlines():
        fields = line.split()
        if "inet" in fields:
            address = fields[fields.index("inet") + 1].split("/")[0]
            if not ipaddress.ip_address(address).is_loopback:
                return address
    return None


def connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(), reason="no mosquitto"
)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_local_broker_refuses_a_connection_to_this_machines_outside_address(tmp_path: Path, host: str) -> None:
    outside = own_outside_address()
    if outside is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    port = free_port()
    config = ObsyConfig.model_validate(
        {
            "site": {"latitude": 48.2, "longitude": 16.4},
            "broker": {"host": host, "port": port},
            "data_dir": str(tmp_path / "data"),
        }
    )
    launcher = Launcher(config, None)
    launcher.run_dir.mkdir(parents=True)
    try:
        launcher.ensure_broker()
        assert connects("127.0.0.1", port), "the local broker must answer on loopback"
        assert not connects(outside, port), f"the local broker answered on {outside}: it must listen on loopback only"
    finally:
        launcher.stop()
