"""Fixtures of the MCP's integration tests: the roof and mount simulators, and what they report.

A test module that needs other drivers defines its own ``indi`` fixture, which takes the place
of this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.indiserver import IndiServer
from tests.support.mcp_harness import DRIVERS, IndiRecorder


@pytest.fixture
def indi(tmp_path: Path) -> Iterator[IndiServer]:
    """indiserver with the roll-off roof and the telescope simulator, for one test."""
    with IndiServer(tmp_path / "indi", DRIVERS) as server:
        yield server


@pytest.fixture
def recorder(indi: IndiServer) -> Iterator[IndiRecorder]:
    """An independent INDI client recording every report of the roof and the mount."""
    rec = IndiRecorder(indi.config())
    try:
        yield rec
    finally:
        rec.close()
