"""A real KStars/Ekos (Debian package ``kstars``, 3.6), headless, driven over its own D-Bus session.

KStars runs with ``QT_QPA_PLATFORM=offscreen`` inside ``dbus-run-session`` (a private
session bus that ends with it), with HOME and the XDG directories inside a work
directory, so it starts from a clean configuration and never touches the user's.
The D-Bus client is OBSY's own (:mod:`obsy.kstars.dbus`, jeepney), the one the MCP uses; the
profile and settings writers are :mod:`obsy.kstars.profile` and :mod:`obsy.kstars.settings`.

API::

    ks = KStars(tmp_path)                 # nothing runs yet
    ks.start()                            # KStars up, /KStars on the bus (first run creates its user DB)
    ks.set_location("Vienna", "", "Austria")
    ks.location()                         # KStars' location: name, latitude, longitude, tz0, tz (its UTC offset now)
    ks.start_ekos(drivers=("Telescope Simulator", "CCD Simulator"))
                                          # adds an "OBSY test" Ekos profile with those drivers
                                          # to the user DB, opens Ekos, starts INDI and
                                          # waits until Ekos reports the devices connected
                                          # (indi_server=(host, port): Ekos uses that server
                                          # instead of starting its own)
    ks.load_schedule(path)                # Scheduler.loadScheduler over D-Bus -> bool
    ks.wait_for_log(r"regex", timeout)    # a line of KStars' log (stderr) matching regex
    ks.log_text()                         # the whole log so far
    ks.start_scheduler(); ks.scheduler_status()
    ks.call(path, interface, method, signature, *args)   # any D-Bus method
    ks.get_property(path, interface, name)
    ks.reconnect_ekos()                   # Ekos and its devices up again (a finished schedule stops INDI)
    ks.stop()                             # ends KStars, its indiserver and the session bus

    with ekos_running(workdir, drivers, indi=server, city=VIENNA_CITY) as ks:
        ...                               # all of the above in one: started, located, Ekos up

Why the extra profile: KStars creates one Ekos profile, "Simulators", on first run; with
exactly one profile Ekos opens a modal profile wizard (which blocks headless); with two
it does not. The profile is written to the user DB (SQLite) before Ekos is opened, which
is when Ekos reads its profiles. (KStars 3.6 starts the local indiserver of a profile on
its server port setting, 7624 by default, not on the profile's port: do not run another
indiserver on 7624 alongside this harness.)

KStars' scheduler debug output is switched on
(``QT_LOGGING_RULES=org.kde.kstars.ekos.*.debug=true``): loadScheduler returns true
even for a file it could not use, so tests read the log to see what Ekos really did.
Ekos' own messages ("Job 'X' is loaded...") come through the ``logText`` properties of
the modules, available with :meth:`module_log`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from astropy.io import fits

from obsy.kstars.dbus import DBusError, KStarsBus, WaitTimeoutError, wait_until
from obsy.kstars.paths import (
    CLOCK,
    CLOCK_PATH,
    EKOS,
    EKOS_PATH,
    KSTARS,
    KSTARS_PATH,
    MAIN_WINDOW,
    SCHEDULER,
    SCHEDULER_PATH,
    Communication,
)
from obsy.kstars.profile import ProfileError, user_db_path, write_profile
from obsy.kstars.settings import headless_env, kstarsrc, write_settings

if TYPE_CHECKING:
    from tests.support.indiserver import IndiServer

PROFILE = "OBSY test"
#: Vienna, a city of KStars' own list, as :meth:`KStars.set_location` takes it (city, province, country).
VIENNA_CITY = ("Vienna", "", "Austria")


#: Exit statuses of a KStars that crashed (SIGSEGV through the shell, or the signal itself).
CRASHED = (139, -11)


def written_frames(directory: Path, settle_s: float = 1.0) -> list[tuple[Path, fits.Header]]:
    """The FITS frames Ekos has finished writing under ``directory``, with their headers, by name.

    Ekos writes a frame in place, so a file may be seen while it is still growing. A file is left
    for the next look, never read half-written, when its size falls short of its header and data,
    when it changed while its header was read, or when it was written less than ``settle_s`` ago.
    """
    frames = []
    for path in sorted(directory.rglob("*.fits")):
        try:
            before = path.stat()
            if time.time() - before.st_mtime < settle_s:
                continue
            with warnings.catch_warnings():  # astropy warns of the truncation this looks for
                warnings.simplefilter("ignore")
                header = fits.getheader(path)
            data_bytes = (
                abs(int(header["BITPIX"]))
                // 8
                * int(np.prod([header[f"NAXIS{i + 1}"] for i in range(header["NAXIS"])]))
            )
            after = path.stat()
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                continue
            if after.st_size < len(header.tostring()) + data_bytes:
                continue
        except (OSError, KeyError):
            continue
        frames.append((path, header))
    return frames


def post_capture_document(filename: object) -> dict[str, Any]:
    """What KStars 3.7+ writes on a post-capture script's standard input after saving ``filename``
    (``CameraProcess::generateScriptInput``; compact JSON, one object)."""
    return {
        "script_type": "POST_CAPTURE",
        "job": {
            "filter": "Red",
            "exposure": 60,
            "type": "Light",
            "binning_x": 1,
            "binning_y": 1,
            "target_name": "M 42",
        },
        "fits": {"filename": filename, "headers": {"OBJECT": "M 42", "EXPTIME": 60, "IMAGETYP": "Light Frame"}},
        "progress": {"completed": 1, "total": 20},
    }


class KStarsError(RuntimeError):
    pass


def kstars_available() -> bool:
    return shutil.which("kstars") is not None and shutil.which("dbus-run-session") is not None


#: Skips a test (or a module, in its ``pytestmark``) where KStars cannot run here.
requires_kstars = pytest.mark.skipif(not kstars_available(), reason="KStars (Debian package kstars) is not installed")


class KStars:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.home = self.workdir / "home"
        self.log_path = self.workdir / "kstars.log"
        self.bus_file = self.workdir / "bus-address"
        self.process: subprocess.Popen[bytes] | None = None
        self._bus: KStarsBus | None = None

    # ----------------------------------------------------------------- life cycle

    @property
    def user_db(self) -> Path:
        return user_db_path(self.home / ".local" / "share")  # XDG_DATA_HOME, as headless_env sets it

    def write_config(self, group: str, key: str, value: str) -> None:
        """An entry of KStars' own settings (``kstarsrc``), written before :meth:`start`.

        E.g. ``write_config("DarkLibrary", "shutterfulCCDs", "CCD Simulator")``: the cameras
        KStars knows to have a shutter (otherwise Ekos asks before the first dark frame).
        """
        write_settings(kstarsrc(self.home), group, {key: value})

    def start(self, timeout: float = 120.0) -> None:
        """Start KStars and wait until it has loaded. KStars 3.6.2 now and then dies of a segfault
        (status 139) while it loads its catalogues on a loaded machine: such a start is tried once more."""
        try:
            self._start_once(timeout)
        except KStarsError:
            if self.process is None or self.process.returncode not in CRASHED:
                raise
            self.stop()
            self._start_once(timeout)

    def _start_once(self, timeout: float) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.bus_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            **headless_env(self.home, self.workdir),
            "QT_LOGGING_RULES": "org.kde.kstars.ekos.*.debug=true;org.kde.kstars.indi.debug=true",
        }
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        script = f'echo "$DBUS_SESSION_BUS_ADDRESS" > "{self.bus_file}"; exec kstars'
        self.process = subprocess.Popen(
            ["dbus-run-session", "--", "sh", "-c", script],
            cwd=self.workdir,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self.bus_file.exists() and self.bus_file.read_text().strip():
                if self._bus is None:
                    self._bus = KStarsBus(self.bus_file.read_text().strip())
                try:
                    if self._bus.has_object(KSTARS_PATH):
                        break
                except DBusError:
                    pass
            time.sleep(0.5)
        else:
            raise KStarsError(f"KStars did not come up on D-Bus within {timeout:.0f} s; log: {self.log_path}")
        # /KStars is on the bus long before the data is loaded, and some calls made before
        # that crash KStars; its main window lists the "ekos" action once it is built.
        self._wait(self._ready, max(deadline - time.monotonic(), 1.0), "KStars did not finish loading")
        self._wait(self.user_db.exists, 30.0, f"KStars did not create its user DB {self.user_db}")

    def _ready(self) -> bool:
        try:
            return "ekos" in self.call(KSTARS_PATH, MAIN_WINDOW, "actions")
        except KStarsError:
            return False

    def stop(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)  # kstars, its indiserver and drivers, the bus
                self.process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise KStarsError(f"KStars exited with status {self.process.returncode}; log tail:\n{self.log_tail()}")

    # ----------------------------------------------------------------- D-Bus

    def _client(self) -> KStarsBus:
        if self._bus is None:
            raise KStarsError("KStars is not running")
        return self._bus

    def call(self, path: str, interface: str, method: str, signature: str = "", *args: Any, timeout: float = 30) -> Any:
        """Call a method; returns the reply's single value (or the tuple, or None)."""
        try:
            return self._client().call(path, interface, method, signature, *args, timeout=timeout)
        except DBusError as error:
            raise KStarsError(str(error)) from error

    def send(self, path: str, interface: str, method: str, signature: str = "", *args: Any) -> None:
        """Call a method KStars declares "no reply" (Q_NOREPLY): it never answers, so do not wait."""
        try:
            self._client().send(path, interface, method, signature, *args)
        except DBusError as error:
            raise KStarsError(str(error)) from error

    def get_property(self, path: str, interface: str, name: str) -> Any:
        try:
            return self._client().get_property(path, interface, name)
        except DBusError as error:
            raise KStarsError(str(error)) from error

    def introspect(self, path: str) -> str:
        try:
            return self._client().introspect(path)
        except DBusError as error:
            raise KStarsError(str(error)) from error

    def has_object(self, path: str) -> bool:
        try:
            return self._client().has_object(path)
        except DBusError:
            return False

    # ----------------------------------------------------------------- KStars and Ekos

    def set_location(self, city: str, province: str, country: str) -> None:
        if not self.call(KSTARS_PATH, KSTARS, "setGeoLocation", "sss", city, province, country):
            raise KStarsError(f"KStars does not know the city {city!r}, {province!r}, {country!r}")

    def location(self) -> dict[str, Any]:
        """KStars' location as its ``location`` D-Bus method tells it (JSON): name, province, country,
        latitude, longitude, ``tz0`` (the standard UTC offset, hours) and ``tz`` (the offset now)."""
        return json.loads(self.call(KSTARS_PATH, KSTARS, "location"))

    def set_clock(self, local: datetime, scale: float = 1.0) -> None:
        """Set KStars' clock (the time Ekos plans and checks with) to ``local``, running ``scale`` x real time.

        The time is taken in KStars' location's time zone; the simulators keep real time.
        """
        wall = local.replace(tzinfo=None)
        self.send(KSTARS_PATH, KSTARS, "setLocalTime", "iiiiii", *wall.timetuple()[:6])
        self.send(CLOCK_PATH, CLOCK, "setClockScale", "d", float(scale))
        self.send(CLOCK_PATH, CLOCK, "start")

    def reset_clock(self) -> None:
        """KStars' clock back to the real time, at real speed."""
        self.send(CLOCK_PATH, CLOCK, "setClockScale", "d", 1.0)
        self.send(KSTARS_PATH, KSTARS, "setTimeToNow")

    def add_profile(
        self,
        drivers: tuple[str, ...],
        indi_server: tuple[str, int] | None = None,
        trains: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """An Ekos profile with the given driver labels, e.g. "CCD Simulator", and optical ``trains``
        (:func:`obsy.kstars.profile.write_profile`; without them Ekos makes its own).

        Without ``indi_server`` Ekos starts its own local indiserver; with ``(host, port)``
        it connects to that server instead (a remote profile) and starts none.
        """
        try:
            write_profile(self.user_db, PROFILE, drivers, indi_server, trains)
        except ProfileError as error:
            raise KStarsError(str(error)) from error

    def start_ekos(
        self,
        drivers: tuple[str, ...] = ("Telescope Simulator", "CCD Simulator"),
        timeout: float = 120.0,
        indi_server: tuple[str, int] | None = None,
        trains: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Open Ekos on the test profile, start INDI and wait until the devices are connected."""
        self.add_profile(drivers, indi_server, trains)
        self.call(KSTARS_PATH, MAIN_WINDOW, "activateAction", "s", "ekos")
        self._wait(lambda: self.has_object(EKOS_PATH), timeout, "Ekos did not appear on D-Bus")
        profiles = self.call(EKOS_PATH, EKOS, "getProfiles")
        if PROFILE not in profiles:
            raise KStarsError(f"Ekos did not read the test profile (profiles: {profiles})")
        if not self.call(EKOS_PATH, EKOS, "setProfile", "s", PROFILE):
            raise KStarsError(f"Ekos refused profile {PROFILE!r}")
        self.call(EKOS_PATH, EKOS, "start")
        self._wait(lambda: self._status("ekosStatus") == Communication.SUCCESS, timeout, "Ekos did not start INDI")
        if self._status("indiStatus") != Communication.SUCCESS:
            self.call(EKOS_PATH, EKOS, "connectDevices")
        self._wait(
            lambda: self._status("indiStatus") == Communication.SUCCESS, timeout, "Ekos did not connect the devices"
        )
        self._wait(lambda: self.has_object(SCHEDULER_PATH), timeout, "the Ekos scheduler did not appear")

    def reconnect_ekos(self, timeout: float = 120.0) -> None:
        """Ekos started and its devices connected again: a schedule that finishes stops INDI."""
        if int(self.get_property(EKOS_PATH, EKOS, "ekosStatus")) != Communication.SUCCESS:
            self.call(EKOS_PATH, EKOS, "start")
            self._wait(lambda: self._status("ekosStatus") == Communication.SUCCESS, timeout, "Ekos did not start INDI")
        if self._status("indiStatus") != Communication.SUCCESS:
            self.call(EKOS_PATH, EKOS, "connectDevices")
        self._wait(
            lambda: self._status("indiStatus") == Communication.SUCCESS, timeout, "Ekos did not connect the devices"
        )

    def _status(self, name: str) -> int:
        status = int(self.get_property(EKOS_PATH, EKOS, name))
        if status == Communication.ERROR:
            raise KStarsError(f"Ekos reports {name} = error; log tail:\n{self.log_tail()}")
        return status

    def module_log(self, path: str, interface: str) -> list[str]:
        """The messages an Ekos module shows its user (its ``logText`` property), newest first."""
        return list(self.get_property(path, interface, "logText"))

    # ----------------------------------------------------------------- scheduler

    def load_schedule(self, path: Path) -> bool:
        return bool(self.call(SCHEDULER_PATH, SCHEDULER, "loadScheduler", "s", str(path)))

    def start_scheduler(self) -> None:
        self.call(SCHEDULER_PATH, SCHEDULER, "start")

    def stop_scheduler(self) -> None:
        self.call(SCHEDULER_PATH, SCHEDULER, "stop")

    def scheduler_status(self) -> int:
        return int(self.get_property(SCHEDULER_PATH, SCHEDULER, "status"))

    # ----------------------------------------------------------------- the log

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float = 30.0, after: int = 0) -> re.Match[str]:
        """The first match of ``pattern`` in the log (from character ``after``), waiting for it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log_text(), after)
            if found:
                return found
            self._check_alive()
            if time.monotonic() > deadline:
                raise KStarsError(f"no log line matching {pattern!r} within {timeout:.0f} s; tail:\n{self.log_tail()}")
            time.sleep(0.5)

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        try:
            wait_until(condition, timeout, what, interval=0.5, check=self._check_alive)
        except WaitTimeoutError:
            raise KStarsError(f"{what} within {timeout:.0f} s; log tail:\n{self.log_tail()}") from None

    def __enter__(self) -> KStars:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def ekos_running(
    workdir: Path,
    drivers: tuple[str, ...],
    *,
    indi: IndiServer | None = None,
    city: tuple[str, str, str] | None = VIENNA_CITY,
    settings: Mapping[tuple[str, str], str] | None = None,
    trains: Mapping[str, Mapping[str, str]] | None = None,
    devices: Iterable[str] = (),
) -> Iterator[KStars]:
    """KStars started in ``workdir`` with Ekos up on the test profile of ``drivers`` (device labels),
    stopped on leaving.

    ``indi``: the indiserver Ekos uses (a remote profile; without it Ekos starts its own on 7624).
    ``city``: KStars' location, a city of its own list (None: KStars' default). ``settings``:
    ``{(group, key): value}`` entries of ``kstarsrc`` written before the start (:meth:`KStars.write_config`).
    ``trains``: the profile's optical trains (:meth:`KStars.add_profile`). ``devices``: INDI devices of
    ``indi`` waited for before Ekos starts (:meth:`IndiServer.wait_devices`: Ekos makes its trains from the
    devices it knows then).
    """
    ks = KStars(workdir)
    for (group, key), value in (settings or {}).items():
        ks.write_config(group, key, value)
    try:
        ks.start()
        if city is not None:
            ks.set_location(*city)
        if indi is not None:
            indi.wait_devices(devices)
        ks.start_ekos(drivers=drivers, indi_server=None if indi is None else (indi.host, indi.port), trains=trains)
        yield ks
    finally:
        ks.stop()
