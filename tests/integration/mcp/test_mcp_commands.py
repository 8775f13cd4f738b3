"""The MCP's answers match what it does, and what it publishes about the roof matches the roof.

Real Mosquitto, real indiserver with the roll-off roof and telescope simulators; the roof's
truth is what ``indi_rolloff_dome`` reports to a second INDI client.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from obsy.homeassistant import Node, discovery_payload
from obsy.topics import Topics
from tests.support.ha_cover import cover_state
from tests.support.indiserver import ROOF, TELESCOPE, IndiServer, require_indi
from tests.support.mcp_harness import (
    DRIVERS,
    OBSERVING_AT_START,
    IndiRecorder,
    McpProcess,
    mcp_observing,
    of_kind,
    states,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

TOPICS = Topics()


def roof_parked(recorder: IndiRecorder) -> bool:
    """The roof as its driver reports it now: closed (DOME_PARK Ok, PARK on)."""
    park = recorder.client.get_property(ROOF, "DOME_PARK")
    return park.state == "Ok" and bool(park.values.get("PARK"))


def after_evaluations(process: McpProcess, count: int = 5) -> None:
    """Let the controller evaluate a few more times (evaluate_interval is 0.2 s in these tests)."""
    time.sleep(count * process.service.config.mcp.evaluate_interval + 0.5)


@OBSERVING_AT_START
def test_abort_in_manual_mode_closes_as_its_answer_says(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher) as (_process, inputs):
        inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
        wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and s["roof"] == "open")
        recorder.clear()
        inputs.publish(TOPICS.mcp_night_command, "ABORT", retain=False)
        watcher.wait_for(
            lambda _m: any(e["data"]["command"]["value"] == "ABORT" for e in of_kind(watcher, "command_accepted"))
        )
        answer = next(e for e in of_kind(watcher, "command_accepted") if e["data"]["command"]["value"] == "ABORT")
        assert answer["data"]["note"] == "closing for the night"
        # ... and that is what happens: the closing order, as the drivers report it.
        closed = wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed", 60)
        assert closed["state"] == "manual" and closed["mode"] == "manual" and closed["night_aborted"] is True
        assert closed["mount_parked"] is True
        parked = recorder.first(lambda r: r.device == TELESCOPE and r.name == "TELESCOPE_PARK" and r.values["PARK"])
        roof_closed = recorder.wait(lambda r: r.name == "DOME_PARK" and r.state == "Ok" and r.values["PARK"])
        assert -1 < parked < roof_closed
        assert roof_parked(recorder)
        # Back to auto: the night stays ended, the roof closed.
        inputs.publish(TOPICS.mcp_mode_command, "auto", retain=False)
        standby = wait_state(watcher, TOPICS, lambda s: s["state"] == "standby")
        assert standby["reason"] == "night ended by the operator" and standby["roof"] == "closed"


@pytest.mark.parametrize("mode", ["auto", "manual"])
@OBSERVING_AT_START
def test_a_commanded_close_is_not_reported_as_moved_outside_obsy(
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    indi: IndiServer,
    watcher: Watcher,
    recorder: IndiRecorder,
    *,
    mode: str,
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher) as (process, inputs):
        if mode == "manual":
            inputs.publish(TOPICS.mcp_mode_command, "manual", retain=False)
            wait_state(watcher, TOPICS, lambda s: s["state"] == "manual")
        inputs.publish(TOPICS.mcp_roof_command, "CLOSE", retain=False)
        wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed" and s["state"] in ("standby", "manual"), 60)
        after_evaluations(process)
        assert of_kind(watcher, "roof_moved_outside") == []
        # The check itself still works: the roof opened from an INDI panel is reported.
        recorder.client.set_switch(ROOF, "DOME_PARK", "UNPARK", wait=False)  # an operator in an INDI panel
        watcher.wait_for(lambda _m: bool(of_kind(watcher, "roof_moved_outside")), 30)


def home_assistant_cover(process: McpProcess) -> dict[str, Any]:
    """The roof's discovery payload as the running MCP would send it."""
    (roof,) = [e for e in process.service.ha_entities() if e.component == "cover"]
    return discovery_payload(roof, Node(prefix="obsy", service="mcp", site_name="Test site", sw_version="1"))


def cover_states(process: McpProcess, watcher: Watcher) -> list[tuple[str, str | None]]:
    """(the MCP's roof, what Home Assistant's cover shows) for every MCP state published so far, in order."""
    discovery = home_assistant_cover(process)
    shown: str | None = None
    seen = []
    for message in watcher.on(TOPICS.mcp_state):
        if not message.payload:
            continue
        payload = message.payload.decode() if isinstance(message.payload, bytes) else message.payload
        shown = cover_state(discovery, payload, shown)
        seen.append((json.loads(payload)["roof"], shown))
    return seen


@OBSERVING_AT_START
def test_published_roof_states_match_the_roof_and_a_stopped_roof_never_looks_closed(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, recorder: IndiRecorder
) -> None:
    with mcp_observing(tmp_path, mosquitto, indi, watcher) as (process, inputs):
        assert not roof_parked(recorder) and states(watcher, TOPICS)[-1]["roof"] == "open"
        assert cover_states(process, watcher)[-1] == ("open", "open")

        # Closing, then STOP part-way: the roof is neither open nor closed.
        inputs.publish(TOPICS.mcp_roof_command, "CLOSE", retain=False)
        recorder.client.wait_for(ROOF, "DOME_PARK", lambda p: p.state == "Busy", timeout=30, what="roof closing")
        inputs.publish(TOPICS.mcp_roof_command, "STOP", retain=False)
        stopped = wait_state(watcher, TOPICS, lambda s: s["state"] == "manual" and s["roof"] == "stopped", 30)
        assert stopped["mode"] == "manual"
        after_evaluations(process)
        park = recorder.client.get_property(ROOF, "DOME_PARK")
        assert park.state != "Busy" and not roof_parked(recorder), park  # the driver: halted, not closed
        assert states(watcher, TOPICS)[-1]["roof"] == "stopped"
        seen = cover_states(process, watcher)
        assert seen[-1] == ("stopped", "open")  # Home Assistant: open, never closed
        assert [pair for pair in seen if pair[1] == "closed"] == []  # closed never shown for a roof not closed
        assert of_kind(watcher, "roof_moved_outside") == []  # the MCP's own STOP is not someone else's move

        # Closed at last: now, and only now, closed everywhere.
        inputs.publish(TOPICS.mcp_roof_command, "CLOSE", retain=False)
        wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed", 60)
        # The recorder, another client, hears the driver a moment after the MCP does.
        recorder.client.wait_for(ROOF, "DOME_PARK", lambda p: p.state == "Ok" and p.values.get("PARK"), timeout=30)
        assert cover_states(process, watcher)[-1] == ("closed", "closed")
        assert all(shown != "closed" or roof == "closed" for roof, shown in cover_states(process, watcher))
