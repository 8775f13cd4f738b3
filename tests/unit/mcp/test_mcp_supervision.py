"""Supervision policy with the real Docker SDK against a stand-in Docker Engine on a unix socket.

(No Docker engine runs on the test machines: the stand-in answers the Engine API calls a
restart needs, see tests/support/docker_standin.py.) Containers are found as compose
labels them, or by a configured name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsy.config import SERVICE_NAMES, McpConfig, McpSupervisionConfig
from obsy.messages import ServiceHealth
from obsy_mcp.inputs import Inputs
from obsy_mcp.supervision import INDI, Supervisor
from tests.support.docker_standin import DockerStandIn


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


class Reports(list):
    def __call__(self, kind: str, message: str, *, level: str = "info", data: dict[str, Any] | None = None) -> None:
        self.append((kind, message, level, data or {}))

    def kinds(self) -> list[str]:
        return [r[0] for r in self]


@pytest.fixture
def short_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # unix socket paths are limited to ~100 bytes: keep it short
    return tmp_path_factory.mktemp("sv", numbered=True)


@pytest.fixture
def docker(short_tmp: Path) -> Iterator[DockerStandIn]:
    compose = {"weather": "obsy-weather-1", "allsky": "obsy-allsky-1", "indiserver": "obsy-indiserver-1"}
    with DockerStandIn(short_tmp / "docker.sock", ["my-weather"], compose=compose) as standin:
        yield standin


def setup(socket: Path, **settings: Any) -> tuple[Clock, Inputs, Supervisor, Reports]:
    clock = Clock()
    config = McpSupervisionConfig(docker_socket=socket, restart_after=60, max_restarts_per_hour=2, **settings)
    inputs = Inputs(McpConfig(startup_grace=0), clock)
    reports = Reports()
    return clock, inputs, Supervisor(config, clock, reports), reports


def test_an_offline_service_is_restarted_after_the_delay_then_limited_per_hour(docker: DockerStandIn) -> None:
    clock, inputs, supervisor, reports = setup(docker.socket_path)
    inputs.set_availability("weather", "offline")
    inputs.set_availability("clouddetect", "online")  # healthy: never touched
    inputs.set_health("clouddetect", ServiceHealth(service="clouddetect", heartbeat_interval_s=1e6))
    services = ["weather", "clouddetect", "allsky"]  # allsky never seen: not supervised

    def check() -> None:
        supervisor.check(inputs.service_problems(services))
        supervisor.wait_idle()

    check()
    clock.now += 59
    check()
    assert docker.restarted == []
    clock.now += 1
    check()
    assert docker.restarted == ["obsy-weather-1"]
    assert reports.kinds() == ["service_restarted"]
    assert reports[0][3]["problem"].startswith("weather is offline")

    for _ in range(3):  # still offline: one more restart each restart_after, up to the limit
        clock.now += 60
        check()
    assert docker.restarted == ["obsy-weather-1", "obsy-weather-1"]
    assert reports.kinds() == ["service_restarted", "service_restarted", "supervision_alarm"]  # reported once
    assert "limit 2" in reports[-1][1]

    clock.now += 3600  # an hour later the budget is back
    check()
    assert docker.restarted == ["obsy-weather-1"] * 3


def test_the_time_to_come_back_counts_from_the_end_of_a_slow_restart(short_tmp: Path) -> None:
    clock = Clock()

    def slow_restart() -> None:
        clock.now += 50  # the engine took 50 of the 60 s restart_after

    compose = {"weather": "obsy-weather-1"}
    with DockerStandIn(
        short_tmp / "docker.sock", compose=compose, on_restart={"obsy-weather-1": slow_restart}
    ) as docker:
        config = McpSupervisionConfig(docker_socket=docker.socket_path, restart_after=60, max_restarts_per_hour=5)
        inputs = Inputs(McpConfig(startup_grace=0), clock)
        supervisor = Supervisor(config, clock, Reports())
        inputs.set_availability("weather", "offline")
        for step in (0, 60, 30, 29):  # restarted at 60 s; back 50 s later; still offline 59 s after that
            clock.now += step
            supervisor.check(inputs.service_problems(["weather"]))
            supervisor.wait_idle()
        assert docker.restarted == ["obsy-weather-1"]
        clock.now += 1  # a whole restart_after since the restart ended: restarted again
        supervisor.check(inputs.service_problems(["weather"]))
        supervisor.wait_idle()
        assert docker.restarted == ["obsy-weather-1"] * 2


def test_a_hung_service_silent_past_its_heartbeat_limit_is_restarted(docker: DockerStandIn) -> None:
    clock, inputs, supervisor, reports = setup(docker.socket_path)
    inputs.set_availability("allsky", "online")
    inputs.set_health("allsky", ServiceHealth(service="allsky", heartbeat_interval_s=10))
    clock.now += 31  # silent: 3 x 10 s
    supervisor.check(inputs.service_problems(["allsky"]))
    clock.now += 60
    supervisor.check(inputs.service_problems(["allsky"]))
    supervisor.wait_idle()
    assert docker.restarted == ["obsy-allsky-1"]
    assert "silent" in reports[0][1]


def test_a_container_named_in_the_configuration_is_restarted_by_name(docker: DockerStandIn) -> None:
    clock, inputs, supervisor, reports = setup(docker.socket_path, container_names={"weather": "my-weather"})
    inputs.set_availability("weather", "offline")
    supervisor.check(inputs.service_problems(["weather"]))
    clock.now += 60
    supervisor.check(inputs.service_problems(["weather"]))
    supervisor.wait_idle()
    assert docker.restarted == ["my-weather"]
    assert reports[0][3]["container"] == "my-weather"


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"container_names": {"weather": "their-weather"}}, "their-weather"), ({"compose_project": "other"}, "other")],
)
def test_a_container_the_engine_does_not_know_is_reported(
    docker: DockerStandIn, settings: dict[str, Any], named: str
) -> None:
    clock, inputs, supervisor, reports = setup(docker.socket_path, **settings)
    inputs.set_availability("weather", "offline")
    supervisor.check(inputs.service_problems(["weather"]))
    clock.now += 60
    supervisor.check(inputs.service_problems(["weather"]))
    supervisor.wait_idle()
    assert docker.restarted == []
    assert reports.kinds() == ["supervision_failed"]
    assert named in reports[0][1]


def test_indi_drivers_not_answering_restart_the_indiserver_container(docker: DockerStandIn) -> None:
    clock, _inputs, supervisor, reports = setup(docker.socket_path)
    problem = "INDI device 'CCD Simulator' does not answer (no reply within 10 s)"
    supervisor.check({INDI: problem})
    clock.now += 60
    supervisor.check({INDI: problem})
    supervisor.wait_idle()
    assert docker.restarted == ["obsy-indiserver-1"]
    assert reports.kinds() == ["service_restarted"]
    assert reports[0][3]["service"] == INDI
    assert "CCD Simulator" in reports[0][1]
    supervisor.check({INDI: None})  # answering again: the episode is over
    clock.now += 600
    supervisor.check({INDI: None})
    supervisor.wait_idle()
    assert docker.restarted == ["obsy-indiserver-1"]


def test_without_the_docker_socket_it_reports_and_alarms_only(short_tmp: Path) -> None:
    clock, inputs, supervisor, reports = setup(short_tmp / "absent.sock")
    inputs.set_availability("weather", "stopped")
    for _ in range(3):
        supervisor.check(inputs.service_problems(["weather"]))
        clock.now += 60
    assert reports.kinds() == ["supervision_alarm"]  # once per episode
    assert "no Docker socket" in reports[0][1]
    inputs.set_availability("weather", "online")
    inputs.set_health("weather", ServiceHealth(service="weather", heartbeat_interval_s=10))
    supervisor.check(inputs.service_problems(["weather"]))  # recovered: a new episode may be reported again
    inputs.set_availability("weather", "offline")
    supervisor.check(inputs.service_problems(["weather"]))
    clock.now += 60
    supervisor.check(inputs.service_problems(["weather"]))
    assert reports.kinds() == ["supervision_alarm", "supervision_alarm"]


def test_nothing_is_judged_without_the_broker(docker: DockerStandIn) -> None:
    clock, inputs, supervisor, _reports = setup(docker.socket_path)
    inputs.set_availability("weather", "offline")
    inputs.set_broker(False)
    supervisor.check(inputs.service_problems(["weather"]))
    clock.now += 120
    supervisor.check(inputs.service_problems(["weather"]))
    supervisor.wait_idle()
    assert docker.restarted == []


def test_by_default_every_other_service_is_supervised_and_the_log_names_them(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``supervision.services`` defaults to the catalogue (not what is installed: the MCP's image holds no other)."""
    compose = {"alpaca": "obsy-alpaca-1", "mcp": "obsy-mcp-1"}
    with DockerStandIn(short_tmp / "docker.sock", [], compose=compose) as docker:
        with caplog.at_level(logging.INFO, logger="obsy.mcp.supervision"):
            clock, inputs, supervisor, reports = setup(docker.socket_path)
        others = [name for name in SERVICE_NAMES if name != "mcp"]
        assert supervisor.config.services == others
        assert f"supervising {', '.join(others)} once each is seen on the bus" in caplog.text
        inputs.set_availability("alpaca", "offline")
        inputs.set_availability("mcp", "offline")  # its own retained Last Will: never a reason to restart itself
        for _ in range(2):
            supervisor.check(inputs.service_problems(supervisor.config.services))
            supervisor.wait_idle()
            clock.now += 60
        assert docker.restarted == ["obsy-alpaca-1"]
        assert reports.kinds() == ["service_restarted"]
