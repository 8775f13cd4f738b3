"""The whole configuration's model: the core's sections plus each installed service's own (the registry)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import Field, TypeAdapter, ValidationError, create_model, model_validator

from obsy.config.base import SERVICE_NAMES, ConfigError, Section, ServiceSection, site_slug
from obsy.config.registry import MissingSection, section_fields
from obsy.config.sections import (
    BrokerConfig,
    DatabaseConfig,
    DemoConfig,
    DiskConfig,
    HomeAssistantConfig,
    IndiServerConfig,
    SiteConfig,
    UploadConfig,
)
from obsy.config.service_sections import (
    ImagingConfig,
    SchedulerConfig,
    WebConfig,
)

T = TypeVar("T")


class CoreConfig(Section):
    """The configuration's common sections and the sections still kept in the core; see :data:`ObsyConfig`."""

    site: SiteConfig
    broker: BrokerConfig = BrokerConfig()
    database: DatabaseConfig = DatabaseConfig()
    indi: IndiServerConfig = IndiServerConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    disk: DiskConfig = DiskConfig()
    data_dir: Path = Path("var/data")
    #: Where services keep heartbeat files for container healthchecks.
    run_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()))
    #: ``json`` (one JSON object per line, for log collectors) or ``text`` (for people).
    log_format: Literal["json", "text"] = "json"
    scheduler: SchedulerConfig = SchedulerConfig()
    web: WebConfig = WebConfig()
    imaging: ImagingConfig = ImagingConfig()
    demo: DemoConfig = DemoConfig()
    upload: UploadConfig = UploadConfig()
    #: Sections of services that are not part of OBSY itself (add-ons), by service name.
    plugins: dict[str, ServiceSection] = Field(default_factory=dict)

    if TYPE_CHECKING:  # added by build_config_model from the services' own schemas (obsy.config.registry)
        from obsy_allsky.config import AllskyConfig
        from obsy_alpaca.config import AlpacaConfig
        from obsy_clouddetect.config import CloudDetectConfig
        from obsy_mcp.config import McpConfig
        from obsy_weather.config import WeatherConfig

        allsky: AllskyConfig
        alpaca: AlpacaConfig
        clouddetect: CloudDetectConfig
        mcp: McpConfig
        weather: WeatherConfig

    # Where the values came from, for messages; not part of the schema.
    source_file: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _transit_ephemerides(self) -> CoreConfig:
        transits = self.imaging.transits
        if transits.enabled and transits.ephemeris_path(self.scheduler.transits) is None:
            raise ValueError(
                "imaging.transits is enabled but no ephemeris file is set: set imaging.transits.ephemeris_file "
                "or scheduler.transits.ephemeris_file (a NASA Exoplanet Archive CSV export)"
            )
        return self

    @model_validator(mode="after")
    def _sites_apart(self) -> CoreConfig:
        """The fleet's sites need ids of their own and prefixes that do not contain one another."""
        ids = [self.site_id()]
        prefixes = [self.broker.prefix]
        for site in self.web.sites:
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
        return self

    def service(self, name: str) -> ServiceSection:
        """The section of a service; a plugin service without its own section gets the defaults."""
        if name in SERVICE_NAMES:
            return getattr(self, name)
        return self.plugins.get(name, ServiceSection())

    def setting_of(self, section: str, key: str, default: T, kind: Any = None) -> T:
        """``section.key`` read by a service that does not own ``section`` (``key`` may be dotted: ``camera.device``).

        Where the owning service is installed, the value its schema validated; elsewhere (a service's
        image holds only its own package) the value as written, checked against the type of
        ``default`` (or ``kind``, for a sub-section: ``SkyModelConfig | None``), and ``default`` must
        be the schema's own (tests/unit/test_config_registry.py checks every call).
        """
        value: Any = getattr(self, section)
        parts = key.split(".")
        if not isinstance(value, MissingSection):
            for part in parts:
                value = getattr(value, part)
            return value
        value = value.raw
        for part in parts:
            value = value.get(part, default) if isinstance(value, dict) else default
        try:
            return TypeAdapter(type(default) if kind is None else kind).validate_python(value)
        except ValidationError as exc:
            problems = [f"invalid value for '{section}.{key}': {error['msg']}" for error in exc.errors()]
            raise ConfigError(problems) from None

    def mcp_state_file(self) -> Path:
        """Where the MCP keeps the operator's last decision (``mcp.state_file``, or under ``data_dir``)."""
        return self.mcp.state_file or self.data_dir / "mcp" / "state.json"

    def site_id(self) -> str:
        """This site's id in the web service's tables: ``site.id``, else made from ``broker.prefix``."""
        return self.site.id or site_slug(self.broker.prefix)

    def database_url(self) -> str:
        """The configured database URL, or the embedded SQLite default under data_dir."""
        if self.database.url is not None and self.database.url.get_secret_value():
            return self.database.url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'obsy.sqlite3').resolve()}"


def build_config_model() -> type[CoreConfig]:
    """The configuration model with every installed service's registered section (see obsy.config.registry)."""
    fields: dict[str, Any] = section_fields(CoreConfig.model_fields)
    return create_model("ObsyConfig", __base__=CoreConfig, __module__="obsy.config", **fields)


if TYPE_CHECKING:
    ObsyConfig = CoreConfig
else:
    #: The configuration model: the core's sections and every installed service's own.
    ObsyConfig = build_config_model()
