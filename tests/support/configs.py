"""Config files for services started by the tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.support.mosquitto import MosquittoBroker


def write_config(directory: Path, broker: MosquittoBroker, **sections: Any) -> Path:
    """A complete config file pointing at ``broker``; ``sections`` override or add sections."""
    data: dict[str, Any] = {
        "site": {
            "name": "Test site",
            "latitude": 48.2,
            "longitude": 16.4,
            "elevation": 180,
            "timezone": "Europe/Vienna",
        },
        "broker": {"host": broker.host, "port": broker.port, "reconnect_min_delay": 0.2, "reconnect_max_delay": 1},
        "data_dir": str(directory / "data"),
        "homeassistant": {"enabled": False},
        # Off unless a test turns it on: how full this machine's disk is must not change other tests' events.
        "disk": {"enabled": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = directory / "obsy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def evening_site(latitude: float = 48.2, local_hour: int = 21, now: datetime | None = None) -> dict[str, Any]:
    """A site where it is ``local_hour`` o'clock now (mean solar time), so the whole night lies ahead.

    For tests of what is planned "from now": at a fixed site they would find less and less of
    the night left as dawn nears, and pass or fail by the hour they run at. The time zone is
    the fixed-offset one of that longitude, so the site's "tonight" (noon to noon) is this night.
    """
    hours = (local_hour - (now or datetime.now(UTC)).hour) % 24
    if hours > 12:
        hours -= 24
    zone = "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # POSIX sign: Etc/GMT-9 is UTC+9
    return {
        "name": f"Evening test site (UTC{hours:+d})",
        "latitude": latitude,
        "longitude": hours * 15.0,
        "elevation": 200,
        "timezone": zone,
    }
