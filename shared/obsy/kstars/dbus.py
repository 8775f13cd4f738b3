"""KStars on the session D-Bus: one small client (jeepney, pure Python) for every OBSY part that
talks to it.

Every call has a timeout, opening the connection included (jeepney's own ``Hello`` waits for
ever): the MCP must never hang on KStars. Every failure is a :class:`DBusError` whose message
names the interface, the method and the object path:

- :class:`DBusTimeoutError`: no reply within the timeout;
- :class:`DBusCallError`: KStars (or the bus) answered with an error, its D-Bus name in ``name``;
  a missing object, or KStars not on the bus at all, is said in plain words;
- :class:`DBusError` itself: no bus address, the bus cannot be reached, the connection broke.

The connection is opened on the first call and opened again after a failure (KStars or its bus
may have been restarted). Calls are serialised by a lock, so one client may serve several
threads.

Usage::

    with KStarsBus(address, timeout=10) as bus:
        bus.call(EKOS_PATH, EKOS, "setProfile", "s", "Simulators")
        bus.get_property(SCHEDULER_PATH, SCHEDULER, "status")
        wait_until(lambda: bus.has_object(SCHEDULER_PATH), 60, "the Ekos scheduler on the bus")
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from jeepney import DBusAddress, DBusErrorResponse, MessageType, message_bus, new_method_call
from jeepney.bus import get_bus
from jeepney.io.blocking import DBusConnection, DBusConnectionBase, Proxy, prep_socket
from jeepney.io.common import MessageFilters
from jeepney.low_level import HeaderFields, MessageFlag

from obsy.kstars.paths import INTROSPECTABLE, PROPERTIES, SERVICE

#: Seconds a call waits for its reply unless told otherwise.
DEFAULT_TIMEOUT = 30.0


class DBusError(Exception):
    """A D-Bus call to KStars failed; the message names the interface, method and object path."""


class DBusTimeoutError(DBusError):
    """No reply within the call's timeout."""


class DBusCallError(DBusError):
    """The call was answered with a D-Bus error (``name``, e.g. ``org.freedesktop.DBus.Error.UnknownObject``)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class WaitTimeoutError(DBusError):
    """A condition :func:`wait_until` waited for did not come true in time."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"{what} not reached within {timeout:g} s")
        self.what = what
        self.timeout = timeout


def session_address(configured: str | None = None, setting: str = "bus_address") -> str:
    """The bus address to use: ``configured``, else ``DBUS_SESSION_BUS_ADDRESS``; none is a
    :class:`DBusError` naming the ``setting`` that would give one."""
    address = configured or os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if not address:
        raise DBusError(f"no D-Bus session address (set {setting} or DBUS_SESSION_BUS_ADDRESS)")
    return address


class _Connection(DBusConnection):
    """jeepney's blocking connection with its ``Hello`` bounded by ``timeout``."""

    def __init__(self, sock: Any, timeout: float) -> None:
        DBusConnectionBase.__init__(self, sock, enable_fds=False)
        self._filters = MessageFilters()
        self.bus_proxy = Proxy(message_bus, self, timeout=timeout)
        self.unique_name = self.bus_proxy.Hello()[0]


def open_connection(address: str, timeout: float = DEFAULT_TIMEOUT) -> DBusConnection:
    """A connection to the bus at ``address`` (a D-Bus address such as ``unix:path=...``), within
    ``timeout`` seconds; any failure is a :class:`DBusError` naming the address."""
    try:
        sock = prep_socket(get_bus(address), False, timeout=timeout)
    except (OSError, ValueError, StopIteration) as error:  # jeepney's AuthenticationError is a ValueError
        raise DBusError(f"cannot connect to the D-Bus at {address}: {error or type(error).__name__}") from error
    try:
        return _Connection(sock, timeout)
    except (OSError, ValueError, DBusErrorResponse) as error:  # TimeoutError is an OSError
        sock.close()
        raise DBusError(f"the D-Bus at {address} did not greet: {error or type(error).__name__}") from error


def _body(body: tuple[Any, ...]) -> Any:
    """A reply's single value, or the tuple of several, or None for none."""
    return body[0] if len(body) == 1 else (body or None)


class KStarsBus:
    """Method calls, properties and introspection on KStars' objects at ``address``."""

    def __init__(self, address: str, *, timeout: float = DEFAULT_TIMEOUT, service: str = SERVICE) -> None:
        self.address = address
        self.timeout = timeout
        self.service = service
        self._connection: DBusConnection | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- connection

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        self._connection = None

    def __enter__(self) -> KStarsBus:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _message(self, path: str, interface: str, method: str, signature: str, args: tuple[Any, ...]) -> Any:
        """The call's message, checked: arguments that do not fit the signature are an error here,
        before anything is sent (the connection stays good)."""
        target = DBusAddress(path, bus_name=self.service, interface=interface)
        try:
            message = new_method_call(target, method, signature or None, args if signature else None)
            message.serialise(serial=1)
        except (TypeError, AttributeError, ValueError, KeyError, IndexError, struct.error) as error:
            raise DBusError(
                f"D-Bus call {interface}.{method} on {path}: the arguments {args!r:.200} do not fit {signature!r} "
                f"({error})"
            ) from error
        return message

    # ----------------------------------------------------------------- calls

    def call(
        self, path: str, interface: str, method: str, signature: str = "", *args: Any, timeout: float | None = None
    ) -> Any:
        """Call ``interface.method`` on ``path`` with ``args`` (D-Bus ``signature``); the reply's single
        value, or the tuple of several, or None. Waits ``timeout`` seconds at most (else the client's)."""
        limit = self.timeout if timeout is None else timeout
        where = f"{interface}.{method} on {path}"
        message = self._message(path, interface, method, signature, args)
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = open_connection(self.address, limit)
                reply = self._connection.send_and_get_reply(message, timeout=limit)
            except TimeoutError as error:
                self._drop()
                raise DBusTimeoutError(f"D-Bus call {where} failed: no reply within {limit:g} s") from error
            except DBusError as error:
                self._drop()
                raise DBusError(f"D-Bus call {where} failed: {error}") from error
            except (OSError, ValueError) as error:
                self._drop()
                raise DBusError(f"D-Bus call {where} failed: {error or type(error).__name__}") from error
        if reply.header.message_type is MessageType.error:
            raise self._answered_error(reply, path, where)
        return _body(reply.body)

    def _answered_error(self, reply: Any, path: str, where: str) -> DBusCallError:
        name = str(reply.header.fields.get(HeaderFields.error_name, "an unnamed error"))
        text = str(reply.body[0]) if reply.body else ""
        detail = f"{name}: {text}" if text else name
        if name == "org.freedesktop.DBus.Error.UnknownObject":
            return DBusCallError(f"{where} answered an error: there is no object {path} ({detail})", name)
        if name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
            return DBusCallError(f"{where} answered an error: {self.service} is not on the bus ({detail})", name)
        return DBusCallError(f"{where} answered an error: {detail}", name)

    def send(self, path: str, interface: str, method: str, signature: str = "", *args: Any) -> None:
        """Call a method that never answers (KStars' ``Q_NOREPLY`` ones): sent, not waited for."""
        where = f"{interface}.{method} on {path}"
        message = self._message(path, interface, method, signature, args)
        message.header.flags |= MessageFlag.no_reply_expected
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = open_connection(self.address, self.timeout)
                self._connection.send(message)
            except (DBusError, OSError, ValueError) as error:
                self._drop()
                raise DBusError(f"D-Bus call {where} failed: {error}") from error

    def get_property(self, path: str, interface: str, name: str, *, timeout: float | None = None) -> Any:
        """The property ``name`` of ``interface`` at ``path`` (its value, the variant unwrapped)."""
        value = self.call(path, PROPERTIES, "Get", "ss", interface, name, timeout=timeout)
        return value[1] if isinstance(value, tuple) else value

    def set_property(
        self, path: str, interface: str, name: str, signature: str, value: Any, *, timeout: float | None = None
    ) -> None:
        """Set the property ``name`` of ``interface`` at ``path`` to ``value`` (of D-Bus type ``signature``)."""
        self.call(path, PROPERTIES, "Set", "ssv", interface, name, (signature, value), timeout=timeout)

    def introspect(self, path: str, *, timeout: float | None = None) -> str:
        """The introspection XML of ``path``: its interfaces and child nodes."""
        return str(self.call(path, INTROSPECTABLE, "Introspect", timeout=timeout))

    def has_object(self, path: str, *, timeout: float | None = None) -> bool:
        """Whether ``path`` (e.g. ``/KStars/Ekos/Scheduler``) is on the bus: its parent lists it.

        False also when the parent is missing or KStars is not on the bus; a bus that cannot be
        reached or does not answer in time is still a :class:`DBusError`."""
        parent, _, child = path.rstrip("/").rpartition("/")
        try:
            return f'node name="{child}"' in self.introspect(parent or "/", timeout=timeout)
        except DBusCallError:
            return False


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    interval: float = 0.2,
    retry_on: tuple[type[BaseException], ...] = (),
    check: Callable[[], None] | None = None,
) -> None:
    """Return once ``condition()`` is true; :class:`WaitTimeoutError` (naming ``what``) after ``timeout`` s.

    An exception of ``retry_on`` from the condition counts as "not yet"; others propagate.
    ``check`` runs before each try (e.g. to fail at once when KStars has exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        try:
            if condition():
                return
        except retry_on:
            pass
        if time.monotonic() > deadline:
            raise WaitTimeoutError(what, timeout)
        time.sleep(interval)
