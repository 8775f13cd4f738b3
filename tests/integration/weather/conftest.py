"""Fixtures the weather service's integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher


@pytest.fixture
def watcher(mosquitto: MosquittoBroker) -> Iterator[Watcher]:
    """Records the weather service's messages (``obsy/weather/#``) on the test's broker."""
    w = Watcher(mosquitto.port, ["obsy/weather/#"])
    yield w
    w.close()
