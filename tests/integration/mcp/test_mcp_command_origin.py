"""Commands to the MCP are bounded and say who sent them: real Mosquitto, real indiserver simulators."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsy.messages import Command, CommandOrigin, OriginKind
from obsy.topics import Topics
from tests.support.indiserver import IndiServer, require_indi
from tests.support.mcp_harness import DRIVERS, Inputs, McpProcess, Sky, events, mcp_config, prepare_devices, wait_state
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

TOPICS = Topics()
MB = 1024 * 1024


@pytest.fixture
def closed_mcp(tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher) -> Iterator[McpProcess]:
    """An MCP with the roof closed for the rain: CLOSE is accepted, OPEN rejected."""
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    config = mcp_config(tmp_path, mosquitto, indi.config())
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe()
    inputs.weather(False, "rain detected")
    process = McpProcess(config, Sky(-25.0)).start()
    # The first state goes out after the command subscriptions, on the same connection.
    wait_state(watcher, TOPICS, lambda s: s["roof"] == "closed")
    try:
        yield process
    finally:
        process.stop()


def command_events(watcher: Watcher) -> list[dict[str, Any]]:
    return [e for e in events(watcher, TOPICS) if e["kind"] in ("command_accepted", "command_rejected")]


def wait_command_events(watcher: Watcher, count: int) -> list[dict[str, Any]]:
    watcher.wait_for(lambda _m: len(command_events(watcher)) >= count, 30)
    return command_events(watcher)


def test_oversize_commands_are_dropped_at_the_bus_and_a_bad_one_is_echoed_only_as_an_excerpt(
    closed_mcp: McpProcess, watcher: Watcher
) -> None:
    watcher.publish(TOPICS.mcp_roof_command, b"CLOSE" * (10 * MB // 5))
    watcher.publish(TOPICS.mcp_roof_command, b"CLOSE" + b"\n" * 100_000)
    bad_plain = "OPEN\n<b>" + "\x00" * 2000  # normal-sized, but no command
    bad_json = json.dumps(
        {"value": "OPEN", "origin": {"kind": "web"}, "schema_version": "x" * 3000, "request_id": "bad-1"}
    )
    watcher.publish(TOPICS.mcp_roof_command, bad_plain)
    watcher.publish(TOPICS.mcp_roof_command, bad_json)
    watcher.publish(TOPICS.mcp_roof_command, "banana")

    answers = wait_command_events(watcher, 3)
    assert [a["kind"] for a in answers] == ["command_rejected"] * 3  # nothing answered the oversize ones
    plain, broken, banana = answers
    assert "not a command" in plain["data"]["reasons"][0]
    assert "\\x00" in plain["data"]["reasons"][0] and "(2008 bytes)" in plain["data"]["reasons"][0]
    assert "schema_version" in broken["data"]["reasons"][0]
    assert broken["data"]["request_id"] == "bad-1"  # repeated from the invalid command, so its sender hears
    assert plain["data"]["request_id"] is None
    assert "unknown roof command 'banana'" in banana["data"]["reasons"][0]
    for answer in answers:
        assert len(json.dumps(answer)) < 1500, "a bad command is echoed only as a short excerpt"
        assert "\n" not in answer["message"]
        assert answer["data"]["origin"] == {"kind": "unknown"}

    # Counted in the MCP's health, once each.
    bus = closed_mcp.runner.bus
    assert bus.oversize_messages == 2
    assert closed_mcp.runner.health().invalid_messages >= 2


def test_every_answer_records_who_sent_the_command(closed_mcp: McpProcess, watcher: Watcher, tmp_path: Path) -> None:
    web = CommandOrigin(kind=OriginKind.WEB, user="ada", role="operator")
    watcher.publish(TOPICS.mcp_roof_command, Command(value="OPEN", origin=web, request_id="web-1").to_json())
    roof = next(e for e in closed_mcp.service.ha_entities() if e.object_id == "roof")
    watcher.publish(TOPICS.mcp_roof_command, roof.payload_close or "")  # what Home Assistant sends
    watcher.publish(TOPICS.mcp_roof_command, "CLOSE")  # the plain form still works, sender unknown
    answers = wait_command_events(watcher, 3)

    cli = subprocess.run(
        [sys.executable, "-m", "obsy_mcp", "roof", "CLOSE", "--config", str(closed_mcp.runner.config.source_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    answers = wait_command_events(watcher, 4)

    from_web, from_ha, from_bus, from_cli = answers
    assert from_web["kind"] == "command_rejected"  # it rains
    assert from_web["data"]["origin"] == {"kind": "web", "user": "ada", "role": "operator"}
    assert "(from web user ada, role operator)" in from_web["message"]
    assert from_web["data"]["request_id"] == "web-1" and from_web["data"]["accepted"] is False
    assert from_web["data"]["reasons"] and from_web["data"]["command"] == {"thing": "roof", "value": "OPEN"}
    assert from_ha["kind"] == "command_accepted"
    assert from_ha["data"]["origin"] == {"kind": "home_assistant"}
    assert "Home Assistant" in from_ha["message"]
    assert from_bus["data"]["origin"] == {"kind": "unknown"} and from_bus["data"]["request_id"] is None
    assert from_cli["data"]["origin"]["kind"] == "cli"
    assert from_cli["data"]["origin"]["user"] == getpass.getuser()
    assert len(from_cli["data"]["request_id"]) == 32  # the CLI matches its answer by its request id
    assert from_cli["message"] in cli.stdout  # the CLI prints the MCP's answer


def test_a_central_site_may_close_but_never_open(closed_mcp: McpProcess, watcher: Watcher) -> None:
    """Commands through a bridge from the central site (docs/operations.md#several-observatories)."""
    centre = CommandOrigin(kind=OriginKind.WEB, user="otto", role="operator")
    watcher.publish(TOPICS.mcp_remote_roof_command, Command(value="OPEN", origin=centre).to_json())
    watcher.publish(TOPICS.mcp_remote_night_command, "START")
    watcher.publish(TOPICS.mcp_remote_roof_command, "CLOSE")
    watcher.publish(TOPICS.mcp_remote_night_command, "ABORT")
    opening, starting, closing, aborting = wait_command_events(watcher, 4)
    assert opening["kind"] == "command_rejected" and "stay a decision of this site" in opening["data"]["reasons"][0]
    assert opening["data"]["origin"] == {"kind": "web", "user": "otto", "role": "operator"}
    assert starting["kind"] == "command_rejected" and "only ABORT" in starting["data"]["reasons"][0]
    assert closing["kind"] == "command_accepted" and closing["data"]["command"] == {"thing": "roof", "value": "CLOSE"}
    assert aborting["kind"] == "command_accepted"
