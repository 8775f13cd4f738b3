"""The Alpaca service: OBSY's verdict and readings from the bus, served as ASCOM Alpaca devices.

It is a service of its own rather than part of the web service so that the imaging
program's safety monitor depends on as little as possible: no database, no web stack, one
small image with obsy-core only. It needs the host network in compose (Alpaca discovery is
a UDP broadcast on the LAN), which the web service should not have. docs/alpaca.md has
the rest.

It publishes nothing of its own beyond the standard availability and health (with the
verdict it serves and how many requests it answered); it only reads
``<prefix>/weather/safety``, ``<prefix>/weather/state`` and ``<prefix>/weather/availability``.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from obsy.bus import Bus
from obsy.config import ObsyConfig
from obsy.messages import Clock, SafetyVerdict, WeatherState, utc_now
from obsy.runner import Service, run_service
from obsy_alpaca.config import AlpacaConfig
from obsy_alpaca.devices import ObservingConditions, SafetyMonitor
from obsy_alpaca.server import AlpacaApi, AlpacaHttpServer, DiscoveryResponder
from obsy_alpaca.watch import VerdictWatch


def unique_id(prefix: str, device_type: str, number: int) -> str:
    """A UniqueID that stays the same across restarts and differs between observatories (prefixes)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"obsy:{prefix}:{device_type}:{number}"))


class AlpacaService(Service):
    name = "alpaca"
    poll_interval = 1.0

    def __init__(self, config: ObsyConfig, bus: Bus, *, clock: Clock = utc_now) -> None:
        super().__init__(config, bus, clock=clock)
        settings: AlpacaConfig = self.settings
        self.watch = VerdictWatch(settings.max_verdict_age, bus.connected.is_set, self.clock)
        version = _version()
        prefix = config.broker.prefix
        self.safety_monitor = SafetyMonitor(self.watch, unique_id(prefix, "SafetyMonitor", 0), version)
        self.observing_conditions = ObservingConditions(
            self.watch, unique_id(prefix, "ObservingConditions", 0), version
        )
        self.api = AlpacaApi(
            [self.safety_monitor, self.observing_conditions],
            {
                "ServerName": f"OBSY ({prefix})",
                "Manufacturer": "OBSY",
                "ManufacturerVersion": version,
                "Location": settings.location or config.site.name,
            },
            self.watch.safety,
        )
        self.http: AlpacaHttpServer | None = None
        self.discovery: DiscoveryResponder | None = None
        self._http_thread: threading.Thread | None = None
        self._last_safe: bool | None = None

    def start(self) -> None:
        self.bus.subscribe(self.topics.weather_safety, lambda _t, v: self.watch.set_verdict(v), SafetyVerdict)
        self.bus.subscribe(self.topics.weather_state, lambda _t, v: self.watch.set_state(v), WeatherState)
        self.bus.subscribe(
            self.topics.availability("weather"), lambda _t, v: self.watch.set_weather_availability(v), decode="text"
        )
        settings: AlpacaConfig = self.settings
        if not settings.enabled:
            self.log.info("alpaca is disabled (alpaca.enabled: false): serving no devices")
            return
        self.http = AlpacaHttpServer(settings.host, settings.port, self.api)
        # Discovery is bound before the HTTP port listens: whoever sees the API up (a test, a
        # watching supervisor) can rely on discovery answering too.
        if settings.discovery:
            self.discovery = DiscoveryResponder(settings.host, settings.discovery_port, self.http.port)
            self.discovery.start()
        self.http.listen()
        self._http_thread = threading.Thread(target=self.http.serve_forever, name="alpaca-http", daemon=True)
        self._http_thread.start()
        self.log.info(
            "alpaca devices on %s:%d%s",
            settings.host,
            self.http.port,
            f", discovery on UDP {self.discovery.port}" if self.discovery else "",
            extra={"event": "alpaca_serving"},
        )

    def poll(self) -> None:
        safety = self.watch.safety()
        if safety.safe != self._last_safe:
            self.log.info("IsSafe is now %s: %s", safety.safe, safety.why, extra={"event": "alpaca_is_safe"})
            self._last_safe = safety.safe

    def stop(self) -> None:
        if self.discovery is not None:
            self.discovery.stop()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()

    def health_details(self) -> dict[str, Any]:
        safety = self.watch.safety()
        return {
            "serving": self.http is not None,
            "port": self.http.port if self.http else None,
            "is_safe": safety.safe,
            "why": safety.why,
            "requests": self.api.transactions.last,
        }


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("obsy-alpaca")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    return run_service(AlpacaService, argv)
