"""Announces one service's entities to Home Assistant and keeps its node tidy."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from obsy.homeassistant.discovery import DEFAULT_MODEL, Node, discovery_payload, obsy_version
from obsy.homeassistant.entities import Entity
from obsy.topics import HOMEASSISTANT_STATUS, ONLINE

if TYPE_CHECKING:
    from obsy.bus import Bus
    from obsy.config import HomeAssistantConfig

log = logging.getLogger("obsy.homeassistant")


class DiscoveryPublisher:
    """Announces one service's entities to Home Assistant and keeps its node tidy.

    ``attach()`` is all a service needs (the runner calls it). ``remove_all()`` withdraws
    every entity of the node, for uninstalling.
    """

    def __init__(
        self,
        bus: Bus,
        ha_config: HomeAssistantConfig,
        site_name: str,
        service: str,
        entities: Iterable[Entity],
        *,
        sw_version: str | None = None,
        model: str = DEFAULT_MODEL,
        site_availability_topic: str | None = None,
        via_device: str | None = None,
        support_url: str | None = None,
        configuration_url: str | None = None,
    ) -> None:
        self.bus = bus
        self.ha_config = ha_config
        self.node = Node(
            prefix=bus.broker.prefix,
            service=service,
            site_name=site_name,
            discovery_prefix=ha_config.discovery_prefix,
            sw_version=sw_version or obsy_version(),
            model=model,
            site_availability_topic=site_availability_topic,
            via_device=via_device,
            support_url=support_url,
            configuration_url=configuration_url,
        )
        self.entities: dict[tuple[str, str], Entity] = {}
        for entity in entities:
            if entity.key in self.entities:
                raise ValueError(
                    f"{service}: two Home Assistant entities are both {entity.component} {entity.object_id!r}"
                )
            self.entities[entity.key] = entity
        self.publish_count = 0
        self.removed: list[str] = []
        self._attached = False
        self._wired = False
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    # --- what is offered -----------------------------------------------------------
    def configs(self) -> dict[str, dict[str, Any]]:
        """Config topic -> payload for every offered entity."""
        return {self.node.config_topic(e): discovery_payload(e, self.node) for e in self.entities.values()}

    # --- lifecycle -----------------------------------------------------------------
    def attach(self) -> None:
        """Publish now (or on connect), on every reconnect and whenever Home Assistant comes online."""
        if not self.ha_config.enabled:
            log.info("Home Assistant discovery is disabled; not announcing %s", self.node.service)
            return
        if self._attached:
            return
        self._attached = True
        if self._wired:  # attached again after detach(): the subscriptions and hook are still there
            if self.bus.connected.is_set():
                self.publish_all()
            return
        self._wired = True
        self.bus.subscribe(self.node.config_filter(), self._on_config, decode="bytes")
        for topic in sorted({HOMEASSISTANT_STATUS, f"{self.node.discovery_prefix}/status"}):
            self.bus.subscribe(topic, self._on_ha_status, decode="text")
        self.bus.on_connect(self._on_connect)  # also runs at once when already connected

    def detach(self) -> None:
        """Stop reacting (Home Assistant restarts, stale configs); published configs stay."""
        self._attached = False

    def remove_all(self) -> None:
        """Withdraw this node from Home Assistant: empty retained configs for every offered entity
        and for every other config of the node seen since :meth:`attach`."""
        self.detach()
        with self._lock:
            topics = set(self._seen) | set(self.configs())
            self._seen.clear()
        for topic in sorted(topics):
            self.bus.forget_retained(topic)
        log.info("removed %d Home Assistant configs of %s", len(topics), self.node.service)

    def publish_all(self) -> None:
        """Publish every config, retained, QoS 1."""
        for topic, payload in self.configs().items():
            self.bus.publish(topic, payload, qos=1, retain=True)
        self.publish_count += 1
        log.debug("published %d Home Assistant configs of %s", len(self.entities), self.node.service)

    # --- bus callbacks -------------------------------------------------------------
    def _on_connect(self) -> None:
        if self._attached:
            self.publish_all()

    def _on_ha_status(self, topic: str, value: str) -> None:
        if self._attached and value.strip() == ONLINE:
            log.info("Home Assistant is online; announcing %s again", self.node.service, extra={"event": "ha_online"})
            self.publish_all()

    def _on_config(self, topic: str, payload: bytes) -> None:
        parsed = self.node.parse_config_topic(topic)
        if parsed is None:
            return
        with self._lock:
            if not payload:
                self._seen.discard(topic)
                return
            self._seen.add(topic)
        if not self._attached or parsed in self.entities:
            return
        component, object_id = parsed
        log.info(
            "removing stale Home Assistant entity %s %s of %s",
            component,
            object_id,
            self.node.service,
            extra={"event": "ha_stale_removed", "topic": topic},
        )
        self.removed.append(topic)
        self.bus.forget_retained(topic)
