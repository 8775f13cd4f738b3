"""Hydreon rain sensors on a serial port (pyserial): the RG-15 and the RG-11.

RG-15 (text protocol, 9600 8N1). The source puts the gauge in polling mode (``P``) and
sends ``R`` every poll; the gauge answers one line such as::

    Acc  0.01 in, EventAcc  0.02 in, TotalAcc  0.03 in, RInt  0.12 iph
    Acc 0.25 mm, EventAcc 1.02 mm, TotalAcc 12.40 mm, RInt 3.05 mmph      (metric, after "M")

``Acc`` is the rain since the previous read, ``RInt`` the current intensity. Gauges with an
external tipping bucket append ``XTB...`` fields, which are ignored. Other lines (command
echoes, the start-up banner) are skipped; an answer with no reading line is an error.
Rain is reported when the intensity or the new accumulation is above zero.

RG-11 (relay). In rain mode the RG-11 closes (or opens, by its DIP switches) a relay. Wired
through a USB serial adapter, the relay connects an output the source holds high (RTS, or
DTR) to a status input (CTS, DSR, DCD or RI), so reading that input tells wet from dry.
The input is read through :class:`ContactLine`, a one-method interface, so the logic does
not care where the level comes from.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Protocol

import serial

from obsy_weather.config import SerialRainSourceConfig
from obsy_weather.sources.base import Clock, PollingSource, RawValue, SampleSink, SourceError

_FIELD = re.compile(r"^\s*([A-Za-z]+)\s+(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_UNITS = {"in": "in", "mm": "mm", "iph": "in/h", "mmph": "mm/h"}


def parse_rg15(line: str) -> dict[str, tuple[float, str]]:
    """``{"Acc": (0.01, "in"), "RInt": (0.12, "in/h"), ...}``; SourceError when the line is no reading."""
    fields: dict[str, tuple[float, str]] = {}
    for part in line.strip().split(","):
        match = _FIELD.match(part)
        if match is None:
            raise SourceError(f"not an RG-15 reading: {line.strip()[:80]!r}")
        unit = _UNITS.get(match.group(3).lower())
        if unit is not None:  # counters without a unit (XTBTips) are not used
            fields[match.group(1)] = (float(match.group(2)), unit)
    if "Acc" not in fields or "RInt" not in fields:
        raise SourceError(f"RG-15 reading without Acc and RInt: {line.strip()[:80]!r}")
    return fields


def rg15_values(fields: dict[str, tuple[float, str]]) -> list[RawValue]:
    rate, rate_unit = fields["RInt"]
    accumulated = fields["Acc"][0]
    return [("rain_rate", rate, rate_unit), ("rain", rate > 0 or accumulated > 0, None)]


class SerialSource(PollingSource):
    """Opens the port on demand and reopens it after an error (a USB adapter may come and go)."""

    def __init__(self, config: SerialRainSourceConfig, sink: SampleSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self.settings = config
        self.port: serial.SerialBase | None = None
        self._port_lock = threading.Lock()

    def open(self) -> serial.SerialBase:
        if self.port is None:
            try:
                self.port = serial.serial_for_url(
                    self.settings.port, baudrate=self.settings.baudrate, timeout=self.settings.timeout
                )
            except (serial.SerialException, ValueError) as error:
                raise SourceError(f"cannot open {self.settings.port}: {error}") from None
            self.prepare(self.port)
        return self.port

    def prepare(self, port: serial.SerialBase) -> None:
        """Put a freshly opened device in the state the source needs."""

    def read(self) -> tuple[list[RawValue], datetime | None]:
        with self._port_lock:
            try:
                return self.read_port(self.open()), None
            except (serial.SerialException, OSError) as error:
                self._close()
                raise SourceError(f"{self.settings.port}: {error}") from None

    def read_port(self, port: serial.SerialBase) -> list[RawValue]:
        raise NotImplementedError

    def close(self) -> None:
        with self._port_lock:
            self._close()

    def _close(self) -> None:
        if self.port is not None:
            try:
                self.port.close()
            finally:
                self.port = None


class RG15Source(SerialSource):
    kind = "RG-15"

    def prepare(self, port: serial.SerialBase) -> None:
        port.reset_input_buffer()
        port.write(b"P\n")  # polling mode: speak only when asked

    def read_port(self, port: serial.SerialBase) -> list[RawValue]:
        port.reset_input_buffer()
        port.write(b"R\n")
        skipped: list[str] = []
        for _ in range(8):  # the answer, possibly after a command echo or a banner line
            raw = port.readline()
            if not raw:
                break
            line = raw.decode("ascii", errors="replace").strip()
            if not line:
                continue
            try:
                return rg15_values(parse_rg15(line))
            except SourceError:
                skipped.append(line[:60])
        if skipped:
            raise SourceError(f"no reading in the RG-15's answer: {skipped!r}")
        raise SourceError(f"the RG-15 on {self.settings.port} did not answer within {self.settings.timeout:g} s")


class ContactLine(Protocol):
    """A relay contact: is it closed now?"""

    def closed(self) -> bool: ...


class ModemStatusLine:
    """A relay between an output held high (RTS for CTS, DTR for DSR/DCD/RI) and a modem status input."""

    def __init__(self, port: serial.SerialBase, line: str) -> None:
        self.port = port
        self.line = line
        port.rts = True
        port.dtr = True

    def closed(self) -> bool:
        return bool({"CTS": self.port.cts, "DSR": self.port.dsr, "DCD": self.port.cd, "RI": self.port.ri}[self.line])


class RG11Source(SerialSource):
    kind = "RG-11"

    def __init__(self, config: SerialRainSourceConfig, sink: SampleSink, clock: Clock) -> None:
        super().__init__(config, sink, clock)
        self.contact: ContactLine | None = None

    def prepare(self, port: serial.SerialBase) -> None:
        self.contact = ModemStatusLine(port, self.settings.line)

    def read_port(self, port: serial.SerialBase) -> list[RawValue]:
        assert self.contact is not None
        return [("rain", rg11_wet(self.contact, self.settings.wet_when), None)]


def rg11_wet(contact: ContactLine, wet_when: str) -> bool:
    """Rain, from the relay state and how the RG-11's DIP switches wire it (closed or open on rain)."""
    return contact.closed() == (wet_when == "closed")


def make_serial_rain_source(config: SerialRainSourceConfig, sink: SampleSink, clock: Clock) -> SerialSource:
    return RG15Source(config, sink, clock) if config.type == "rg15" else RG11Source(config, sink, clock)
