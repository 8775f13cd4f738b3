"""The whole configuration's model: the core's sections plus each installed service's own (the registry)."""

from __future__ import annotations

import tempfile
import threading
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

T = TypeVar("T")


class CoreConfig(Section):
    """The configuration's common sections; see :data:`ObsyConfig` for the whole, services' sections included."""

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
    demo: DemoConfig = DemoConfig()
    upload: UploadConfig = UploadConfig()
    #: Sections of services that are not part of OBSY itself (add-ons), by service name.
    plugins: dict[str, ServiceSection] = Field(default_factory=dict)

    if TYPE_CHECKING:  # added by build_config_model from the services' own schemas (obsy.config.registry)
        from obsy_allsky.config import AllskyConfig
        from obsy_alpaca.config import AlpacaConfig
        from obsy_clouddetect.config import CloudDetectConfig
        from obsy_imaging.config import ImagingConfig
        from obsy_mcp.config import McpConfig
        from obsy_scheduler.config import SchedulerConfig
        from obsy_weather.config import WeatherConfig
        from obsy_web.config import WebConfig

        allsky: AllskyConfig
        alpaca: AlpacaConfig
        clouddetect: CloudDetectConfig
        imaging: ImagingConfig
        mcp: McpConfig
        scheduler: SchedulerConfig
        weather: WeatherConfig
        web: WebConfig

    # Where the values came from, for messages; not part of the schema.
    source_file: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _sections_agree(self) -> CoreConfig:
        """Each installed service's checks of its section against the rest (``ServiceSection.check_config``)."""
        for name in type(self).model_fields:
            section = getattr(self, name)
            if isinstance(section, ServiceSection):
                section.check_config(self)
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
        ``default`` (or ``kind``: ``SkyModelConfig | None``, ``Path | None``), and ``default`` must be
        the schema's own (tests/unit/test_config_registry.py checks every call). A whole sub-section
        is read with its schema, kept in the core, as the default: ``SchedulerTransitsConfig()``.
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
            problems = [
                f"invalid value for '{'.'.join((section, key, *(str(part) for part in error['loc'])))}': {error['msg']}"
                for error in exc.errors()
            ]
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


_build_lock = threading.Lock()

if TYPE_CHECKING:
    ObsyConfig = CoreConfig
else:

    def __getattr__(name: str) -> Any:
        """``ObsyConfig``, the configuration model: the core's sections and every installed service's own.

        Built on first use, not at import: a service's schema module imports ``obsy.config.base``, so
        building the model (which imports every schema module) while this package is first imported
        would import that schema module again, half-made, when it is the first thing imported.
        """
        if name != "ObsyConfig":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        with _build_lock:
            if "ObsyConfig" not in globals():
                globals()["ObsyConfig"] = build_config_model()
        return globals()["ObsyConfig"]
