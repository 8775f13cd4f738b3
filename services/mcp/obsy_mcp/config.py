"""The mcp section of the configuration (registered in the ``obsy.config_sections`` entry-point group)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from obsy.config.base import SERVICE_NAMES, Section, ServiceSection


def supervised_by_default() -> list[str]:
    """The services the MCP watches unless ``supervision.services`` says otherwise: every other OBSY service.

    From the catalogue (``SERVICE_NAMES``), not from the services installed here (``obsy.services``):
    under compose the MCP's image holds no other service. A service that never appears on the bus
    is never acted on (the supervisor judges only services it has seen).
    """
    return [name for name in SERVICE_NAMES if name != "mcp"]


class McpDevicesConfig(Section):
    """The INDI devices the MCP drives, and how long each step may take."""

    roof: str = Field(default="RollOff Simulator", description="INDI roof/dome device (DOME_PARK = closed)")
    mount: str | None = Field(default="Telescope Simulator", description="INDI mount; empty when there is none")
    connect_timeout: float = Field(default=15.0, gt=0, description="seconds for a device to connect")
    roof_timeout: float = Field(default=60.0, gt=0, description="seconds for the roof to open or close")
    park_timeout: float = Field(default=120.0, gt=0, description="seconds for the mount to park")
    abort_timeout: float = Field(default=10.0, gt=0, description="seconds for an abort to be acknowledged")
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts of a failed step before an alarm")
    retry_delay: float = Field(default=5.0, ge=0, description="seconds between attempts")


class McpEkosConfig(Section):
    """KStars/Ekos on the session D-Bus; disabled, the MCP only moves roof and mount."""

    enabled: bool = False
    bus_address: str | None = Field(default=None, description="D-Bus address; empty = $DBUS_SESSION_BUS_ADDRESS")
    profile: str = Field(default="Simulators", description="Ekos profile started before the schedule")
    call_timeout: float = Field(default=10.0, gt=0, description="seconds for one D-Bus call")
    stop_timeout: float = Field(
        default=15.0, gt=0, description="seconds for the scheduler to report stopped (closing waits this long at most)"
    )
    poll_interval: float = Field(
        default=10.0, gt=0, description="seconds between reads of the scheduler's status while observing"
    )
    plan_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds to wait for the scheduler's plan from now before each start (else the last plan's files)",
    )
    on_abort: Literal["retry_then_close", "close", "keep_open"] = Field(
        default="retry_then_close",
        description="the scheduler aborted while observing: start it once more then close; close; or only report",
    )


class McpIndiWatchConfig(Section):
    """Which INDI devices must answer, and which container serves them (restarted when one does not)."""

    enabled: bool = True
    container: str = Field(
        default="indiserver",
        description="compose service that runs indiserver (a container by its name: supervision.container_names.indi)",
    )
    devices: list[str] | None = Field(
        default=None, description="INDI devices that must answer; empty = the MCP's roof and mount"
    )
    probe_interval: float = Field(default=30.0, gt=0, description="seconds between probes of each device")
    probe_timeout: float = Field(default=10.0, gt=0, description="seconds a driver has to answer a probe")


class McpSupervisionConfig(Section):
    """Restarting services that stay offline or hung, through the Docker socket when it is mounted."""

    enabled: bool = True
    docker_socket: Path = Field(default=Path("/var/run/docker.sock"), description="absent: report and alarm only")
    services: list[str] = Field(
        default_factory=supervised_by_default,
        description="services watched (once seen on the bus); default: every OBSY service but the MCP",
    )
    container_names: dict[str, str] = Field(
        default_factory=dict,
        description="service -> container name; default: the container of that compose service in compose_project",
    )
    compose_project: str = Field(default="obsy", description="compose project whose containers are restarted")
    restart_after: float = Field(default=120.0, gt=0, description="seconds offline or hung before a restart")
    max_restarts_per_hour: int = Field(default=3, ge=0, description="per service; beyond it only alarms")
    docker_timeout: float = Field(default=60.0, gt=0, description="seconds for one Docker API call")
    indi: McpIndiWatchConfig = McpIndiWatchConfig()


class McpConfig(ServiceSection):
    sun_altitude_limit: float = Field(default=-12.0, ge=-18, le=0, description="open only with the Sun below this")
    required_services: list[str] = Field(
        default_factory=lambda: ["weather"], description="services whose silence is unsafe (availability, heartbeat)"
    )
    require_clear_sky: bool = Field(default=True, description="treat clouds (or no cloud verdict) as unsafe")
    require_plan: bool = Field(default=True, description="open only when the scheduler has a plan for tonight")
    heartbeat_limit_factor: float = Field(
        default=3.0, ge=1.5, description="a service is silent after this many of its heartbeat intervals"
    )
    startup_grace: float = Field(default=20.0, ge=0, description="seconds after start before missing inputs count")
    broker_grace: float = Field(default=60.0, ge=0, description="seconds without the broker before closing")
    safe_delay: float = Field(default=900.0, ge=0, description="seconds conditions must stay safe before reopening")
    alarm_retry_interval: float = Field(default=120.0, gt=0, description="seconds between closing retries in alarm")
    park_failure_policy: Literal["keep_open_and_alarm", "close_anyway"] = Field(
        default="keep_open_and_alarm",
        description="if the mount cannot be parked: never drive the roof into it (default), or close regardless",
    )
    manual_closes_on_unsafe: bool = Field(default=True, description="in manual mode an unsafe verdict still closes")
    evaluate_interval: float = Field(default=1.0, gt=0, description="seconds between re-evaluations without input")
    shutdown_close_timeout: float = Field(
        default=180.0,
        gt=0,
        description="seconds a stopping MCP may take to finish (or, in auto mode, perform) the closing before it exits",
    )
    state_file: Path | None = Field(
        default=None,
        description="where the operator's last decision (mode, night ended, latched alarm) survives a restart; "
        "empty = <data_dir>/mcp/state.json",
    )
    devices: McpDevicesConfig = McpDevicesConfig()
    ekos: McpEkosConfig = McpEkosConfig()
    supervision: McpSupervisionConfig = McpSupervisionConfig()

    @field_validator("required_services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SERVICE_NAMES or name == "mcp"]
        if unknown:
            raise ValueError(f"unknown services {unknown} (choose from {[s for s in SERVICE_NAMES if s != 'mcp']})")
        return value
