"""The web service process: ingestor, REST API and dashboard in one.

On start it brings the database schema up to date (Alembic), starts the ingestor on its
own persistent MQTT session, publishes the target list (retained) and serves HTTP.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from obsy.bus import Bus, Delivery
from obsy.homeassistant import Entity
from obsy.messages import ImagingAcquired, TargetList
from obsy.runner import Service
from obsy.topics import Topics
from obsy_web import ha
from obsy_web.app import create_app
from obsy_web.auth.ratelimit import LoginLimiter
from obsy_web.commands import CommandGateway
from obsy_web.context import WebContext
from obsy_web.db import make_engine, session_factory
from obsy_web.db.migrate import upgrade
from obsy_web.fleet import Fleet, sites_of
from obsy_web.ingest.ingestor import Ingestor
from obsy_web.ingest.retention import apply_retention
from obsy_web.ingest.subscriber import start_ingest_bus
from obsy_web.live import LatestStates, LiveHub
from obsy_web.nights import NightSummaries
from obsy_web.notify import Notifier
from obsy_web.sky import SkyNow
from obsy_web.status import StatusBoard
from obsy_web.targets import TargetStore

RETENTION_INTERVAL_S = 3600.0
#: How often the stored events are looked at for a night that ended and wants its summary sent.
NIGHT_SUMMARY_INTERVAL_S = 5.0
#: How long a start waits for a database that does not answer yet (compose starts them together).
DATABASE_WAIT_S = 60.0


class WebService(Service):
    name = "web"

    def start(self) -> None:
        settings = self.config.web
        url = self.config.database_url()
        self.engine = make_engine(url)
        self._migrate_when_reachable(url)
        sessions = session_factory(self.engine)
        latest = LatestStates(self.topics)
        self.fleet = Fleet(sites_of(self.config), latest)
        self.ingestor = Ingestor(
            self.engine,
            self.topics,
            site=self.fleet.local.id,
            sites=[(site.id, Topics(site.prefix)) for site in self.fleet.sites[1:]],
            max_payload=settings.ingest_max_payload,
            batch_size=settings.ingest_batch_size,
        )
        self.context = WebContext(
            config=self.config,
            topics=self.topics,
            engine=self.engine,
            sessions=sessions,
            board=StatusBoard(self.bus),
            latest=latest,
            hub=LiveHub(self.topics),
            targets=TargetStore(sessions, self._publish_targets),
            commands=CommandGateway(self.bus, settings.command_timeout),
            sky=SkyNow(self.config.site),
            ingestor=self.ingestor,
            limiter=LoginLimiter(settings.login_attempts_per_minute),
            simulation=CommandGateway(self.bus, settings.command_timeout, service="weather", things=("simulate",)),
            fleet=self.fleet,
            site_commands={
                site.id: CommandGateway(self.bus, settings.command_timeout, Topics(site.prefix), site.id)
                for site in self.fleet.sites[1:]
            },
            masters=CommandGateway(
                self.bus, settings.command_timeout, service="imaging", things=("masters",), result_state="masters"
            ),
        )
        self.context.sky.current()  # first computation in the background
        self.context.targets.publish_all()
        self.bus.subscribe(self.topics.imaging_acquired, self._on_acquired, ImagingAcquired)
        self.notifier = Notifier(
            settings.notifications,
            self.topics,
            site_name=self.config.site.name,
            timezone=self.config.site.timezone,
            publish_event=self.bus.publish_event,
        )
        self.notifier.attach(self.bus)  # nothing, unless notification URLs are configured
        self.night_summaries = NightSummaries(
            sessions,
            self.notifier,
            settings.notifications,
            site=self.fleet.local.id,
            site_name=self.config.site.name,
            timezone=self.config.site.timezone,
            public_url=settings.public_url or self.config.homeassistant.configuration_url,
            publish=lambda message: self.bus.publish(self.topics.web_night_summary, message, qos=1, retain=True),
        )
        self._next_night_summary = time.monotonic() + NIGHT_SUMMARY_INTERVAL_S
        self.ingestor.start()
        self.ingest_bus: Bus = start_ingest_bus(
            self.config.broker, self._on_bus_message, wait=5.0, also=self.fleet.topic_filters()
        )
        self._next_retention = time.monotonic() + 60.0
        self._serve(create_app(self.context))

    def _migrate_when_reachable(self, url: str) -> None:
        """Apply the migrations, waiting up to DATABASE_WAIT_S for a database that is still starting."""
        shown = make_url(url).render_as_string(hide_password=True)
        deadline = time.monotonic() + DATABASE_WAIT_S
        delay = 0.5
        while True:
            try:
                upgrade(self.engine, site_id=self.config.site_id())
                return
            except OperationalError as exc:
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                if time.monotonic() + delay > deadline:
                    raise RuntimeError(f"cannot reach the database {shown}: {reason}") from None
                self.log.warning("waiting for the database %s: %s", shown, reason, extra={"event": "database_wait"})
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _publish_targets(self, targets: TargetList) -> None:
        self.bus.publish(self.topics.web_targets, targets, qos=1, retain=True)

    def _on_acquired(self, topic: str, summary: ImagingAcquired) -> None:
        """The imaging service's accepted lights: counted into the exposure plans (see docs/web.md)."""
        try:
            self.context.targets.apply_acquired(summary)
        except Exception:
            self.log.exception(
                "the accepted lights on %s could not be counted", topic, extra={"event": "acquired_failed"}
            )

    def _on_bus_message(self, delivery: Delivery) -> None:
        # A failure of the live view must not keep a message from the store (the bus would
        # acknowledge a delivery whose handler raised, before it is stored).
        try:
            site = self.fleet.update(delivery.topic, delivery.payload)
            if site is self.fleet.local:
                self.context.latest.update(delivery.topic, delivery.payload)
                self.context.hub.publish(delivery.topic, delivery.payload)
            elif site is not None:  # a bridged site's message: to the pages that show that site
                self.context.hub.publish(delivery.topic, delivery.payload, site=site.id, prefix=site.prefix)
            elif (linked := self.fleet.linked_site(delivery.topic)) is not None:
                # Its bridge connected or broke: the pages showing it say so at once.
                self.context.hub.send("link", {"id": linked.id, **self.fleet.link(linked)}, site=linked.id)
        except Exception:
            self.log.exception("the live view could not take a message on %s", delivery.topic)
        self.ingestor.submit_delivery(delivery)

    def _serve(self, app: Any) -> None:
        settings = self.config.web
        server_config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
        )
        self.server = uvicorn.Server(server_config)
        # Bind here, not in uvicorn's thread, so that a busy port is a clear start failure.
        try:
            listener = socket.create_server((settings.host, settings.port), reuse_port=False)
        except OSError as exc:
            raise RuntimeError(
                f"the dashboard cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [listener]}, name="web-http", daemon=True
        )
        self.thread.start()
        self.log.info("dashboard at http://%s:%s/", settings.host, settings.port, extra={"event": "http_listening"})

    def poll(self) -> None:
        if not self.thread.is_alive():
            raise RuntimeError("the HTTP server thread stopped")
        if time.monotonic() >= self._next_retention:
            self._next_retention = time.monotonic() + RETENTION_INTERVAL_S
            apply_retention(self.engine, self.config.web.retention)
        if time.monotonic() >= self._next_night_summary:
            self._next_night_summary = time.monotonic() + NIGHT_SUMMARY_INTERVAL_S
            self.night_summaries.check()

    def stop(self) -> None:
        self.context.hub.close()  # open /live streams end now, so the server stops at once
        self.server.should_exit = True
        self.thread.join(10)
        self.ingestor.stop()  # writes and acknowledges what it holds while the broker is still there
        self.ingest_bus.stop()
        self.notifier.stop()
        self.engine.dispose()

    def disk_paths(self) -> dict[str, Path]:
        """The database's folder on SQLite (on Postgres the database's own host watches its disk). The web
        service holds nothing back at critical: the ingestor keeps what it cannot write unacknowledged."""
        url = make_url(self.config.database_url())
        if url.get_backend_name() != "sqlite" or not url.database:
            return {}
        return {"database": Path(url.database).resolve().parent}

    def ha_entities(self) -> list[Entity]:
        return ha.entities(self.topics)

    def health_details(self) -> dict[str, Any]:
        return {
            "http": self.thread.is_alive(),
            "ingest": {
                **self.ingestor.health(),
                "unacknowledged": self.ingest_bus.unacknowledged,
                "oversize_on_the_bus": self.ingest_bus.oversize_messages,
            },
            "live_clients": self.context.hub.listeners,
            "notifications": {**self.notifier.health(), "night_summaries": dict(self.night_summaries.counts)},
        }


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry, which lives in :mod:`obsy_web.main` (it starts without this module)."""
    from obsy_web.main import main as console_main

    return console_main(argv)
