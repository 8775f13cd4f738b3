"""KStars/Ekos for the MCP: its domain over the shared KStars D-Bus client (:mod:`obsy.kstars.dbus`).

Only what the MCP needs: start Ekos on a profile and wait for its devices, check that
KStars' location keeps the site's time zone, load tonight's schedule and start it, stop it,
read its status. Every call has a timeout (``mcp.ekos.call_timeout``); every failure
is an :class:`EkosError` naming the call. The connection is opened lazily and opened
again after a failure (KStars may have been restarted).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from obsy.kstars.dbus import DBusError, KStarsBus, WaitTimeoutError, session_address, wait_until
from obsy.kstars.paths import (
    CAPTURE,
    CAPTURE_PATH,
    EKOS,
    EKOS_PATH,
    KSTARS,
    KSTARS_PATH,
    SCHEDULER,
    SCHEDULER_PATH,
    Communication,
    SchedulerStatus,
)
from obsy.kstars.runs import keep_run
from obsy_mcp.config import McpEkosConfig

log = logging.getLogger(__name__)

#: Seconds to wait for Ekos to register the capture camera after connecting the devices.
CAMERA_TIMEOUT = 60.0
#: The optical trains Ekos makes itself, one per camera as they register (KStars 3.6).
OPTICAL_TRAINS = ("Primary", "Secondary", "Tertiary")
#: Seconds a chosen train may take to show its camera.
TRAIN_SETTLE_S = 3.0

#: States in which the scheduler is not driving the mount.
STOPPED = frozenset({SchedulerStatus.IDLE, SchedulerStatus.ABORTED})


class EkosError(Exception):
    """Ekos could not do what was asked: the D-Bus call (named) failed, or Ekos did not get there in time."""


def keep_loaded_run(schedule: str) -> None:
    """Mark the run folder of ``schedule`` kept (:mod:`obsy.kstars.runs`) before Ekos loads it.

    Ekos reads a job's .esq only when the job starts, so the scheduler must not remove a run
    Ekos is running; it keeps the runs it writes for a plan request, and this marks the one
    loaded when the MCP falls back to the latest plan. A marker that cannot be written (the
    files on another machine's disk, no write access) is logged; the schedule is loaded anyway.
    """
    try:
        keep_run(schedule, "loaded into Ekos by the MCP")
    except OSError as exc:
        log.warning(
            "cannot mark the Ekos run of %s as kept: the scheduler may remove it while it runs (%s)",
            schedule,
            exc,
            extra={"event": "ekos_run_unmarked"},
        )


class Ekos:
    def __init__(
        self,
        config: McpEkosConfig,
        fresh_schedule: Callable[[str], str] | None = None,
        site_timezone: str | None = None,
        capture_camera: str | None = None,
    ) -> None:
        """``fresh_schedule`` turns the schedule to start into one written now (see planrequest.py).

        ``capture_camera`` (the scheduler's ``ekos.camera``, the one its sequences name) is selected
        in Ekos' capture module before each start (:meth:`select_capture_camera`).

        ``site_timezone`` (the site's IANA zone): the schedule's start and end times carry its
        UTC offset, and KStars reads them in its own location's zone, so a night is started only
        when KStars' location has the same UTC offset (:meth:`time_zone_mismatch`).
        """
        self.config = config
        self.fresh_schedule = fresh_schedule
        self.site_timezone = site_timezone
        self.capture_camera = capture_camera
        self._bus: KStarsBus | None = None
        self._lock = threading.Lock()  # one client, however many threads ask first

    @property
    def address(self) -> str:
        try:
            return session_address(self.config.bus_address, "mcp.ekos.bus_address")
        except DBusError as error:
            raise EkosError(str(error)) from None

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()

    def _client(self) -> KStarsBus:
        with self._lock:
            if self._bus is None:
                self._bus = KStarsBus(self.address, timeout=self.config.call_timeout)
            return self._bus

    def call(self, path: str, interface: str, method: str, signature: str = "", *args: Any) -> Any:
        """One method call; the reply's single value (or tuple, or None)."""
        try:
            return self._client().call(path, interface, method, signature, *args)
        except DBusError as error:
            raise EkosError(str(error)) from error

    def property(self, path: str, interface: str, name: str) -> Any:
        try:
            return self._client().get_property(path, interface, name)
        except DBusError as error:
            raise EkosError(str(error)) from error

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
        mismatch = self.time_zone_mismatch()
        if mismatch:
            raise EkosError(mismatch)
        if self.capture_camera:
            self.select_capture_camera(self.capture_camera)
        if self.fresh_schedule is not None:
            schedule = self.fresh_schedule(schedule)
        keep_loaded_run(schedule)
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

    def select_capture_camera(self, name: str, timeout: float = CAMERA_TIMEOUT) -> None:
        """Ekos' capture module on the optical train whose camera is ``name``, waiting for Ekos to make it.

        KStars 3.6 captures with the camera of the capture module's optical train and ignores the
        camera a sequence file names. It makes its trains itself as devices register ("Primary"
        gets the first camera, "Secondary" the next...), so with an allsky camera on the same INDI
        server the "Primary" train may hold the allsky camera: it would then take the night's
        frames, and the sky would be judged on them. So the train is chosen here, by its camera.
        """
        deadline = time.monotonic() + timeout
        tried: list[str] = []
        while True:
            current = self._capture_camera()
            if current == name:
                return
            for train in OPTICAL_TRAINS:
                if self._set_capture_train(train) and self._camera_becomes(name, TRAIN_SETTLE_S):
                    log.info("Ekos' capture module on the optical train %r (camera %s)", train, name)
                    return
                tried.append(train)
            if time.monotonic() > deadline:
                raise EkosError(
                    f"Ekos' capture module has no optical train with the camera {name!r} after {timeout:g} s "
                    f"(it captures with {current or 'no camera'}; trains tried: {', '.join(dict.fromkeys(tried))}): "
                    "scheduler.ekos.camera must name the main camera's INDI device"
                )
            time.sleep(1.0)

    def _camera_becomes(self, name: str, within: float) -> bool:
        """Whether the capture module's camera is ``name`` within ``within`` seconds (a train's
        devices are taken on a moment after it is chosen)."""
        deadline = time.monotonic() + within
        while self._capture_camera() != name:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def _capture_camera(self) -> str | None:
        try:
            return str(self.property(CAPTURE_PATH, CAPTURE, "camera"))
        except EkosError:
            return None  # the capture module is not there yet

    def _set_capture_train(self, train: str) -> bool:
        try:
            self._client().set_property(CAPTURE_PATH, CAPTURE, "opticalTrain", "s", train)
        except (DBusError, EkosError):
            return False
        return True

    # ----------------------------------------------------------------- KStars' location

    def location(self) -> dict[str, Any]:
        """KStars' location (its ``location`` D-Bus method, JSON): name, province, country,
        latitude, longitude, ``tz0`` (its standard UTC offset, hours) and ``tz`` (its UTC offset
        at KStars' clock, daylight saving included)."""
        text = self.call(KSTARS_PATH, KSTARS, "location")
        try:
            location = json.loads(text)
            float(location["tz"]), float(location["tz0"])
        except (TypeError, ValueError, KeyError) as error:
            raise EkosError(f"KStars' location answer is not understood: {text!r}") from error
        return location

    def time_zone_mismatch(self, now: datetime | None = None) -> str | None:
        """Why KStars' time zone is not the site's, or None when it is (or there is no site zone).

        The .esl's start and end times carry the site's UTC offset ("2026-11-21T22:00:00+01:00"),
        and KStars 3.6 reads them in its own location's time zone: with another offset every
        fixed start moves by the difference. Compared: KStars' offset now (``tz``) with the
        site's, and KStars' standard offset (``tz0``) with the site's standard offset.
        """
        if not self.site_timezone:
            return None
        local = (now or datetime.now(UTC)).astimezone(ZoneInfo(self.site_timezone))
        offset = local.utcoffset()
        dst = local.dst()
        site_now = offset.total_seconds() / 3600 if offset is not None else 0.0
        site_standard = site_now - (dst.total_seconds() / 3600 if dst is not None else 0.0)
        location = self.location()
        kstars_now, kstars_standard = float(location["tz"]), float(location["tz0"])
        if abs(kstars_now - site_now) < 0.01 and abs(kstars_standard - site_standard) < 0.01:
            return None
        place = ", ".join(str(location[k]) for k in ("name", "province", "country") if location.get(k))
        return (
            f"KStars' location ({place or 'unnamed'}) has UTC{kstars_now:+g} (standard UTC{kstars_standard:+g}), "
            f"the site's time zone {self.site_timezone} has UTC{site_now:+g} (standard UTC{site_standard:+g}): "
            "Ekos would start every job of the schedule at the wrong time; set KStars' geographic location "
            "to the site (or one in its time zone)"
        )

    def start_ekos(self) -> None:
        if self._communication("ekosStatus") != Communication.SUCCESS:
            if not self.call(EKOS_PATH, EKOS, "setProfile", "s", self.config.profile):
                raise EkosError(f"Ekos refused the profile {self.config.profile!r}")
            self.call(EKOS_PATH, EKOS, "start")
            self._wait(lambda: self._communication("ekosStatus") == Communication.SUCCESS, 60.0, "Ekos started")
        if self._communication("indiStatus") != Communication.SUCCESS:
            self.call(EKOS_PATH, EKOS, "connectDevices")
            self._wait(lambda: self._communication("indiStatus") == Communication.SUCCESS, 60.0, "devices connected")

    def _communication(self, name: str) -> int:
        status = int(self.property(EKOS_PATH, EKOS, name))
        if status == Communication.ERROR:
            raise EkosError(f"Ekos reports {name} = error")
        return status

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            wait_until(condition, timeout, what)
        except WaitTimeoutError as error:
            raise EkosError(f"Ekos: {error}") from None
