"""Supervision: restart a service that stays offline or hung, through the Docker socket.

Called by the controller on every evaluation with each watched service's problem (not
``online``, heartbeat too old) or None. A problem that lasts ``restart_after`` seconds
leads to a container restart with the Docker SDK, at most ``max_restarts_per_hour`` per
service; every restart, refusal and failure is an event. Without the Docker socket (the
MCP not under compose, or the socket not mounted) it reports and alarms only.

A service's container is found by its compose labels (``com.docker.compose.project`` =
``compose_project``, ``com.docker.compose.service`` = the service; for INDI the compose
service in ``indi.container``), or by the name given in ``container_names``. INDI is
supervised under the name :data:`INDI`: its problem comes from the driver watch
(:mod:`obsy_mcp.driverwatch`), not from the bus.

Restarts run on a worker thread: a container restart can take tens of seconds, and the
controller must keep watching the weather meanwhile.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from obsy.messages import EventKind
from obsy_mcp.config import McpSupervisionConfig
from obsy_mcp.inputs import Clock
from obsy_mcp.publishing import EventSink

log = logging.getLogger("obsy.mcp.supervision")

HOUR = 3600.0
INDI = "indi"  # the supervised name of the INDI server (its drivers answer, or it is restarted)
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"


class Supervisor:
    def __init__(
        self,
        config: McpSupervisionConfig,
        clock: Clock,
        event: EventSink,
        *,
        docker_client: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.event = event
        self._docker_client = docker_client or self._connect_docker
        self._docker: Any = None
        self._bad_since: dict[str, float] = {}
        self._reported: set[str] = set()  # one report per episode, not one per evaluation
        self._restarts: dict[str, deque[float]] = {}
        self._pending: dict[str, Future[None]] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-supervision")
        if config.enabled:
            log.info(
                "supervising %s once each is seen on the bus (supervision.services)",
                ", ".join(config.services) or "no service",
            )

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    def container(self, service: str) -> str:
        """The container as the events name it: its configured name, or its compose service."""
        name = self.config.container_names.get(service)
        if name:
            return name
        compose = self.config.indi.container if service == INDI else service
        return f"compose service {self.config.compose_project}/{compose}"

    def _containers(self, service: str) -> list[Any]:
        """The service's containers through the Docker SDK (all replicas of a compose service)."""
        name = self.config.container_names.get(service)
        if name:
            return [self._docker.containers.get(name)]
        compose = self.config.indi.container if service == INDI else service
        labels = [f"{COMPOSE_PROJECT}={self.config.compose_project}", f"{COMPOSE_SERVICE}={compose}"]
        found = self._docker.containers.list(all=True, filters={"label": labels})
        if not found:
            raise LookupError(f"no container with the labels {', '.join(labels)}")
        return found

    @property
    def can_restart(self) -> bool:
        return self.config.docker_socket.exists()

    def check(self, problems: dict[str, str | None]) -> None:
        """Look at each watched service's problem now; act on those that lasted long enough."""
        if not self.config.enabled:
            return
        now = self.clock()
        for service, problem in problems.items():
            if problem is None:
                self._bad_since.pop(service, None)
                self._reported.discard(service)
                continue
            since = self._bad_since.setdefault(service, now)
            if now - since >= self.config.restart_after and service not in self._pending:
                self._act(service, problem, now)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for restarts in flight (tests, shutdown)."""
        for future in list(self._pending.values()):
            future.exception(timeout)

    def _act(self, service: str, problem: str, now: float) -> None:
        if not self.can_restart:
            if service not in self._reported:
                self._reported.add(service)
                self.event(
                    EventKind.SUPERVISION_ALARM,
                    f"{service}: {problem}; no Docker socket at {self.config.docker_socket}: cannot restart it",
                    level="error",
                    data={"service": service, "problem": problem},
                )
            return
        recent = self._restarts.setdefault(service, deque())
        while recent and now - recent[0] >= HOUR:
            recent.popleft()
        if len(recent) >= self.config.max_restarts_per_hour:
            if service not in self._reported:
                self._reported.add(service)
                self.event(
                    EventKind.SUPERVISION_ALARM,
                    f"{service}: {problem}; restarted {len(recent)} times in the last hour "
                    f"(limit {self.config.max_restarts_per_hour}): not restarting again",
                    level="critical",
                    data={"service": service, "problem": problem, "restarts_last_hour": len(recent)},
                )
            return
        recent.append(now)
        self._pending[service] = self._worker.submit(self._restart, service, problem, len(recent))

    def _restart(self, service: str, problem: str, count: int) -> None:
        name = self.container(service)
        try:
            if self._docker is None:
                self._docker = self._docker_client()
            for container in self._containers(service):
                container.restart(timeout=10)
        except Exception as error:  # the Docker SDK raises many kinds; every one is reported
            self._docker = None
            self.event(
                EventKind.SUPERVISION_FAILED,
                f"{service}: restarting container {name} failed: {error}",
                level="error",
                data={"service": service, "container": name, "error": str(error)},
            )
        else:
            self.event(
                EventKind.SERVICE_RESTARTED,
                f"{service}: {problem}; restarted container {name} ({count} in the last hour)",
                level="warning",
                data={"service": service, "container": name, "problem": problem, "restarts_last_hour": count},
            )
        finally:
            # restart_after for the restarted service to come back counts from here, when the restart is
            # done: a restart that took most of it (a slow engine, a busy machine) must not earn a second.
            self._bad_since[service] = self.clock()
            self._pending.pop(service, None)

    def _connect_docker(self) -> Any:
        import docker

        return docker.DockerClient(
            base_url=f"unix://{self.config.docker_socket}", version="1.41", timeout=int(self.config.docker_timeout)
        )
