"""Supervision of the INDI drivers: a real indiserver whose camera driver hangs or vanishes.

indiserver itself keeps answering; only the MCP's probes tell that one driver does not.
The restart goes through the real Docker SDK to the stand-in Docker Engine, which restarts
the real indiserver as the engine would restart its container.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsy.indi import IndiClient
from obsy.topics import Topics
from tests.support.docker_standin import DockerStandIn
from tests.support.indiserver import CCD, ROOF, IndiServer, find_executable, require_indi
from tests.support.mcp_harness import (
    DRIVERS,
    Inputs,
    McpProcess,
    Sky,
    mcp_config,
    of_kind,
    prepare_devices,
    wait_event,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
CAMERA_DRIVER = "indi_simulator_ccd"  # the allsky camera
require_indi([*DRIVERS, CAMERA_DRIVER])

TOPICS = Topics()
CONTAINER = "obsy-indiserver-1"


@pytest.fixture
def indi(tmp_path: Path) -> Iterator[IndiServer]:
    server = IndiServer(tmp_path / "indi", [*DRIVERS, CAMERA_DRIVER])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def docker(tmp_path_factory: pytest.TempPathFactory, indi: IndiServer) -> Iterator[DockerStandIn]:
    socket = tmp_path_factory.mktemp("dk") / "docker.sock"  # unix socket paths are short
    with DockerStandIn(socket, compose={"indiserver": CONTAINER}, on_restart={CONTAINER: indi.restart}) as standin:
        yield standin


def camera_answers_again(indi: IndiServer) -> None:
    """The camera is defined again on the (restarted) server and answers: wait for it from another client."""
    with IndiClient.from_config(indi.config(), timeout=30.0) as client:
        client.wait_property(CCD, "CONNECTION")
        client.connect_device(CCD)


def resting_mcp(tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, socket: Path):
    """The MCP by day (nothing to move), watching the roof, the mount and the camera."""
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    supervision: dict[str, Any] = {
        "docker_socket": str(socket),
        "restart_after": 3,
        "indi": {"devices": [ROOF, "Telescope Simulator", CCD], "probe_interval": 0.5, "probe_timeout": 2},
    }
    config = mcp_config(tmp_path, mosquitto, indi.config(), supervision=supervision)
    Inputs(watcher, TOPICS, config).all_safe()
    process = McpProcess(config, Sky(10.0)).start()
    wait_state(watcher, TOPICS, lambda s: s["state"] == "day")
    return process


def test_a_hung_camera_driver_restarts_the_indiserver_container(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, docker: DockerStandIn
) -> None:
    process = resting_mcp(tmp_path, mosquitto, indi, watcher, docker.socket_path)
    try:
        time.sleep(2)  # every driver answers: nothing happens
        assert docker.restarted == [] and not of_kind(watcher, "service_restarted")
        hung = indi.driver_pid(CAMERA_DRIVER)
        os.kill(hung, signal.SIGSTOP)  # the driver stops answering; indiserver still does
        restarted = wait_event(watcher, "service_restarted")
        assert docker.restarted == [CONTAINER]
        assert restarted["data"]["service"] == "indi"
        assert "'CCD Simulator' does not answer" in restarted["data"]["problem"]
        assert "RollOff" not in restarted["data"]["problem"]  # the others answered

        # The restarted server's camera answers: no second restart; the MCP read its devices back.
        camera_answers_again(indi)
        watcher.wait_for(lambda _m: len(of_kind(watcher, "devices_read_back")) >= 2, 30)
        assert indi.driver_pid(CAMERA_DRIVER) != hung
        time.sleep(6)  # two restart_after periods
        assert docker.restarted == [CONTAINER]
        assert wait_state(watcher, TOPICS, lambda s: s["state"] == "day")["roof"] == "closed"
    finally:
        process.stop()


def test_a_camera_that_vanishes_restarts_the_indiserver_container(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, docker: DockerStandIn
) -> None:
    process = resting_mcp(tmp_path, mosquitto, indi, watcher, docker.socket_path)
    try:
        indi.stop_driver(find_executable(CAMERA_DRIVER) or CAMERA_DRIVER)  # its device is deleted
        restarted = wait_event(watcher, "service_restarted")
        assert "'CCD Simulator' is not defined" in restarted["data"]["problem"]
        assert docker.restarted == [CONTAINER]
        camera_answers_again(indi)
    finally:
        process.stop()


def test_without_the_docker_socket_a_silent_driver_is_reported_and_alarmed_only(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    process = resting_mcp(tmp_path, mosquitto, indi, watcher, tmp_path / "no-docker.sock")
    hung = indi.driver_pid(CAMERA_DRIVER)
    try:
        os.kill(hung, signal.SIGSTOP)
        alarm = wait_event(watcher, "supervision_alarm")
        assert "no Docker socket" in alarm["message"]
        assert "'CCD Simulator' does not answer" in alarm["message"]
        time.sleep(3)
        assert len(of_kind(watcher, "supervision_alarm")) == 1  # once per episode
        assert not of_kind(watcher, "service_restarted")
        assert indi.driver_pid(CAMERA_DRIVER) == hung  # nothing was restarted
    finally:
        os.kill(hung, signal.SIGCONT)
        process.stop()


def test_a_roof_driver_that_indiserver_restarts_is_connected_and_read_back(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher, docker: DockerStandIn
) -> None:
    process = resting_mcp(tmp_path, mosquitto, indi, watcher, docker.socket_path)
    try:
        count = len(of_kind(watcher, "devices_read_back"))
        os.kill(indi.driver_pid("indi_rolloff_dome"), signal.SIGKILL)  # indiserver starts it again, disconnected
        watcher.wait_for(lambda _m: len(of_kind(watcher, "devices_read_back")) > count, 30)
        assert of_kind(watcher, "devices_read_back")[-1]["data"]["roof"] == "closed"
        assert any("came back disconnected" in e["message"] for e in of_kind(watcher, "indi_reconnected"))
        assert docker.restarted == []  # the driver answers: no container restart
    finally:
        process.stop()
