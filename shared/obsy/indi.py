"""A small, thread-safe INDI client on top of pyindi-client.

pyindi-client calls its callbacks (``newProperty``, ``updateProperty``, ...) on its own
listener thread, hands out views into memory that the C++ library rewrites on the next
message, and kills the whole process (``Py_Exit(1)``) when a callback raises. So the
inner client here does nothing in its callbacks but copy each property into a frozen
:class:`PropertySnapshot` under a lock and wake the waiters; everything else (sending,
waiting, user listeners, reconnecting) happens on other threads.

Every wait has a timeout and raises :class:`IndiTimeout` naming the server, the device,
the property and how long it waited. When the server goes away, the cached properties
are dropped at once (a getter then raises :class:`IndiError` instead of serving stale
values); with ``reconnect=True`` a background thread reconnects with backoff, the
server sends every property again, and the ``on_reconnect`` callbacks run so that
services read the state back instead of assuming it.

Usage::

    with IndiClient.from_config(config.indi) as indi:
        indi.connect_device("Telescope Simulator")
        indi.set_switch("Telescope Simulator", "TELESCOPE_PARK", "PARK", timeout=60)
        coords = indi.get_number("Telescope Simulator", "EQUATORIAL_EOD_COORD")
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import dataclasses
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from obsy.config import IndiServerConfig

__all__ = [
    "Blob",
    "IndiClient",
    "IndiError",
    "IndiTimeout",
    "PropertySnapshot",
    "PropertyState",
]

log = logging.getLogger(__name__)
driver_log = logging.getLogger(f"{__name__}.messages")  # the drivers' own messages

PropertyState = Literal["Idle", "Ok", "Busy", "Alert"]
PropertyType = Literal["number", "switch", "text", "light", "blob"]
Listener = Callable[[str, str, str, Mapping[str, Any]], None]
T = TypeVar("T")

_STATES: tuple[PropertyState, ...] = ("Idle", "Ok", "Busy", "Alert")
_PERMISSIONS = ("ro", "wo", "rw")
_RULES = ("OneOfMany", "AtMostOne", "AnyOfMany")


class IndiError(Exception):
    """An INDI operation failed: not connected, unknown device/property/element, Alert state."""


class IndiRangeError(IndiError, ValueError):
    """A number outside the range its driver declared (min..max): refused before sending."""


class IndiTimeout(IndiError, TimeoutError):  # noqa: N818 - reads better than IndiTimeoutError
    """A wait ran out of time; the message names server, device, property and the wait."""


@dataclass(frozen=True)
class PropertySnapshot:
    """A copy of one INDI property as the server last sent it.

    ``values`` maps element names to float (number), bool (switch), str (text),
    a state string (light) or the size in bytes of the last BLOB (blob).
    """

    device: str
    name: str
    type: PropertyType
    state: PropertyState
    values: Mapping[str, Any]
    label: str = ""
    group: str = ""
    permission: str = "rw"
    rule: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)
    """(min, max, step) per element, numbers only."""
    seq: int = 0
    """Increases with every definition or update the client receives (any property)."""
    updated_at: float = 0.0
    """``time.time()`` when the client received it."""


@dataclass(frozen=True)
class Blob:
    """One BLOB element as received (e.g. a FITS image from a camera)."""

    device: str
    property: str
    name: str
    format: str
    data: bytes
    received_at: float


class IndiClient:
    """A connection to one indiserver; safe to use from any number of threads.

    ``timeout`` is the default for every wait that is not given one. Device, property and
    element names are INDI's own (e.g. ``"Telescope Simulator"``, ``"EQUATORIAL_EOD_COORD"``,
    ``"RA"``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7624,
        *,
        connect_timeout: float = 10.0,
        timeout: float = 10.0,
        reconnect: bool = True,
        reconnect_interval: float = 1.0,
        reconnect_max_interval: float = 30.0,
        blob_queue_size: int = 8,
        answer_settle: float = 0.15,
        watch: Iterable[str] = (),
    ) -> None:
        self.host = host
        self.port = port
        #: Only these devices' properties are asked for (INDI's watchDevice), when any are named: a client
        #: that reads one device of a shared server is not sent every other device's.
        self.watch = tuple(watch)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.reconnect = reconnect
        self.reconnect_interval = reconnect_interval
        self.reconnect_max_interval = reconnect_max_interval
        self.answer_settle = answer_settle

        self._cond = threading.Condition(threading.RLock())
        self._props: dict[tuple[str, str], PropertySnapshot] = {}
        self._devices: set[str] = set()
        # Devices this client has asked about: their drivers' messages are logged at INFO,
        # the other devices' (a shared server has many) only at DEBUG.
        self._used_devices: set[str] = set()
        self._seq = 0
        self._epoch = 0  # +1 on every loss of the server connection
        self._connected = False
        self._lost = False  # the server went away and the supervisor should reconnect
        self._closing = False
        self._blobs: collections.deque[Blob] = collections.deque(maxlen=blob_queue_size)
        self._blob_modes: dict[tuple[str, str | None], bool] = {}  # (device, prop) -> only

        self._listeners: list[Listener] = []
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._events: queue.SimpleQueue[tuple[str, str, str, Mapping[str, Any]] | None] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._lifecycle = threading.Lock()  # serialises connect() and disconnect()
        self._client: Any = None  # the PyIndi.BaseClient subclass, created on connect()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, config: IndiServerConfig, **kwargs: Any) -> IndiClient:
        """A client for the ``indi`` section of the OBSY configuration."""
        return cls(config.host, config.port, connect_timeout=config.connect_timeout, **kwargs)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"IndiClient({self.address}, connected={self._connected})"

    def __enter__(self) -> IndiClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    # ------------------------------------------------------------------ server connection

    @property
    def connected(self) -> bool:
        """True while the TCP connection to indiserver is up."""
        return self._connected

    def connect(self, timeout: float | None = None) -> None:
        """Connect to indiserver, retrying until ``timeout`` (default ``connect_timeout``).

        Raises :class:`IndiTimeout` when the server cannot be reached in time. With
        ``reconnect=True`` a background thread keeps the connection up afterwards.
        """
        timeout = self.connect_timeout if timeout is None else timeout
        with self._lifecycle:
            with self._cond:
                if self._connected:
                    return
                supervised = self._supervisor is not None and self._supervisor.is_alive() and not self._closing
                self._closing = False
            if supervised:  # the reconnect thread is at it already
                self._wait(
                    lambda: True if self._connected else None,
                    timeout,
                    lambda: f"cannot connect to indiserver at {self.address}",
                )
                return
            if self._client is None:
                self._client = _make_client(self)
                self._client.setServer(self.host, int(self.port))
                for device in self.watch:
                    self._client.watchDevice(device)
            elif self._client.isServerConnected():
                self._client.close()  # lost earlier without reconnect: reset the C++ client
            self._client.setConnectionTimeout(*_split_seconds(min(timeout, self.connect_timeout)))
            self._start_dispatcher()
            deadline = time.monotonic() + timeout
            delay = min(0.1, self.reconnect_interval)
            while not self._try_connect_server():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise IndiTimeout(f"cannot connect to indiserver at {self.address}; waited {timeout:g} s")
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, self.reconnect_interval)
            if self.reconnect:
                self._start_supervisor()

    def disconnect(self) -> None:
        """Close the connection and stop the background threads; idempotent."""
        with self._lifecycle:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is not None and supervisor is not threading.current_thread():
                supervisor.join(timeout=max(5.0, self.connect_timeout + 1))
            if self._client is not None:
                try:
                    self._client.close()
                except Exception:
                    log.exception("closing the connection to %s failed", self.address)
            self._mark_disconnected()
            dispatcher, self._dispatcher = self._dispatcher, None
            if dispatcher is not None:
                self._events.put(None)
                if dispatcher is not threading.current_thread():
                    dispatcher.join(timeout=5.0)

    def on_reconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback()`` (on the reconnect thread) each time the connection comes back.

        Properties arrive after the callback starts: use ``wait_property`` in it. It does
        not run for the first :meth:`connect`. Returns ``callback``, so it works as a
        decorator.
        """
        with self._cond:
            self._reconnect_callbacks.append(callback)
        return callback

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(device, property, state, values)`` for every defined or updated property.

        Callbacks run one at a time on a dispatcher thread, never on pyindi's thread, with
        a read-only copy of the values. Returns a function that removes the listener.
        """
        with self._cond:
            self._listeners.append(callback)

        def remove() -> None:
            with self._cond, contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    # ------------------------------------------------------------------ devices and properties

    def devices(self) -> list[str]:
        """Names of the devices the server has defined since the last (re)connect."""
        with self._cond:
            return sorted(self._devices)

    def properties(self, device: str) -> list[str]:
        """Names of the properties currently defined for ``device``."""
        with self._cond:
            return sorted(name for dev, name in self._props if dev == device)

    def wait_device(self, device: str, timeout: float | None = None) -> None:
        """Block until the server has defined ``device``."""
        timeout = self._timeout(timeout)
        self._used_devices.add(device)

        def ready() -> bool | None:
            return True if device in self._devices else None

        def describe() -> str:
            known = ", ".join(repr(d) for d in sorted(self._devices)) or "none"
            return f"device {device!r} not defined by indiserver at {self.address} (known devices: {known})"

        self._wait(ready, timeout, describe)

    def wait_property(self, device: str, name: str, timeout: float | None = None) -> PropertySnapshot:
        """Block until ``device`` has defined property ``name``; return its snapshot."""
        timeout = self._timeout(timeout)
        self._used_devices.add(device)

        def describe() -> str:
            if device not in self._devices:
                return f"device {device!r} not defined by indiserver at {self.address}"
            return f"property {device}.{name} not defined by indiserver at {self.address}"

        return self._wait(lambda: self._props.get((device, name)), timeout, describe)

    def get_property(self, device: str, name: str) -> PropertySnapshot:
        """The current snapshot of a property; :class:`IndiError` when it is not defined now."""
        self._used_devices.add(device)
        with self._cond:
            snapshot = self._props.get((device, name))
            if snapshot is not None:
                return snapshot
            if not self._connected:
                raise IndiError(f"not connected to indiserver at {self.address}: {device}.{name} is unknown")
            if device not in self._devices:
                raise IndiError(f"device {device!r} is not defined by indiserver at {self.address}")
            raise IndiError(f"property {device}.{name} is not defined by indiserver at {self.address}")

    def property_state(self, device: str, name: str) -> PropertyState:
        """``"Idle"``, ``"Ok"``, ``"Busy"`` or ``"Alert"``."""
        return self.get_property(device, name).state

    def wait_for(
        self,
        device: str,
        name: str,
        predicate: Callable[[PropertySnapshot], bool],
        timeout: float | None = None,
        *,
        what: str = "",
    ) -> PropertySnapshot:
        """Block until ``predicate(snapshot)`` holds for the property; return that snapshot.

        The property may be undefined for a while (e.g. across a reconnect); the wait goes
        on until the timeout. ``what`` describes the condition in the timeout message.
        """
        timeout = self._timeout(timeout)

        def ready() -> PropertySnapshot | None:
            snapshot = self._props.get((device, name))
            return snapshot if snapshot is not None and predicate(snapshot) else None

        def describe() -> str:
            snapshot = self._props.get((device, name))
            now = "undefined" if snapshot is None else f"state {snapshot.state}, values {dict(snapshot.values)}"
            cond = what or getattr(predicate, "__name__", "condition")
            return f"{device}.{name} at {self.address} did not reach {cond} (now {now})"

        return self._wait(ready, timeout, describe)

    # ------------------------------------------------------------------ device connection

    def connect_device(self, device: str, timeout: float | None = None) -> None:
        """Switch the device's CONNECTION to CONNECT and wait until it reports Ok and connected.

        :class:`IndiError` when the driver answers Alert (e.g. no hardware on its port).
        """
        timeout = self._timeout(timeout)
        deadline = time.monotonic() + timeout
        connection = self.wait_property(device, "CONNECTION", timeout)
        if _is_device_connected(connection) and connection.state == "Ok":
            return
        try:
            self.set_switch(device, "CONNECTION", "CONNECT", timeout=max(0.0, deadline - time.monotonic()))
        except IndiTimeout:
            raise
        except IndiError as error:
            raise IndiError(f"{device} at {self.address} failed to connect: {error}") from error
        self.wait_for(
            device,
            "CONNECTION",
            lambda p: _is_device_connected(p) and p.state == "Ok",
            max(0.0, deadline - time.monotonic()),
            what="CONNECT on and Ok",
        )

    def disconnect_device(self, device: str, timeout: float | None = None) -> None:
        """Switch the device's CONNECTION to DISCONNECT and wait until it has done so."""
        self.set_switch(device, "CONNECTION", "DISCONNECT", timeout=timeout)

    def is_device_connected(self, device: str) -> bool:
        """True when the device's CONNECTION switch is CONNECT (and not in Alert)."""
        with self._cond:
            connection = self._props.get((device, "CONNECTION"))
            return connection is not None and _is_device_connected(connection)

    # ------------------------------------------------------------------ typed getters

    def get_number(self, device: str, name: str) -> dict[str, float]:
        return dict(self._typed(device, name, "number").values)

    def get_switch(self, device: str, name: str) -> dict[str, bool]:
        return dict(self._typed(device, name, "switch").values)

    def get_text(self, device: str, name: str) -> dict[str, str]:
        return dict(self._typed(device, name, "text").values)

    def get_light(self, device: str, name: str) -> dict[str, PropertyState]:
        return dict(self._typed(device, name, "light").values)

    # ------------------------------------------------------------------ setters

    def set_number(
        self,
        device: str,
        name: str,
        values: Mapping[str, float],
        *,
        wait: bool = True,
        timeout: float | None = None,
        check_limits: bool = True,
    ) -> PropertySnapshot | None:
        """Send new values; elements not named keep their current values.

        A value outside the element's declared range (see :meth:`number_limits`) raises
        :class:`IndiRangeError` naming device, property, element, value and range, and nothing
        is sent: drivers answer such a request with Alert or clamp it silently, so a wrong
        setting would otherwise fail every time (or act as another) without saying why.
        ``check_limits=False`` sends it anyway, for drivers that declare wrong ranges.

        With ``wait=True`` block until the server answers with the property not Busy and
        return that snapshot; :class:`IndiError` if the answer is Alert or the connection
        is lost meanwhile. INDI has no request ids, so "the answer" is the first update
        after sending that is not Busy; if its state is the one from before sending, it
        only counts when no Busy update follows within ``answer_settle`` seconds (else a
        periodic update sent just before the driver took the request would pass for it).
        Drivers may answer more than once (the telescope simulator's sync sends Idle, then
        Ok); to wait for a particular end state (slew done, parked) use :meth:`wait_for`.
        """
        current = self._typed(device, name, "number")
        merged = {**current.values, **{k: float(v) for k, v in values.items()}}
        _check_elements(current, values)
        if check_limits:
            _check_limits(current, values)
        prop = _pyindi().PropertyNumber(len(merged))
        _fill(prop, device, name)
        for widget, (element, value) in zip(prop, merged.items(), strict=True):
            widget.setName(element)
            widget.setValue(value)
        return self._send(current, lambda c: c.sendNewNumber(prop), wait, timeout)

    def number_limits(self, device: str, name: str, element: str) -> tuple[float, float] | None:
        """The (min, max) the driver declared for one number element; None where it declares none.

        INDI has no "unbounded" flag: drivers leave min and max equal (often 0) for a number
        without limits, so only ``max > min`` is a range.
        """
        current = self._typed(device, name, "number")
        _check_elements(current, [element])
        return _declared_range(current, element)

    def set_switch(
        self,
        device: str,
        name: str,
        on: str | Iterable[str],
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> PropertySnapshot | None:
        """Turn the named elements on and every other element off.

        A OneOfMany switch needs exactly one name, AtMostOne at most one. With ``wait=True``
        block as in :meth:`set_number`.
        """
        current = self._typed(device, name, "switch")
        names = [on] if isinstance(on, str) else list(on)
        _check_elements(current, names)
        if current.rule == "OneOfMany" and len(names) != 1:
            raise IndiError(f"{device}.{name} is OneOfMany: name exactly one element to turn on, not {names}")
        if current.rule == "AtMostOne" and len(names) > 1:
            raise IndiError(f"{device}.{name} is AtMostOne: name at most one element to turn on, not {names}")
        pyindi = _pyindi()
        prop = pyindi.PropertySwitch(len(current.values))
        _fill(prop, device, name)
        for widget, element in zip(prop, current.values, strict=True):
            widget.setName(element)
            widget.setState(pyindi.ISS_ON if element in names else pyindi.ISS_OFF)
        return self._send(current, lambda c: c.sendNewSwitch(prop), wait, timeout)

    def set_text(
        self,
        device: str,
        name: str,
        values: Mapping[str, str],
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> PropertySnapshot | None:
        """Send new texts; elements not named keep their current texts. Waits as :meth:`set_number`."""
        current = self._typed(device, name, "text")
        _check_elements(current, values)
        merged = {**current.values, **{k: str(v) for k, v in values.items()}}
        prop = _pyindi().PropertyText(len(merged))
        _fill(prop, device, name)
        for widget, (element, text) in zip(prop, merged.items(), strict=True):
            widget.setName(element)
            widget.setText(text)
        return self._send(current, lambda c: c.sendNewText(prop), wait, timeout)

    # ------------------------------------------------------------------ BLOBs

    def enable_blobs(self, device: str, prop: str | None = None, *, only: bool = False) -> None:
        """Ask the server to send this device's BLOBs (all its BLOB properties, or ``prop``).

        ``only=True`` (B_ONLY) makes the server send nothing but BLOBs for the device on this
        connection, so its other properties stop updating here; use it only on a client
        dedicated to images. The setting is sent again after every reconnect.
        """
        with self._cond:
            self._blob_modes[(device, prop)] = only
        if self._connected:
            self._send_blob_mode(device, prop, only)

    def disable_blobs(self, device: str, prop: str | None = None) -> None:
        """Stop receiving the device's BLOBs (B_NEVER), now and after reconnects."""
        with self._cond:
            self._blob_modes.pop((device, prop), None)
        if self._connected:
            pyindi = _pyindi()
            with self._send_lock:
                self._client.setBLOBMode(pyindi.B_NEVER, device, prop)

    def wait_blob(self, device: str | None = None, timeout: float | None = None, *, prop: str | None = None) -> Blob:
        """Take the oldest queued BLOB (of ``device``/``prop`` if given), waiting for one to arrive.

        The queue holds the last ``blob_queue_size`` BLOBs; older ones are dropped.
        """
        timeout = self._timeout(timeout)

        def take() -> Blob | None:
            for blob in self._blobs:
                if (device is None or blob.device == device) and (prop is None or blob.property == prop):
                    self._blobs.remove(blob)
                    return blob
            return None

        def describe() -> str:
            target = ".".join(x for x in (device or "any device", prop) if x)
            return f"no BLOB from {target} arrived from indiserver at {self.address}"

        return self._wait(take, timeout, describe)

    def clear_blobs(self) -> None:
        """Drop every queued BLOB (e.g. before starting an exposure)."""
        with self._cond:
            self._blobs.clear()

    # ------------------------------------------------------------------ internals: waiting

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _wait(
        self,
        ready: Callable[[], T | None],
        timeout: float,
        describe: Callable[[], str],
        *,
        epoch: int | None = None,
        waited: float | None = None,
    ) -> T:
        """Wait on the condition until ``ready()`` returns non-None (called with the lock held).

        With ``epoch`` set, a loss of the server connection after that epoch ends the wait
        with :class:`IndiError`: the answer being waited for can no longer come.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = ready()
                if result is not None:
                    return result
                if self._closing:
                    raise IndiError(f"client for {self.address} was closed while waiting: {describe()}")
                if epoch is not None and self._epoch != epoch:
                    raise IndiError(f"connection to indiserver at {self.address} lost while waiting: {describe()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise IndiTimeout(f"{describe()}; waited {timeout if waited is None else waited:g} s")
                self._cond.wait(remaining)

    def _typed(self, device: str, name: str, kind: PropertyType) -> PropertySnapshot:
        snapshot = self.get_property(device, name)
        if snapshot.type != kind:
            raise IndiError(f"{device}.{name} at {self.address} is a {snapshot.type} property, not {kind}")
        return snapshot

    def _send(
        self,
        current: PropertySnapshot,
        send: Callable[[Any], None],
        wait: bool,
        timeout: float | None,
    ) -> PropertySnapshot | None:
        device, name = current.device, current.name
        if current.permission == "ro":
            raise IndiError(f"{device}.{name} at {self.address} is read-only")
        timeout = self._timeout(timeout)
        with self._cond:
            if not self._connected:
                raise IndiError(f"not connected to indiserver at {self.address}: cannot set {device}.{name}")
            seq, epoch = self._seq, self._epoch
        with self._send_lock:
            send(self._client)
        if not wait:
            return None

        deadline = time.monotonic() + timeout

        def describe() -> str:
            snapshot = self._props.get((device, name))
            now = "undefined" if snapshot is None else snapshot.state
            return f"{device}.{name} at {self.address} still not done (state {now})"

        before = current.state
        while True:
            result = self._wait(
                lambda after=seq: self._update_after(device, name, after, busy=False),
                max(0.0, deadline - time.monotonic()),
                describe,
                epoch=epoch,
                waited=timeout,
            )
            if result.state == "Alert" or result.state != before:
                break  # a change of state: this is the driver's answer
            # A periodic update that the driver sent just before it handled the request looks
            # like the answer (same state as before), and the real one (often Busy) follows
            # right behind it: if the property goes Busy within a moment, wait on for that.
            settle_end = min(time.monotonic() + self.answer_settle, deadline)
            with self._cond:
                while (later := self._update_after(device, name, result.seq)) is None or later.state != "Busy":
                    if later is not None:
                        result = later  # a newer answer that is not Busy either
                        if result.state == "Alert":
                            break
                    remaining = settle_end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                else:
                    seq, before = later.seq, "Busy"  # the request is being worked on
                    continue
            break
        if result.state == "Alert":
            raise IndiError(f"{device}.{name} at {self.address} answered Alert (values {dict(result.values)})")
        return result

    def _update_after(self, device: str, name: str, seq: int, *, busy: bool = True) -> PropertySnapshot | None:
        """The property's snapshot if it arrived after ``seq`` (and, unless ``busy``, is not Busy)."""
        snapshot = self._props.get((device, name))
        if snapshot is None or snapshot.seq <= seq or (not busy and snapshot.state == "Busy"):
            return None
        return snapshot

    # ------------------------------------------------------------------ internals: threads

    def _try_connect_server(self) -> bool:
        try:
            ok = bool(self._client.connectServer())
            log.debug("connectServer to %s: %s", self.address, ok)
        except Exception:  # pragma: no cover - defensive, the binding returns False on failure
            log.exception("connectServer to %s raised", self.address)
            ok = False
        if ok:
            with self._cond:
                modes = list(self._blob_modes.items())
            for (device, prop), only in modes:
                self._send_blob_mode(device, prop, only)
        return ok

    def _send_blob_mode(self, device: str, prop: str | None, only: bool) -> None:
        pyindi = _pyindi()
        with self._send_lock:
            self._client.setBLOBMode(pyindi.B_ONLY if only else pyindi.B_ALSO, device, prop)

    def _start_dispatcher(self) -> None:
        if self._dispatcher is None or not self._dispatcher.is_alive():
            self._dispatcher = threading.Thread(target=self._dispatch, name=f"indi-listeners-{self.port}", daemon=True)
            self._dispatcher.start()

    def _start_supervisor(self) -> None:
        if self._supervisor is None or not self._supervisor.is_alive():
            self._supervisor = threading.Thread(target=self._supervise, name=f"indi-reconnect-{self.port}", daemon=True)
            self._supervisor.start()

    def _dispatch(self) -> None:
        while (event := self._events.get()) is not None:
            with self._cond:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(*event)
                except Exception:
                    log.exception("INDI listener %r failed for %s.%s", listener, event[0], event[1])

    def _supervise(self) -> None:
        """Reconnect after the server went away; runs until :meth:`disconnect`."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._lost or self._closing)
                if self._closing:
                    return
            log.warning("lost connection to indiserver at %s; reconnecting", self.address)
            # The C++ client still believes it is connected after the server dropped it, and
            # refuses connectServer() until disconnectServer() has reset it. Let the old
            # listener thread finish first (see _Client.close).
            try:
                self._client.wait_listener_gone(3.0)
                self._client.close()
            except Exception:
                log.exception("resetting the connection to %s failed", self.address)
            delay = self.reconnect_interval
            while not self._try_connect_server():
                with self._cond:
                    if self._cond.wait_for(lambda: self._closing, delay):
                        return
                delay = min(delay * 2, self.reconnect_max_interval)
            log.info("reconnected to indiserver at %s", self.address)
            with self._cond:
                callbacks = list(self._reconnect_callbacks)
            for callback in callbacks:
                try:
                    callback()
                except Exception:
                    log.exception("INDI on_reconnect callback %r failed", callback)

    # ------------------------------------------------------------------ internals: pyindi callbacks

    def _mark_disconnected(self, lost: bool = False) -> None:
        with self._cond:
            if self._connected or lost:
                self._epoch += 1
            self._connected = False
            self._props.clear()
            self._devices.clear()
            if lost and not self._closing:
                self._lost = True
            self._cond.notify_all()

    def _on_server_connected(self) -> None:
        with self._cond:
            self._connected = True
            self._lost = False
            self._cond.notify_all()

    def _on_server_disconnected(self, code: int) -> None:
        with self._cond:
            expected = self._closing or not self._connected
        log.debug("indiserver %s disconnected (code %s)", self.address, code)
        self._mark_disconnected(lost=not expected and self.reconnect)

    def _on_device(self, device: str) -> None:
        with self._cond:
            self._devices.add(device)
            self._cond.notify_all()

    def _on_message(self, device: str, text: str) -> None:
        level = logging.INFO if device in self._used_devices else logging.DEBUG
        driver_log.log(level, "%s: %s", device, text)

    def _on_remove_device(self, device: str) -> None:
        with self._cond:
            self._devices.discard(device)
            for key in [k for k in self._props if k[0] == device]:
                del self._props[key]
            self._cond.notify_all()

    def _on_property(self, prop: Any) -> None:
        """Copy a defined or updated property (pyindi's thread; must not block or raise)."""
        snapshot, blobs = _snapshot(prop)
        with self._cond:
            if not self._connected:
                return
            self._seq += 1
            snapshot = dataclasses.replace(snapshot, seq=self._seq)
            self._props[(snapshot.device, snapshot.name)] = snapshot
            self._devices.add(snapshot.device)
            for blob in blobs:
                if len(self._blobs) == self._blobs.maxlen:
                    log.warning(
                        "BLOB queue full; dropping BLOB from %s.%s", self._blobs[0].device, self._blobs[0].property
                    )
                self._blobs.append(blob)
            has_listeners = bool(self._listeners)
            self._cond.notify_all()
        if has_listeners:
            self._events.put((snapshot.device, snapshot.name, snapshot.state, snapshot.values))

    def _on_remove_property(self, device: str, name: str) -> None:
        with self._cond:
            self._props.pop((device, name), None)
            self._cond.notify_all()


# ---------------------------------------------------------------------- pyindi glue


def _pyindi() -> Any:
    import PyIndi

    return PyIndi


# pyindi clients are never freed: freeing one runs the C++ destructor, which waits for the
# listener thread while holding the GIL that thread may need, then aborts the process
# ("terminate called without an active exception") if it is still running. Instead they
# stay here and an exit hook closes those still connected before the interpreter goes.
_PYINDI_CLIENTS: list[Any] = []
_OWNERS: weakref.WeakSet[IndiClient] = weakref.WeakSet()
_PYINDI_CLIENTS_LOCK = threading.Lock()


def _make_client(owner: IndiClient) -> Any:
    """The PyIndi.BaseClient subclass, created lazily so that importing this module needs no PyIndi."""
    pyindi = _pyindi()
    owner_ref = weakref.ref(owner)

    def call(method: str, *args: object) -> None:
        # An exception escaping a callback would make the binding call Py_Exit(1).
        target = owner_ref()
        if target is not None:
            _guard(getattr(target, method), *args)

    class _Client(pyindi.BaseClient):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.listener_tids: set[int] = set()

        def _seen(self) -> None:
            self.listener_tids.add(threading.get_native_id())

        def newDevice(self, device: Any) -> None:  # noqa: N802
            self._seen()
            call("_on_device", device.getDeviceName())

        def removeDevice(self, device: Any) -> None:  # noqa: N802
            call("_on_remove_device", device.getDeviceName())

        def newProperty(self, prop: Any) -> None:  # noqa: N802
            self._seen()
            call("_on_property", prop)

        def updateProperty(self, prop: Any) -> None:  # noqa: N802
            call("_on_property", prop)

        def removeProperty(self, prop: Any) -> None:  # noqa: N802
            call("_on_remove_property", prop.getDeviceName(), prop.getName())

        def newMessage(self, device: Any, message_id: int) -> None:  # noqa: N802
            _guard(lambda: call("_on_message", device.getDeviceName(), device.messageQueue(message_id)))

        def serverConnected(self) -> None:  # noqa: N802
            # Called inside connectServer(), before it asks the server for the properties.
            call("_on_server_connected")

        def serverDisconnected(self, code: int) -> None:  # noqa: N802
            call("_on_server_disconnected", code)

        def wait_listener_gone(self, timeout: float) -> bool:
            """Wait (without the GIL) until the listener threads seen so far have ended."""
            return _wait_threads_gone(self.listener_tids, timeout)

        def close(self, timeout: float = 3.0) -> None:
            """disconnectServer(), then wait until pyindi's listener thread has really ended."""
            if self.isServerConnected():
                _disconnect_server(self)
            self.wait_listener_gone(timeout)

    client = _Client()
    with _PYINDI_CLIENTS_LOCK:
        _OWNERS.add(owner)
        if not _PYINDI_CLIENTS:
            atexit.register(_close_all)
        _PYINDI_CLIENTS.append(client)
    return client


_native_disconnect: Any = None


def _disconnect_server(client: Any) -> None:
    """``client.disconnectServer()``, but without holding the GIL while it waits.

    The binding keeps the GIL during disconnectServer(), which waits up to 2 s for the
    listener thread to stop; that thread needs the GIL for each callback, so whenever data
    arrives meanwhile the call stalls every Python thread for 2 s and returns with the
    listener still running. Calling the same C++ function through ctypes releases the GIL.
    Falls back to the binding's method where the symbol cannot be found.
    """
    global _native_disconnect  # noqa: PLW0603 - resolved once, lazily
    if _native_disconnect is None:
        _native_disconnect = False
        with contextlib.suppress(Exception):
            library = ctypes.CDLL(_pyindi()._PyIndi.__file__)  # dlsym also searches libindiclient
            function = library["_ZN4INDI10BaseClient16disconnectServerEi"]  # INDI::BaseClient::disconnectServer(int)
            function.argtypes = [ctypes.c_void_p, ctypes.c_int]
            function.restype = ctypes.c_bool
            _native_disconnect = function
    if _native_disconnect:
        _native_disconnect(int(client.this), 0)
    else:
        client.disconnectServer()


def _close_all() -> None:
    """At exit: stop every client (and its reconnect thread) while the interpreter can still run callbacks."""
    for owner in list(_OWNERS):
        with contextlib.suppress(Exception):
            owner.disconnect()
    with _PYINDI_CLIENTS_LOCK:
        clients = list(_PYINDI_CLIENTS)
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()


def _wait_threads_gone(tids: set[int], timeout: float) -> bool:
    """Wait until the native threads ``tids`` have exited (Linux: /proc; elsewhere a short sleep)."""
    task_dir = Path("/proc/self/task")
    if not task_dir.is_dir():
        time.sleep(min(timeout, 0.2))
        tids.clear()
        return True
    deadline = time.monotonic() + timeout
    while True:
        for tid in list(tids):  # the listener may add to the set meanwhile
            if not (task_dir / str(tid)).exists():
                tids.discard(tid)
        if not tids:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _guard(func: Callable[..., object], *args: object) -> None:
    try:
        func(*args)
    except Exception:
        log.exception("error in INDI callback %s", getattr(func, "__name__", func))


def _snapshot(prop: Any) -> tuple[PropertySnapshot, list[Blob]]:
    """Copy everything we need out of a pyindi property into plain Python objects."""
    pyindi = _pyindi()
    kind = prop.getType()
    device, name = prop.getDeviceName(), prop.getName()
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    limits: dict[str, tuple[float, float, float]] = {}
    rule: str | None = None
    blobs: list[Blob] = []
    if kind == pyindi.INDI_NUMBER:
        type_: PropertyType = "number"
        for w in pyindi.PropertyNumber(prop):
            values[w.getName()] = float(w.getValue())
            limits[w.getName()] = (float(w.getMin()), float(w.getMax()), float(w.getStep()))
            labels[w.getName()] = w.getLabel()
    elif kind == pyindi.INDI_SWITCH:
        type_ = "switch"
        typed = pyindi.PropertySwitch(prop)
        rule = _RULES[typed.getRule()] if 0 <= typed.getRule() < len(_RULES) else None
        for w in typed:
            values[w.getName()] = w.getState() == pyindi.ISS_ON
            labels[w.getName()] = w.getLabel()
    elif kind == pyindi.INDI_TEXT:
        type_ = "text"
        for w in pyindi.PropertyText(prop):
            values[w.getName()] = w.getText()
            labels[w.getName()] = w.getLabel()
    elif kind == pyindi.INDI_LIGHT:
        type_ = "light"
        for w in pyindi.PropertyLight(prop):
            values[w.getName()] = _STATES[w.getState()]
            labels[w.getName()] = w.getLabel()
    elif kind == pyindi.INDI_BLOB:
        type_ = "blob"
        now = time.time()
        for w in pyindi.PropertyBlob(prop):
            size = int(w.getSize())
            values[w.getName()] = size
            labels[w.getName()] = w.getLabel()
            if size > 0:
                data = bytes(w.getblobdata())  # the C++ buffer is reused after this callback
                blobs.append(Blob(device, name, w.getName(), w.getFormat(), data, now))
    else:
        raise IndiError(f"unknown INDI property type {kind} for {device}.{name}")
    permission = prop.getPermission()
    snapshot = PropertySnapshot(
        device=device,
        name=name,
        type=type_,
        state=_STATES[prop.getState()],
        values=MappingProxyType(values),
        label=prop.getLabel(),
        group=prop.getGroupName(),
        permission=_PERMISSIONS[permission] if 0 <= permission < len(_PERMISSIONS) else "rw",
        rule=rule,
        labels=MappingProxyType(labels),
        limits=MappingProxyType(limits),
        updated_at=time.time(),
    )
    return snapshot, blobs


def _fill(prop: Any, device: str, name: str) -> None:
    prop.setDeviceName(device)
    prop.setName(name)


def _check_elements(current: PropertySnapshot, names: Iterable[str]) -> None:
    unknown = [n for n in names if n not in current.values]
    if unknown:
        raise IndiError(
            f"{current.device}.{current.name} has no element {', '.join(map(repr, unknown))} "
            f"(elements: {', '.join(current.values)})"
        )


def _declared_range(current: PropertySnapshot, element: str) -> tuple[float, float] | None:
    limits = current.limits.get(element)
    if limits is None or not limits[1] > limits[0]:
        return None
    return limits[0], limits[1]


def _check_limits(current: PropertySnapshot, values: Mapping[str, float]) -> None:
    for element, value in values.items():
        span = _declared_range(current, element)
        if span is not None and not span[0] <= float(value) <= span[1]:  # NaN fails this too
            raise IndiRangeError(
                f"{current.device}.{current.name}.{element} = {float(value):g} is outside the range "
                f"{span[0]:g}..{span[1]:g} the driver declares; not sent"
            )


def _is_device_connected(connection: PropertySnapshot) -> bool:
    return bool(connection.values.get("CONNECT")) and connection.state != "Alert"


def _split_seconds(seconds: float) -> tuple[int, int]:
    seconds = max(seconds, 0.001)
    whole = int(seconds)
    return whole, int((seconds - whole) * 1_000_000)
