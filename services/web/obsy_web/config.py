"""The web section of the configuration (registered in the ``obsy.config_sections`` entry-point group)."""

from __future__ import annotations

import re
import zoneinfo
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from obsy.config.base import SITE_ID_PATTERN, Section, ServiceSection, site_slug
from obsy.config.sections import KIB, MIB

if TYPE_CHECKING:
    from obsy.config.model import CoreConfig


class WebRetentionConfig(Section):
    """How long the web service keeps its time series; 0 keeps them for ever."""

    weather_days: int = Field(default=90, ge=0, description="weather readings")
    states_days: int = Field(default=90, ge=0, description="safety verdicts, cloud results, MCP states, availability")
    events_days: int = Field(default=365, ge=0, description="the event audit log")
    allsky_days: int = Field(default=365, ge=0, description="allsky frame and streak records (not the files)")
    plans_days: int = Field(default=365, ge=0, description="scheduler plans")


EventLevel = Literal["debug", "info", "warning", "error", "critical"]
#: Event kinds notified whatever their level (the roof, the night, alarms, a service gone).
DEFAULT_NOTIFY_KINDS = (
    "roof_opened",
    "roof_closing",
    "roof_closed",
    "night_started",
    "night_ended",
    "alarm",
    "alarm_cleared",
    "service_offline",
    "storage_full",
    "disk_warning",
    "disk_critical",
    "disk_ok",
)
_QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class NotificationsConfig(Section):
    """Notifications through Apprise, sent by the web service (docs/operations.md, "Notifications").

    Nothing is sent while ``urls`` is empty. The URLs carry the services' secrets (tokens,
    passwords): keep them in a file and point ``OBSY_WEB__NOTIFICATIONS__URLS_FILE`` at it
    (one URL a line).
    """

    urls: list[SecretStr] = Field(
        default_factory=list,
        description="Apprise URLs (ntfy://, pover://, tgram://, mailtos://, json://...); empty = no notifications",
    )
    min_level: EventLevel = Field(default="warning", description="events at this level and above are sent")
    kinds: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NOTIFY_KINDS),
        description="event kinds sent whatever their level (roof, night, alarms, a service offline...)",
    )
    exclude_kinds: list[str] = Field(default_factory=list, description="event kinds never sent")
    repeat_after: float = Field(
        default=600.0,
        ge=0,
        description="seconds: the same service and kind again within this is held back and counted "
        "(the next one sent says how many); 0 sends every one",
    )
    max_per_hour: int = Field(
        default=30, ge=1, description="notifications sent in any hour at most (critical ones always go)"
    )
    quiet_hours: str | None = Field(
        default=None,
        description="'HH:MM-HH:MM' in the site's time zone: only safety notifications (critical, "
        "alarms, the roof closing on unsafe) are sent then; empty = never quiet",
    )
    timeout: float = Field(default=15.0, gt=0, description="seconds one notification may take before it is given up")
    night_summary: bool = Field(
        default=True,
        description="send one end-of-night summary (roof, frames per target and filter, stacks, photometry, "
        "meteors) once the MCP says the night ended",
    )
    night_summary_delay: float = Field(
        default=300.0,
        ge=0,
        description="seconds after the night ended before the summary is made, so the roof has closed and the "
        "last frames are stored (held back further while quiet_hours last)",
    )

    @field_validator("urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        """A string (a secrets file, an environment variable) holds URLs separated by spaces or lines."""
        if isinstance(value, str):
            # A comment starts with '#' at the start of a line or after a space ('#' inside a URL stays).
            lines = (re.split(r"(?:^|\s)#", line, maxsplit=1)[0] for line in value.splitlines())
            return [part for line in lines for part in line.split()]
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not _QUIET_HOURS.match(value):
            raise ValueError("quiet_hours must look like '23:00-07:00' (24-hour clock, site time)")
        return value


class FleetSiteConfig(Section):
    """Another site whose broker is bridged to this one (docs/operations.md#several-observatories)."""

    prefix: str = Field(
        pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$",
        description="the topic prefix its messages arrive under on this broker (the bridge's remote prefix)",
    )
    id: str | None = Field(
        default=None, pattern=SITE_ID_PATTERN, description="its id in the tables (empty: the prefix's last part)"
    )
    name: str | None = Field(default=None, max_length=120, description="shown on the fleet page (empty: the id)")
    bridge: str | None = Field(
        default=None,
        description="the bridge's remote client id, whose $SYS/broker/connection/<bridge>/state says whether "
        "the site is reachable (empty: obsy-bridge-<id>)",
    )
    latitude: float | None = Field(
        default=None,
        ge=-90,
        le=90,
        description="its latitude, degrees north, for its plan's altitude curves where its plan names none "
        "(a scheduler's plan names its site's position)",
    )
    longitude: float | None = Field(default=None, ge=-180, le=180, description="its longitude, degrees east")
    elevation: float = Field(default=0.0, ge=-500, le=9000, description="its elevation, metres above sea level")
    timezone: str | None = Field(
        default=None,
        description="its IANA time zone, where its nights turn at local noon (empty: its plan's, else UTC)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')") from None
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> FleetSiteConfig:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError(f"web.sites {self.prefix}: give both latitude and longitude, or neither")
        return self

    def site_id(self) -> str:
        return self.id or site_slug(self.prefix.rsplit("/", 1)[-1])

    def bridge_id(self) -> str:
        return self.bridge or f"obsy-bridge-{self.site_id()}"


class WebUploadsConfig(Section):
    """What the centre takes of the bridged sites' files (``PUT /api/v1/sites/<site>/uploads/...``, docs/web.md)."""

    max_concurrent: int = Field(default=4, ge=1, le=256, description="uploads at a time; more are answered 503")
    max_file_bytes: int = Field(default=4 * 1024 * MIB, ge=1 * KIB, description="a larger file is refused (413)")
    max_staging_bytes: int = Field(
        default=16 * 1024 * MIB,
        ge=1 * KIB,
        description="bytes of unfinished uploads held at a time (all sites); past it new uploads are answered 503",
    )
    retry_after: int = Field(default=30, ge=1, le=3600, description="seconds a busy answer asks the site to wait")
    stale_hours: float = Field(
        default=48.0, gt=0, description="an unfinished upload untouched this long is dropped (its site starts it again)"
    )


class WebConfig(ServiceSection):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    anonymous_read: bool = Field(default=False, description="let visitors who are not logged in see (never act)")
    secure_cookies: bool = Field(default=False, description="mark session cookies Secure (set when served over HTTPS)")
    session_hours: float = Field(default=24 * 7, gt=0, description="how long a login lasts")
    login_attempts_per_minute: int = Field(default=5, ge=1, description="failed logins allowed per client and minute")
    command_timeout: float = Field(default=10.0, gt=0, description="seconds to wait for the MCP's answer to a command")
    ingest_batch_size: int = Field(default=500, ge=1, le=10_000, description="messages written per transaction")
    ingest_max_payload: int = Field(
        default=1 * MIB,
        ge=1 * KIB,
        description="bytes; a stored topic's message larger than this is counted and not stored (a plan: ~130 KiB)",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="the dashboard's address as people reach it (e.g. https://observatory.example.org/): links in "
        "notifications; empty = homeassistant.configuration_url, else no link",
    )
    retention: WebRetentionConfig = WebRetentionConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    sites: list[FleetSiteConfig] = Field(
        default_factory=list,
        description="other sites bridged to this broker: stored and shown with their site id (empty: this site only)",
    )
    uploads: WebUploadsConfig = WebUploadsConfig()

    def check_config(self, config: CoreConfig) -> None:
        """The fleet's sites need ids of their own and prefixes that do not contain one another."""
        ids = [config.site_id()]
        prefixes = [config.broker.prefix]
        for site in self.sites:
            if site.site_id() in ids:
                raise ValueError(f"web.sites: the site id {site.site_id()!r} is used twice (this site's included)")
            for prefix in prefixes:
                if (
                    prefix == site.prefix
                    or site.prefix.startswith(prefix + "/")
                    or prefix.startswith(site.prefix + "/")
                ):
                    raise ValueError(f"web.sites: the prefixes {prefix!r} and {site.prefix!r} overlap")
            ids.append(site.site_id())
            prefixes.append(site.prefix)
