"""The whole observatory for the end-to-end test: one config file, six service processes.

Each service runs from its console script (``obsy-<name> run --config <file>``), as a user
starts it, with its output in ``<log_dir>/<name>.log``. The servers around them come from
the other test helpers (Mosquitto, indiserver, KStars, Postgres); :func:`gather_logs` copies
their logs next to the services' so that one folder tells the whole story of a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from obsy.config import SERVICE_NAMES
from obsy.topics import Topics
from tests.support.configs import write_config
from tests.support.indiserver import CCD, ROOF, TELESCOPE, WEATHER
from tests.support.mcp_harness import states
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

#: The sky simulator's allsky camera (services/skysim), which renders the real sky for the site.
SKYSIM_ALLSKY = Path(sys.executable).with_name("indi_obsy_allsky")
ALLSKY_CAMERA = "SkySim Allsky"
HEARTBEAT_S = 2.0
WEATHER_SAFE_DELAY_S = 20.0
#: A short allsky exposure through a faster lens: the same frame as the demo's 15 s exposure at
#: the simulator's default zero point (10^(0.4 * 2.2) = 7.6 times the light), in 2 s.
ALLSKY_EXPOSURE_S = 2.0
SKYSIM_ZERO_POINT = 12.0 + 2.2
#: The overlay drawn on the allsky frames: clouddetect judges the picture without it (clean_url).
ALLSKY_PIPELINE = {
    "finish": [
        {"stage": "white_balance", "method": "gray_world"},
        {"stage": "stretch", "method": "auto"},
        {"stage": "mask"},
        {"stage": "overlay", "show": ["time", "exposure", "sun_moon"], "cardinals": True},
    ]
}


def skysim_available() -> bool:
    return SKYSIM_ALLSKY.exists()


def write_skysim_settings(path: Path, site: dict[str, Any]) -> Path:
    """The sky simulator's settings file for ``site``; indiserver passes OBSY_SKYSIM_CONFIG on to it."""
    settings = {
        "allsky": {
            "device": ALLSKY_CAMERA,
            "site": {"latitude": site["latitude"], "longitude": site["longitude"], "elevation": site["elevation"]},
            "sensor": {"width": 1280, "height": 960, "pixel_um": 3.75, "bayer": "RGGB"},
            "optics": {"zero_point": SKYSIM_ZERO_POINT},
        }
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


#: The telescope in front of the sky simulator's main camera (its ``camera.telescope`` settings).
MAIN_TELESCOPE = {"focal_length_mm": 500.0, "limiting_magnitude": 15.0}


def write_main_camera_settings(
    path: Path, site: dict[str, Any], sensor: dict[str, Any], *, mount: str, device: str = "SkySim Camera", **more: Any
) -> Path:
    """The sky simulator's main camera (behind the telescope ``mount``) added to its settings file at ``path``
    (made with the allsky camera's by :func:`write_skysim_settings` when missing); ``more``: other keys of
    its ``camera`` section (``scenario``, ``clouds_from``...)."""
    if not path.exists():
        write_skysim_settings(path, site)
    settings = yaml.safe_load(path.read_text())
    settings["camera"] = {
        "device": device,
        "site": settings["allsky"]["site"],
        "sensor": sensor,
        "telescope": MAIN_TELESCOPE,
        "mount_device": mount,
        **more,
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def console_script(name: str) -> str:
    """``obsy-<name>`` of the environment running the tests (the venv's bin), else from PATH."""
    beside = Path(sys.executable).with_name(f"obsy-{name}")
    if beside.exists():
        return str(beside)
    found = shutil.which(f"obsy-{name}")
    if found is None:
        raise FileNotFoundError(f"console script obsy-{name} is not installed (pip install -e services/{name})")
    return found


def night_config(
    workdir: Path,
    broker: MosquittoBroker,
    *,
    site: dict[str, Any],
    indi_port: int,
    database_url: str,
    web_port: int,
    kstars_bus: str,
    ekos_profile: str,
    allsky_interval_s: float = 8.0,
) -> Path:
    """The one config file every service reads: short intervals so that a night fits in minutes.

    ``allsky_interval_s``: seconds between allsky frames (each one rendered, developed, judged and stored).
    """
    beat = {"heartbeat_interval": HEARTBEAT_S, "log_level": "INFO"}
    (workdir / "run").mkdir(parents=True, exist_ok=True)  # heartbeat files for healthchecks
    return write_config(
        workdir,
        broker,
        site=site,
        indi={"host": "127.0.0.1", "port": indi_port, "connect_timeout": 10},
        database={"url": database_url},
        homeassistant={"enabled": True},
        run_dir=str(workdir / "run"),
        log_format="text",
        weather={
            **beat,
            "safe_delay": WEATHER_SAFE_DELAY_S,
            "publish_interval": 2,
            "sources": [{"type": "indi", "name": "simulator", "device": WEATHER, "poll_interval": 1, "max_age": 30}],
        },
        allsky={
            **beat,
            "camera": {"device": ALLSKY_CAMERA, "interval_s": allsky_interval_s, "readout_margin_s": 20},
            # One exposure all night, as in the demo: clouddetect's learnt zero point fits it.
            "exposure": {"auto": False, "fixed_exposure_s": ALLSKY_EXPOSURE_S},
            "pipeline": ALLSKY_PIPELINE,
            "image_width": 320,
        },
        clouddetect={**beat, "debounce_frames": 1, "max_frame_age": 120},
        scheduler={
            **beat,
            "grid_step_s": 60,
            "switch_gap_s": 0,
            "switch_overhead_s": 10,
            "constraints": {"min_altitude": 20, "twilight": "astronomical", "min_time_on_target_min": 1},
            "ekos": {
                "profile": ekos_profile,
                "camera": CCD,
                "filter_wheel": CCD,
                "startup": "asap",
                "completion": "sequence",
                "steps": ["Track"],
                "startup_procedure": ["UnparkMount"],
                "shutdown_procedure": [],
                "enforce_weather": False,
            },
        },
        mcp={
            **beat,
            "required_services": ["weather"],
            "require_clear_sky": True,  # the sky simulator's frames: clouddetect judges them
            "startup_grace": 10,
            "safe_delay": 0,  # the weather service's own safe delay is the one under test
            "evaluate_interval": 0.5,
            "devices": {"roof": ROOF, "mount": TELESCOPE, "retries": 1, "retry_delay": 1, "roof_timeout": 60},
            "ekos": {"enabled": True, "bus_address": kstars_bus, "profile": ekos_profile, "stop_timeout": 20},
            "supervision": {"enabled": False},
        },
        web={**beat, "port": web_port, "command_timeout": 10},
    )


def service_environment() -> dict[str, str]:
    """The test's environment without OBSY_* variables: the config file alone configures the night.

    (Every OBSY_<SECTION>__<KEY> overrides the config, and an unknown one stops a service.)
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("OBSY_")}
    # PYTHONFAULTHANDLER: a service that does not stop is sent SIGABRT before it is killed, and writes
    # every thread's stack into its log (ServiceProcesses.stop): where it hung, even in C code.
    return {**env, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}


class ServiceProcesses:
    """The six services as separate processes; ``stop()`` ends them with SIGTERM as a supervisor would."""

    def __init__(self, config_path: Path, log_dir: Path) -> None:
        self.config_path = config_path
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def run_command(self, name: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """A one-off command of a service (``obsy-web create-user ...``), its output in the log folder."""
        command = [console_script(name), *args, "--config", str(self.config_path)]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=120, check=False, env=service_environment()
        )
        with self.log_path(f"{name}-{args[0]}").open("a") as log:
            log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}(exit {result.returncode})\n")
        return result

    def start(self, *names: str) -> None:
        for name in names or SERVICE_NAMES:
            log = self.log_path(name).open("ab")
            self.processes[name] = subprocess.Popen(
                [console_script(name), "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=service_environment(),
                start_new_session=True,
            )
            log.close()

    def check_running(self) -> None:
        """Fail with the log's tail when a service has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = log_tails(self.log_dir, name, lines=20)
                raise AssertionError(f"obsy-{name} exited with status {process.returncode}:{tail}")

    def stop(self, timeout: float = 30.0, mcp_timeout: float = 200.0) -> dict[str, int | None]:
        """SIGTERM to every service, the MCP first; returns the exit codes (None: had to be killed, after a
        SIGABRT that wrote its threads' stacks into its log).

        The MCP goes first because it treats the others going away as unsafe and would begin
        closing the roof while being stopped itself. Stopped with the roof open in auto mode it
        runs the closing order before it exits (at most 180 s, docs/mcp.md), so it gets longer.
        """
        codes: dict[str, int | None] = {}
        first = [name for name in self.processes if name == "mcp"]
        rest = [name for name in self.processes if name not in first]
        for group, allowed in ((first, mcp_timeout), (rest, timeout)):
            for name in group:
                if self.processes[name].poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        self.processes[name].send_signal(signal.SIGTERM)
            deadline = time.monotonic() + allowed
            for name in group:
                codes[name] = self._wait(self.processes[name], deadline)
        return codes

    @staticmethod
    def _wait(process: subprocess.Popen[bytes], deadline: float) -> int | None:
        try:
            return process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGABRT)  # its threads' stacks into its log (PYTHONFAULTHANDLER)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
            return None


def gather_logs(log_dir: Path, **logs: Path) -> None:
    """Copy the servers' logs (``indiserver=path, ...``) into the services' log folder."""
    for name, path in logs.items():
        if path.exists():
            shutil.copyfile(path, log_dir / f"{name}.log")


@contextlib.contextmanager
def logs_named_on_failure(log_dir: Path, **logs: Path) -> Iterator[None]:
    """Any failure inside names the folder holding every log, gathered there first.

    (pytest's own outcomes, a skip for example, are BaseExceptions and pass through untouched.)
    """
    try:
        yield
    except Exception as error:
        gather_logs(log_dir, **logs)
        raise AssertionError(
            f"{type(error).__name__}: {error}\n{log_tails(log_dir, *TOLD_ON_FAILURE)}\n"
            f"Logs of every service, indiserver, KStars and Mosquitto: {log_dir}"
        ) from error


#: The services whose last log lines a failure prints (the rest stay in the log folder): what the MCP
#: decided, and what the scheduler planned, say most about a night that did not go as expected.
TOLD_ON_FAILURE = ("mcp", "scheduler")


def log_tails(log_dir: Path, *names: str, lines: int = 8, warnings: int = 6) -> str:
    """Each service's last ``warnings`` warnings and errors and its last ``lines`` lines, from ``log_dir``, for
    a failure's message (the CI's printout may be all there is of a run on another machine, and a step's
    failure is often further back than the last lines)."""
    told = []
    for name in names:
        path = log_dir / f"{name}.log"
        if not path.exists():
            continue
        all_lines = path.read_text(errors="replace").splitlines()
        tail = all_lines[-lines:]
        earlier = [line for line in all_lines[: len(all_lines) - len(tail)] if re.search(r" (WARNING|ERROR) ", line)]
        if earlier:
            told.append(f"\n--- {name}.log's last warnings and errors\n" + _shown(earlier[-warnings:]))
        told.append(f"\n--- the end of {name}.log\n" + _shown(tail))
    return "".join(told)


def _shown(lines: list[str]) -> str:
    return "\n".join(line[:300] for line in lines)


def wait_until(check, timeout: float, what: str | Callable[[], str], interval: float = 0.5):
    """``check()``'s first true answer, polled; TimeoutError naming ``what`` after ``timeout`` seconds.

    ``what`` may be a function: it is asked at the timeout, so the message tells how things stood then.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what() if callable(what) else what}: not within {timeout:.0f} s")
        time.sleep(interval)


def wait_new_state(watcher: Watcher, after: int, predicate, timeout: float) -> dict[str, Any]:
    """The first MCP state published after the first ``after`` ones that matches."""

    def new_matches() -> list[dict[str, Any]]:
        return [s for s in states(watcher, Topics())[after:] if predicate(s)]

    watcher.wait_for(lambda _messages: bool(new_matches()), timeout)
    return new_matches()[0]


class Database:
    """Read-only questions to the web service's Postgres database."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql, params).fetchall()

    def count(self, table: str) -> int:
        return self.rows(f"SELECT count(*) FROM {table}")[0][0]

    def close(self) -> None:
        self.connection.close()


def folder(path: Path) -> Path:
    """``path``, made if missing."""
    path.mkdir(parents=True, exist_ok=True)
    return path


class PhaseClock:
    """Wall-clock duration of each phase of the night, printed at the end (never asserted)."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self._started = time.monotonic()
        self._phase_started = self._started

    def done(self, phase: str) -> float:
        now = time.monotonic()
        self.durations[phase] = now - self._phase_started
        self._phase_started = now
        return self.durations[phase]

    def report(self) -> str:
        width = max((len(p) for p in self.durations), default=0)
        lines = [f"  {phase:<{width}}  {seconds:6.1f} s" for phase, seconds in self.durations.items()]
        lines.append(f"  {'total':<{width}}  {time.monotonic() - self._started:6.1f} s")
        return "phase durations of the night:\n" + "\n".join(lines)
