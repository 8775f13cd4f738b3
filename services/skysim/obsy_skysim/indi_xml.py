"""The INDI protocol as a driver speaks it: XML elements over stdin/stdout with indiserver.

A driver defines its properties (``def*Vector``), updates them (``set*Vector``), deletes them
(``delProperty``) and sends BLOBs base64-encoded in ``setBLOBVector``; it receives
``getProperties`` and the clients' ``new*Vector`` requests (INDI protocol 1.7). This module
holds the property vectors, writes them, and reads the incoming stream into elements; the
devices (:mod:`.driver`) decide what each request means.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np

State = Literal["Idle", "Ok", "Busy", "Alert"]
Perm = Literal["ro", "wo", "rw"]
Rule = Literal["OneOfMany", "AtMostOne", "AnyOfMany"]

PROTOCOL_VERSION = "1.7"


def _timestamp() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _attrs(**values: object) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in values.items() if v is not None)


@dataclass
class Number:
    name: str
    label: str
    value: float
    minimum: float
    maximum: float
    step: float = 0.0
    format: str = "%g"


@dataclass
class Switch:
    name: str
    label: str
    on: bool = False


@dataclass
class Text:
    name: str
    label: str
    value: str = ""


@dataclass
class Blob:
    name: str
    label: str


@dataclass
class Vector:
    """One INDI property vector; ``kind`` is Number, Switch, Text or BLOB."""

    device: str
    name: str
    label: str
    group: str
    kind: Literal["Number", "Switch", "Text", "BLOB"]
    elements: dict[str, Number | Switch | Text | Blob]
    perm: Perm = "rw"
    state: State = "Idle"
    rule: Rule | None = None
    timeout: float = 60.0

    def element(self, name: str) -> Number | Switch | Text | Blob:
        try:
            return self.elements[name]
        except KeyError:
            raise ValueError(f"{self.name} has no element {name!r} (it has {', '.join(self.elements)})") from None

    def values(self) -> dict[str, float | bool | str]:
        out: dict[str, float | bool | str] = {}
        for name, e in self.elements.items():
            if isinstance(e, Number):
                out[name] = e.value
            elif isinstance(e, Switch):
                out[name] = e.on
            elif isinstance(e, Text):
                out[name] = e.value
        return out

    def on_switch(self) -> str | None:
        return next((n for n, e in self.elements.items() if isinstance(e, Switch) and e.on), None)

    def define_xml(self, message: str | None = None) -> str:
        tag = f"def{self.kind}Vector"
        attrs = _attrs(
            device=self.device,
            name=self.name,
            label=self.label,
            group=self.group,
            state=self.state,
            perm="ro" if self.kind == "BLOB" and self.perm == "rw" else self.perm,
            rule=self.rule if self.kind == "Switch" else None,
            timeout=f"{self.timeout:g}",
            timestamp=_timestamp(),
            message=message,
        )
        inner = "".join(self._define_element(e) for e in self.elements.values())
        return f"<{tag}{attrs}>\n{inner}</{tag}>\n"

    def _define_element(self, e: Number | Switch | Text | Blob) -> str:
        if isinstance(e, Number):
            attrs = _attrs(
                name=e.name,
                label=e.label,
                format=e.format,
                min=f"{e.minimum:.10g}",
                max=f"{e.maximum:.10g}",
                step=f"{e.step:.10g}",
            )
            return f"  <defNumber{attrs}>{e.value:.10g}</defNumber>\n"
        if isinstance(e, Switch):
            return f"  <defSwitch{_attrs(name=e.name, label=e.label)}>{'On' if e.on else 'Off'}</defSwitch>\n"
        if isinstance(e, Text):
            return f"  <defText{_attrs(name=e.name, label=e.label)}>{escape(e.value)}</defText>\n"
        return f"  <defBLOB{_attrs(name=e.name, label=e.label)}/>\n"

    def set_xml(self, message: str | None = None) -> str:
        """An update of every element's value and the state (BLOB vectors: see :func:`blob_xml`)."""
        tag = f"set{self.kind}Vector"
        attrs = _attrs(
            device=self.device,
            name=self.name,
            state=self.state,
            timeout=f"{self.timeout:g}",
            timestamp=_timestamp(),
            message=message,
        )
        inner = []
        for e in self.elements.values():
            if isinstance(e, Number):
                inner.append(f"  <oneNumber{_attrs(name=e.name)}>{e.value:.10g}</oneNumber>\n")
            elif isinstance(e, Switch):
                inner.append(f"  <oneSwitch{_attrs(name=e.name)}>{'On' if e.on else 'Off'}</oneSwitch>\n")
            elif isinstance(e, Text):
                inner.append(f"  <oneText{_attrs(name=e.name)}>{escape(e.value)}</oneText>\n")
        return f"<{tag}{attrs}>\n{''.join(inner)}</{tag}>\n"

    def delete_xml(self) -> str:
        return f"<delProperty{_attrs(device=self.device, name=self.name, timestamp=_timestamp())}/>\n"


def blob_xml(vector: Vector, element: str, data: bytes, fmt: str) -> bytes:
    """A setBLOBVector carrying ``data`` (as bytes: a frame is megabytes, kept out of str).

    The base64 text comes in lines of 72 characters, as libindi writes it, and ``enclen`` gives
    its length without the line ends: indiserver 1.9 sizes its buffer from ``enclen`` assuming
    such lines, and never finishes reading a BLOB on one long line that declares ``enclen``.
    """
    text, enclen = base64_lines(data)
    head = (
        f"<setBLOBVector{_attrs(device=vector.device, name=vector.name, state=vector.state, timestamp=_timestamp())}>\n"
        f"  <oneBLOB{_attrs(name=element, size=len(data), format=fmt, enclen=enclen)}>\n"
    )
    return head.encode() + text + b"  </oneBLOB>\n</setBLOBVector>\n"


def base64_lines(data: bytes, width: int = 72) -> tuple[bytes, int]:
    """``data`` in base64, a newline after every ``width`` characters and at the end; and the
    length of the base64 text alone."""
    encoded = np.frombuffer(base64.b64encode(data), dtype=np.uint8)
    rows = len(encoded) // width
    body = np.empty((rows, width + 1), dtype=np.uint8)
    body[:, :width] = encoded[: rows * width].reshape(rows, width)
    body[:, width] = ord("\n")
    rest = encoded[rows * width :].tobytes()
    return body.tobytes() + rest + (b"\n" if rest else b""), len(encoded)


def message_xml(device: str, text: str) -> str:
    return f"<message{_attrs(device=device, timestamp=_timestamp(), message=text)}/>\n"


class Writer:
    """Writes whole elements to the output, one thread at a time."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream or sys.stdout.buffer
        self.lock = threading.Lock()

    def send(self, xml: str | bytes) -> None:
        data = xml.encode() if isinstance(xml, str) else xml
        with self.lock:
            self.stream.write(data)
            self.stream.flush()


@dataclass
class Reader:
    """Splits the incoming byte stream into its top-level elements (INDI has no enclosing root)."""

    fd: int = 0
    chunk: int = 65536
    _parser: ET.XMLPullParser = field(init=False)
    _depth: int = field(init=False, default=0)
    _root: ET.Element | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start afresh (after broken XML: what follows the next complete element is read again)."""
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._parser.feed(b"<indi>")
        self._depth, self._root = 0, None

    def elements(self) -> Iterator[ET.Element]:
        """Each complete top-level element until the input ends; raises ``ET.ParseError`` on broken XML."""
        while True:
            data = os.read(self.fd, self.chunk)
            if not data:
                return
            yield from self.feed(data)

    def feed(self, data: bytes) -> Iterator[ET.Element]:
        self._parser.feed(data)
        for event, element in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._root is None:
                    self._root = element
            else:
                self._depth -= 1
                if self._depth == 1 and self._root is not None:
                    self._root.remove(element)
                    yield element


def parse_new_vector(element: ET.Element) -> tuple[str, str, dict[str, str]]:
    """(device, property, {element name: text}) of a client's new*Vector request."""
    values = {child.get("name", ""): (child.text or "").strip() for child in element}
    return element.get("device", ""), element.get("name", ""), values


Handler = Callable[[ET.Element], None]
