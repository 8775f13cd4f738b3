"""Where a service's entities live in Home Assistant, and the discovery config of one entity."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from obsy.homeassistant.entities import Entity
from obsy.homeassistant.templates import AVAILABILITY_TEMPLATE
from obsy.topics import ONLINE, Topics

MANUFACTURER = "OBSY"
DEFAULT_MODEL = "Observatory automation"

_SLUG_STRIP = re.compile(r"[^a-z0-9]+")


def obsy_version() -> str:
    """The installed obsy-core's version: the device's and the origin's ``sw_version``."""
    try:
        return metadata.version("obsy-core")
    except metadata.PackageNotFoundError:
        return "unknown"


def slug(text: str) -> str:
    """Lower-case ``[a-z0-9_]`` form of a prefix or name (what Home Assistant ids allow)."""
    return _SLUG_STRIP.sub("_", text.lower()).strip("_") or "x"


def device_id(prefix: str) -> str:
    """The identifier of the one Home Assistant device of an observatory."""
    return f"obsy_{slug(prefix)}"


def node_id(prefix: str, service: str) -> str:
    """The discovery node of one service of one observatory."""
    return f"obsy_{slug(prefix)}_{slug(service)}"


@dataclass(frozen=True)
class Node:
    """Where one service's entities live in Home Assistant, and what every config shares."""

    prefix: str
    service: str
    site_name: str
    discovery_prefix: str = "homeassistant"
    sw_version: str = field(default_factory=obsy_version)
    model: str = DEFAULT_MODEL
    site_availability_topic: str | None = None
    via_device: str | None = None
    support_url: str | None = None
    configuration_url: str | None = None

    @property
    def node_id(self) -> str:
        return node_id(self.prefix, self.service)

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def unique_id(self, entity: Entity) -> str:
        return f"{self.node_id}_{entity.object_id}"

    def config_topic(self, entity: Entity) -> str:
        return f"{self.discovery_prefix}/{entity.component}/{self.node_id}/{entity.object_id}/config"

    def config_filter(self) -> str:
        """Every config of this node, whatever its component or object_id."""
        return f"{self.discovery_prefix}/+/{self.node_id}/+/config"

    def parse_config_topic(self, topic: str) -> tuple[str, str] | None:
        """(component, object_id) of a config topic of this node, else None."""
        parts = topic.split("/")
        head = self.discovery_prefix.split("/")
        if len(parts) != len(head) + 4 or parts[: len(head)] != head:
            return None
        component, node, object_id, leaf = parts[len(head) :]
        if node != self.node_id or leaf != "config":
            return None
        return component, object_id

    def device(self) -> dict[str, Any]:
        block: dict[str, Any] = {
            "identifiers": [device_id(self.prefix)],
            "name": self.site_name,
            "manufacturer": MANUFACTURER,
            "model": self.model,
            "sw_version": self.sw_version,
        }
        if self.via_device:
            block["via_device"] = self.via_device
        if self.configuration_url:
            block["configuration_url"] = self.configuration_url
        return block

    def origin(self) -> dict[str, Any]:
        block: dict[str, Any] = {"name": MANUFACTURER, "sw_version": self.sw_version}
        if self.support_url:
            block["support_url"] = self.support_url
        return block

    def availability(self) -> list[dict[str, str]]:
        topics = [self.topics.availability(self.service)]
        if self.site_availability_topic and self.site_availability_topic not in topics:
            topics.append(self.site_availability_topic)
        return [
            {
                "topic": topic,
                "payload_available": ONLINE,
                "payload_not_available": "offline",
                "value_template": AVAILABILITY_TEMPLATE,
            }
            for topic in topics
        ]


def discovery_payload(entity: Entity, node: Node) -> dict[str, Any]:
    """The discovery config of one entity, with full (not abbreviated) key names."""
    unique_id = node.unique_id(entity)
    payload: dict[str, Any] = {
        "name": entity.name,
        "unique_id": unique_id,
        "default_entity_id": f"{entity.component}.{unique_id}",
        **entity.options_payload(),
    }
    if not entity.enabled_by_default:
        payload["enabled_by_default"] = False
    if entity.availability:
        payload["availability"] = node.availability()
        payload["availability_mode"] = "all"
    payload["qos"] = 1
    payload["device"] = node.device()
    payload["origin"] = node.origin()
    payload.update(entity.extra)
    return payload
