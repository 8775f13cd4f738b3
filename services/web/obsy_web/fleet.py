"""Several observatories on one web service: each site's latest states and whether it is reachable.

Each site runs on its own broker, bridged to this one (docs/operations.md#several-observatories).
Its messages arrive here under its own prefix (``web.sites``); this site's under ``broker.prefix``.
A Mosquitto bridge publishes whether it is connected on ``$SYS/broker/connection/<remote
client id>/state`` (``1`` or ``0``, retained; ``0`` is its Last Will, so the central broker
says it when the site's link breaks). :class:`Fleet` watches those topics: a site whose link is
down (or was never seen up) is *unreachable since* the time this service learned it, and its
verdict is never shown as safe or unsafe from what it said before; what it said last is kept
apart, with its time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from obsy.config import ObsyConfig
from obsy.messages import PlanSite
from obsy.topics import Topics
from obsy_web.live import LatestStates

log = logging.getLogger("obsy.web.fleet")

#: A verdict older than this is stale: the weather service republishes every minute or so.
STALE_AFTER_S = 300.0
#: Where a bridge says whether it is connected (Mosquitto's notifications).
LINK_STATE_TOPIC = "$SYS/broker/connection/{bridge}/state"


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    prefix: str
    #: The bridge's remote client id; None for this site (no bridge: always reachable).
    bridge: str | None = None
    #: Where it is, as ``web.sites`` names it (latitude, longitude, elevation); None: not named there.
    position: PlanSite | None = None
    #: Its time zone, as ``web.sites`` names it; None: not named there.
    timezone: str | None = None

    @property
    def link_topic(self) -> str | None:
        return LINK_STATE_TOPIC.format(bridge=self.bridge) if self.bridge else None


@dataclass
class _Link:
    up: bool | None = None  # None: no state seen yet
    since: datetime | None = None


def sites_of(config: ObsyConfig) -> list[Site]:
    """This site first, then the bridged ones of ``web.sites``."""
    local = Site(config.site_id(), config.site.name, config.broker.prefix)
    others = [
        Site(
            site.site_id(),
            site.name or site.site_id(),
            site.prefix,
            site.bridge_id(),
            None
            if site.latitude is None or site.longitude is None
            else PlanSite(latitude=site.latitude, longitude=site.longitude, elevation=site.elevation),
            site.timezone,
        )
        for site in config.web.sites
    ]
    return [local, *others]


class Fleet:
    """The sites this web service stores, their latest states and links."""

    def __init__(self, sites: list[Site], local_latest: LatestStates | None = None) -> None:
        self.sites = sites
        self.local = sites[0]
        self.latest = {site.id: LatestStates(Topics(site.prefix)) for site in sites}
        if local_latest is not None:
            self.latest[self.local.id] = local_latest
        self._by_link = {site.link_topic: site for site in sites if site.link_topic}
        self._links = {site.id: _Link() for site in sites if site.bridge}
        self._last_message: dict[str, datetime] = {}
        self._started = datetime.now(UTC)
        self._lock = threading.Lock()

    @property
    def bridged(self) -> bool:
        return len(self.sites) > 1

    def topic_filters(self) -> list[str]:
        """What the ingest connection subscribes to besides this site's tree."""
        return [f"{site.prefix}/#" for site in self.sites[1:]] + list(self._by_link)

    def site_for(self, topic: str) -> Site | None:
        for site in self.sites:
            if topic.startswith(site.prefix + "/"):
                return site
        return None

    def linked_site(self, topic: str) -> Site | None:
        """The bridged site whose link state ``topic`` is, else None."""
        return self._by_link.get(topic)

    def get(self, site_id: str) -> Site | None:
        return next((site for site in self.sites if site.id == site_id), None)

    def update(self, topic: str, payload: bytes, now: datetime | None = None) -> Site | None:
        """Take one message from the ingest connection; returns its site (None: a link state or another tree)."""
        now = now or datetime.now(UTC)
        linked = self._by_link.get(topic)
        if linked is not None:
            value = payload.decode("utf-8", errors="replace").strip()
            up = True if value == "1" else False if value == "0" else None
            with self._lock:
                link = self._links[linked.id]
                if up is not None and up != link.up:
                    link.up, link.since = up, now
            return None
        site = self.site_for(topic)
        if site is None:
            return None
        with self._lock:
            self._last_message[site.id] = now
        if site is not self.local:  # this site's latest states are fed by the service itself
            self.latest[site.id].update(topic, payload)
        return site

    def place(self, site: Site) -> tuple[PlanSite | None, ZoneInfo]:
        """Where a bridged site is and its time zone: what its scheduler's latest plan names (``site``), else
        what ``web.sites`` gives; no position (None) and UTC where neither does."""
        plan = self.latest[site.id].get("scheduler/plan")
        named = plan.get("site") if isinstance(plan, dict) else None
        position = site.position
        if named is not None:
            try:
                position = PlanSite.model_validate(named)
            except ValidationError:
                log.warning("the plan of site %s names a bad position: %.200r", site.id, named)
        for zone in (position.timezone if position else None, site.timezone):
            if zone:
                try:
                    return position, ZoneInfo(zone)
                except (ZoneInfoNotFoundError, ValueError):
                    log.warning("site %s: unknown time zone %.64r", site.id, zone)
        return position, ZoneInfo("UTC")

    def link(self, site: Site) -> dict[str, Any]:
        """``{"reachable", "link", "since", "status"}``: this site is always reachable."""
        if site.bridge is None:
            return {"reachable": True, "link": "local", "since": None, "status": "reachable"}
        with self._lock:
            link = _Link(self._links[site.id].up, self._links[site.id].since)
        if link.up:
            since = link.since.isoformat() if link.since else None
            return {"reachable": True, "link": "up", "since": since, "status": "reachable"}
        since = link.since or self._started
        text = "unreachable since " + since.isoformat(timespec="seconds")
        if link.up is None:
            text = "unreachable: no link state from its bridge since " + since.isoformat(timespec="seconds")
        return {
            "reachable": False,
            "link": "unknown" if link.up is None else "down",
            "since": since.isoformat(),
            "status": text,
        }

    def overview(self, site: Site, now: datetime | None = None) -> dict[str, Any]:
        """One site at a glance: roof, verdict, availability, last frames, reachability."""
        now = now or datetime.now(UTC)
        latest = self.latest[site.id]
        link = self.link(site)
        mcp = _mapping(latest.get("mcp/state"))
        safety = _mapping(latest.get("weather/safety"))
        availability = {
            key.split("/", 1)[0]: value
            for key, value in latest.items()
            if key.count("/") == 1 and key.endswith("/availability") and isinstance(value, str)
        }
        last_known = {
            "roof": mcp.get("roof"),
            "mcp_state": mcp.get("state"),
            "mcp_time": mcp.get("timestamp"),
            "safe": safety.get("safe"),
            "verdict_time": safety.get("timestamp"),
        }
        with self._lock:
            last_message = self._last_message.get(site.id)
        entry: dict[str, Any] = {
            "id": site.id,
            "name": site.name,
            "prefix": site.prefix,
            "local": site.bridge is None,
            **link,
            "last_message": last_message.isoformat() if last_message else None,
            "last_frame": {
                "allsky": _mapping(latest.get("allsky/frames")).get("timestamp"),
                "imaging": _mapping(latest.get("imaging/frames")).get("timestamp"),
            },
            "last_known": last_known,
        }
        if not link["reachable"]:
            # Never safe or unsafe, open or closed, from what an unreachable site said before.
            entry.update(roof=None, mode=None, alarm=None, verdict="unreachable", availability={})
            return entry
        entry.update(
            roof=mcp.get("roof"),
            mode=mcp.get("mode"),
            alarm=mcp.get("alarm"),
            verdict=_verdict(safety, now),
            availability=availability,
        )
        return entry

    def overviews(self, now: datetime | None = None) -> list[dict[str, Any]]:
        return [self.overview(site, now) for site in self.sites]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _verdict(safety: dict[str, Any], now: datetime) -> str:
    """``safe``, ``unsafe``, ``stale`` (older than STALE_AFTER_S) or ``unknown`` (none)."""
    if not safety or not isinstance(safety.get("safe"), bool):
        return "unknown"
    try:
        stamp = datetime.fromisoformat(str(safety.get("timestamp")))
    except ValueError:
        return "unknown"
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    if (now - stamp).total_seconds() > STALE_AFTER_S:
        return "stale"
    return "safe" if safety["safe"] else "unsafe"
