"""Ekos's ``captureComplete`` D-Bus signal: a second ingest route beside the folder watch.

After each frame it saves, Ekos's capture module emits ``captureComplete(QVariantMap)`` on
``org.kde.kstars.Ekos.Capture`` at ``/KStars/Ekos/Capture`` of the session bus (KStars 3.6 exports
it, signature ``a{sv}``). The map holds ``filename`` (empty for a preview that was not saved),
``type`` (Ekos's frame type number), ``exposure``, ``filter``, ``width``, ``height``, ``binx``,
``biny``, ``hfr``, ``starCount``, ``median`` and ``eccentricity``. The file it names joins the folder
watch's queue (:meth:`~obsy_imaging.ingest.watcher.CaptureWatcher.notice`, route ``dbus``), so the
two routes take a frame once; the signal also brings frames saved outside the capture folders.

The connection comes from the shared KStars client (:func:`obsy.kstars.dbus.open_connection`, with a
timeout). The listener runs on its own thread; without a session bus (KStars not started yet) it tries again
every ``retry_interval`` seconds. A signal it cannot read is logged and skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jeepney import MatchRule, message_bus
from jeepney.io.blocking import DBusConnection, Proxy

from obsy.kstars.dbus import DBusError, open_connection, session_address
from obsy.kstars.paths import CAPTURE, CAPTURE_PATH

log = logging.getLogger("obsy.imaging.ekos_signal")

SIGNAL = "captureComplete"
#: Seconds to connect to the bus and to have the match rule taken.
BUS_TIMEOUT = 10.0


def capture_metadata(body: tuple[Any, ...]) -> dict[str, Any]:
    """The signal's map as plain values: jeepney gives ``a{sv}`` as ``{key: (signature, value)}``."""
    if len(body) != 1 or not isinstance(body[0], dict):
        raise ValueError(f"captureComplete carries {body!r:.200}, not one a{{sv}} map")
    return {key: value[1] if isinstance(value, tuple) and len(value) == 2 else value for key, value in body[0].items()}


class CaptureSignalListener:
    """Calls ``on_frame(path, metadata)`` for each frame Ekos reports saved."""

    def __init__(
        self,
        on_frame: Callable[[Path, dict[str, Any]], None],
        *,
        bus_address: str | None = None,
        retry_interval: float = 10.0,
    ) -> None:
        self.on_frame = on_frame
        self.bus_address = bus_address
        self.retry_interval = retry_interval
        self.connected = False
        self.error: str | None = None
        self.signals = 0
        self._stopping = threading.Event()
        self._connection: DBusConnection | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return self.bus_address or os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="imaging-ekos-signal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_connected(self, timeout: float) -> bool:
        """Whether the match rule is in place within ``timeout`` seconds (for tests and the start log)."""
        deadline = time.monotonic() + timeout
        while not self.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.connected

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except (DBusError, OSError, ValueError, TimeoutError, KeyError) as exc:
                reason = f"D-Bus session bus {self.address or '(no address)'}: {exc}"
                if reason != self.error:
                    log.warning(
                        "captureComplete not heard: %s; trying again", reason, extra={"event": "dbus_unreachable"}
                    )
                self.error = reason
            finally:
                self.connected = False
                if self._connection is not None:
                    with contextlib.suppress(OSError):
                        self._connection.close()
                    self._connection = None
            self._stopping.wait(self.retry_interval)

    def _listen(self) -> None:
        address = session_address(self.bus_address, "imaging.ekos_signal.bus_address")
        self._connection = connection = open_connection(address, BUS_TIMEOUT)
        rule = MatchRule(type="signal", interface=CAPTURE, member=SIGNAL, path=CAPTURE_PATH)
        Proxy(message_bus, connection, timeout=BUS_TIMEOUT).AddMatch(rule)
        with connection.filter(rule) as signals:
            self.connected, self.error = True, None
            log.info("listening for Ekos captureComplete on %s", self.address, extra={"event": "dbus_listening"})
            while not self._stopping.is_set():
                try:
                    message = connection.recv_until_filtered(signals, timeout=0.5)
                except TimeoutError:
                    continue
                self._take(message.body)

    def _take(self, body: tuple[Any, ...]) -> None:
        try:
            metadata = capture_metadata(body)
        except ValueError as exc:
            log.warning("%s", exc, extra={"event": "dbus_bad_signal"})
            return
        self.signals += 1
        filename = metadata.get("filename")
        if not isinstance(filename, str) or not filename:
            return  # a preview Ekos did not save
        if not Path(filename).is_absolute():
            log.warning("captureComplete names %r, not an absolute path: left to the folder watch", filename[:300])
            return
        try:
            self.on_frame(Path(filename), metadata)
        except Exception:  # the next frame must still be heard
            log.exception("taking %s from captureComplete failed", filename)
