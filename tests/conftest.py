"""Fixtures shared by every test: real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh Mosquitto broker for one test."""
    broker = MosquittoBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def watcher(mosquitto: MosquittoBroker) -> Iterator[Watcher]:
    """Records every message under ``obsy/`` on the test's broker (a test may define a narrower one)."""
    w = Watcher(mosquitto.port, ["obsy/#"])
    try:
        yield w
    finally:
        w.close()
