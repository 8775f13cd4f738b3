"""``obsy-local``: the whole system on one machine, for trying OBSY out and for development.

It starts what is missing and supervises the rest:

- Mosquitto on the configured loopback port, if nothing listens there (anonymous access
  is acceptable only because it listens on loopback alone);
- ``indiserver`` with ``indi.local_drivers`` (the simulators by default), if the INDI
  server is configured on loopback and nothing listens there;
- every enabled service installed here (the ``obsy.services`` registry, :mod:`obsy.services`,
  in its order) as its own process (``python -m obsy.services <name> run``: its console script
  ``obsy-<name>``), restarted with a growing delay when it dies, at most ``MAX_RESTARTS`` times
  in ten minutes. A configuration error (exit status 2) stops everything: restarting cannot fix
  it. A service of the catalogue that is not installed is named in the log and not started.

Each service's log goes to ``<data_dir>/logs/<name>.log`` and, prefixed, to the terminal.
Ctrl-C or SIGTERM stops the MCP first (it closes the roof before it exits, within
``mcp.shutdown_close_timeout``), then the other services (they publish ``stopped``), then
what was started. If the launcher itself is killed (even by SIGKILL), the kernel sends every
child SIGTERM (:func:`tied_to_launcher`), so nothing it started is left running.

indiserver runs under another process name (``obsy-indi-server``, a link in the run
directory): KStars runs ``pkill indiserver`` when it exits, which would stop ours too.
Drivers with a device name of their own (``{driver: ..., name: ...}``) are started through
indiserver's control FIFO (``start <driver> -n "<name>"``), again after every restart.
indiserver finds drivers on its ``PATH``, with this Python's ``bin`` directory (the virtual
environment's) put first: the sky simulator's drivers (``indi_obsy_allsky``,
``indi_obsy_camera``) are console scripts there. When one of them is among the local drivers
and ``OBSY_SKYSIM_CONFIG`` is not set, the launcher writes their settings file
(``<run_dir>/skysim.yaml``: the configured site, small sensors, the device names, the demo's
scenario) and points indiserver's environment at it (docs/skysim.md).

``--demo`` runs the demonstration (:mod:`obsy_local.demo`): the same, with the demo's
configuration, an operator account, demo targets and a script for the user.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import yaml

from obsy.config import SERVICE_NAMES, ConfigError, IndiLocalDriver, ObsyConfig, load_config
from obsy.runner import EXIT_CONFIG
from obsy.services import RegisteredService, ServiceRegistryError, registered_services
from obsy_local.network import free_port, port_open, wait_port

if TYPE_CHECKING:
    from obsy_local.demo.setup import DemoPlan

log = logging.getLogger("obsy_local.launcher")

MAX_RESTARTS = 5
#: Not containing "indiserver": KStars' 'pkill indiserver' on exit must not stop ours.
INDISERVER_PROCESS_NAME = "obsy-indi-server"
RESTART_WINDOW_S = 600.0
STOP_GRACE_S = 15.0
#: The sky simulator's INDI drivers (services/skysim) and its settings file's variable.
SKYSIM_ALLSKY_DRIVER = "indi_obsy_allsky"
SKYSIM_CAMERA_DRIVER = "indi_obsy_camera"
SKYSIM_CONFIG_ENV = "OBSY_SKYSIM_CONFIG"
#: The simulated allsky sensor of a local run: small, so that rendering, the allsky pipeline
#: and clouddetect stay light on a laptop (docs/skysim.md, "Settings").
SKYSIM_LOCAL_SENSOR = {"width": 1280, "height": 960, "pixel_um": 3.75, "bayer": "RGGB"}
#: The simulated main camera of a local run: a cut of the simulator's cooled sensor (its other
#: settings kept), so that Ekos' frames stay quick to render, send and save.
SKYSIM_LOCAL_CAMERA_SENSOR = {"width": 1600, "height": 1200}


def indi_driver_path() -> str:
    """indiserver's PATH: this Python's bin directory (the venv's console scripts) first."""
    here = str(Path(sys.executable).parent)
    rest = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p and p != here]
    return os.pathsep.join([here, *rest])


def skysim_settings(config: ObsyConfig, demo: DemoPlan | None = None) -> dict | None:
    """The sky simulator's settings for the local drivers, or None when none of them is the simulator;
    with the ``demo``'s night of science, its scenario for the main camera."""
    drivers = {entry.driver: entry for entry in config.indi.local_drivers}
    if SKYSIM_ALLSKY_DRIVER not in drivers and SKYSIM_CAMERA_DRIVER not in drivers:
        return None
    site = {"latitude": config.site.latitude, "longitude": config.site.longitude, "elevation": config.site.elevation}
    settings: dict = {"allsky": {"site": site, "sensor": dict(SKYSIM_LOCAL_SENSOR)}}
    allsky = drivers.get(SKYSIM_ALLSKY_DRIVER)
    if allsky is not None and allsky.name is not None:
        settings["allsky"]["device"] = allsky.name
    camera = drivers.get(SKYSIM_CAMERA_DRIVER)
    if camera is not None:
        settings["camera"] = {"site": site, "sensor": dict(SKYSIM_LOCAL_CAMERA_SENSOR)}
        if camera.name is not None:
            settings["camera"]["device"] = camera.name
        if allsky is not None and allsky.name is not None:
            settings["camera"]["clouds_from"] = allsky.name
        if demo is not None and demo.science is not None:
            settings["camera"]["scenario"] = str(demo.science.scenario)
    return settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_bind_address(host: str) -> str:
    """The address a local broker binds for the loopback ``host``: ``localhost`` becomes 127.0.0.1, not a name."""
    if not is_loopback(host):
        raise ValueError(f"{host!r} is not a loopback address")
    return "127.0.0.1" if host == "localhost" else host


def tied_to_launcher(argv: list[str]) -> list[str]:
    """``argv`` run so that the kernel sends it SIGTERM when the launcher dies, even by SIGKILL: a
    killed ``obsy-local`` then leaves no service, broker or indiserver behind holding its ports (and
    the MCP still closes the roof on that SIGTERM). util-linux's ``setpriv --pdeathsig`` (in every
    Debian) sets the parent-death signal and execs the command, so no Python runs in the forked
    child. The signal fires when the *thread* that started the child ends, so only children
    started by the main thread, which lives as long as the launcher, are tied."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return argv
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    log_path: Path
    restartable: bool = True
    process: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)
    next_start: float = 0.0
    gave_up: bool = False
    #: Run after every start, once the process is up (e.g. drivers loaded through a FIFO).
    after_start: Callable[[], None] | None = None
    #: Environment variables set for this process over the launcher's own.
    env: dict[str, str] = field(default_factory=dict)


class Launcher:
    def __init__(
        self,
        config: ObsyConfig,
        config_path: Path | None,
        *,
        only: Sequence[str] | None = None,
        demo: DemoPlan | None = None,
        installed: Sequence[RegisteredService] | None = None,
    ) -> None:
        self.config = config
        self.demo = demo
        self.config_path = config_path
        self.log_dir = (config.data_dir / "logs").resolve()
        self.run_dir = (config.data_dir / "run").resolve()
        #: The installed services, by name, in the registry's order (``obsy.services``).
        self.installed = {s.name: s for s in (registered_services() if installed is None else installed)}
        self.services = [name for name in self.installed if config.service(name).enabled and (not only or name in only)]
        absent = [name for name in SERVICE_NAMES if name not in self.installed and (not only or name in only)]
        if absent:
            log.warning("not installed here, not started: %s", ", ".join(absent))
        self.infrastructure: list[Child] = []
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.fatal: str | None = None
        self._echo_lock = threading.Lock()

    # --- infrastructure ----------------------------------------------------------
    def ensure_broker(self) -> None:
        broker = self.config.broker
        if port_open(broker.host, broker.port):
            log.info("using the MQTT broker at %s:%s", broker.host, broker.port)
            return
        if not is_loopback(broker.host):
            raise RuntimeError(f"no MQTT broker answers at {broker.host}:{broker.port}; start it or fix broker.host")
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if mosquitto is None:
            raise RuntimeError(
                "Mosquitto is not installed; run scripts/bootstrap.sh (it installs it) or start a broker"
            )
        conf = self.run_dir / "mosquitto.conf"
        conf.write_text(
            # Keep the user: started as root, mosquitto would switch to 'mosquitto' and lose its files.
            f"user {getpass.getuser()}\n"
            # Loopback only: this broker lets anyone in without a password, so nothing beyond this
            # machine may reach it (broker.host is a loopback address here, checked above).
            f"listener {broker.port} {loopback_bind_address(broker.host)}\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "persistence true\n"
            f"persistence_location {self.run_dir}/\n"
            # As deploy/mosquitto/mosquitto.conf: room for the web ingestor's persistent session.
            "max_queued_messages 200000\n"
            "max_inflight_messages 100\n"
        )
        child = Child("mosquitto", [mosquitto, "-c", str(conf)], self.log_dir / "mosquitto.log")
        self._spawn(child)
        self.infrastructure.append(child)
        if not wait_port(broker.host, broker.port, 10):
            raise RuntimeError(f"Mosquitto did not start on {broker.host}:{broker.port}; see {child.log_path}")
        log.info("started Mosquitto on %s:%s", broker.host, broker.port)

    def ensure_indiserver(self) -> None:
        indi = self.config.indi
        if port_open(indi.host, indi.port):
            log.info("using the INDI server at %s:%s", indi.host, indi.port)
            return
        if not is_loopback(indi.host) or not indi.local_drivers:
            log.warning(
                "no INDI server answers at %s:%s; services that need it will keep retrying", indi.host, indi.port
            )
            return
        indiserver = shutil.which("indiserver")
        if indiserver is None:
            log.warning("indiserver is not installed (Debian package indi-bin); running without INDI devices")
            return
        # Our own local socket: the default (/tmp/indiserver) may belong to another indiserver.
        local_socket = self.run_dir / "indiserver.sock"
        fifo = self.run_dir / "indiserver.fifo"
        if not fifo.exists():
            os.mkfifo(fifo)
        alias = self.run_dir / INDISERVER_PROCESS_NAME
        alias.unlink(missing_ok=True)
        alias.symlink_to(indiserver)
        plain = [entry.driver for entry in indi.local_drivers if entry.name is None]
        named = [entry for entry in indi.local_drivers if entry.name is not None]
        argv = [str(alias), "-v", "-u", str(local_socket), "-p", str(indi.port), "-f", str(fifo), *plain]
        child = Child("indiserver", argv, self.log_dir / "indiserver.log")
        child.env["PATH"] = indi_driver_path()
        settings = skysim_settings(self.config, self.demo)
        if settings is not None and SKYSIM_CONFIG_ENV not in os.environ:
            skysim = self.run_dir / "skysim.yaml"
            skysim.write_text(yaml.safe_dump(settings, sort_keys=False))
            child.env[SKYSIM_CONFIG_ENV] = str(skysim)
        if self.demo is not None:  # drivers keep settings and park data in ~/.indi: not the user's for a demo
            home = self.run_dir / "indi-home"
            home.mkdir(parents=True, exist_ok=True)
            child.env["HOME"] = str(home)
        child.after_start = lambda: self._start_named_drivers(fifo, named)
        self._spawn(child)
        self.infrastructure.append(child)
        if not wait_port(indi.host, indi.port, 10):
            raise RuntimeError(f"indiserver did not start on port {indi.port}; see {child.log_path}")
        log.info("started indiserver on port %s with %s", indi.port, ", ".join(e.label for e in indi.local_drivers))

    def _start_named_drivers(self, fifo: Path, drivers: list[IndiLocalDriver]) -> None:
        """Load drivers under their own device names through indiserver's control FIFO."""
        if not drivers:
            return
        if not wait_port(self.config.indi.host, self.config.indi.port, 10):
            log.error("indiserver is not listening; drivers %s not started", ", ".join(d.label for d in drivers))
            return
        lines = "".join(f'start {entry.driver} -n "{entry.name}"\n' for entry in drivers)
        deadline = time.monotonic() + 10
        while True:
            try:  # non-blocking: fails (ENXIO) while indiserver has not opened its end
                descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as error:
                if time.monotonic() > deadline:
                    log.error("cannot start %s through %s: %s", ", ".join(d.label for d in drivers), fifo, error)
                    return
                time.sleep(0.2)
        try:
            os.write(descriptor, lines.encode())
        finally:
            os.close(descriptor)
        log.info("started %s", ", ".join(d.label for d in drivers))

    # --- services ----------------------------------------------------------------
    def service_argv(self, name: str) -> list[str]:
        argv = self.installed[name].main_argv("run", "--log-format", "text")
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        return argv

    def start_services(self) -> None:
        for name in self.services:
            child = Child(name, self.service_argv(name), self.log_dir / f"{name}.log")
            self._spawn(child)
            self.children.append(child)

    def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        child.process = subprocess.Popen(
            tied_to_launcher(child.argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **child.env} if child.env else None,
        )
        threading.Thread(target=self._pump, args=(child, child.process.stdout), daemon=True).start()
        if child.after_start is not None:
            threading.Thread(target=child.after_start, name=f"{child.name}-after-start", daemon=True).start()

    def _pump(self, child: Child, stream: IO[bytes] | None) -> None:
        """Copy a child's output to its log file and, prefixed with its name, to the terminal."""
        if stream is None:
            return
        with child.log_path.open("ab") as logfile:
            for line in iter(stream.readline, b""):
                logfile.write(line)
                logfile.flush()
                if child in self.children:
                    with self._echo_lock:
                        sys.stdout.write(f"{child.name:>11} | {line.decode(errors='replace')}")
                        sys.stdout.flush()

    def supervise_once(self) -> None:
        now = time.monotonic()
        for child in self.infrastructure + self.children:
            proc = child.process
            if proc is None:
                if not child.gave_up and now >= child.next_start:
                    log.info("restarting %s", child.name)
                    self._spawn(child)
                continue
            code = proc.poll()
            if code is None:
                continue
            child.process = None
            if code == EXIT_CONFIG:
                self.fatal = f"{child.name} rejected the configuration (see above); stopping"
                return
            while child.restarts and now - child.restarts[0] > RESTART_WINDOW_S:
                child.restarts.popleft()
            if len(child.restarts) >= MAX_RESTARTS:
                child.gave_up = True
                log.error(
                    "%s exited with status %s and was restarted %d times in 10 min; giving up",
                    child.name,
                    code,
                    MAX_RESTARTS,
                )
                continue
            delay = 2.0 ** len(child.restarts)
            child.restarts.append(now)
            child.next_start = now + delay
            log.warning("%s exited with status %s; restarting in %.0f s", child.name, code, delay)

    def request_stop(self, *_: object) -> None:
        """SIGTERM/SIGINT: stop; a second one while stopping is passed on, so the MCP exits at once."""
        if self.stopping.is_set():
            for child in self.children:
                if child.process is not None and child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
        self.stopping.set()

    def stop(self) -> None:
        """Stop the MCP first, then the other services, then the broker and indiserver.

        The MCP closes the roof before it exits (``mcp.shutdown_close_timeout``): it goes
        alone and first, while the weather service, the broker and indiserver still run, and
        gets that long (plus the usual grace) before it is killed.
        """
        self.stopping.set()
        mcp = [child for child in self.children if child.name == "mcp"]
        services = [child for child in self.children if child.name != "mcp"]
        mcp_grace = self.config.mcp.shutdown_close_timeout + STOP_GRACE_S
        for group, grace in ((mcp, mcp_grace), (services, STOP_GRACE_S), (self.infrastructure, STOP_GRACE_S)):
            self._stop_group(group, grace)

    @staticmethod
    def _stop_group(group: list[Child], grace: float) -> None:
        for child in group:
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + grace
        for child in group:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.name, grace)
                child.process.kill()
                child.process.wait(5)

    def run(self) -> int:
        for directory in (self.log_dir, self.run_dir, self.config.data_dir):
            directory.mkdir(parents=True, exist_ok=True)
        try:
            self.ensure_broker()
            self.ensure_indiserver()
        except RuntimeError as exc:
            log.error("%s", exc)
            self.stop()
            return 1
        if self.demo is not None:
            self._clear_the_demo_bus()
        if self.demo is not None and not (self._create_demo_account() and self._start_the_demo_night()):
            self.stop()
            return 1
        if self.demo is not None and self.demo.kstars:
            self._start_kstars()
        undecided = "mcp" in self.services and self.demo is None and not self.config.mcp_state_file().exists()
        self.start_services()
        web = self.config.web
        host = "127.0.0.1" if web.host in ("0.0.0.0", "::") else web.host
        dashboard = f"http://{host}:{web.port}/"
        if self.demo is not None:
            threading.Thread(target=self._demo_ready, args=(dashboard,), name="demo-setup", daemon=True).start()
        elif "web" in self.services:
            print(f"\nOBSY is starting. Dashboard: {dashboard}   Logs: {self.log_dir}/", flush=True)
            config_arg = f" --config {self.config_path}" if self.config_path else ""
            obsy_web = Path(sys.executable).parent / "obsy-web"
            print(f"First time? Create your account: {obsy_web} create-admin YOURNAME{config_arg}\n", flush=True)
        if undecided:
            print(
                "The MCP has no saved operator decision: it opens nothing by itself until an operator decides "
                "(Start night on the dashboard or in Home Assistant) or the next night begins. Before a start, "
                f"{Path(sys.executable).parent / 'obsy-mcp'} decision --mode auto --night start"
                f"{f' --config {self.config_path}' if self.config_path else ''} does the same.\n",
                flush=True,
            )
        print(f"Services: {', '.join(self.services)}. Logs: {self.log_dir}/. Press Ctrl-C to stop.\n", flush=True)
        while not self.stopping.wait(0.5):
            self.supervise_once()
            if self.fatal:
                log.error("%s", self.fatal)
                self.stop()
                return EXIT_CONFIG
        self.stop()
        return 0

    # --- demo ----------------------------------------------------------------------
    def _clear_the_demo_bus(self) -> None:
        """A new demo, a new bus: the retained messages of an earlier demo go (:mod:`obsy_local.demo.retained`)."""
        from obsy_local.demo.retained import clear_retained

        broker = self.config.broker
        try:
            topics = clear_retained(broker)
        except (OSError, TimeoutError) as error:
            log.warning("the retained messages of an earlier demo under %s/ stay: %s", broker.prefix, error)
            return
        if topics:
            log.info("deleted %d retained messages of an earlier demo under %s/", len(topics), broker.prefix)

    def _create_demo_account(self) -> bool:
        """The demo's operator account, in the demo's fresh database (``obsy-web create-user``)."""
        assert self.demo is not None
        args = ["create-user", self.demo.username, "--role", "operator", "--password-stdin"]
        return self._service_command("web", args, "create the demo account", stdin=self.demo.password + "\n")

    def _start_the_demo_night(self) -> bool:
        """The demo's operator lets the MCP run tonight (``obsy-mcp decision --mode auto --night start``).

        Without a saved decision the MCP opens nothing by itself (docs/mcp.md).
        """
        if "mcp" not in self.services:
            return True
        args = ["decision", "--mode", "auto", "--night", "start"]
        return self._service_command("mcp", args, "give the MCP the demo's decision")

    def _service_command(self, name: str, args: list[str], what: str, *, stdin: str | None = None) -> bool:
        """A one-off command of a service (its console script ``obsy-<name> ...``) with the demo's config."""
        if name not in self.installed:
            log.error("cannot %s: the %s service is not installed here", what, name)
            return False
        argv = self.installed[name].main_argv(*args, "--config", str(self.config_path))
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log.error("cannot %s: %s", what, (result.stderr or result.stdout).strip())
            return False
        return True

    def _start_kstars(self) -> None:
        """A private session bus and KStars headless on it; Ekos is prepared once KStars is up."""
        from obsy_local.demo import kstars

        bus = Child("dbus", kstars.dbus_argv(self.run_dir), self.log_dir / "dbus.log")
        (self.run_dir / "kstars-bus").unlink(missing_ok=True)
        self._spawn(bus)
        self.infrastructure.append(bus)
        deadline = time.monotonic() + 10
        while not (self.run_dir / "kstars-bus").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Ekos gets a server of its own that relays only the mount, the main camera and its wheel from
        # ours: on the full server it would take the roof and weather too, and park the roof itself.
        indi = self.config.indi
        relay_port = free_port()
        ekos = self.config.scheduler.ekos
        ekos_devices = [self.config.mcp.devices.mount, ekos.camera, ekos.filter_wheel]
        relayed = [f"{device}@{indi.host}:{indi.port}" for device in ekos_devices if device]
        argv = [str(self.run_dir / INDISERVER_PROCESS_NAME), "-u", str(self.run_dir / "indiserver-ekos.sock")]
        relay = Child("indiserver-ekos", [*argv, "-p", str(relay_port), *relayed], self.log_dir / "indiserver-ekos.log")
        self._spawn(relay)
        self.infrastructure.append(relay)
        kstars.write_location(self.run_dir, self.config.site)
        if self.config.scheduler.ekos.calibration.camera_shutter:
            kstars.write_shutterful_camera(self.run_dir, self.config.scheduler.ekos.camera)
        app = Child("kstars", ["kstars"], self.log_dir / "kstars.log", env=kstars.kstars_env(self.run_dir))
        app.after_start = lambda: kstars.prepare_ekos(self.run_dir, "127.0.0.1", relay_port)
        self._spawn(app)
        self.infrastructure.append(app)
        log.info("started KStars headless (log: %s); Ekos opens once it has loaded", app.log_path)

    def _demo_ready(self, dashboard: str) -> None:
        """Once the web service answers: demo targets through its API, then the script for the user."""
        from obsy_local.demo.science import target_bodies
        from obsy_local.demo.script import demo_script
        from obsy_local.demo.targets import (
            DemoSetupError,
            WebSession,
            catalogue_bodies,
            create_targets,
            high_targets,
            wait_for_web,
        )

        assert self.demo is not None
        site = self.config.site
        base = dashboard.rstrip("/")
        created: list[str] = []
        if self.demo.science is not None:
            bodies = target_bodies(self.demo.science)
        else:
            bodies = catalogue_bodies(high_targets(site.latitude, site.longitude, datetime.now(UTC)))
        try:
            wait_for_web(base, 180)
            session = WebSession(base)
            session.login(self.demo.username, self.demo.password)
            created = create_targets(session, bodies)
            log.info("demo targets created through the web API: %s", ", ".join(created) or "none")
        except DemoSetupError as error:
            log.error("demo setup: %s", error)
        for note in self.demo.notes:
            log.warning("%s", note)
        weather = f"{Path(sys.executable).parent / 'obsy-weather'} simulate --config {self.config_path}"
        with self._echo_lock:
            print(demo_script(self.demo, dashboard, weather, created), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="obsy-local", description="Run every OBSY service on this machine.")
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--only", help="comma-separated services to start (default: every enabled one)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the demonstration: simulators at a site where it is night now, demo targets and account, "
        "'make it rain' (the demo: section of the config adjusts it)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s  obsy-local: %(message)s", datefmt="%H:%M:%S"
    )
    demo = None
    try:
        if args.demo:
            from obsy_local.demo.setup import prepare_demo

            demo = prepare_demo(args.config)
            config = demo.config
        else:
            config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-local"), file=sys.stderr)
        return EXIT_CONFIG
    try:
        installed = registered_services()
    except ServiceRegistryError as exc:
        print(f"obsy-local: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    unknown = sorted(set(only or ()) - {s.name for s in installed})
    if unknown:
        names = ", ".join(s.name for s in installed)
        print(f"obsy-local: not installed here: {', '.join(unknown)} (installed: {names})", file=sys.stderr)
        return EXIT_CONFIG
    launcher = Launcher(config, config.source_file, only=only, demo=demo, installed=installed)
    signal.signal(signal.SIGTERM, launcher.request_stop)
    signal.signal(signal.SIGINT, launcher.request_stop)
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())
