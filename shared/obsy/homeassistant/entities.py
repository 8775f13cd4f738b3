"""Typed descriptions of the Home Assistant entities a service offers, one class per kind.

A description holds only what is particular to the entity; :func:`~obsy.homeassistant.discovery.discovery_payload`
adds what every config of a node shares (ids, device, origin, availability, QoS). Every field
named like a Home Assistant option is sent under that name when it is not ``None``; ``name``
is always sent (``None``: the entity takes the device's name); ``object_id``,
``enabled_by_default``, ``availability`` and ``extra`` say how to send.

    Sensor("stars", "Stars", state_topic=topics.allsky_state, value_template=json_value("stars"))
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, ClassVar, Literal

EntityCategory = Literal["config", "diagnostic"]

_OBJECT_ID = re.compile(r"^[a-z0-9_]+$")
#: Fields that shape the payload rather than being Home Assistant options themselves.
_NOT_OPTIONS = frozenset({"object_id", "name", "enabled_by_default", "availability", "extra"})


@dataclass(frozen=True)
class Entity:
    """What every kind of entity has. Use one of the kinds below, never this class itself.

    ``availability=False`` leaves the entity out of the service's availability, for entities
    that must stay readable while the service is down (its connectivity sensor). ``extra`` is
    merged last, for options without a field (``expire_after``, ``force_update``...).
    """

    component: ClassVar[str] = ""

    object_id: str
    name: str | None
    _: KW_ONLY
    icon: str | None = None
    entity_category: EntityCategory | None = None
    json_attributes_topic: str | None = None
    json_attributes_template: str | None = None
    enabled_by_default: bool = True
    availability: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.component:
            raise TypeError("Entity is the common part: describe a Sensor, BinarySensor, Cover... instead")
        if not _OBJECT_ID.match(self.object_id):
            raise ValueError(f"object_id {self.object_id!r} must be lower-case letters, digits and underscores")
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("options", "event_types") and value is not None:
                if isinstance(value, str) or not value or not all(isinstance(v, str) for v in value):
                    raise ValueError(
                        f"{self.component} {self.object_id}: {item.name} must be a non-empty sequence of strings"
                    )
                object.__setattr__(self, item.name, tuple(value))

    @property
    def key(self) -> tuple[str, str]:
        """(component, object_id): what identifies the entity within its node."""
        return (self.component, self.object_id)

    def options_payload(self) -> dict[str, Any]:
        """The Home Assistant options this entity sets (sequences as lists): its kind's first, then the common ones."""
        own = [item.name for item in fields(self) if item.name not in _COMMON_FIELDS]
        payload: dict[str, Any] = {}
        for name in (*own, *_COMMON_OPTIONS):
            value = getattr(self, name)
            if value is not None:
                payload[name] = list(value) if isinstance(value, tuple) else value
        return payload


_COMMON_FIELDS = frozenset(item.name for item in fields(Entity))
_COMMON_OPTIONS = tuple(item.name for item in fields(Entity) if item.name not in _NOT_OPTIONS)


@dataclass(frozen=True, kw_only=True)
class Sensor(Entity):
    """A reading. ``options`` lists the states of an ``enum`` sensor."""

    component: ClassVar[str] = "sensor"

    state_topic: str
    value_template: str | None = None
    device_class: str | None = None
    unit_of_measurement: str | None = None
    state_class: str | None = None
    options: Sequence[str] | None = None


@dataclass(frozen=True, kw_only=True)
class BinarySensor(Entity):
    """ON/OFF; the template renders ``ON``, ``OFF`` or ``None`` (unknown) unless payload_on/off say otherwise."""

    component: ClassVar[str] = "binary_sensor"

    state_topic: str
    value_template: str | None = None
    device_class: str | None = None
    payload_on: str | None = None
    payload_off: str | None = None


@dataclass(frozen=True, kw_only=True)
class Cover(Entity):
    """Something that opens and closes (the roof): commands out, its state read back."""

    component: ClassVar[str] = "cover"

    state_topic: str | None = None
    value_template: str | None = None
    device_class: str | None = None
    command_topic: str | None = None
    payload_open: str | None = None
    payload_close: str | None = None
    payload_stop: str | None = None
    state_open: str | None = None
    state_closed: str | None = None
    state_opening: str | None = None
    state_closing: str | None = None


@dataclass(frozen=True, kw_only=True)
class Select(Entity):
    """One of ``options``, chosen in Home Assistant and sent through ``command_template``."""

    component: ClassVar[str] = "select"

    options: Sequence[str]
    command_topic: str
    command_template: str | None = None
    state_topic: str | None = None
    value_template: str | None = None


@dataclass(frozen=True, kw_only=True)
class Switch(Entity):
    """On/off that Home Assistant commands."""

    component: ClassVar[str] = "switch"

    command_topic: str
    command_template: str | None = None
    state_topic: str | None = None
    value_template: str | None = None
    device_class: str | None = None
    payload_on: str | None = None
    payload_off: str | None = None


@dataclass(frozen=True, kw_only=True)
class Number(Entity):
    """A figure Home Assistant sets, between ``min`` and ``max``."""

    component: ClassVar[str] = "number"

    command_topic: str
    command_template: str | None = None
    state_topic: str | None = None
    value_template: str | None = None
    device_class: str | None = None
    unit_of_measurement: str | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None


@dataclass(frozen=True, kw_only=True)
class Button(Entity):
    """Sends ``payload_press`` to ``command_topic`` when pressed."""

    component: ClassVar[str] = "button"

    command_topic: str
    payload_press: str | None = None
    device_class: str | None = None


@dataclass(frozen=True, kw_only=True)
class Event(Entity):
    """Fires on each message on ``state_topic``: JSON with an ``event_type`` out of ``event_types``
    (or a ``value_template`` that renders such JSON); the other fields become attributes."""

    component: ClassVar[str] = "event"

    state_topic: str
    event_types: Sequence[str]
    value_template: str | None = None
    device_class: str | None = None


@dataclass(frozen=True, kw_only=True)
class Image(Entity):
    """A picture published whole on ``image_topic`` (a small retained JPEG)."""

    component: ClassVar[str] = "image"

    image_topic: str
    content_type: str | None = None


#: Every kind OBSY announces, by Home Assistant component.
KINDS: dict[str, type[Entity]] = {
    kind.component: kind for kind in (Sensor, BinarySensor, Cover, Select, Switch, Number, Button, Event, Image)
}
COMPONENTS: tuple[str, ...] = tuple(KINDS)
