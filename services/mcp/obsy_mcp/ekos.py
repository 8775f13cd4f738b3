"""KStars/Ekos over the session D-Bus (jeepney, the same library as the scheduler's tests).

Only what the MCP needs: start Ekos on a profile and wait for its devices, load tonight's
schedule and start it, stop it, read its status. Every call has a timeout; every failure
is an :class:`EkosError` naming the call. The connection is opened lazily and opened
again after a failure (KStars may have been restarted).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from obsy.config import McpEkosConfig

SERVICE = "org.kde.kstars"
EKOS_PATH = "/KStars/Ekos"
EKOS = "org.kde.kstars.Ekos"
SCHEDULER_PATH = "/KStars/Ekos/Scheduler"
SCHEDULER = "org.kde.kstars.Ekos.Scheduler"
PROPERTIES = "org.freedesktop.DBus.Properties"

# Ekos' CommunicationStatus (ekosStatus, indiStatus)
COMMUNICATION_SUCCESS = 2
COMMUNICATION_ERROR = 3


class SchedulerStatus(IntEnum):
    IDLE = 0
    STARTUP = 1
    RUNNING = 2
    PAUSED = 3
    SHUTDOWN = 4
    ABORTED = 5
    LOADING = 6


#: States in which the scheduler is not driving the mount.
STOPPED = frozenset({SchedulerStatus.IDLE, SchedulerStatus.ABORTED})


class EkosError(Exception):
    pass


class Ekos:
    def __init__(self, config: McpEkosConfig, fresh_schedule: Callable[[str], str] | None = None) -> None:
        """``fresh_schedule`` turns the schedule to start into one written now (see planrequest.py)."""
        self.config = config
        self.fresh_schedule = fresh_schedule
        self._connection: DBusConnection | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        address = self.config.bus_address or os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        if not address:
            raise EkosError("no D-Bus session address (set mcp.ekos.bus_address or DBUS_SESSION_BUS_ADDRESS)")
        return address

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        self._connection = None

    def call(self, path: str, interface: str, method: str, signature: str = "", *args: Any) -> Any:
        """One method call; the reply's single value (or tuple, or None)."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = open_dbus_connection(bus=self.address)
                address = DBusAddress(path, bus_name=SERVICE, interface=interface)
                message = new_method_call(address, method, signature or None, args if signature else None)
                reply = self._connection.send_and_get_reply(message, timeout=self.config.call_timeout)
            except (OSError, TimeoutError, ValueError) as error:
                self._drop()
                raise EkosError(f"D-Bus call {interface}.{method} on {path} failed: {error}") from error
        if reply.header.message_type.name == "error":
            raise EkosError(f"{interface}.{method} on {path} answered an error: {reply.body}")
        body = reply.body
        return body[0] if len(body) == 1 else (body or None)

    def property(self, path: str, interface: str, name: str) -> Any:
        value = self.call(path, PROPERTIES, "Get", "ss", interface, name)
        return value[1] if isinstance(value, tuple) else value

    # ----------------------------------------------------------------- scheduler

    def scheduler_status(self) -> SchedulerStatus:
        value = int(self.property(SCHEDULER_PATH, SCHEDULER, "status"))
        try:
            return SchedulerStatus(value)
        except ValueError:
            raise EkosError(f"the Ekos scheduler reports an unknown status {value}") from None

    def stop_scheduler(self) -> None:
        """Stop the scheduler and wait until it says it has stopped."""
        if self.scheduler_status() in STOPPED:
            return
        self.call(SCHEDULER_PATH, SCHEDULER, "stop")
        self._wait(lambda: self.scheduler_status() in STOPPED, self.config.stop_timeout, "scheduler stopped")

    def start_night(self, schedule: str) -> None:
        """Ekos on the configured profile with its devices connected, then load and start ``schedule``.

        With ``fresh_schedule``, the schedule it returns is loaded instead, asked for only once
        Ekos is up (connecting the devices can take a minute; the files must fit the time
        they are started).
        """
        self.start_ekos()
        if self.fresh_schedule is not None:
            schedule = self.fresh_schedule(schedule)
        self.call(SCHEDULER_PATH, SCHEDULER, "removeAllJobs")
        if not self.call(SCHEDULER_PATH, SCHEDULER, "loadScheduler", "s", schedule):
            raise EkosError(f"the Ekos scheduler did not load {schedule}")
        self.call(SCHEDULER_PATH, SCHEDULER, "start")
        self._wait(
            lambda: self.scheduler_status() not in (SchedulerStatus.IDLE, SchedulerStatus.LOADING),
            self.config.stop_timeout,
            "scheduler started",
        )
        if self.scheduler_status() is SchedulerStatus.ABORTED:
            raise EkosError(f"the Ekos scheduler aborted right after starting {schedule}")

    def start_ekos(self) -> None:
        if self._communication("ekosStatus") != COMMUNICATION_SUCCESS:
            if not self.call(EKOS_PATH, EKOS, "setProfile", "s", self.config.profile):
                raise EkosError(f"Ekos refused the profile {self.config.profile!r}")
            self.call(EKOS_PATH, EKOS, "start")
            self._wait(lambda: self._communication("ekosStatus") == COMMUNICATION_SUCCESS, 60.0, "Ekos started")
        if self._communication("indiStatus") != COMMUNICATION_SUCCESS:
            self.call(EKOS_PATH, EKOS, "connectDevices")
            self._wait(lambda: self._communication("indiStatus") == COMMUNICATION_SUCCESS, 60.0, "devices connected")

    def _communication(self, name: str) -> int:
        status = int(self.property(EKOS_PATH, EKOS, name))
        if status == COMMUNICATION_ERROR:
            raise EkosError(f"Ekos reports {name} = error")
        return status

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise EkosError(f"Ekos: {what} not reached within {timeout:g} s")
            time.sleep(0.2)
