"""The MCP stopped (SIGTERM, as ``docker compose down`` or ``obsy-local`` Ctrl-C do) never leaves a closing half-done.

The MCP runs in its own process and gets real signals; real Mosquitto, real indiserver with
the roll-off roof and telescope simulators. The site is one where it is night now (the real
Sun cannot be injected into another process).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsy.topics import Topics
from tests.support.indiserver import ROOF, TELESCOPE, IndiServer, require_indi
from tests.support.mcp_harness import (
    DRIVERS,
    OBSERVING_AT_START,
    Heartbeats,
    IndiRecord,
    IndiRecorder,
    Inputs,
    McpSubprocess,
    mcp_config,
    midnight_site,
    of_kind,
    prepare_devices,
    wait_event,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = [pytest.mark.integration, OBSERVING_AT_START]  # every test begins observing
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

TOPICS = Topics()


class Observing:
    """An MCP process observing with the roof open, its inputs and the weather's heartbeats."""

    def __init__(self, mcp: McpSubprocess, inputs: Inputs, beats: Heartbeats) -> None:
        self.mcp, self.inputs, self.beats = mcp, inputs, beats


@pytest.fixture
def observing(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> Iterator[Observing]:
    """Roof open, mount unparked, all safe, night at the site: the MCP process observes.

    ``@pytest.mark.parametrize("observing", [{"fast_park": False}], indirect=True)`` makes the
    mount's park a real slew (some 15 s), long enough to stop the MCP in the middle of it.
    """
    options: dict[str, Any] = getattr(request, "param", {})
    prepare_devices(indi.config(), roof_open=True, mount_parked=False, fast_park=options.get("fast_park", True))
    config = mcp_config(tmp_path, mosquitto, indi.config(), site=midnight_site(), shutdown_close_timeout=120)
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    beats = Heartbeats(inputs).start()
    mcp = McpSubprocess(config, tmp_path / "mcp.log")
    try:
        state = wait_state(watcher, TOPICS, lambda s: s["state"] == "observing", timeout=60)
        assert state["roof"] == "open"
        yield Observing(mcp, inputs, beats)
    finally:
        beats.stop()
        mcp.kill()


def is_report(device: str, name: str, state: str | None = None, element: str | None = None) -> Any:
    def match(record: IndiRecord) -> bool:
        return (
            record.device == device
            and record.name == name
            and (state is None or record.state == state)
            and (element is None or bool(record.values.get(element)))
        )

    return match


MOUNT_ABORTED = is_report(TELESCOPE, "TELESCOPE_ABORT_MOTION")
MOUNT_PARKING = is_report(TELESCOPE, "TELESCOPE_PARK", "Busy")
MOUNT_PARKED = is_report(TELESCOPE, "TELESCOPE_PARK", "Ok", "PARK")
ROOF_CLOSING = is_report(ROOF, "DOME_PARK", "Busy")
ROOF_CLOSED = is_report(ROOF, "DOME_PARK", "Ok", "PARK")


def availability(watcher: Watcher) -> list[str]:
    return [
        m.payload.decode() if isinstance(m.payload, bytes) else m.payload
        for m in watcher.on(TOPICS.availability("mcp"))
    ]


def test_sigterm_while_observing_closes_in_order_then_exits_stopped(
    observing: Observing, watcher: Watcher, recorder: IndiRecorder
) -> None:
    recorder.clear()
    observing.mcp.signal(signal.SIGTERM)
    assert observing.mcp.wait(120) == 0, observing.mcp.log()[-3000:]
    # the closing order, from the drivers' own reports: mount aborted, parked, then the roof closed
    aborted = recorder.first(MOUNT_ABORTED)
    parked = recorder.first(MOUNT_PARKED)
    closing = recorder.first(ROOF_CLOSING)
    closed = recorder.first(ROOF_CLOSED)
    assert -1 < aborted < parked < closing < closed, recorder.records
    started = wait_event(watcher, "shutdown_closing")
    assert started["data"]["roof"] == "open"
    assert started["data"]["running"] is False
    closing_state = wait_state(watcher, TOPICS, lambda s: s["state"] == "closing")
    assert closing_state["reason"] == "MCP stopping"
    last = wait_state(watcher, TOPICS, lambda s: s["state"] != "closing" and s["roof"] == "closed")
    assert last["mount_parked"] is True
    assert not of_kind(watcher, "alarm")
    assert not of_kind(watcher, "shutdown_cut_short")
    watcher.wait_for(lambda _m: availability(watcher)[-1:] == ["stopped"], 10)


@pytest.mark.parametrize("observing", [{"fast_park": False}], indirect=True)
def test_sigterm_during_a_rain_closing_lets_it_finish_before_exiting(
    observing: Observing, watcher: Watcher, recorder: IndiRecorder
) -> None:
    recorder.clear()
    observing.inputs.weather(False, "rain detected")
    recorder.wait(MOUNT_PARKING, timeout=30)  # the mount slews to its park position: the bug cut it here
    observing.mcp.signal(signal.SIGTERM)
    assert observing.mcp.wait(120) == 0, observing.mcp.log()[-3000:]
    parked, closing, closed = recorder.first(MOUNT_PARKED), recorder.first(ROOF_CLOSING), recorder.first(ROOF_CLOSED)
    assert -1 < parked < closing < closed, recorder.records
    finishing = wait_event(watcher, "shutdown_closing")
    assert finishing["data"]["running"] is True
    assert not of_kind(watcher, "alarm")
    assert not of_kind(watcher, "step_failed")
    # one closing, not a second one after it
    assert len([e for e in of_kind(watcher, "transition") if e["data"]["to"] == "closing"]) == 1
    final = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe")
    assert final["roof"] == "closed"
    watcher.wait_for(lambda _m: availability(watcher)[-1:] == ["stopped"], 10)


@pytest.mark.parametrize("observing", [{"fast_park": False}], indirect=True)
def test_a_second_sigterm_ends_the_closing_at_once(
    observing: Observing, watcher: Watcher, recorder: IndiRecorder
) -> None:
    recorder.clear()
    observing.mcp.signal(signal.SIGTERM)
    recorder.wait(MOUNT_PARKING, timeout=30)
    observing.mcp.signal(signal.SIGTERM)
    assert observing.mcp.wait(20) == 0, observing.mcp.log()[-3000:]
    # it left while the mount was still on its way: the roof was never commanded
    assert recorder.first(ROOF_CLOSING) == -1, recorder.records
    assert recorder.first(MOUNT_PARKED) == -1, recorder.records
    cut = wait_event(watcher, "shutdown_cut_short")
    assert cut["level"] == "critical"
    assert "a second stop request" in cut["message"]
    assert "closing cut short (a second stop request)" in observing.mcp.log()
    assert not of_kind(watcher, "alarm")  # an exit on request, not a failed step
    watcher.wait_for(lambda _m: availability(watcher)[-1:] == ["stopped"], 10)


def test_manual_mode_exits_without_moving_the_roof_and_warns(
    observing: Observing, watcher: Watcher, recorder: IndiRecorder
) -> None:
    observing.inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
    wait_state(watcher, TOPICS, lambda s: s["mode"] == "manual" and s["state"] == "manual")
    recorder.clear()
    observing.mcp.signal(signal.SIGTERM)
    assert observing.mcp.wait(60) == 0, observing.mcp.log()[-3000:]
    left = wait_event(watcher, "shutdown_roof_left")
    assert left["level"] == "warning"
    assert left["data"] == {"roof": "open", "mode": "manual"}
    assert "stays as the operator has it" in observing.mcp.log()
    assert not of_kind(watcher, "shutdown_closing")
    assert recorder.first(ROOF_CLOSING) == -1
    assert recorder.first(MOUNT_ABORTED) == -1
    assert recorder.first(MOUNT_PARKING) == -1
    watcher.wait_for(lambda _m: availability(watcher)[-1:] == ["stopped"], 10)
