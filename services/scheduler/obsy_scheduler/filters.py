"""The filter wheel's names, and every exposure plan's filter mapped onto one of them.

Ekos selects a capture job's filter by its exact name on the wheel. With a name the wheel
does not have it logs "Filter Ha not found" and captures anyway, through whatever filter is
in place. So the planner maps every plan's filter to a name on the wheel, or excludes the
target with the reason. Matching, first hit wins:

1. the exact name on the wheel;
2. ``scheduler.ekos.filter_aliases`` (plan name -> wheel name);
3. the same name ignoring case, spaces and punctuation ("h-alpha" is "H_Alpha");
4. a common synonym (:mod:`obsy.filters`: "Ha" is "H_Alpha", "Lum" and "L" are "Luminance", "S2" is "SII"...),
   when exactly one name on the wheel is one.

The names come from the wheel's INDI ``FILTER_NAME`` property (the service keeps one connection for
it, :class:`WheelWatch`; a command reads it once, :func:`read_filter_names`),
or from ``scheduler.ekos.filters`` when they are configured (planning without the wheel).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from obsy.config import IndiServerConfig
from obsy.filters import filter_key, filter_synonyms
from obsy_scheduler.config import SchedulerEkosConfig


class UnknownFilterError(ValueError):
    """A plan's filter has no match on the wheel; the message is the target's exclusion reason."""


@dataclass(frozen=True)
class FilterNames:
    """The names on the wheel, where they were read, and the configured aliases."""

    names: tuple[str, ...]
    source: str  # for messages: "CCD Simulator FILTER_NAME", "scheduler.ekos.filters"
    aliases: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """The wheel's name for the plan's filter ``name``; :class:`UnknownFilterError` naming what is wrong."""
        if name in self.names:
            return name
        if name in self.aliases:
            alias = self.aliases[name]
            if alias in self.names:
                return alias
            raise UnknownFilterError(
                f"filter {name!r} is aliased to {alias!r}, which is not on the filter wheel ({self._listing()})"
            )
        same = [wheel for wheel in self.names if filter_key(wheel) == filter_key(name)]
        if not same:
            group = filter_synonyms(name)
            same = [wheel for wheel in self.names if filter_key(wheel) in group]
        if len(same) == 1:
            return same[0]
        if same:
            raise UnknownFilterError(
                f"filter {name!r} could be any of {', '.join(same)} on the filter wheel: "
                "name one of them, or set scheduler.ekos.filter_aliases"
            )
        raise UnknownFilterError(
            f"filter {name!r} is not on the filter wheel ({self._listing()}): "
            "use one of those names, or map it in scheduler.ekos.filter_aliases"
        )

    def _listing(self) -> str:
        return f"{self.source}: {', '.join(self.names) or 'no filters'}"


class FilterReadError(RuntimeError):
    """The wheel's names could not be read; the message says why."""


class WheelWatch:
    """The wheel's INDI ``FILTER_NAME`` over one connection that lasts (and comes back after the server
    goes away), for the service that plans again and again: no new connection for each plan, and the
    names as the driver has them now. Connected at the first read; :meth:`close` at the end.
    """

    def __init__(self, indi: IndiServerConfig, device: str, timeout: float, *, reconnect: bool = True) -> None:
        self.indi, self.device, self.timeout, self.reconnect = indi, device, timeout, reconnect
        self._client: Any = None

    def names(self) -> tuple[str, ...]:
        """The names in slot order; :class:`FilterReadError` saying why they cannot be read now."""
        try:
            from obsy.indi import IndiClient, IndiError  # pyindi-client is needed only here
        except ImportError as exc:
            raise FilterReadError(f"pyindi-client is not installed ({exc})") from exc
        try:
            if self._client is None:
                self._client = IndiClient(
                    self.indi.host,
                    self.indi.port,
                    connect_timeout=self.timeout,
                    timeout=self.timeout,
                    reconnect=self.reconnect,
                    watch=[self.device],  # the wheel's properties only, not every device of the server
                )
            if not self._client.connected:
                self._client.connect(timeout=self.timeout)
            self._client.wait_property(self.device, "FILTER_NAME", timeout=self.timeout)
            slots = self._client.get_text(self.device, "FILTER_NAME")
        except IndiError as exc:
            raise FilterReadError(
                f"cannot read {self.device} FILTER_NAME from indiserver {self.indi.host}:{self.indi.port}: {exc}"
            ) from exc
        return tuple(name for _, name in sorted(slots.items(), key=lambda item: _slot_number(item[0])))

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()


def read_filter_names(indi: IndiServerConfig, device: str, timeout: float) -> tuple[str, ...]:
    """The names in ``device``'s INDI FILTER_NAME, in slot order, read once (a command's single plan);
    :class:`FilterReadError` if they cannot be read."""
    watch = WheelWatch(indi, device, timeout, reconnect=False)
    try:
        return watch.names()
    finally:
        watch.close()


def _slot_number(element: str) -> int:
    digits = re.findall(r"\d+", element)
    return int(digits[-1]) if digits else 0


def wheel_filters(ekos: SchedulerEkosConfig, read_names: Callable[[str], tuple[str, ...]]) -> FilterNames | None:
    """The names plans are checked against: None without a wheel, the configured ones, else the wheel's own
    (``read_names(device)``: :func:`read_filter_names`, or a :class:`WheelWatch`'s).

    Raises :class:`FilterReadError` when they have to be read and cannot be.
    """
    if not ekos.filter_wheel:
        return None
    if ekos.filters:
        return FilterNames(tuple(ekos.filters), "scheduler.ekos.filters", ekos.filter_aliases)
    names = read_names(ekos.filter_wheel)
    return FilterNames(names, f"{ekos.filter_wheel} FILTER_NAME", ekos.filter_aliases)
