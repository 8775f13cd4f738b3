"""An INDI device as the simulator's drivers implement it: property vectors, requests, errors.

A device keeps its vectors and which of them are defined now, answers ``getProperties`` and
dispatches a client's ``new*Vector`` to the handler of that property. A wrong request (not a
number, out of range, an unknown element, a read-only property) is answered with the property
in Alert and a message naming what is wrong; the values stay as they were.
"""

from __future__ import annotations

import logging
import math
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable

from obsy_skysim.indi_xml import Number, Reader, Switch, Vector, Writer, message_xml, parse_new_vector

log = logging.getLogger("obsy.skysim")


class Device:
    """One INDI device: its property vectors, which of them are defined now, and request dispatch.

    Subclasses register a handler per writable property (:meth:`on_new`). A handler changes the
    vector and returns the message to send with its update ("" for none), or None when it sent
    the updates itself; one that raises ``ValueError`` leaves the property in Alert with the
    error as its message and its values as they were.
    """

    def __init__(self, name: str, writer: Writer) -> None:
        self.name = name
        self.writer = writer
        self.vectors: dict[str, Vector] = {}
        self.defined: set[str] = set()
        self.handlers: dict[str, Callable[[Vector, dict[str, str]], str | None]] = {}
        self.notes: dict[str, str] = {}  # a message sent with a property's definition
        self.lock = threading.RLock()

    # --- building --------------------------------------------------------------------
    def vector(self, name: str, label: str, group: str, kind: str, elements: list, **extra: object) -> Vector:
        v = Vector(self.name, name, label, group, kind, {e.name: e for e in elements}, **extra)  # type: ignore[arg-type]
        self.vectors[name] = v
        return v

    def on_new(self, name: str, handler: Callable[[Vector, dict[str, str]], str | None]) -> None:
        self.handlers[name] = handler

    # --- sending ---------------------------------------------------------------------
    def exists(self, *names: str) -> None:
        """Mark properties as defined without sending them: indiserver asks for them (getProperties)."""
        self.defined.update(names)

    def define(self, *names: str) -> None:
        for name in names:
            self.defined.add(name)
            self.writer.send(self.vectors[name].define_xml())

    def delete(self, *names: str) -> None:
        for name in names:
            if name in self.defined:
                self.defined.discard(name)
                self.writer.send(self.vectors[name].delete_xml())

    def update(self, name: str, state: str | None = None, message: str | None = None) -> None:
        v = self.vectors[name]
        if state is not None:
            v.state = state  # type: ignore[assignment]
        if name in self.defined:
            self.writer.send(v.set_xml(message))

    def message(self, text: str) -> None:
        self.writer.send(message_xml(self.name, text))

    # --- receiving -------------------------------------------------------------------
    def _get_properties(self, element: ET.Element) -> None:
        if element.get("device") not in (None, self.name):
            return
        wanted = element.get("name")
        for name in list(self.vectors):
            if name in self.defined and (wanted is None or wanted == name):
                self.writer.send(self.vectors[name].define_xml(self.notes.get(name)))

    def handle(self, element: ET.Element) -> None:
        tag = element.tag
        if tag == "getProperties":
            self._get_properties(element)
            return
        if tag not in ("newNumberVector", "newSwitchVector", "newTextVector"):
            return
        device, name, values = parse_new_vector(element)
        if device != self.name:
            return
        with self.lock:
            v = self.vectors.get(name)
            if v is None or name not in self.defined:
                self.message(f"{name!r} is not a property of {self.name} now")
                return
            if v.perm == "ro":
                self.update(name, "Alert", f"{name} is read-only")
                return
            handler = self.handlers.get(name)
            try:
                if handler is None:
                    raise ValueError(f"{name} cannot be set")
                note = handler(v, values)
            except ValueError as exc:
                log.warning("%s: %s", name, exc)
                self.update(name, "Alert", str(exc))
                return
            if note is not None:
                self.update(name, None, note or None)


# --- reading request values ------------------------------------------------------------
def numbers(v: Vector, values: dict[str, str]) -> dict[str, float]:
    """The requested numbers checked against the elements' ranges; the others keep their value."""
    out = {n: float(e.value) for n, e in v.elements.items() if isinstance(e, Number)}
    for name, text in values.items():
        e = v.element(name)
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{v.name}.{name}: {text[:40]!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{v.name}.{name}: {text[:40]!r} is not a finite number")
        assert isinstance(e, Number)
        if not e.minimum <= value <= e.maximum:
            raise ValueError(f"{v.name}.{name}: {value:g} is outside {e.minimum:g} .. {e.maximum:g}")
        out[name] = value
    return out


def chosen_switch(v: Vector, values: dict[str, str]) -> str:
    """The element a OneOfMany request switches on."""
    for name, text in values.items():
        v.element(name)
        if text not in ("On", "Off"):
            raise ValueError(f"{v.name}.{name}: {text[:20]!r} is neither On nor Off")
    on = [n for n, t in values.items() if t == "On"]
    if len(on) != 1:
        raise ValueError(f"{v.name}: switch exactly one of {', '.join(v.elements)} on")
    return on[0]


def set_switches(v: Vector, on: str | None) -> None:
    for name, e in v.elements.items():
        assert isinstance(e, Switch)
        e.on = name == on


def store(v: Vector, values: dict[str, float]) -> None:
    for name, value in values.items():
        e = v.elements[name]
        assert isinstance(e, Number)
        e.value = value


def run(device: Device, reader: Reader) -> None:
    """Answer requests until indiserver closes our input. Broken XML is logged and skipped."""
    while True:
        try:
            for element in reader.elements():
                device.handle(element)
            return
        except ET.ParseError as exc:
            log.warning("ignoring unreadable input from indiserver: %s", exc)
            reader.reset()
