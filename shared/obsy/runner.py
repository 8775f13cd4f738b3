"""One way every OBSY service starts, runs, reports health and stops.

A service subclasses :class:`Service` and its console script calls
:func:`run_service`. The runner:

1. parses the command line (``run`` — the default —, ``healthcheck``, ``check-config``); the
   service's module is imported for ``run`` only, when the service is named rather than passed
   (see :func:`run_service`);
2. loads the configuration, and on any mistake prints one line per problem and exits 2;
3. sets up structured logging and the bus (Last Will ``offline``);
4. calls :meth:`Service.start` (subscribe, publish the initial state), announces Home
   Assistant discovery, and only then publishes ``online``;
5. calls :meth:`Service.poll` every ``poll_interval`` seconds and publishes a retained
   :class:`~obsy.messages.ServiceHealth` heartbeat every ``heartbeat_interval`` seconds,
   also touching a heartbeat file that ``healthcheck`` (the container healthcheck) reads;
   measures the free space of the service's folders (:meth:`Service.disk_paths`, every
   ``disk.interval`` seconds: ``obsy.diskspace``), events when a level changes;
6. on SIGTERM or SIGINT calls :meth:`Service.stop`, publishes ``stopped`` and exits 0; a
   second SIGTERM or SIGINT while ``stop`` runs calls :meth:`Service.stop_now`.

An exception in ``poll`` is logged and counted (the health turns ``degraded``); it does
not end the service. An exception in ``start`` ends it with exit status 1 and ``offline``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from obsy.bus import Bus
from obsy.config import ConfigError, ObsyConfig, load_config
from obsy.diskspace import DiskWatch
from obsy.files import write_atomic
from obsy.logs import setup_logging
from obsy.messages import Clock, ServiceHealth, utc_now
from obsy.topics import OFFLINE, STOPPED

if TYPE_CHECKING:
    from obsy.homeassistant import Entity

#: A further sub-command: a function that takes the remaining arguments and returns an exit status.
ExtraCommand = Callable[[list[str]], int]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


class Service:
    """Base class of every service. Override what you need; every method has a safe default."""

    name: ClassVar[str] = ""
    #: Seconds between calls of :meth:`poll`.
    poll_interval: ClassVar[float] = 1.0

    def __init__(self, config: ObsyConfig, bus: Bus, *, clock: Clock = utc_now) -> None:
        self.config = config
        self.bus = bus
        self.topics = bus.topics
        #: The wall clock (timezone-aware UTC) the service reads the time from: injected, so tests can drive it.
        self.clock = clock
        self.log = logging.getLogger(f"obsy.{self.name}")

    @property
    def settings(self) -> Any:
        """This service's own config section."""
        return self.config.service(self.name)

    def start(self) -> None:
        """Subscribe and publish the initial state; ``online`` follows when this returns."""

    def poll(self) -> None:
        """Periodic work on the runner's thread."""

    def stop(self) -> None:
        """Release devices and threads; the runner publishes ``stopped`` afterwards."""

    def stop_now(self) -> None:
        """A second stop request while :meth:`stop` runs: end whatever it is waiting for at once.

        Called from the signal handler: set flags only, no blocking work.
        """

    def ha_entities(self) -> list[Entity]:
        """Home Assistant entities this service offers beyond the standard ones: those its ``ha.py`` declares."""
        return []

    def health_details(self) -> dict[str, Any]:
        """Extra fields for the health message (counters, device status)."""
        return {}

    def disk_paths(self) -> dict[str, Path]:
        """The folders this service writes data to, by name, for the free-space watch (``obsy.diskspace``)."""
        return {}

    def on_disk_level(self, level: str) -> None:
        """The worst level of :meth:`disk_paths` changed (``ok``, ``warning``, ``critical``): hold back optional
        writes at ``critical``. Called on the runner's thread."""


def heartbeat_file(config: ObsyConfig, service: str) -> Path:
    """Where the runner records its last heartbeat, for ``healthcheck``."""
    base = config.run_dir
    prefix = config.broker.prefix.replace("/", "_")
    return base / f"obsy-{prefix}-{service}.heartbeat"


def _version(service: str) -> str:
    try:
        return metadata.version(f"obsy-{service}")
    except metadata.PackageNotFoundError:
        try:
            return metadata.version("obsy-core")
        except metadata.PackageNotFoundError:
            return "unknown"


class ServiceRunner:
    """Runs one :class:`Service` until told to stop. Usable from tests without a subprocess."""

    def __init__(
        self, service_cls: type[Service], config: ObsyConfig, *, bus: Bus | None = None, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.name = service_cls.name
        self.bus = bus or Bus(config.broker, self.name)
        self.topics = self.bus.topics
        # The service's clock (``Service.clock``): the wall clock unless a test hands its own.
        self.service = service_cls(config, self.bus) if clock is None else service_cls(config, self.bus, clock=clock)
        self.stop_event = threading.Event()
        self.started_at = time.monotonic()
        self.poll_errors = 0
        self.heartbeat_path = heartbeat_file(config, self.name)
        self._version = _version(self.name)
        self._discovery: Any = None
        self.disk: DiskWatch | None = None

    @property
    def heartbeat_interval(self) -> float:
        return self.config.service(self.name).heartbeat_interval

    def run(self) -> int:
        log = logging.getLogger("obsy.runner")
        log.info("starting %s %s", self.name, self._version, extra={"event": "service_starting"})
        # Give the broker a moment so that the initial state goes out with the first connection;
        # a service must still start without a broker (the mcp closes the roof without one).
        self.bus.start(wait=5.0)
        self.bus.on_connect(self._write_heartbeat_file)
        try:
            self.service.start()
            self._check_disk()  # before discovery: a service with folders to watch gets its free-space sensor
            self._attach_discovery()
        except Exception:
            log.exception("%s failed to start", self.name, extra={"event": "service_start_failed"})
            self.bus.stop(availability=OFFLINE)
            return EXIT_FAILED
        self.publish_health()
        self.bus.set_online()
        log.info("%s is running", self.name, extra={"event": "service_started"})
        next_heartbeat = time.monotonic() + self.heartbeat_interval
        next_poll = time.monotonic()
        next_disk = time.monotonic() + self.config.disk.interval
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now >= next_poll:
                self._poll_once(log)
                next_poll = now + self.service.poll_interval
            if now >= next_disk:
                self._check_disk()
                next_disk = now + self.config.disk.interval
            if now >= next_heartbeat:
                self.publish_health()
                next_heartbeat = now + self.heartbeat_interval
            wake = min(next_poll, next_heartbeat, next_disk)
            self.stop_event.wait(max(0.0, wake - time.monotonic()))
        log.info("stopping %s", self.name, extra={"event": "service_stopping"})
        try:
            self.service.stop()
        except Exception:
            log.exception("%s did not stop cleanly", self.name)
        self.bus.stop(availability=STOPPED)
        self._remove_heartbeat_file()
        log.info("%s stopped", self.name, extra={"event": "service_stopped"})
        return EXIT_OK

    def request_stop(self, *_: object) -> None:
        if self.stop_event.is_set():
            self.service.stop_now()  # a second SIGTERM/SIGINT: the service must not wait any longer
        self.stop_event.set()

    def _poll_once(self, log: logging.Logger) -> None:
        try:
            self.service.poll()
        except Exception:
            self.poll_errors += 1
            log.exception("%s poll failed (%d so far)", self.name, self.poll_errors, extra={"event": "poll_failed"})

    def _check_disk(self) -> None:
        """Measure the service's folders (after its start: it knows them then); events only on a change."""
        if not self.config.disk.enabled:
            return
        if self.disk is None:
            paths = self.service.disk_paths()
            if not paths:
                return
            self.disk = DiskWatch(self.name, paths, self.config.disk)
        before = self.disk.level
        try:
            events = self.disk.check()
        except Exception:  # the watch must never stop the service
            logging.getLogger("obsy.runner").exception("measuring the free disk space failed")
            return
        for event in events:
            logging.getLogger("obsy.runner").log(
                logging.INFO if event.level == "info" else logging.WARNING,
                "%s",
                event.message,
                extra={"event": event.kind},
            )
            self.bus.publish_event(event)
        if self.disk.level != before:
            try:
                self.service.on_disk_level(self.disk.level)
            except Exception:
                logging.getLogger("obsy.runner").exception("%s could not act on the disk level", self.name)

    def _attach_discovery(self) -> None:
        if not self.config.homeassistant.enabled:
            return
        from obsy.homeassistant import DiscoveryPublisher, service_entities

        own = self.service.ha_entities()
        entities = service_entities(self.name, self.topics, own, watches_disk=self.disk is not None)
        ha = self.config.homeassistant
        self._discovery = DiscoveryPublisher(
            self.bus, ha, self.config.site.name, self.name, entities, configuration_url=ha.configuration_url
        )
        self._discovery.attach()

    def health(self) -> ServiceHealth:
        status = "degraded" if self.poll_errors or self.bus.handler_errors else "ok"
        details = {"poll_errors": self.poll_errors, "handler_errors": self.bus.handler_errors}
        details.update(self.service.health_details())
        if self.disk is not None:
            details["disk"] = self.disk.health()
        return ServiceHealth(
            service=self.name,
            status=status,
            version=self._version,
            host=socket.gethostname(),
            pid=os.getpid(),
            uptime_s=round(time.monotonic() - self.started_at, 1),
            heartbeat_interval_s=self.heartbeat_interval,
            invalid_messages=self.bus.invalid_messages,
            details=details,
        )

    def publish_health(self) -> None:
        health = self.health()
        self.bus.publish(self.topics.health(self.name), health, qos=1, retain=True)
        self._write_heartbeat_file(health.status)

    def _write_heartbeat_file(self, status: str = "ok") -> None:
        record = {"time": time.time(), "connected": self.bus.connected.is_set(), "status": status}
        try:
            self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.heartbeat_path, json.dumps(record))
        except OSError as exc:
            logging.getLogger("obsy.runner").warning("cannot write heartbeat file %s: %s", self.heartbeat_path, exc)

    def _remove_heartbeat_file(self) -> None:
        self.heartbeat_path.unlink(missing_ok=True)


def check_health(config: ObsyConfig, service: str, *, now: float | None = None) -> tuple[bool, str]:
    """Healthy when the heartbeat is fresh (the loop is alive) and the bus is connected."""
    path = heartbeat_file(config, service)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False, f"no heartbeat file at {path}: {service} is not running"
    interval = config.service(service).heartbeat_interval
    age = (now if now is not None else time.time()) - float(record.get("time", 0))
    if age > 3 * interval:
        return False, f"last heartbeat {age:.0f} s ago (limit {3 * interval:.0f} s): {service} is hung"
    if not record.get("connected"):
        return False, f"{service} is not connected to the broker"
    return True, f"{service} healthy: heartbeat {age:.0f} s ago, status {record.get('status')}"


def _parse_args(name: str, argv: Sequence[str] | None, extra: Mapping[str, ExtraCommand]) -> argparse.Namespace:
    epilog = f"more commands: {', '.join(extra)} (each has its own --help)" if extra else None
    parser = argparse.ArgumentParser(
        prog=f"obsy-{name}",
        description=f"OBSY {name} service",
        epilog=epilog,
    )
    parser.add_argument("command", nargs="?", default="run", choices=["run", "healthcheck", "check-config"])
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="overrides the config")
    parser.add_argument("--log-format", choices=["json", "text"], help="log line format (overrides the config)")
    return parser.parse_args(argv)


def run_service(
    service: type[Service] | str,
    argv: Sequence[str] | None = None,
    extra_commands: Mapping[str, ExtraCommand | str] | None = None,
) -> int:
    """Entry point of every service's console script; returns the exit status.

    ``service`` is the :class:`Service` class, or its name: then the class is imported from the
    ``obsy.services`` registry for ``run`` only. ``extra_commands`` maps further sub-commands
    (``create-admin``...) to functions that take the remaining arguments, parse them themselves and
    return an exit status, or to where such a function is (``"package.module:function"``), imported
    when that command runs. With both given by name, ``healthcheck`` (the container's, every 30 s),
    ``--help`` and a small command do not import the service's runtime (astropy, numba, the web
    app...: seconds of CPU per start on a small computer); ``run`` still imports all of it at start,
    so a missing dependency fails the start, not the night.
    """
    name = service if isinstance(service, str) else service.name
    extra = dict(extra_commands or {})
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in extra:
        return _command(extra[args_list[0]])(args_list)
    args = _parse_args(name, args_list, extra)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report(f"obsy-{name}"), file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(f"obsy-{name}: configuration OK ({config.source_file or 'defaults and environment'})")
        return EXIT_OK
    if args.command == "healthcheck":
        healthy, message = check_health(config, name)
        print(message)
        return EXIT_OK if healthy else EXIT_FAILED
    setup_logging(name, args.log_level or config.service(name).log_level, args.log_format or config.log_format)
    if isinstance(service, str):
        from obsy.services import ServiceRegistryError, registered

        try:
            service = registered(service).load()
        except ServiceRegistryError as exc:
            print(f"obsy-{name}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    runner = ServiceRunner(service, config)
    signal.signal(signal.SIGTERM, runner.request_stop)
    signal.signal(signal.SIGINT, runner.request_stop)
    return runner.run()


def _command(command: ExtraCommand | str) -> ExtraCommand:
    """The sub-command's function, imported now when it is given as ``"package.module:function"``."""
    if callable(command):
        return command
    module, _, function = command.partition(":")
    return getattr(importlib.import_module(module), function)
