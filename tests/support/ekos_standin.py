"""A stand-in Ekos on a private D-Bus: KStars' interface, with a scheduler status a test sets.

The real KStars (tests/support/kstars.py) is what the MCP's Ekos control is tested
against; this stand-in is for what the real one cannot be made to do on demand: a
scheduler that aborts, or finishes, at the moment a test chooses. It runs its own
``dbus-daemon`` on a unix socket in a work directory, owns ``org.kde.kstars`` there and
answers the calls the MCP makes (``/KStars/Ekos``: setProfile, start, connectDevices and
the ekosStatus/indiStatus properties; ``/KStars/Ekos/Scheduler``: removeAllJobs,
loadScheduler, start, stop and the status property; ``/KStars/Ekos/Capture``: its ``camera``,
``camera`` below), recording each one, and KStars'
``location`` (in ``timezone``, the test sites' Europe/Vienna unless set; not recorded). Like
KStars (Qt), it answers introspection with its child objects and a call on a path it does not
have with ``UnknownObject``; a call named in ``unanswered`` ("Scheduler.stop") gets no reply at
all, as from a KStars that hangs. It uses jeepney, as the shared client (obsy.kstars.dbus) does.

    with EkosStandIn(tmp_path) as ekos:     # ekos.address for mcp.ekos.bus_address
        ekos.status = SchedulerStatus.ABORTED
        ekos.calls                          # ["Ekos.setProfile", "Scheduler.start", ...]
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jeepney import DBusAddress, Message, MessageType, new_error, new_method_call, new_method_return
from jeepney.io.blocking import open_dbus_connection
from jeepney.low_level import HeaderFields

from obsy.kstars.paths import (
    CAPTURE_PATH,
    EKOS,
    EKOS_PATH,
    INTROSPECTABLE,
    KSTARS_PATH,
    PROPERTIES,
    SCHEDULER,
    SCHEDULER_PATH,
    SERVICE,
    Communication,
    SchedulerStatus,
)

#: The objects the stand-in has (and their parents, for introspection).
OBJECTS = ("/", KSTARS_PATH, EKOS_PATH, SCHEDULER_PATH, CAPTURE_PATH)
#: How long the private bus and the stand-in's name on it may take to come up (a loaded machine is slow).
START_TIMEOUT_S = 30.0


def dbus_daemon_available() -> bool:
    return shutil.which("dbus-daemon") is not None


class EkosStandIn:
    def __init__(self, workdir: Path, *, started_status: SchedulerStatus = SchedulerStatus.RUNNING) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.address = f"unix:path={self.workdir / 'bus'}"
        self.status = SchedulerStatus.IDLE
        self.started_status = started_status  # what Scheduler.start turns the status into
        self.calls: list[str] = []
        self.camera = "CCD Simulator"  # the capture module's camera: the config's scheduler.ekos.camera
        self.timezone = "Europe/Vienna"  # the zone of KStars' location, as its ``location`` method tells
        self.unanswered: set[str] = set()  # calls ("Scheduler.stop") left without a reply
        self._daemon: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ekos-standin", daemon=True)
        self._ready = threading.Event()
        self._failure: Exception | None = None

    def count(self, call: str) -> int:
        """How often ``call`` ("Scheduler.start") was made."""
        return self.calls.count(call)

    def __enter__(self) -> EkosStandIn:
        self._daemon = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", f"--address={self.address}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not (self.workdir / "bus").exists():
                if time.monotonic() > deadline or self._daemon.poll() is not None:
                    raise RuntimeError("the private dbus-daemon did not start")
                time.sleep(0.05)
            self._thread.start()
            if not self._ready.wait(START_TIMEOUT_S) or self._failure is not None:
                raise RuntimeError(
                    f"the Ekos stand-in did not take its name on the bus: {self._failure or 'no answer'}"
                )
        except BaseException:
            self.__exit__()  # no dbus-daemon left behind by a stand-in that failed to start
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self._daemon is not None:
            self._daemon.terminate()
            self._daemon.wait(5)

    def _take_the_name(self):
        """A connection to the private bus that owns KStars' name; the daemon may still be getting ready
        (its socket there, not yet listening) on a busy machine, so a refused connection is tried again."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                connection = open_dbus_connection(bus=self.address)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus")
        connection.send_and_get_reply(new_method_call(bus, "RequestName", "su", (SERVICE, 4)), timeout=START_TIMEOUT_S)
        return connection

    def _serve(self) -> None:
        try:
            connection = self._take_the_name()
        except Exception as error:  # said by __enter__, not lost in this thread
            self._failure = error
            self._ready.set()
            return
        with connection:
            self._ready.set()
            while not self._stop.is_set():
                try:
                    message = connection.receive(timeout=0.2)
                except TimeoutError:
                    continue
                if message.header.message_type is MessageType.method_call:
                    answer = self._reply(message)
                    if answer is not None:
                        with contextlib.suppress(OSError):
                            connection.send(answer)

    def _location(self) -> str:
        """KStars' answer: its location with ``tz0`` (standard UTC offset) and ``tz`` (the offset now)."""
        local = datetime.now(UTC).astimezone(ZoneInfo(self.timezone))
        offset = (local.utcoffset() or timedelta()).total_seconds() / 3600
        standard = offset - (local.dst() or timedelta()).total_seconds() / 3600
        place = {"name": self.timezone.rsplit("/", 1)[-1], "province": "", "country": "", "latitude": 0, "longitude": 0}
        return json.dumps({**place, "tz0": standard, "tz": offset})

    def _property(self, message: Message, path: str, method: str) -> Message:
        """Get: the scheduler's status, Ekos' states, the capture module's camera; Set: taken (the
        capture module's optical train, whose camera is ``self.camera``)."""
        if method == "Set":
            return new_method_return(message)
        _iface, name = message.body
        value = {
            (SCHEDULER_PATH, "status"): int(self.status),
            (EKOS_PATH, "ekosStatus"): int(Communication.SUCCESS),
            (EKOS_PATH, "indiStatus"): int(Communication.SUCCESS),
            (CAPTURE_PATH, "camera"): self.camera,
        }.get((path, name))
        if value is None:
            return new_error(message, "org.freedesktop.DBus.Error.UnknownProperty", "s", (name,))
        return new_method_return(message, "v", (("s" if isinstance(value, str) else "i", value),))

    def _reply(self, message: Message) -> Message | None:
        """The answer to a call, as KStars' objects give it; None for a call left unanswered."""
        fields = message.header.fields
        path, interface, method = (
            fields.get(f) for f in (HeaderFields.path, HeaderFields.interface, HeaderFields.member)
        )
        if f"{path.rsplit('/', 1)[-1]}.{method}" in self.unanswered:
            return None
        if path not in OBJECTS:
            unknown = f"No such object path '{path}'"
            return new_error(message, "org.freedesktop.DBus.Error.UnknownObject", "s", (unknown,))
        if interface == INTROSPECTABLE:
            children = sorted({p[len(path) :].strip("/").split("/")[0] for p in OBJECTS if p.startswith(path)} - {""})
            nodes = "".join(f'<node name="{child}"/>' for child in children)
            return new_method_return(message, "s", (f"<node>{nodes}</node>",))
        return self._answer(message, path, interface, method)

    def _answer(self, message: Message, path: str, interface: str, method: str) -> Message:
        if interface == PROPERTIES:
            return self._property(message, path, method)
        if (path, interface, method) == ("/KStars", SERVICE, "location"):
            return new_method_return(message, "s", (self._location(),))
        self.calls.append(f"{path.rsplit('/', 1)[-1]}.{method}")  # Ekos.setProfile, Scheduler.start
        if (path, interface, method) in (
            (EKOS_PATH, EKOS, "setProfile"),
            (SCHEDULER_PATH, SCHEDULER, "loadScheduler"),
        ):
            return new_method_return(message, "b", (True,))
        if (path, interface, method) == (SCHEDULER_PATH, SCHEDULER, "start"):
            self.status = self.started_status
        elif (path, interface, method) == (SCHEDULER_PATH, SCHEDULER, "stop"):
            self.status = SchedulerStatus.IDLE
        elif (path, interface) not in ((EKOS_PATH, EKOS), (SCHEDULER_PATH, SCHEDULER)):
            return new_error(message, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"{path} {method}",))
        return new_method_return(message)
