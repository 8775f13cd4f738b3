"""Fixtures the web service's integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.watcher import Watcher


@pytest.fixture
def bus(web: Any) -> Iterator[Watcher]:
    """Records every message under ``obsy/`` on the broker of the module's ``web`` fixture."""
    watcher = Watcher(web.broker.port, ["obsy/#"])
    yield watcher
    watcher.close()
