"""A real indiserver with simulator drivers on a free loopback port, for the tests.

Each server gets its own working directory as ``HOME`` (INDI drivers keep their config and
park data in ``~/.indi``), its own control FIFO and its own local socket name: indiserver
1.9 also listens on an abstract unix socket, ``/tmp/indiserver`` unless told otherwise, and
a second server with the default name exits at once with "bind: Address already in use".

The server runs under another process name (a symlink, see ``PROCESS_NAME``): KStars runs
``pkill indiserver`` when it exits, which would take down every test server on the machine
while a KStars test runs beside these.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from obsy.config import IndiServerConfig
from tests.support.ports import free_port, wait_for_port, wait_port_closed

PROCESS_NAME = "obsy-indi-server"  # must not contain "indiserver", see the module docstring

# Device names the simulator drivers of INDI 1.9 define.
TELESCOPE = "Telescope Simulator"  # indi_simulator_telescope
CCD = "CCD Simulator"  # indi_simulator_ccd
ROOF = "RollOff Simulator"  # indi_rolloff_dome
DOME = "Dome Simulator"  # indi_simulator_dome
WEATHER = "Weather Simulator"  # indi_simulator_weather


#: Where the telescope simulator keeps its park position in ParkData.xml: the pole (any right ascension).
POLE_PARK = ("0.0", "90.0")


def write_park_data(home: Path, parked: Mapping[str, bool]) -> None:
    """``~/.indi/ParkData.xml`` under ``home``: each device of ``parked`` parked (a roll-off roof closed) or not.

    INDI's drivers read it when they start, so the simulators start where a test begins, with no
    travel: without it the roll-off simulator starts open and settles for seconds, closing it takes
    its 10 s of travel and parking the telescope simulator 5 s more (each test paid up to 16 s).
    The telescope's park position is the pole (:data:`POLE_PARK`). The drivers rewrite the file as
    they park and unpark, so a restarted server starts where the last one left them.
    """
    devices = []
    for name, is_parked in parked.items():
        position = ""
        if name == TELESCOPE:
            axis1, axis2 = POLE_PARK
            position = (
                f"<parkposition><axis1position>{axis1}</axis1position>"
                f"<axis2position>{axis2}</axis2position></parkposition>"
            )
        devices.append(f'<device name="{name}"><parkstatus>{str(is_parked).lower()}</parkstatus>{position}</device>')
    folder = Path(home) / ".indi"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ParkData.xml").write_text(f"<parkdata>{''.join(devices)}</parkdata>\n")


def devices_at_start(*, roof_open: bool, mount_parked: bool) -> dict[str, bool]:
    """The ``parked`` of :class:`IndiServer` for a roof open or closed and a mount parked (at the pole) or not
    (then as the telescope simulator starts without park data: unparked, its park position HA -6 h, Dec 0)."""
    return {ROOF: not roof_open, **({TELESCOPE: True} if mount_parked else {})}


def find_executable(name: str) -> str | None:
    """Full path of an INDI executable: on PATH, or where distributions install them."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/bin", "/usr/local/bin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_executables(drivers: Iterable[str]) -> list[str]:
    return [name for name in ("indiserver", *drivers) if find_executable(name) is None]


def require_indi(drivers: Iterable[str] = ()) -> None:
    """Skip the calling test (or module, at import time) when indiserver or a driver is missing."""
    missing = missing_executables(drivers)
    if missing:
        pytest.skip(
            f"INDI not installed: {', '.join(missing)} not found (install the indi-bin package)",
            allow_module_level=True,
        )


def pyindi_available() -> bool:
    try:
        import PyIndi  # noqa: F401
    except ImportError:
        return False
    return True


class IndiServer:
    """One indiserver process; ``stop()``/``start()``/``restart()`` keep the port and the workdir.

    ``parked``: where the roof and the mount start (:func:`write_park_data`), device name -> parked.
    """

    def __init__(
        self,
        workdir: Path,
        drivers: list[str],
        port: int | None = None,
        env: dict[str, str] | None = None,
        parked: Mapping[str, bool] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.env = dict(env or {})  # added to the drivers' environment (OBSY_SKYSIM_CONFIG, ...)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if parked:
            write_park_data(self.workdir, parked)
        self.drivers = list(drivers)
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self.log_path = self.workdir / "indiserver.log"
        self.fifo_path = self.workdir / "indi.fifo"
        # Abstract socket name (no file is created); unique per server, see the module docstring.
        self.local_socket = f"obsy-test-indi-{os.getpid()}-{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self, **overrides: object) -> IndiServerConfig:
        values: dict[str, object] = {"host": self.host, "port": self.port, "connect_timeout": 5.0}
        values.update(overrides)
        return IndiServerConfig.model_validate(values)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        require_indi(self.drivers)
        indiserver = find_executable("indiserver")
        assert indiserver is not None
        if not self.fifo_path.exists():
            os.mkfifo(self.fifo_path)
        alias = self.workdir / PROCESS_NAME
        if not alias.is_symlink():
            alias.symlink_to(indiserver)
        drivers = [find_executable(d) or d for d in self.drivers]
        command = [str(alias), "-v", "-u", self.local_socket, "-p", str(self.port), "-f", str(self.fifo_path), *drivers]
        env = {**os.environ, **self.env, "HOME": str(self.workdir)}
        with self.log_path.open("ab") as log:
            log.write(f"--- {' '.join(command)}\n".encode())
            log.flush()
            # Own session: stop() signals the whole group, drivers included.
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        try:
            wait_for_port(self.port, self.host, timeout)
        except TimeoutError as error:
            code = self.process.poll()
            self.stop()
            raise RuntimeError(
                f"indiserver did not start (exit code {code}); see {self.log_path}:\n{self.log()}"
            ) from error

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with_group(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with_group(process, signal.SIGKILL)
                process.wait(5)
        # Drivers see EOF on stdin when indiserver exits; make sure none outlives it.
        with_group(process, signal.SIGKILL)
        wait_port_closed(self.port, self.host, timeout)

    def restart(self) -> None:
        """Stop and start again on the same port (drivers restart with fresh state)."""
        self.stop()
        self.start()

    def start_driver(self, driver: str) -> None:
        """Load another driver into the running server through its FIFO."""
        self._fifo(f"start {driver}")

    def stop_driver(self, driver: str) -> None:
        self._fifo(f"stop {driver}")

    def driver_pid(self, driver: str) -> int:
        """The process id of a running driver of this server (to stop or kill it in a test)."""
        if self.process is None:
            raise RuntimeError("indiserver is not running")
        path = find_executable(driver) or driver
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
                if parent == self.process.pid and command in (driver, path):
                    return int(entry.name)
        raise LookupError(f"no running driver {driver} under indiserver {self.process.pid}")

    def getprop(self, name: str, timeout: float = 2) -> dict[str, str]:
        """``indi_getprop`` of ``name`` ("Device.PROPERTY.ELEMENT", ``*`` for any part) on this server:
        {element: value} of what it printed (empty when the property is not there within ``timeout``)."""
        found = subprocess.run(
            ["indi_getprop", "-h", self.host, "-p", str(self.port), "-t", str(timeout), name],
            check=False,
            capture_output=True,
            text=True,
        ).stdout
        pairs = (line.partition("=") for line in found.splitlines() if "=" in line)
        return {key.rsplit(".", 1)[-1]: value for key, _, value in pairs}

    def wait_devices(self, devices: Iterable[str], timeout: float = 120.0) -> None:
        """Every one of ``devices`` defined on this server (its CONNECTION property), waiting for it.

        Start Ekos only after this, as one would after switching the equipment on: on a profile without
        optical trains, KStars makes them once, from the devices it knows at that moment, and a camera
        whose driver registers later (a Python driver starts slowly on a loaded machine) is then in no
        train, so Ekos' capture module can never be put on it.
        """
        deadline = time.monotonic() + timeout
        missing = list(devices)
        while missing:
            missing = [device for device in missing if not self.getprop(f"{device}.CONNECTION.*", timeout=1)]
            if missing and time.monotonic() > deadline:
                raise TimeoutError(
                    f"indiserver on {self.port} has no device {', '.join(missing)} after {timeout:.0f} s; "
                    f"its log ends:\n{self.log()[-3000:]}"
                )

    def setprop(self, assignment: str) -> None:
        """``indi_setprop`` of ``assignment`` ("Device.PROPERTY.ELEMENT=value") on this server."""
        subprocess.run(["indi_setprop", "-h", self.host, "-p", str(self.port), assignment], check=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _fifo(self, line: str) -> None:
        if not self.running:
            raise RuntimeError("indiserver is not running")
        with self.fifo_path.open("w") as fifo:
            fifo.write(line + "\n")

    def __enter__(self) -> IndiServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def module_server(drivers: Iterable[str], name: str = "indi") -> Any:
    """A module-scoped fixture ``name`` of one :class:`IndiServer` with ``drivers`` on a free port (the
    test skips where one is missing), e.g. ``indi = module_server(DRIVERS)`` in a test module."""
    drivers = list(drivers)

    @pytest.fixture(scope="module", name=name)
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndiServer]:
        require_indi(drivers)
        with IndiServer(tmp_path_factory.mktemp(name), drivers) as running:
            yield running

    return server


def with_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``process`` (it was started in its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
