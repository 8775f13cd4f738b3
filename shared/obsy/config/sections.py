"""The common sections: what the whole site shares (site, broker, database, INDI server, Home Assistant,
disk watch, uploads, the demo), and the parts of a service's section that another service reads whole:
clouddetect's sky model (allsky reads it), the scheduler's transit settings (the imaging service reduces
the transits the scheduler planned, from the same ephemeris file) and where the imaging repository is
(the web service serves its previews and reports). Each service's own section is in its package."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from obsy.config.base import (
    DEFAULT_SIMULATOR_DRIVERS,
    SITE_ID_PATTERN,
    Section,
)


class SiteConfig(Section):
    id: str | None = Field(
        default=None,
        pattern=SITE_ID_PATTERN,
        description="this site's id in the web service's tables (empty: made from broker.prefix, e.g. obsy)",
    )
    name: str = "My observatory"
    latitude: float = Field(ge=-90, le=90, description="degrees, north positive")
    longitude: float = Field(ge=-180, le=180, description="degrees, east positive")
    elevation: float = Field(default=0.0, ge=-500, le=9000, description="metres above sea level")
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')") from None
        return value


class TlsConfig(Section):
    enabled: bool = False
    ca_certs: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure: bool = Field(default=False, description="skip hostname verification (self-signed test setups only)")


KIB = 1024
MIB = 1024 * KIB


class PayloadLimitsConfig(Section):
    """The largest payload, in bytes, the bus hands to a subscriber, by topic kind.

    A larger message is dropped before it is decoded, counted (``invalid_messages`` in the
    service's health) and logged with its topic and size. The defaults leave ample room above
    the largest legitimate payloads (a command is a few hundred bytes; an event a few KiB; a
    target list of 500 targets with horizons and seven filters ~700 KiB, a plan of 200 blocks
    ~130 KiB; the allsky JPEG at its widest, 4096 px, a few MiB).
    """

    command: int = Field(default=64 * KIB, ge=1 * KIB, description="<p>/.../set")
    event: int = Field(default=256 * KIB, ge=1 * KIB, description="<p>/<service>/events and <p>/allsky/frames")
    state: int = Field(default=4 * MIB, ge=1 * KIB, description="states, plans, targets, health and any other topic")
    image: int = Field(default=16 * MIB, ge=1 * KIB, description="<p>/allsky/image, the retained JPEG")


class BrokerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsConfig = TlsConfig()
    keepalive: int = Field(default=30, ge=5, le=3600, description="seconds")
    prefix: str = Field(default="obsy", pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
    reconnect_min_delay: float = Field(default=0.5, gt=0)
    reconnect_max_delay: float = Field(default=30.0, gt=0)
    max_payload: PayloadLimitsConfig = PayloadLimitsConfig()

    @model_validator(mode="after")
    def _password_needs_user(self) -> BrokerConfig:
        if self.password is not None and not self.username:
            raise ValueError("broker.password is set but broker.username is not")
        return self


class DatabaseConfig(Section):
    url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://obsy:secret@db/obsy; empty = SQLite under data_dir",
    )


class IndiLocalDriver(Section):
    """A driver the local run starts; ``name`` gives its device another name (a second camera of one kind)."""

    driver: str = Field(description="driver executable, e.g. indi_simulator_ccd")
    name: str | None = Field(default=None, description="device name (indiserver's -n); empty = the driver's own")

    @field_validator("driver")
    @classmethod
    def _executable_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise ValueError(f"{value!r} is not a driver executable name (letters, digits, _ . - only)")
        return value

    @field_validator("name")
    @classmethod
    def _device_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r'[^"\n]{1,100}', value):
            raise ValueError(f"device name {value!r} must be 1 to 100 characters without double quotes or newlines")
        return value

    @property
    def label(self) -> str:
        return self.driver if self.name is None else f"{self.driver} as {self.name!r}"


class IndiServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=7624, ge=1, le=65535)
    connect_timeout: float = Field(default=10.0, gt=0)
    local_drivers: list[IndiLocalDriver] = Field(
        default_factory=lambda: [IndiLocalDriver(driver=name) for name in DEFAULT_SIMULATOR_DRIVERS],
        description="drivers the local run starts when no indiserver answers on host:port: "
        "an executable name, or {driver: ..., name: ...} for a device under a name of its own",
    )

    @field_validator("local_drivers", mode="before")
    @classmethod
    def _driver_entries(cls, value: Any) -> Any:
        """A plain string is a driver with its own device name; anything but a string or mapping is named."""
        if not isinstance(value, list):
            return value
        entries = []
        for index, entry in enumerate(value):
            if isinstance(entry, str):
                entries.append({"driver": entry})
            elif isinstance(entry, (Mapping, IndiLocalDriver)):
                entries.append(entry)
            else:
                raise ValueError(
                    f"entry {index} ({entry!r}) must be a driver name such as indi_simulator_ccd, "
                    "or a mapping {driver: indi_simulator_ccd, name: Allsky Simulator}"
                )
        return entries

    @field_validator("local_drivers")
    @classmethod
    def _distinct_devices(cls, value: list[IndiLocalDriver]) -> list[IndiLocalDriver]:
        seen = [(entry.driver, entry.name) for entry in value]
        twice = sorted({entry.label for entry in value if seen.count((entry.driver, entry.name)) > 1})
        if twice:
            raise ValueError(
                f"{', '.join(twice)} listed more than once: give each copy of a driver its own name "
                "({driver: ..., name: ...}), or two devices would share one name"
            )
        return value


class HomeAssistantConfig(Section):
    enabled: bool = True
    discovery_prefix: str = "homeassistant"
    configuration_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="the dashboard's address as Home Assistant should link the OBSY device to it "
        "(e.g. http://observatory.local:8080/); empty = no link",
    )


class SkyModelConfig(Section):
    """A camera's sky model (see obsy.skymodel); clouddetect fits and saves one by itself."""

    zenith_x: float = Field(description="pixel column of the zenith")
    zenith_y: float = Field(description="pixel row of the zenith")
    scale: float = Field(gt=0, description="pixels per radian at the zenith")
    rotation: float = Field(default=0.0, description="degrees added to the azimuth; 0 = north up")
    mirrored: bool = Field(default=False, description="true when east is to the right of north")
    projection: Literal["equidistant", "equisolid", "stereographic", "orthographic"] = "equidistant"
    distortion: float = Field(default=0.0, ge=-0.2, le=0.2, description="radial term k: r * (1 + k theta^2)")


class DemoConfig(Section):
    """What ``obsy-local --demo`` (``make demo``) changes; read by nothing else."""

    site: Literal["night", "config"] = Field(
        default="night",
        description="night: a longitude (and, where needed, latitude) where it is astronomical night now; "
        "config: the site section as it is",
    )
    safe_delay: float = Field(default=30.0, ge=0, description="seconds of good weather before reopening (weather, MCP)")
    allsky_interval: float = Field(default=20.0, gt=0, description="seconds between allsky frames")
    username: str = Field(default="demo", pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="the operator account made")
    kstars: bool = Field(default=True, description="start KStars/Ekos headless when it is installed")


class DiskConfig(Section):
    """The free-space watch of the folders services write to (docs/operations.md, "Disk space").

    A folder is at ``warning`` when its free space is below either warning limit, at ``critical``
    below either critical limit (0 turns a limit off). It leaves a level only once its free space is
    ``recovery_margin`` above that level's limits, so a disk hovering at a limit does not flap.
    """

    enabled: bool = True
    interval: float = Field(default=60.0, ge=1, description="seconds between measurements")
    warning_free_percent: float = Field(default=10.0, ge=0, le=100, description="warning below this % free")
    warning_free_gb: float = Field(default=10.0, ge=0, description="warning below this many GB (10^9 bytes) free")
    critical_free_percent: float = Field(default=3.0, ge=0, le=100, description="critical below this % free")
    critical_free_gb: float = Field(default=2.0, ge=0, description="critical below this many GB free")
    recovery_margin: float = Field(
        default=0.05, ge=0, le=1, description="a level is left once free space is this fraction above its limits"
    )

    @model_validator(mode="after")
    def _critical_below_warning(self) -> DiskConfig:
        if self.critical_free_gb > self.warning_free_gb or self.critical_free_percent > self.warning_free_percent:
            raise ValueError("the critical limits must not be above the warning limits")
        return self


class S3UploadConfig(Section):
    """Where the files go with ``upload.target: s3``: a bucket of any server with the S3 API (AWS, MinIO, Ceph,
    Garage...). The keys are ``<prefix><the path under the site's data directory>``. Credentials: keep them
    out of the file (``OBSY_UPLOAD__S3__ACCESS_KEY_ID_FILE``, ``OBSY_UPLOAD__S3__SECRET_ACCESS_KEY_FILE``);
    empty, boto3 looks for them as it always does (``AWS_ACCESS_KEY_ID``..., an instance role)."""

    endpoint_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="the S3 server (empty: AWS's endpoint for the region)"
    )
    bucket: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", description="the bucket (it must exist)"
    )
    region: str | None = Field(default=None, max_length=64, description="the bucket's region (empty: boto3's default)")
    prefix: str = Field(
        default="sites/{site}/",
        max_length=200,
        description="put before each key; {site} is this site's id at the centre",
    )
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    part_bytes: int = Field(
        default=8 * MIB,
        ge=5 * MIB,
        le=5 * 1024 * MIB,
        description="bytes per part of a multipart upload (S3's least is 5 MiB): at most one part is sent again "
        "after a cut",
    )
    path_style: bool = Field(
        default=True, description="address the bucket in the path (MinIO and most servers), not in the host name"
    )


class UploadConfig(Section):
    """Sending this site's large files (allsky pictures) to a centre's web service by HTTP (docs/operations.md).

    Off while ``url`` is empty. The token is an API token of an operator account at the centre
    limited to this site; keep it in a file: ``OBSY_UPLOAD__TOKEN_FILE``.
    """

    url: str | None = Field(default=None, pattern=r"^https?://\S+$", description="the centre's web address")
    site: str | None = Field(
        default=None, pattern=SITE_ID_PATTERN, description="this site's id at the centre (empty: this site's id)"
    )
    token: SecretStr | None = None
    queue_dir: Path | None = Field(default=None, description="where the queue is kept; empty = <data_dir>/upload-queue")
    max_queued_files: int = Field(default=20_000, ge=1, description="files waiting at most; more are not queued")
    chunk_bytes: int = Field(default=4 * MIB, ge=1 * KIB, le=256 * MIB, description="bytes per request")
    max_bytes_per_s: float | None = Field(default=None, gt=0, description="upload rate limit; empty = none")
    backoff_max: float = Field(default=300.0, gt=0, description="seconds between tries at most (busy, unreachable)")
    allsky_fits: bool = Field(default=False, description="send the allsky frames' FITS too, not only the pictures")
    target: Literal["http", "s3"] = Field(
        default="http", description="http: to the centre's web service (url); s3: to a bucket (upload.s3)"
    )
    s3: S3UploadConfig = Field(default_factory=S3UploadConfig)

    @model_validator(mode="after")
    def _token_with_url(self) -> UploadConfig:
        if self.target == "s3":
            if not self.s3.bucket:
                raise ValueError("upload.target is s3 but upload.s3.bucket is not set")
            if (self.s3.access_key_id is None) != (self.s3.secret_access_key is None):
                raise ValueError(
                    "upload.s3: give both access_key_id and secret_access_key (OBSY_UPLOAD__S3__..._FILE), or neither"
                )
            return self
        if self.url and self.token is None:
            raise ValueError("upload.url is set but upload.token is not (set OBSY_UPLOAD__TOKEN_FILE)")
        return self

    @property
    def enabled(self) -> bool:
        """Whether files are sent: to a bucket, or to a centre's url."""
        return self.target == "s3" or bool(self.url)

    def queue_path(self, data_dir: Path) -> Path:
        return self.queue_dir or data_dir / "upload-queue"


class SchedulerTransitsConfig(Section):
    """Exoplanet transits: targets named like a planet in the ephemeris file are planned at its transits.

    The schema of ``scheduler.transits``; kept in the core because the imaging service reads it too
    (``imaging.transits`` falls back on its ephemeris file and baseline).
    """

    ephemeris_file: Path | None = Field(
        default=None,
        description="a NASA Exoplanet Archive CSV export (planetary systems table); a target whose name is a "
        "planet's pl_name in it is observed at that planet's transits; empty = no transit planning",
    )
    baseline_min: float = Field(default=60, ge=0, le=360, description="observed before ingress and after egress")
    timing_sigmas: float = Field(
        default=3, ge=0, le=10, description="the window widens by this many sigma of the ephemeris at the epoch"
    )
    partial: Literal["skip", "plan"] = Field(
        default="skip",
        description="a transit whose window is only partly observable: left out (skip), or its longest observable "
        "part planned when it holds ingress or egress (plan)",
    )


def imaging_repository_dir(repository: Path | None, data_dir: Path) -> Path:
    """The imaging service's frame repository: ``imaging.repository``, else ``<data_dir>/imaging/repository``.

    The imaging service writes it; the web service serves previews and reports from it (a shared volume).
    """
    return (repository or data_dir / "imaging" / "repository").resolve()
