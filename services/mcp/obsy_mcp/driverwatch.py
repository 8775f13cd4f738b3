"""Do the INDI drivers the observatory needs still answer? (for supervision)

indiserver can keep answering while one of its drivers does not: the driver hangs (its
properties stop changing and nothing it is sent gets an answer), or it is gone (its
device is no longer defined; indiserver restarts a crashed driver a few times, then gives
up). The MCP's own INDI connection stays up in both cases, so only a probe tells.

The probe: send a device's ``CONNECTION`` switch back as it is (CONNECT to a connected
device, DISCONNECT to a disconnected one). Every INDI driver answers that with its
CONNECTION state and changes nothing, so no answer within ``probe_timeout`` means the
driver is not answering. A device whose connection is in progress (Busy) is not probed:
sending CONNECT again would start a second connection attempt.

The watch runs on its own thread, one round every ``probe_interval``, so that a hung
driver never holds up the controller; :meth:`DriverWatch.problem` is the latest finding,
which the controller hands to the supervisor as the problem of the INDI server.
"""

from __future__ import annotations

import logging
import threading

from obsy.indi import IndiClient, IndiError
from obsy_mcp.config import McpIndiWatchConfig

log = logging.getLogger("obsy.mcp.driverwatch")


class DriverWatch:
    def __init__(self, indi: IndiClient, config: McpIndiWatchConfig, devices: list[str]) -> None:
        self.indi = indi
        self.config = config
        self.devices = list(devices)
        self._problem: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.config.enabled or not self.devices:
            return
        self._thread = threading.Thread(target=self._run, name="mcp-driver-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.config.probe_timeout + 2)

    def problem(self) -> str | None:
        """What the last round found wrong ("; "-joined), or None when every device answered."""
        with self._lock:
            return self._problem

    def _run(self) -> None:
        while not self._stop.is_set():
            found = self.check()
            with self._lock:
                if found != self._problem:
                    (log.warning if found else log.info)("INDI drivers: %s", found or "all answer again")
                self._problem = found
            self._stop.wait(self.config.probe_interval)

    def check(self) -> str | None:
        """Probe every device once; the problems found, or None."""
        if not self.indi.connected:
            return f"indiserver at {self.indi.address} does not answer"
        problems = [p for p in (self.probe(device) for device in self.devices) if p]
        return "; ".join(problems) or None

    def probe(self, device: str) -> str | None:
        """Why ``device`` does not answer, or None when its driver answered the probe."""
        gone = f"indiserver at {self.indi.address} does not answer"
        try:  # waits: right after a (re)connect the server is still sending the definitions
            connection = self.indi.wait_property(device, "CONNECTION", timeout=self.config.probe_timeout)
        except IndiError:
            return f"INDI device {device!r} is not defined (its driver is gone)" if self.indi.connected else gone
        if connection.state == "Busy":
            return None  # connecting or disconnecting right now: asking again would start another attempt
        element = next((name for name, on in connection.values.items() if on), None)
        if element is None:
            return None  # neither CONNECT nor DISCONNECT: nothing that can be sent back unchanged
        try:
            self.indi.set_switch(device, "CONNECTION", element, wait=False)
            self.indi.wait_for(
                device,
                "CONNECTION",
                lambda p, seq=connection.seq: p.seq > seq,
                timeout=self.config.probe_timeout,
                what="an answer to the probe",
            )
        except IndiError as error:
            log.debug("probe of %s failed: %s", device, error)
            if not self.indi.connected:
                return gone
            return f"INDI device {device!r} does not answer (no reply within {self.config.probe_timeout:g} s)"
        return None
