"""The live status board: what every service last said about itself on the bus."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from obsy.bus import Bus
from obsy.config import SERVICE_NAMES
from obsy.messages import ServiceHealth


class StatusBoard:
    """Availability and health of every service, kept current from the retained topics."""

    def __init__(self, bus: Bus) -> None:
        self._topics = bus.topics
        self._lock = threading.Lock()
        self._availability: dict[str, str] = {}
        self._health: dict[str, ServiceHealth] = {}
        bus.subscribe(bus.topics.all_availability(), self._on_availability, decode="text")
        bus.subscribe(bus.topics.all_health(), self._on_health, ServiceHealth)

    def _service(self, topic: str) -> str:
        return topic[len(self._topics.prefix) + 1 :].split("/", 1)[0]

    def _on_availability(self, topic: str, value: str) -> None:
        with self._lock:
            self._availability[self._service(topic)] = value.strip()

    def _on_health(self, topic: str, health: ServiceHealth) -> None:
        with self._lock:
            self._health[self._service(topic)] = health

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        """Every known service (OBSY's own first) with availability, heartbeat age and status."""
        now = now or datetime.now(UTC)
        with self._lock:
            names = list(SERVICE_NAMES) + sorted(set(self._availability) | set(self._health) - set(SERVICE_NAMES))
            services = {}
            for name in dict.fromkeys(names):
                health = self._health.get(name)
                age = (now - health.timestamp).total_seconds() if health else None
                stale = health is not None and age is not None and age > 3 * health.heartbeat_interval_s
                services[name] = {
                    "availability": self._availability.get(name, "unknown"),
                    "status": "stale" if stale else (health.status if health else "unknown"),
                    "heartbeat_age_s": round(age, 1) if age is not None else None,
                    "version": health.version if health else None,
                    "host": health.host if health else None,
                    "invalid_messages": health.invalid_messages if health else None,
                }
        return {"time": now.isoformat(), "services": services}
