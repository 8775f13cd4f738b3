"""Config files for services started by the tests."""

from __future__ import annotations

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
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = directory / "obsy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
