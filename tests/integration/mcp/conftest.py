"""Fixtures of the MCP's integration tests: the roof and mount simulators, and what they report.

A test module that needs other drivers defines its own ``indi`` fixture, which takes the place
of this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.indiserver import IndiServer, devices_at_start
from tests.support.mcp_harness import DRIVERS, IndiRecorder


@pytest.fixture
def indi(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndiServer]:
    """indiserver with the roll-off roof and the telescope simulator, for one test.

    The roof starts closed and the mount parked, or as the test's ``devices_at_start`` marker says
    (``@pytest.mark.devices_at_start(roof_open=True, mount_parked=False)``), with no travel: see
    :func:`tests.support.indiserver.write_park_data`.
    """
    marker = request.node.get_closest_marker("devices_at_start")
    start = marker.kwargs if marker else {"roof_open": False, "mount_parked": True}
    with IndiServer(tmp_path / "indi", DRIVERS, parked=devices_at_start(**start)) as server:
        yield server


@pytest.fixture
def recorder(indi: IndiServer) -> Iterator[IndiRecorder]:
    """An independent INDI client recording every report of the roof and the mount."""
    rec = IndiRecorder(indi.config())
    try:
        yield rec
    finally:
        rec.close()
