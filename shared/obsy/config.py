"""One YAML file plus ``OBSY_*`` environment overrides, validated with pydantic.

Precedence, lowest first: model defaults, the YAML file, environment variables.

Environment variables address nested keys with a double underscore:
``OBSY_BROKER__HOST=mqtt.local`` sets ``broker.host``. A variable ending in
``_FILE`` reads the value from that file instead (the Docker secrets convention):
``OBSY_BROKER__PASSWORD_FILE=/run/secrets/mqtt_password`` sets ``broker.password``.

Every mistake (an unknown key, a wrong type, a missing required value, bad YAML)
raises :class:`ConfigError`, whose message has one line per problem naming the key
and where it came from (the file, or the environment variable).
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from obsy.messages import WEATHER_QUANTITIES, TargetConstraints

ENV_PREFIX = "OBSY_"
CONFIG_PATH_ENV = "OBSY_CONFIG"
#: OBSY_ variables that are not configuration keys: the config file's path, and what the
#: sky simulator, the scripts and the tests read. Any other OBSY_ variable must name a key
#: (a misspelt one is an error, never silently ignored).
NOT_CONFIG_ENV = frozenset(
    {
        CONFIG_PATH_ENV,
        "OBSY_SKYSIM_CONFIG",  # the sky simulator's settings file (its drivers read it)
        "OBSY_VENV",  # scripts/bootstrap.sh: where the virtual environment goes
        "OBSY_SECRETS_DIR",  # scripts: where deploy secrets are written
        "OBSY_TEST_WORKERS",  # scripts/test.sh: parallel test workers
        "OBSY_TEST_POSTGRES",  # the tests: the Postgres server they use
        "OBSY_EXOTIC_PYTHON",  # the tests: EXOTIC's interpreter (scripts/exotic-env.sh)
        "OBSY_HOMEASSISTANT_PYTHON",  # the tests: Home Assistant's interpreter (scripts/homeassistant-env.sh)
        "OBSY_FUZZ_EXAMPLES",  # the tests: how many requests the web API fuzzing sends
    }
)
SERVICE_NAMES = ("weather", "clouddetect", "allsky", "scheduler", "mcp", "web", "imaging", "alpaca")

DEFAULT_SIMULATOR_DRIVERS = (
    "indi_simulator_telescope",
    "indi_simulator_ccd",
    "indi_rolloff_dome",
    "indi_simulator_weather",
)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ConfigError(Exception):
    """The configuration cannot be used; ``str(error)`` is meant for the operator."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    def report(self, program: str) -> str:
        """The text a command prints: a heading naming the program, then one problem per line."""
        return f"{program}: configuration error:\n" + "\n".join(f"  {problem}" for problem in self.problems)


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


#: A site id: what the web service stores with every row of that site (``site`` columns).
SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"


def site_slug(prefix: str) -> str:
    """A site id made from a topic prefix: ``obsy`` stays ``obsy``, ``sites/North`` becomes ``sites-north``."""
    return re.sub(r"[^a-z0-9_\-]", "-", prefix.lower())[:64] or "obsy"


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


class ServiceSection(Section):
    """Settings every service has; each service's own section extends this."""

    enabled: bool = True
    log_level: LogLevel = "INFO"
    heartbeat_interval: float = Field(default=15.0, gt=0, description="seconds between health messages")


def _weather_quantity(name: str) -> str:
    if name not in WEATHER_QUANTITIES:
        close = difflib.get_close_matches(name, WEATHER_QUANTITIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (one of {', '.join(WEATHER_QUANTITIES)})"
        raise ValueError(f"unknown weather quantity {name!r}{hint}")
    return name


class WeatherSourceBase(Section):
    """What every weather source has: a name (the ``source`` of its readings) and its timing."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="names the source in readings and errors")
    enabled: bool = True
    poll_interval: float = Field(default=10.0, gt=0, description="seconds between reads")
    max_age: float = Field(default=120.0, gt=0, description="seconds after which its readings are stale")


class WeatherElementMap(Section):
    quantity: str
    unit: str | None = Field(default=None, description="unit the source sends; empty = the quantity's own unit")
    _check = field_validator("quantity")(_weather_quantity)


class IndiWeatherSourceConfig(WeatherSourceBase):
    """An INDI weather device (WEATHER_PARAMETERS); see docs/weather.md for the default element map."""

    type: Literal["indi"]
    device: str = "Weather Simulator"
    host: str | None = Field(default=None, description="empty = the indi section's host")
    port: int | None = Field(default=None, ge=1, le=65535, description="empty = the indi section's port")
    set_update_period: bool = Field(default=True, description="set the driver's WEATHER_UPDATE to poll_interval")
    parameters: dict[str, WeatherElementMap | None] = Field(
        default_factory=dict, description="INDI element -> quantity, merged over the defaults; null drops one"
    )


class HttpWeatherSourceConfig(WeatherSourceBase):
    """Open-Meteo (no key) or OpenWeatherMap current weather (needs api_key)."""

    type: Literal["open_meteo", "openweathermap"]
    url: str | None = Field(default=None, description="empty = the provider's public endpoint")
    api_key: SecretStr | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90, description="empty = site.latitude")
    longitude: float | None = Field(default=None, ge=-180, le=180, description="empty = site.longitude")
    timeout: float = Field(default=10.0, gt=0, description="seconds for one request")
    poll_interval: float = Field(default=300.0, gt=0)
    max_age: float = Field(default=1800.0, gt=0)


class MqttWeatherSensorConfig(WeatherElementMap):
    topic: str = Field(min_length=1)
    json_path: str | None = Field(default=None, description="dotted path into a JSON payload; empty = plain value")


class MqttWeatherSourceConfig(WeatherSourceBase):
    """Sensors already on the broker (Home Assistant, ESPHome, Zigbee2MQTT)."""

    type: Literal["mqtt"]
    sensors: list[MqttWeatherSensorConfig] = Field(min_length=1)


class SerialRainSourceConfig(WeatherSourceBase):
    """A Hydreon rain sensor on a serial port: RG-15 (text protocol) or RG-11 (relay on a modem status line)."""

    type: Literal["rg15", "rg11"]
    port: str = Field(description="serial device or pyserial URL, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0)
    timeout: float = Field(default=2.0, gt=0, description="seconds to wait for an answer (rg15)")
    line: Literal["CTS", "DSR", "DCD", "RI"] = Field(default="CTS", description="rg11: status line the relay drives")
    wet_when: Literal["closed", "open"] = Field(default="closed", description="rg11: relay state that means rain")
    poll_interval: float = Field(default=2.0, gt=0)
    max_age: float = Field(default=30.0, gt=0)


WeatherSourceConfig = Annotated[
    IndiWeatherSourceConfig | HttpWeatherSourceConfig | MqttWeatherSourceConfig | SerialRainSourceConfig,
    Field(discriminator="type"),
]


class WeatherLimitConfig(Section):
    """A safety limit with hysteresis: unsafe beyond ``unsafe_*``, safe again only past ``safe_*``."""

    unsafe_above: float | None = None
    safe_below: float | None = Field(default=None, description="empty = unsafe_above (no hysteresis)")
    unsafe_below: float | None = None
    safe_above: float | None = Field(default=None, description="empty = unsafe_below (no hysteresis)")
    unsafe_if: bool | None = Field(default=None, description="for yes/no quantities (rain): the unsafe value")
    required: bool = Field(default=True, description="missing or stale data is unsafe")

    @model_validator(mode="after")
    def _consistent(self) -> WeatherLimitConfig:
        if self.unsafe_above is None and self.unsafe_below is None and self.unsafe_if is None:
            raise ValueError("a limit needs unsafe_above, unsafe_below or unsafe_if")
        if self.unsafe_above is not None:
            self.safe_below = self.unsafe_above if self.safe_below is None else self.safe_below
            if self.safe_below > self.unsafe_above:
                raise ValueError(f"safe_below {self.safe_below} must not exceed unsafe_above {self.unsafe_above}")
        elif self.safe_below is not None:
            raise ValueError("safe_below needs unsafe_above")
        if self.unsafe_below is not None:
            self.safe_above = self.unsafe_below if self.safe_above is None else self.safe_above
            if self.safe_above < self.unsafe_below:
                raise ValueError(f"safe_above {self.safe_above} must not be below unsafe_below {self.unsafe_below}")
        elif self.safe_above is not None:
            raise ValueError("safe_above needs unsafe_below")
        return self


def _default_weather_limits() -> dict[str, WeatherLimitConfig]:
    return {
        "rain": WeatherLimitConfig(unsafe_if=True),
        "wind_speed": WeatherLimitConfig(unsafe_above=40, safe_below=30),
        "wind_gust": WeatherLimitConfig(unsafe_above=55, safe_below=45, required=False),
        "humidity": WeatherLimitConfig(unsafe_above=90, safe_below=85, required=False),
        "dew_point_margin": WeatherLimitConfig(unsafe_below=2, safe_above=3, required=False),
        "cloud_cover": WeatherLimitConfig(unsafe_above=60, safe_below=40, required=False),
        "sky_minus_ambient": WeatherLimitConfig(unsafe_above=-15, safe_below=-18, required=False),
    }


class WeatherConfig(ServiceSection):
    sources: list[WeatherSourceConfig] = Field(default_factory=list, description="read at the same time")
    limits: dict[str, WeatherLimitConfig] = Field(default_factory=_default_weather_limits)
    safe_delay: float = Field(default=600.0, ge=0, description="seconds conditions must stay safe before 'safe'")
    publish_interval: float = Field(default=30.0, gt=0, description="seconds between republishing state and verdict")
    allow_simulation: bool = Field(
        default=False,
        description="obey 'simulate' commands from the bus (the dashboard's make-it-rain) on INDI weather "
        "simulators; for demonstrations, never on an observatory with real sensors",
    )

    @field_validator("limits")
    @classmethod
    def _known_quantities(cls, limits: dict[str, WeatherLimitConfig]) -> dict[str, WeatherLimitConfig]:
        for name in limits:
            _weather_quantity(name)
        return limits

    @model_validator(mode="after")
    def _unique_source_names(self) -> WeatherConfig:
        names = [source.name for source in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"weather source names must be unique: {', '.join(duplicates)}")
        return self


class SkyModelConfig(Section):
    """A camera's sky model (see obsy.skymodel); clouddetect fits and saves one by itself."""

    zenith_x: float = Field(description="pixel column of the zenith")
    zenith_y: float = Field(description="pixel row of the zenith")
    scale: float = Field(gt=0, description="pixels per radian at the zenith")
    rotation: float = Field(default=0.0, description="degrees added to the azimuth; 0 = north up")
    mirrored: bool = Field(default=False, description="true when east is to the right of north")
    projection: Literal["equidistant", "equisolid", "stereographic", "orthographic"] = "equidistant"
    distortion: float = Field(default=0.0, ge=-0.2, le=0.2, description="radial term k: r * (1 + k theta^2)")


class TransmissionMethodConfig(Section):
    enabled: bool = True
    min_altitude: float = Field(default=20.0, ge=0, lt=80, description="degrees; stars lower are not judged")
    limiting_magnitude: float = Field(default=6.0, ge=2, le=6.5, description="faintest catalogue stars judged")
    clear_transmission: float = Field(default=0.6, gt=0, lt=1, description="a region below this is cloudy")
    extinction: float = Field(default=0.25, ge=0, le=1, description="magnitudes per airmass")
    zero_point: float | None = Field(
        default=None, description="clear-sky magnitude giving 1 ADU/s; empty = learnt from the clearest frames"
    )
    sky_model: SkyModelConfig | None = Field(
        default=None, description="fixed sky model; empty = fitted from the stars and refined on every frame"
    )


class ClassifierMethodConfig(Section):
    model: Path | None = Field(default=None, description="TFLite model file; empty = no classifier")
    labels: Path | None = Field(default=None, description="labels.txt; empty = labels.txt beside the model")
    clear_labels: list[str] = Field(default_factory=lambda: ["Clear"], description="labels that mean a clear sky")
    min_confidence: float = Field(default=0.6, ge=0, le=1, description="below this the label is unknown")
    threads: int = Field(default=2, ge=1, le=16)


class CloudDetectConfig(ServiceSection):
    debounce_frames: int = Field(default=3, ge=1, le=100, description="agreeing frames before clear/cloudy flips")
    night_sun_altitude: float = Field(
        default=-12.0, ge=-18, le=0, description="sun altitude (degrees) below which the star method runs"
    )
    max_frame_age: float = Field(default=900.0, gt=0, description="seconds; older frames or silence = unknown")
    fetch_timeout: float = Field(default=10.0, gt=0, description="seconds to fetch an http(s) frame URL")
    cloud_map_url: str | None = Field(
        default=None, description="URL base under which data_dir/clouddetect is served; empty = file:// URLs"
    )
    collect_every: int = Field(default=0, ge=0, description="save every Nth frame for labelling (0 = off)")
    transmission: TransmissionMethodConfig = TransmissionMethodConfig()
    classifier: ClassifierMethodConfig = ClassifierMethodConfig()


PRODUCT_KINDS = ("keogram", "startrails", "timelapse", "panorama", "summary")


class AllskyTimelapseConfig(Section):
    """The night's timelapse video, encoded by ffmpeg."""

    fps: float = Field(default=25.0, gt=0, le=120, description="frames per second of the video")
    encoder: Literal["auto", "libx264", "h264_nvenc", "h264_vaapi", "h264_v4l2m2m"] = Field(
        default="auto", description="auto: the first hardware H.264 encoder that works here, else libx264"
    )
    width: int = Field(default=1920, ge=0, le=8192, description="video width in px (height follows); 0 = the frames'")
    quality: int = Field(default=23, ge=0, le=51, description="constant quality (CRF, CQ or QP; lower is better)")
    bitrate_kbps: int = Field(default=8000, ge=100, description="for encoders without constant quality (v4l2m2m)")


class AllskyPanoramaConfig(Section):
    """The 360° panorama: the fisheye (equidistant) unrolled over altitude 0–90° and azimuth 0–360°."""

    width: int = Field(default=2048, ge=64, le=16384, description="px for 360° of azimuth; the height is a quarter")
    center: tuple[float, float] | None = Field(
        default=None, description="zenith, fraction of W, H; empty = pipeline.circle_center"
    )
    radius: float | None = Field(
        default=None, gt=0, le=1.5, description="horizon radius, fraction of min(W, H); empty = pipeline.circle_radius"
    )
    rotation: float = Field(default=0.0, description="degrees added to the azimuth, as in the sky model; 0 = north up")
    mirrored: bool = Field(default=False, description="true when east is to the right of north in the frames")


class AllskyProductsConfig(Section):
    """Night products: what the service builds when a night ends, and how."""

    nightly: list[Literal["keogram", "startrails", "timelapse", "panorama", "summary"]] = Field(
        default_factory=lambda: list(PRODUCT_KINDS), description="built when a night ends; empty = none"
    )
    thumbnail_width: int = Field(default=320, ge=32, le=1024, description="px, for each frame and product")
    startrails_max_brightness: float = Field(
        default=0.35, gt=0, le=1, description="star trails leave out frames brighter than this (mean, 0-1)"
    )
    timelapse: AllskyTimelapseConfig = AllskyTimelapseConfig()
    panorama: AllskyPanoramaConfig = AllskyPanoramaConfig()


class AllskyStreaksConfig(Section):
    """Meteor and satellite detection in night frames (docs/allsky.md, "Meteors and satellites")."""

    enabled: bool = Field(default=True, description="look for streaks in each night frame")
    min_snr: float = Field(default=8.0, ge=3, description="a track's mean excess over its surroundings, in its noise")
    crop_margin: int = Field(default=48, ge=0, le=1000, description="px around the track in the saved crop")
    max_per_frame: int = Field(default=5, ge=1, le=50, description="at most this many events per frame")
    sky_model: SkyModelConfig | None = Field(
        default=None,
        description="the lens (as clouddetect fits it, in raw-frame pixels) for the tracks' alt/az; "
        "empty = the names' sky model (clouddetect's fitted file, else the fixed one)",
    )


class AllskyFusionConfig(Section):
    """Mertens exposure fusion of an HDR bracket (the weights of OpenCV's createMergeMertens)."""

    contrast_weight: float = Field(default=1.0, ge=0)
    saturation_weight: float = Field(default=1.0, ge=0)
    exposure_weight: float = Field(default=0.0, ge=0, description="well-exposedness (OpenCV's default is 0)")
    domain: Literal["bayer", "rgb"] = Field(
        default="bayer", description="bayer: fuse the raw mosaics, debayer once (fast); rgb: OpenCV's way"
    )


class AllskyStarsConfig(Section):
    """Star detection and the sky-brightness (SQM) estimate, on the longest exposure binned 2×2."""

    threshold_sigma: float = Field(default=5.0, gt=0, description="detection threshold in background noise sigmas")
    min_separation_px: int = Field(
        default=10, ge=4, le=64, description="peaks closer than this (full-size px) count once"
    )
    sqm_zero_point: float = Field(default=21.0, description="magnitude of 1 ADU/s/arcsec²; calibrate against an SQM")
    pixel_scale_arcsec: float = Field(default=300.0, gt=0, description="arcseconds per pixel at the zenith")


class AllskyWhiteBalanceStage(Section):
    stage: Literal["white_balance"]
    method: Literal["manual", "gray_world", "stars"] = Field(
        default="gray_world", description="stars: the detected stars average to white (gray world when too few)"
    )
    gains: tuple[float, float, float] = Field(default=(1.0, 1.0, 1.0), description="R, G, B multipliers (manual)")
    min_stars: int = Field(default=20, ge=3, description="stars: fewer measured stars fall back to gray world")


class AllskyStretchStage(Section):
    stage: Literal["stretch"]
    method: Literal["auto", "mtf"] = "auto"
    target_background: float = Field(default=0.2, gt=0, lt=1, description="auto: where the sky median lands")
    shadows_sigma: float = Field(default=2.8, ge=0, description="auto: clip this many MADs below the median")
    shadows: float = Field(default=0.0, ge=0, lt=1, description="mtf: black point")
    midtones: float = Field(default=0.5, gt=0, lt=1, description="mtf: midtones balance")


class AllskyMedianStage(Section):
    stage: Literal["median"]
    size: Literal[3, 5] = 3


class AllskySaturationStage(Section):
    stage: Literal["saturation"]
    factor: float = Field(default=1.3, ge=0, le=4)


class AllskyMaskStage(Section):
    stage: Literal["mask"]


class AllskyDenoiseStage(Section):
    """ACDNR-style noise reduction: brightness and colour separately, edges above the noise kept."""

    stage: Literal["denoise"]
    luminance: float = Field(default=0.5, ge=0, le=1, description="share of the smoothing applied to brightness")
    chrominance: float = Field(default=1.0, ge=0, le=1, description="share of the smoothing applied to colour")
    luminance_radius: int = Field(default=2, ge=1, le=16, description="px")
    chrominance_radius: int = Field(default=4, ge=1, le=32, description="px")
    edge_sigma: float = Field(default=3.0, gt=0, description="detail stronger than this many noise sigmas is kept")


class AllskyDehazeStage(Section):
    """Dark-channel-prior dehaze: removes a veil (sky glow, thin haze) of the veil's own colour."""

    stage: Literal["dehaze"]
    strength: float = Field(default=0.8, ge=0, le=1, description="share of the veil removed")
    patch_px: int = Field(default=15, ge=3, le=101, description="dark-channel window (px at full size)")
    min_transmission: float = Field(default=0.2, gt=0, le=1, description="limit on the amplification")


class AllskyClarityStage(Section):
    """Local contrast: detail on a scale of ``2**levels`` px boosted, most in the midtones."""

    stage: Literal["clarity"]
    amount: float = Field(default=0.4, ge=-1, le=2, description="0 = off, negative softens")
    levels: int = Field(default=5, ge=1, le=8, description="scale of the local contrast: 2**levels px")


class AllskyToneMapStage(Section):
    """A global tone curve on luminance, colour ratios kept (after or instead of the stretch)."""

    stage: Literal["tone_map"]
    method: Literal["asinh", "reinhard", "gamma"] = "reinhard"
    strength: float = Field(default=4.0, gt=0, description="asinh: softening; reinhard: exposure; gamma: 1/gamma")
    white: float = Field(default=1.0, gt=0, description="reinhard: the input that maps to white")


class AllskyOverlayLabel(Section):
    text: str = Field(min_length=1)
    x: float = Field(ge=0, le=1, description="left edge, fraction of the width")
    y: float = Field(ge=0, le=1, description="baseline, fraction of the height")


class AllskySkyNamesConfig(Section):
    """Names on the sky (the overlay's ``sky``): stars, planets, the Moon, constellations, altitude circles
    and the celestial equator, placed through the camera's sky model (see docs/allsky.md)."""

    enabled: bool = Field(default=True, description="off: none of the layers below is drawn")
    stars: bool = Field(default=True, description="proper names of the brightest named stars")
    star_magnitude: float = Field(default=2.0, ge=-2, le=6.5, description="faintest star named")
    max_stars: int = Field(default=40, ge=0, le=500, description="at most this many star names, brightest first")
    planets: bool = Field(default=True, description="the planets above the horizon, marked and named")
    planet_list: list[Literal["mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune"]] = Field(
        default_factory=lambda: ["mercury", "venus", "mars", "jupiter", "saturn"], description="which planets"
    )
    moon: bool = Field(default=True, description="the Moon, marked and named")
    constellation_lines: bool = Field(default=True, description="stick figures of the main constellations")
    constellation_names: bool = Field(default=True, description="constellation names at their figures' centres")
    altitude_circles: list[float] = Field(
        default_factory=lambda: [30.0, 60.0], description="degrees; circles of equal altitude (0 = the horizon)"
    )
    equator: bool = Field(default=True, description="the celestial equator")
    min_altitude: float = Field(default=3.0, ge=0, lt=90, description="degrees; nothing lower is named")
    text_scale: float = Field(default=0.7, gt=0, le=2, description="label height as a share of the overlay's text")
    label_colour: tuple[float, float, float] = Field(default=(1.0, 0.95, 0.75), description="R, G, B in 0..1")
    line_colour: tuple[float, float, float] = Field(default=(0.45, 0.6, 1.0), description="constellation lines")
    grid_colour: tuple[float, float, float] = Field(default=(0.9, 0.6, 0.3), description="circles and equator")
    sky_model: SkyModelConfig | None = Field(
        default=None,
        description="fixed sky model of the finished picture; used when clouddetect has not fitted one "
        "(empty: clouddetect.transmission.sky_model, else no names)",
    )

    @field_validator("altitude_circles")
    @classmethod
    def _altitudes(cls, value: list[float]) -> list[float]:
        for altitude in value:
            if not 0.0 <= altitude < 90.0:
                raise ValueError(f"an altitude circle must be at 0 to 90 degrees (not {altitude})")
        return value


class AllskyOverlayStage(Section):
    """Text on the image: time, exposure, sun/moon altitude, stars and SQM, N/E/S/W, free labels, names on the sky."""

    stage: Literal["overlay"]
    show: list[Literal["time", "exposure", "sun_moon", "stars"]] = Field(
        default_factory=lambda: ["time", "exposure", "sun_moon", "stars"], description="info lines, top left"
    )
    time_format: str = Field(default="%Y-%m-%d %H:%M:%S %Z", description="strftime format of the frame time")
    cardinals: bool = Field(default=True, description="N, E, S, W at the horizon")
    rotation: float = Field(default=0.0, description="degrees added to the azimuth; 0 = north up (as sky_model)")
    mirrored: bool = Field(default=False, description="true when east is to the right of north")
    labels: list[AllskyOverlayLabel] = Field(default_factory=list)
    text_height: float = Field(default=0.025, gt=0, le=0.2, description="fraction of the image height")
    colour: tuple[float, float, float] = Field(default=(1.0, 1.0, 1.0), description="R, G, B in 0..1")
    sky: AllskySkyNamesConfig = Field(
        default_factory=AllskySkyNamesConfig, description="names on the sky (needs a sky model)"
    )


AllskyFinishStage = Annotated[
    AllskyWhiteBalanceStage
    | AllskyStretchStage
    | AllskyMedianStage
    | AllskySaturationStage
    | AllskyMaskStage
    | AllskyDenoiseStage
    | AllskyDehazeStage
    | AllskyClarityStage
    | AllskyToneMapStage
    | AllskyOverlayStage,
    Field(discriminator="stage"),
]


class AllskyOutputConfig(Section):
    """The stored picture: JPEG (on the GPU where nvImageCodec is installed) or lossless PNG."""

    format: Literal["jpeg", "png"] = Field(default="jpeg", description="JPEG quality: the service's jpeg_quality")
    png_bit_depth: Literal[8, 16] = Field(default=8, description="16: the finished image before 8-bit rounding")
    png_compression: int = Field(default=3, ge=0, le=9, description="zlib level: higher is smaller and slower")
    gpu_jpeg: bool = Field(default=True, description="encode JPEG with nvImageCodec on the GPU backend when installed")
    keep_linear: bool = Field(default=False, description="keep the fused linear RGB (before finishing) for FITS")


def _default_allsky_finish() -> list[Any]:
    return [
        AllskyWhiteBalanceStage(stage="white_balance"),
        AllskyStretchStage(stage="stretch"),
        AllskySaturationStage(stage="saturation"),
        AllskyMaskStage(stage="mask"),
    ]


class AllskyPipelineConfig(Section):
    """How a frame is developed: fixed front (dark, debayer, fusion, stars), then the ``finish`` chain in order."""

    backend: Literal["auto", "numpy", "cupy"] = Field(default="auto", description="auto: CuPy when a GPU is there")
    bayer_pattern: Literal["RGGB", "BGGR", "GRBG", "GBRG", "MONO"] = "RGGB"
    debayer: Literal["bilinear", "malvar"] = Field(default="malvar", description="malvar: Malvar-He-Cutler 5x5")
    full_scale: float = Field(default=65535.0, gt=0, description="ADU of a saturated pixel")
    circle_center: tuple[float, float] = Field(default=(0.5, 0.5), description="image-circle centre, fraction of W, H")
    circle_radius: float = Field(default=0.5, gt=0, le=1.5, description="image-circle radius, fraction of min(W, H)")
    fusion: AllskyFusionConfig = AllskyFusionConfig()
    stars: AllskyStarsConfig = AllskyStarsConfig()
    finish: list[AllskyFinishStage] = Field(default_factory=_default_allsky_finish)
    output: AllskyOutputConfig = AllskyOutputConfig()


class AllskyExposureProfile(Section):
    """Exposure limits, gain and target brightness for day or for night."""

    min_exposure_s: float = Field(gt=0, le=3600)
    max_exposure_s: float = Field(gt=0, le=3600)
    gain: float = Field(default=0.0, ge=0)
    target_brightness: float = Field(default=0.25, gt=0, lt=1, description="median inside the circle, of full scale")

    @model_validator(mode="after")
    def _ordered(self) -> AllskyExposureProfile:
        if self.min_exposure_s > self.max_exposure_s:
            raise ValueError(f"min_exposure_s {self.min_exposure_s} is above max_exposure_s {self.max_exposure_s}")
        return self


class AllskyMoonConfig(Section):
    """Moon mode: while a bright Moon is up, its profile takes the night profile's place."""

    enabled: bool = True
    min_altitude: float = Field(default=5.0, ge=-10, le=90, description="moon altitude (deg) above which it counts")
    min_illumination: float = Field(default=0.4, ge=0, le=1, description="illuminated fraction from which it counts")
    hysteresis_deg: float = Field(
        default=1.0, ge=0, le=10, description="leave moon mode only this far below min_altitude (no flapping)"
    )
    profile: AllskyExposureProfile = AllskyExposureProfile(
        min_exposure_s=0.001, max_exposure_s=5.0, gain=50.0, target_brightness=0.2
    )


class AllskyExposureConfig(Section):
    """Auto-exposure (damped) with day and night profiles blended by sun altitude; a moon mode."""

    auto: bool = True
    fixed_exposure_s: float = Field(default=10.0, gt=0, le=3600, description="when auto is off")
    damping: float = Field(default=0.5, gt=0, le=1, description="share of the way to the ideal exposure per frame")
    max_step: float = Field(default=4.0, gt=1, description="most the exposure changes from one frame to the next")
    night_altitude: float = Field(default=-12.0, description="sun altitude (deg) below which night settings apply")
    day_altitude: float = Field(default=-3.0, description="sun altitude (deg) above which day settings apply")
    night: AllskyExposureProfile = AllskyExposureProfile(
        min_exposure_s=0.001, max_exposure_s=30.0, gain=100.0, target_brightness=0.2
    )
    day: AllskyExposureProfile = AllskyExposureProfile(
        min_exposure_s=0.0001, max_exposure_s=1.0, gain=0.0, target_brightness=0.35
    )
    moon: AllskyMoonConfig = AllskyMoonConfig()

    @model_validator(mode="after")
    def _altitudes(self) -> AllskyExposureConfig:
        if self.night_altitude >= self.day_altitude:
            raise ValueError(f"night_altitude {self.night_altitude} must be below day_altitude {self.day_altitude}")
        return self


class AllskyBadPixelsConfig(Section):
    """The bad-pixel map: hot pixels found in the master darks, replaced before debayering."""

    enabled: bool = True
    threshold_mad: float = Field(
        default=10.0, gt=0, description="a pixel this many robust sigmas (1.4826 MAD) above the dark's median is hot"
    )


class AllskyCameraConfig(Section):
    """The INDI camera the allsky service drives."""

    device: str = Field(default="CCD Simulator", description="INDI device name")
    binning: int = Field(default=1, ge=1, le=4)
    cooling_c: float | None = Field(default=None, description="cooler set point; empty = leave the cooler alone")
    readout_margin_s: float = Field(default=30.0, gt=0, description="image must arrive this long after the exposure")
    interval_s: float = Field(default=60.0, ge=0, description="start of one frame to the start of the next")
    bracket: int = Field(default=1, ge=1, le=5, description="exposures per frame (HDR); 1 = no bracket")
    bracket_step: float = Field(default=4.0, gt=1, description="each next exposure of a bracket is this much shorter")
    clip_level: float = Field(default=0.98, gt=0, le=1, description="of full scale: pixels above it count as clipped")
    dark_tolerance_c: float = Field(
        default=2.0, ge=0, description="a master dark counts within this many degrees of the sensor temperature"
    )
    dark_count: int = Field(default=10, ge=1, le=200, description="frames per master dark (the darks command)")
    bad_pixels: AllskyBadPixelsConfig = AllskyBadPixelsConfig()


class AllskyConfig(ServiceSection):
    camera: AllskyCameraConfig = AllskyCameraConfig()
    exposure: AllskyExposureConfig = AllskyExposureConfig()
    pipeline: AllskyPipelineConfig = AllskyPipelineConfig()
    keep_fits: bool = Field(default=False, description="store each frame's longest raw exposure as FITS too")
    image_width: int = Field(default=640, ge=64, le=4096, description="width of the retained JPEG for Home Assistant")
    jpeg_quality: int = Field(default=90, ge=10, le=100)
    products: AllskyProductsConfig = AllskyProductsConfig()
    streaks: AllskyStreaksConfig = AllskyStreaksConfig()


class SchedulerWeightsConfig(Section):
    """Weights of the planner's scoring rules (each rule scores 0..1; 0 turns a rule off)."""

    priority: float = Field(default=50, ge=0, description="the target's priority (0..10)")
    setting_soonest: float = Field(default=50, ge=0, description="targets with less visible time left tonight first")
    percent_complete: float = Field(default=50, ge=0, description="finish what is nearly complete")
    meridian_window: float = Field(default=75, ge=0, description="targets near the meridian (least airmass)")
    target_switch: float = Field(default=67, ge=0, description="stay on the current target (saves slews)")
    moon_avoidance: float = Field(default=50, ge=0, description="targets far from the Moon, beyond what is required")


class SchedulerCalibrationConfig(Section):
    """Calibration frames (Dark, Bias and Flat exposure plans): what Ekos can take without a person.

    Ekos (KStars 3.6) takes darks and bias unattended only when the camera has a shutter or a
    dust cap covers the telescope, and flats only from a flat panel (a light box or a dust cap
    with its own light) or a lit wall; otherwise it waits for someone. A target whose plans
    need a source that is not configured here is left out, with the reason.
    """

    camera_shutter: bool = Field(
        default=False,
        description="the camera has a mechanical shutter: darks and bias need no cover (KStars must know it too: "
        "its list of cameras with a shutter, asked once by Ekos)",
    )
    dust_cap: bool = Field(
        default=False,
        description="an INDI dust cap in the Ekos profile that closes over the telescope for darks and bias (also "
        "a flat panel that is a dust cap with its own light: set both)",
    )
    flat_source: Literal["none", "panel", "wall"] = Field(
        default="none",
        description="flats from: none (flat plans are refused); panel (an INDI light box or dust cap with its own "
        "light, in the Ekos profile); wall (the mount points at a lit wall or screen at wall_az/wall_alt)",
    )
    wall_az: float = Field(default=0.0, ge=0, lt=360, description="azimuth of the flat wall, degrees")
    wall_alt: float = Field(default=0.0, ge=-90, le=90, description="altitude of the flat wall, degrees")
    flat_adu: float | None = Field(
        default=None,
        gt=0,
        le=65535,
        description="Ekos adjusts the flat exposure until the mean is this many ADU; empty = the plan's exposure",
    )
    flat_adu_tolerance: float = Field(default=1000, gt=0, le=65535, description="ADU either side of flat_adu")
    park_mount: bool = Field(default=False, description="park the mount before flats (not with a wall)")
    park_dome: bool = Field(default=False, description="park the dome before flats")

    def dark_source(self) -> str | None:
        """How darks and bias are covered, or None when they cannot be taken unattended."""
        if self.dust_cap:
            return "dust_cap"
        if self.camera_shutter:
            return "shutter"
        return None


class SchedulerEkosConfig(Section):
    """How the plan is written as KStars/Ekos schedule (.esl) and sequence (.esq) files."""

    output_dir: Path | None = Field(default=None, description="where the files go; empty = <data_dir>/ekos")
    fits_dir: Path | None = Field(default=None, description="Ekos FITSDirectory for frames; empty = <data_dir>/frames")
    profile: str = Field(default="Simulators", description="the Ekos equipment profile the schedule names")
    camera: str = "CCD Simulator"
    filter_wheel: str | None = Field(default="CCD Simulator", description="empty when the camera has no filter wheel")
    default_filter: str = Field(default="Luminance", description="filter for exposure plans that name none")
    filters: list[str] | None = Field(
        default=None,
        description="the wheel's filter names; empty = read from the wheel's INDI FILTER_NAME when planning",
    )
    filter_aliases: dict[str, str] = Field(
        default_factory=dict, description="plan filter name -> the wheel's name, e.g. {Ha: H_Alpha}"
    )
    startup: Literal["at", "asap"] = Field(default="at", description="start each job at its planned time, or ASAP")
    completion: Literal["at", "sequence", "repeat"] = Field(
        default="sequence",
        description="end when the planned frames are taken (sequence), after `repeats` sequences, or at the planned "
        "end ('at': Ekos repeats the sequence until then, so more frames than planned)",
    )
    repeats: int = Field(default=1, ge=1, le=1000, description="sequences per job with completion 'repeat'")
    steps: list[Literal["Track", "Focus", "Align", "Guide"]] = Field(default_factory=lambda: ["Track"])
    startup_procedure: list[Literal["UnparkDome", "UnparkMount", "UnparkCap"]] = Field(
        default_factory=lambda: ["UnparkMount"]
    )
    shutdown_procedure: list[Literal["WarmCCD", "ParkCap", "ParkMount", "ParkDome"]] = Field(
        default_factory=lambda: ["ParkMount"]
    )
    enforce_weather: bool = Field(default=True, description="Ekos waits for its own weather device to say OK")
    setting_altitude_cutoff: float = Field(
        default=3.0,
        ge=0,
        le=30,
        description="Ekos' 'setting altitude cutoff' (its scheduler options; 3° by default): Ekos refuses a fixed "
        "start of a setting target less than this above the minimum altitude, so it is given a lower minimum",
    )
    keep_nights: int = Field(
        default=14,
        ge=1,
        le=3660,
        description="nights of Ekos files kept in output_dir: older night folders of .esl/.esq files are removed "
        "when a plan is written (the frames in fits_dir are never touched)",
    )
    calibration: SchedulerCalibrationConfig = SchedulerCalibrationConfig()


class SchedulerTransitsConfig(Section):
    """Exoplanet transits: targets named like a planet in the ephemeris file are planned at its transits."""

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


class SchedulerConfig(ServiceSection):
    constraints: TargetConstraints = Field(
        default_factory=lambda: TargetConstraints(min_altitude=30, twilight="astronomical", min_time_on_target_min=15),
        description="defaults for every target; a target's own constraints override them key by key",
    )
    weights: SchedulerWeightsConfig = SchedulerWeightsConfig()
    ekos: SchedulerEkosConfig = SchedulerEkosConfig()
    grid_step_s: float = Field(default=120, ge=10, le=900, description="time step of the night grid")
    exposure_overhead_s: float = Field(default=5, ge=0, description="download and dither time per exposure")
    switch_overhead_s: float = Field(default=120, ge=0, description="slew, plate solve and guider start per target")
    switch_gap_s: float = Field(
        default=300, ge=0, description="free time before a block of another target: at least Ekos' lead time (5 min)"
    )
    max_block_min: float = Field(default=120, gt=0, description="longest block before the planner re-decides")
    replan_at: str = Field(default="12:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="daily, site time")
    transits: SchedulerTransitsConfig = SchedulerTransitsConfig()


class McpDevicesConfig(Section):
    """The INDI devices the MCP drives, and how long each step may take."""

    roof: str = Field(default="RollOff Simulator", description="INDI roof/dome device (DOME_PARK = closed)")
    mount: str | None = Field(default="Telescope Simulator", description="INDI mount; empty when there is none")
    connect_timeout: float = Field(default=15.0, gt=0, description="seconds for a device to connect")
    roof_timeout: float = Field(default=60.0, gt=0, description="seconds for the roof to open or close")
    park_timeout: float = Field(default=120.0, gt=0, description="seconds for the mount to park")
    abort_timeout: float = Field(default=10.0, gt=0, description="seconds for an abort to be acknowledged")
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts of a failed step before an alarm")
    retry_delay: float = Field(default=5.0, ge=0, description="seconds between attempts")


class McpEkosConfig(Section):
    """KStars/Ekos on the session D-Bus; disabled, the MCP only moves roof and mount."""

    enabled: bool = False
    bus_address: str | None = Field(default=None, description="D-Bus address; empty = $DBUS_SESSION_BUS_ADDRESS")
    profile: str = Field(default="Simulators", description="Ekos profile started before the schedule")
    call_timeout: float = Field(default=10.0, gt=0, description="seconds for one D-Bus call")
    stop_timeout: float = Field(
        default=15.0, gt=0, description="seconds for the scheduler to report stopped (closing waits this long at most)"
    )
    poll_interval: float = Field(
        default=10.0, gt=0, description="seconds between reads of the scheduler's status while observing"
    )
    plan_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds to wait for the scheduler's plan from now before each start (else the last plan's files)",
    )
    on_abort: Literal["retry_then_close", "close", "keep_open"] = Field(
        default="retry_then_close",
        description="the scheduler aborted while observing: start it once more then close; close; or only report",
    )


class McpIndiWatchConfig(Section):
    """Which INDI devices must answer, and which container serves them (restarted when one does not)."""

    enabled: bool = True
    container: str = Field(
        default="indiserver",
        description="compose service that runs indiserver (a container by its name: supervision.container_names.indi)",
    )
    devices: list[str] | None = Field(
        default=None, description="INDI devices that must answer; empty = the MCP's roof and mount"
    )
    probe_interval: float = Field(default=30.0, gt=0, description="seconds between probes of each device")
    probe_timeout: float = Field(default=10.0, gt=0, description="seconds a driver has to answer a probe")


class McpSupervisionConfig(Section):
    """Restarting services that stay offline or hung, through the Docker socket when it is mounted."""

    enabled: bool = True
    docker_socket: Path = Field(default=Path("/var/run/docker.sock"), description="absent: report and alarm only")
    services: list[str] = Field(
        default_factory=lambda: ["weather", "clouddetect", "allsky", "scheduler", "web", "imaging"],
        description="services watched (once seen on the bus)",
    )
    container_names: dict[str, str] = Field(
        default_factory=dict,
        description="service -> container name; default: the container of that compose service in compose_project",
    )
    compose_project: str = Field(default="obsy", description="compose project whose containers are restarted")
    restart_after: float = Field(default=120.0, gt=0, description="seconds offline or hung before a restart")
    max_restarts_per_hour: int = Field(default=3, ge=0, description="per service; beyond it only alarms")
    docker_timeout: float = Field(default=60.0, gt=0, description="seconds for one Docker API call")
    indi: McpIndiWatchConfig = McpIndiWatchConfig()


class McpConfig(ServiceSection):
    sun_altitude_limit: float = Field(default=-12.0, ge=-18, le=0, description="open only with the Sun below this")
    required_services: list[str] = Field(
        default_factory=lambda: ["weather"], description="services whose silence is unsafe (availability, heartbeat)"
    )
    require_clear_sky: bool = Field(default=True, description="treat clouds (or no cloud verdict) as unsafe")
    require_plan: bool = Field(default=True, description="open only when the scheduler has a plan for tonight")
    heartbeat_limit_factor: float = Field(
        default=3.0, ge=1.5, description="a service is silent after this many of its heartbeat intervals"
    )
    startup_grace: float = Field(default=20.0, ge=0, description="seconds after start before missing inputs count")
    broker_grace: float = Field(default=60.0, ge=0, description="seconds without the broker before closing")
    safe_delay: float = Field(default=900.0, ge=0, description="seconds conditions must stay safe before reopening")
    alarm_retry_interval: float = Field(default=120.0, gt=0, description="seconds between closing retries in alarm")
    park_failure_policy: Literal["keep_open_and_alarm", "close_anyway"] = Field(
        default="keep_open_and_alarm",
        description="if the mount cannot be parked: never drive the roof into it (default), or close regardless",
    )
    manual_closes_on_unsafe: bool = Field(default=True, description="in manual mode an unsafe verdict still closes")
    evaluate_interval: float = Field(default=1.0, gt=0, description="seconds between re-evaluations without input")
    shutdown_close_timeout: float = Field(
        default=180.0,
        gt=0,
        description="seconds a stopping MCP may take to finish (or, in auto mode, perform) the closing before it exits",
    )
    state_file: Path | None = Field(
        default=None,
        description="where the operator's last decision (mode, night ended, latched alarm) survives a restart; "
        "empty = <data_dir>/mcp/state.json",
    )
    devices: McpDevicesConfig = McpDevicesConfig()
    ekos: McpEkosConfig = McpEkosConfig()
    supervision: McpSupervisionConfig = McpSupervisionConfig()

    @field_validator("required_services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SERVICE_NAMES or name == "mcp"]
        if unknown:
            raise ValueError(f"unknown services {unknown} (choose from {[s for s in SERVICE_NAMES if s != 'mcp']})")
        return value


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


class AlpacaConfig(ServiceSection):
    """The ASCOM Alpaca SafetyMonitor and ObservingConditions devices (docs/alpaca.md).

    Off by default: when on, it answers anyone on the network (Alpaca has no login) and
    replies to discovery broadcasts.
    """

    enabled: bool = False
    host: str = Field(default="0.0.0.0", description="address the Alpaca HTTP API listens on")
    port: int = Field(default=11111, ge=0, le=65535, description="Alpaca HTTP port (11111: the usual; 0: any free)")
    discovery: bool = Field(default=True, description="answer Alpaca discovery broadcasts (UDP)")
    discovery_port: int = Field(default=32227, ge=0, le=65535, description="the Alpaca discovery port (32227)")
    max_verdict_age: float = Field(
        default=90.0,
        gt=0,
        description="seconds after which the weather verdict is stale and IsSafe false "
        "(the weather service republishes every weather.publish_interval seconds)",
    )
    location: str = Field(default="", max_length=120, description="the Location the management API reports")


#: File name endings the imaging service looks at in capture folders (case-insensitive).
IMAGING_FRAME_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fz", ".xisf")


class ImagingGradingConfig(Section):
    """Grading of lights: absolute limits, and limits relative to the night's median for the same
    target and filter (once ``min_frames_for_relative`` lights of it are graded). Empty = no limit."""

    enabled: bool = True
    min_stars: int | None = Field(default=10, ge=0, description="fewer stars detected: rejected (clouds, dew)")
    max_fwhm_arcsec: float | None = Field(
        default=None, gt=0, description="wider stars: rejected (needs FOCALLEN and pixel size in the header)"
    )
    max_fwhm_px: float | None = Field(default=None, gt=0, description="wider stars, in pixels: rejected")
    max_eccentricity: float | None = Field(default=0.6, gt=0, le=1, description="more elongated stars: rejected")
    min_snr: float | None = Field(default=None, ge=0, description="lower median star SNR: rejected")
    max_fwhm_ratio: float | None = Field(
        default=1.3, gt=1, description="FWHM above this times the night's median for the target/filter: rejected"
    )
    min_stars_ratio: float | None = Field(
        default=0.5, gt=0, lt=1, description="fewer stars than this times the night's median: rejected"
    )
    max_background_ratio: float | None = Field(
        default=2.0, gt=1, description="sky background above this times the night's median: rejected (moon, dawn)"
    )
    min_frames_for_relative: int = Field(default=3, ge=1, description="graded lights before the relative limits apply")


class ImagingCalibrationConfig(Section):
    """Masters built from the repository's calibration frames, lights calibrated as they arrive
    (docs/imaging-calibration.md, "In the service")."""

    enabled: bool = True
    min_frames: int = Field(
        default=5, ge=2, le=1000, description="raw frames a group needs before its master is built automatically"
    )
    quiet_time: float = Field(
        default=30.0,
        ge=0,
        description="seconds no new frame may have joined a ready group before its master is built (a sequence "
        "still running adds frames; a group that grows later is built again, the bigger master replacing the other)",
    )
    quiet_exposures: float = Field(
        default=2.0,
        ge=0,
        description="and this many of the group's exposure times (a series of 300 s darks adds a frame every 300 s)",
    )
    method: Literal["median", "mean", "sigma_clip", "winsorized_sigma_clip"] = Field(
        default="sigma_clip", description="how the raw frames of a master are combined"
    )
    sigma_low: float = Field(default=3.0, gt=0, description="rejecting methods: lower clipping factor")
    sigma_high: float = Field(default=3.0, gt=0, description="rejecting methods: upper clipping factor")
    temperature_tolerance: float = Field(default=2.0, ge=0, description="°C between a light's sensor and its masters'")
    exposure_tolerance: float = Field(
        default=0.01, ge=0, lt=1, description="relative: a dark of the light's exposure (and grouping of darks)"
    )
    flat_max_age_days: float = Field(default=7.0, gt=0, description="days between a light and its flat, at most")
    master_max_age_days: float | None = Field(
        default=None, gt=0, description="days between a light and its bias or dark, at most; empty = any age"
    )
    require_dark: bool = Field(default=True, description="a light waits until a dark (or a scalable one) matches")
    require_flat: bool = Field(default=True, description="a light waits until a flat matches")
    bad_pixels: bool = Field(
        default=True,
        description="make a bad-pixel map from each master dark (with a matching bias) and repair those pixels "
        "of the lights calibrated with that dark",
    )
    optical_train: list[Literal["telescope", "focal_length", "camera"]] = Field(
        default_factory=lambda: ["telescope", "focal_length", "camera"],
        max_length=3,
        description="what names a frame's optical train (from TELESCOP, FOCALLEN, INSTRUME): a flat serves a light "
        "only of the same train when both have one; empty = flats by filter only",
    )
    recalibrate_nights: int = Field(
        default=2,
        ge=0,
        le=60,
        description="lights of this many nights (tonight and the ones before) are calibrated again when a master "
        "appears (or is pinned) that would now be chosen for them; 0 = never",
    )


class ImagingLiveStackConfig(Section):
    """The live stack: each calibrated, accepted light registered and folded into the running stack
    of its night, target and filter; a stretched preview on the bus (docs/imaging-stacking.md, "In the service")."""

    enabled: bool = True
    nights: int | None = Field(
        default=2,
        ge=1,
        description="lights of this many observing nights, the current one included, are stacked live (2: also "
        "last night's, calibrated late by the next evening's flats); empty = every night (an imported archive too)",
    )
    weighting: Literal["grades", "equal"] = Field(
        default="grades",
        description="grades: each frame weighs (SNR / FWHM)^2 from grading, relative to the reference frame's "
        "(a frame without a grade weighs 1); equal: every frame the same",
    )
    normalisation: Literal["additive_scaling", "additive", "none"] = Field(
        default="additive_scaling", description="each frame brought to the reference's background level (and spread)"
    )
    interpolation: Literal["lanczos", "bicubic"] = Field(default="lanczos", description="resampling onto the reference")
    preview_width: int = Field(default=1024, ge=64, le=8192, description="pixels; the preview JPEG is shrunk to this")
    jpeg_quality: int = Field(default=85, ge=10, le=100)
    shadows_clip: float = Field(
        default=-2.8, le=0, description="autostretch: the black point, in robust sigmas (MAD) from the median"
    )
    target_background: float = Field(
        default=0.25, gt=0, lt=1, description="autostretch: where the median (the sky) lands, 0..1"
    )


class ImagingNightStackConfig(Section):
    """The stack of record: once a night is over, each live stack is stacked again from its calibrated
    lights with outlier rejection (satellite trails, cosmic rays, planes), on the live stack's
    registrations (docs/imaging-stacking.md, "In the service")."""

    enabled: bool = True
    rejection: Literal["none", "sigma", "winsorized", "linear_fit"] = Field(
        default="winsorized", description="how outliers are dropped per pixel (winsorized: Huber's sigma clipping)"
    )
    low: float = Field(default=3.0, gt=0, description="rejection limit below, in sigmas")
    high: float = Field(default=3.0, gt=0, description="rejection limit above, in sigmas")
    min_frames: int = Field(
        default=3, ge=2, description="a live stack of fewer lights is not stacked again (rejection needs several)"
    )
    memory_budget_mb: float = Field(
        default=256.0, ge=16, description="pixel values held at once: the stack goes in bands of rows within it"
    )


class ImagingProjectStackConfig(Section):
    """The whole project of a target: per target and filter, one stack of every night's accepted,
    calibrated lights, registered onto one reference; colour images from the filters' stacks
    (docs/imaging-stacking.md, "The project stack")."""

    enabled: bool = True
    rebuild_on_night_stack: bool = Field(
        default=True,
        description="true: a target/filter's project stack is stacked again once a night stack of it is built; "
        "false: on command only (obsy-imaging stack-project, <p>/imaging/projectstack/set)",
    )
    rejection: Literal["none", "sigma", "winsorized", "linear_fit"] = Field(
        default="winsorized", description="how outliers are dropped per pixel"
    )
    low: float = Field(default=3.0, gt=0, description="rejection limit below, in sigmas")
    high: float = Field(default=3.0, gt=0, description="rejection limit above, in sigmas")
    min_frames: int = Field(default=3, ge=2, description="fewer registered lights: no project stack")
    memory_budget_mb: float = Field(
        default=256.0, ge=16, description="pixel values held at once: the stack goes in bands of rows within it"
    )
    thumbnail_width: int = Field(default=400, ge=32, le=4096, description="pixels; the stretched thumbnail JPEG")
    jpeg_quality: int = Field(default=90, ge=10, le=100)


_SEXAGESIMAL_ANGLE = re.compile(
    r"^\s*([+-])?\s*(\d+(?:\.\d*)?)[\s:hd°]+(\d+(?:\.\d*)?)(?:[\s:m'′]+(\d+(?:\.\d*)?))?[\s\"s″]*$"
)


def _angle(value: object, *, hours: bool, what: str) -> float:
    """Degrees from a number, or from a sexagesimal text (hours for RA, degrees for Dec; the sign of the whole)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of degrees or a sexagesimal text")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _SEXAGESIMAL_ANGLE.match(text)
    if not match or float(match.group(3)) >= 60 or float(match.group(4) or 0) >= 60:
        unit = "'HH:MM:SS.s' (hours)" if hours else "'±DD:MM:SS' (degrees)"
        raise ValueError(f"{what} {text!r} is neither degrees nor {unit}")
    size = float(match.group(2)) + float(match.group(3)) / 60 + float(match.group(4) or 0) / 3600
    size = -size if match.group(1) == "-" else size
    return size * 15.0 if hours else size


def photometry_name_key(name: str | None) -> str:
    """A target name compared without case or blanks ("SS Cyg", "ss cyg", "SSCYG" are one)."""
    return re.sub(r"\s+", "", name or "").casefold()


def colour_indices(value: dict[str, float]) -> dict[str, float]:
    """Colour indices by their usual names ("b - v" is B-V); raises ValueError for anything else."""
    names = {}
    for name, index in value.items():
        match = re.fullmatch(r"\s*([UBVRI])\s*-\s*([UBVRI])\s*", name, re.IGNORECASE)
        if match is None or match.group(1).upper() == match.group(2).upper():
            raise ValueError(f"colour {name!r} is not a colour index such as B-V, V-R, V-I")
        names[f"{match.group(1).upper()}-{match.group(2).upper()}"] = index
    return names


class PhotometryStarConfig(Section):
    """One of the observer's own comparison (or check) stars."""

    label: str = Field(min_length=1, max_length=20, description="what the report calls it (CNAME/KNAME)")
    ra: float = Field(ge=0, lt=360, description="degrees, or 'HH:MM:SS.s' (hours)")
    dec: float = Field(ge=-90, le=90, description="degrees, or '±DD:MM:SS'")
    mag: float = Field(description="its catalogue magnitude in the band the target is reported in")
    mag_err: float = Field(default=0.0, ge=0, description="the catalogue magnitude's error")
    colours: dict[str, float] = Field(
        default_factory=dict, description="its standard colour indices, e.g. {B-V: 0.55}, for transformed magnitudes"
    )

    @field_validator("colours")
    @classmethod
    def _colour_names(cls, value: dict[str, float]) -> dict[str, float]:
        return colour_indices(value)

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, value: object) -> float:
        return _angle(value, hours=True, what="ra")

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, value: object) -> float:
        return _angle(value, hours=False, what="dec")

    @field_validator("label")
    @classmethod
    def _plain_label(cls, value: str) -> str:
        if "," in value or "|" in value or not value.strip():
            raise ValueError(f"label {value!r} may not be blank or hold ',' or '|' (the report's separators)")
        return value.strip()


class PhotometryTargetConfig(Section):
    """A variable star and its comparison stars: an AAVSO VSP chart (a file, or fetched by its ID or the
    star's name), or the observer's own stars."""

    name: str = Field(
        min_length=1,
        max_length=30,
        description="the star's AAVSO name (the report's NAME); frames whose OBJECT is this name, case and blanks "
        "ignored, are measured",
    )
    aliases: list[str] = Field(default_factory=list, description="other OBJECT names of the same star")
    ra: float | None = Field(default=None, ge=0, lt=360, description="degrees or 'HH:MM:SS.s'; empty = the chart's")
    dec: float | None = Field(default=None, ge=-90, le=90, description="degrees or '±DD:MM:SS'; empty = the chart's")
    chart_file: Path | None = Field(
        default=None, description="a chart downloaded from VSP (JSON, or its photometry table as CSV)"
    )
    chart_id: str | None = Field(
        default=None,
        description="an AAVSO chart ID: read from the chart cache, fetched into it when fetch_charts is on",
    )
    fetch_by_name: bool = Field(
        default=False, description="no chart ID: fetch VSP's chart for the star's name (with fetch_charts on)"
    )
    fov: float = Field(default=60.0, gt=0, le=1200, description="arcmin: the field of a chart fetched by name")
    maglimit: float = Field(default=16.0, gt=0, le=25, description="the faintest comparison of a chart fetched by name")
    comparisons: list[PhotometryStarConfig] = Field(
        default_factory=list, description="the observer's own comparison stars (then the report's CHART is na)"
    )
    use: list[str] | None = Field(
        default=None, description="labels or AUIDs of the chart's stars to use as comparisons; empty = all in the band"
    )
    check: str | None = Field(
        default=None, description="label or AUID of the check star (the chart's, or one of comparisons)"
    )
    filters: dict[str, str] = Field(
        default_factory=dict,
        description="frame filter name -> AAVSO filter code (e.g. {Green: TG, L: CV}); V, B, R, I... map to themselves",
    )
    fields: list[str] = Field(
        default_factory=list,
        description="OBJECT names of frames that hold this star too (another target's field): measured there too",
    )
    colours: dict[str, float] = Field(
        default_factory=dict,
        description="the star's standard colour indices for transformed magnitudes, e.g. {B-V: 0.72}",
    )

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, value: object) -> float | None:
        return None if value is None else _angle(value, hours=True, what="ra")

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, value: object) -> float | None:
        return None if value is None else _angle(value, hours=False, what="dec")

    @field_validator("chart_id")
    @classmethod
    def _chart_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9]{3,20}", value.strip()):
            raise ValueError(f"{value!r} is not an AAVSO chart ID (letters and digits, such as X28765BL)")
        return None if value is None else value.strip().upper()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if "," in value or "|" in value or not value.strip():
            raise ValueError(f"name {value!r} may not be blank or hold ',' or '|' (the report's separators)")
        return value.strip()

    @model_validator(mode="after")
    def _one_sequence(self) -> PhotometryTargetConfig:
        sources = [
            name
            for name, given in (
                ("chart_file", self.chart_file is not None),
                ("chart_id", self.chart_id is not None),
                ("fetch_by_name", self.fetch_by_name),
                ("comparisons", bool(self.comparisons)),
            )
            if given
        ]
        if len(sources) != 1:
            raise ValueError(
                f"target {self.name}: give exactly one of chart_file, chart_id, fetch_by_name or comparisons"
                + (f" (not {' and '.join(sources)})" if sources else "")
            )
        if self.comparisons:
            if self.ra is None or self.dec is None:
                raise ValueError(f"target {self.name}: own comparison stars need the target's ra and dec")
            labels = [photometry_name_key(s.label) for s in self.comparisons]
            if len(set(labels)) != len(labels):
                raise ValueError(f"target {self.name}: two comparison stars have the same label")
            if self.check is not None and photometry_name_key(self.check) not in labels:
                raise ValueError(f"target {self.name}: check star {self.check} is not one of its comparisons")
            if len(self.comparisons) < (2 if self.check is not None else 1):
                raise ValueError(f"target {self.name}: needs a comparison star besides the check star")
            if self.use is not None:
                raise ValueError(f"target {self.name}: 'use' picks stars of a chart; own comparisons are all used")
        return self

    @field_validator("colours")
    @classmethod
    def _colour_names(cls, value: dict[str, float]) -> dict[str, float]:
        return colour_indices(value)

    @field_validator("filters")
    @classmethod
    def _filter_codes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [code for code in value.values() if not re.fullmatch(r"[A-Za-z]{1,5}", code.strip())]
        if bad:
            raise ValueError(f"{bad} are not AAVSO filter codes (V, B, R, I, TG, CV...)")
        return {name: code.strip().upper() for name, code in value.items()}


#: AAVSO's names of transformation coefficients: T<band>_<colour>, e.g. Tv_bv (V with B-V), Tr_vi.
TRANSFORMATION_NAME = re.compile(r"T([ubvri])_([ubvri])([ubvri])", re.IGNORECASE)


def _aavso_code(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{1,10}", value.strip()):
        raise ValueError(f"{value!r} is not an AAVSO observer code (letters and digits, at most 10)")
    return value.strip().upper()


class ImagingPhotometryConfig(Section):
    """Differential photometry of variable stars and their AAVSO reports (docs/imaging-photometry.md)."""

    enabled: bool = False
    observer_code: str | None = Field(
        default=None, description="your AAVSO observer code (the report's OBSCODE); needed when enabled"
    )
    targets: list[PhotometryTargetConfig] = Field(default_factory=list)
    fetch_charts: bool = Field(
        default=False,
        description="fetch charts named by chart_id (or fetch_by_name) from AAVSO VSP when not in the cache "
        "(offline first: a cached chart is used without the network)",
    )
    chart_cache: Path | None = Field(
        default=None, description="where fetched charts are kept; empty = <data_dir>/imaging/charts"
    )
    vsp_url: str = Field(default="https://app.aavso.org/vsp/api/chart/", description="VSP's chart API")
    fetch_timeout: float = Field(default=20.0, gt=0, le=300, description="seconds a chart fetch may take")
    gain_e_per_adu: float | None = Field(
        default=None, gt=0, description="camera gain, e-/ADU (CCD noise equation); empty = the header's EGAIN"
    )
    read_noise_e: float = Field(default=0.0, ge=0, description="camera read noise, electrons")
    dark_current_e_per_s: float = Field(default=0.0, ge=0, description="dark current, electrons per pixel per second")
    saturation_adu: float | None = Field(
        default=None,
        gt=0,
        description="the level where the camera saturates (full well through the gain, or the ADC's top); "
        "empty = the header's DATAMAX, else 65535",
    )
    solve_timeout: float = Field(default=30.0, gt=0, le=600, description="seconds a plate solve may take")
    date_type: Literal["JD", "HJD"] = Field(default="JD", description="the report's DATE: JD or HJD (UTC)")
    obstype: Literal["CCD", "CMOS", "DSLR"] = Field(default="CCD", description="the report's OBSTYPE")
    reports: Path | None = Field(
        default=None, description="where the AAVSO reports go; empty = <repository>/reports/aavso"
    )
    bin_frames: int | None = Field(
        default=None, ge=2, le=1000, description="report the mean of this many consecutive frames; empty = each frame"
    )
    bin_minutes: float | None = Field(
        default=None, gt=0, le=1440, description="report the mean of the frames within this many minutes"
    )
    transformation: dict[str, float] = Field(
        default_factory=dict,
        description="the camera's transformation coefficients, AAVSO's names: {Tv_bv: 0.052, Tb_bv: 0.11}; "
        "a band with one is reported transformed (TRANS=YES) where the target's colour is known",
    )

    @field_validator("observer_code")
    @classmethod
    def _obscode(cls, value: str | None) -> str | None:
        return None if value is None else _aavso_code(value)

    @field_validator("transformation")
    @classmethod
    def _coefficient_names(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name in value if not TRANSFORMATION_NAME.fullmatch(name.strip())]
        if bad:
            raise ValueError(
                f"{bad} are not transformation coefficients as AAVSO names them (Tv_bv, Tb_bv, Tr_vr, Ti_vi...)"
            )
        bands: dict[str, str] = {}
        for name in value:
            band = name.strip()[1].lower()
            if band in bands:
                raise ValueError(f"two transformation coefficients for one band: {bands[band]} and {name}")
            bands[band] = name
        return {name.strip(): coefficient for name, coefficient in value.items()}

    @model_validator(mode="after")
    def _complete(self) -> ImagingPhotometryConfig:
        if self.enabled and self.observer_code is None:
            raise ValueError("photometry is enabled: observer_code (your AAVSO observer code) is needed for reports")
        if self.bin_frames is not None and self.bin_minutes is not None:
            raise ValueError("give bin_frames or bin_minutes, not both")
        seen: dict[str, str] = {}
        for target in self.targets:
            for name in (target.name, *target.aliases):
                key = photometry_name_key(name)
                if key in seen:
                    raise ValueError(f"targets {seen[key]} and {target.name} both answer to the name {name!r}")
                seen[key] = target.name
        return self

    def target_for(self, name: str | None) -> PhotometryTargetConfig | None:
        """The target a frame's OBJECT names (case and blanks ignored; aliases too)."""
        key = photometry_name_key(name)
        for target in self.targets:
            if key in {photometry_name_key(n) for n in (target.name, *target.aliases)}:
                return target
        return None

    def targets_in(self, name: str | None) -> list[PhotometryTargetConfig]:
        """Every target a frame whose OBJECT is ``name`` holds: the one it names, then those that list it
        in their ``fields``."""
        key = photometry_name_key(name)
        named = self.target_for(name)
        others = [t for t in self.targets if t is not named and key in {photometry_name_key(n) for n in t.fields}]
        return ([named] if named is not None else []) + others

    def frame_names(self) -> list[str]:
        """Every OBJECT name whose frames photometry measures (names, aliases, fields)."""
        return [name for t in self.targets for name in (t.name, *t.aliases, *t.fields)]

    def chart_cache_dir(self, data_dir: Path) -> Path:
        return (self.chart_cache or data_dir / "imaging" / "charts").resolve()


TransitRegressor = Literal["background", "fwhm", "position"]


class ImagingTransitsConfig(Section):
    """Exoplanet transits: each night's light curve of a planet's host reduced, fitted and reported to
    Exoplanet Watch once its transit window is over (docs/imaging-transits.md, "In the service")."""

    enabled: bool = False
    ephemeris_file: Path | None = Field(
        default=None,
        description="a NASA Exoplanet Archive CSV export (planetary systems table); empty = "
        "scheduler.transits.ephemeris_file (one file serves the planning and the reduction)",
    )
    observer_code: str | None = Field(
        default=None, description="your AAVSO observer code (the report's OBSCODE); needed when enabled"
    )
    secondary_observer_codes: list[str] = Field(
        default_factory=list, description="AAVSO codes of co-observers (the report's SECONDARY_OBSCODES)"
    )
    obstype: Literal["CCD", "CMOS", "DSLR"] = Field(default="CCD", description="the report's OBSTYPE")
    camera: str = Field(default="", max_length=200, description="the camera, for the report's NOTES")
    telescope: str = Field(default="", max_length=200, description="the telescope (aperture, focal length), NOTES")
    notes: str = Field(default="", max_length=500, description="more for the report's NOTES (one line)")
    detrending: Literal["linear", "exponential"] = Field(
        default="linear",
        description="the airmass law: linear in airmass, or exponential (EXOTIC's a1*exp(a2*X), Bouguer's law)",
    )
    regressors: list[TransitRegressor] = Field(
        default_factory=list,
        description="further quantities to detrend by, measured per frame: background, fwhm, position (x and y)",
    )
    min_points: int = Field(default=30, ge=10, le=100_000, description="frames a night needs for a fit")
    quiet_time: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="seconds without a new calibrated light of the night before it is fitted (a burst of lights "
        "is fitted once, not after each)",
    )
    gain_e_per_adu: float | None = Field(
        default=None, gt=0, description="camera gain, e-/ADU (the points' errors); empty = the header's EGAIN"
    )
    read_noise_e: float | None = Field(
        default=None, ge=0, description="camera read noise, electrons; empty = the header's RDNOISE"
    )
    saturation_adu: float | None = Field(
        default=None, gt=0, description="where the camera saturates; empty = the header's SATURATE or DATAMAX"
    )
    baseline_min: float | None = Field(
        default=None,
        ge=0,
        le=360,
        description="out-of-transit time before ingress and after egress the window holds; empty = "
        "scheduler.transits.baseline_min",
    )
    reports: Path | None = Field(
        default=None, description="where the reports and plots go; empty = <repository>/reports/exoplanet"
    )

    @field_validator("observer_code")
    @classmethod
    def _obscode(cls, value: str | None) -> str | None:
        return None if value is None else _aavso_code(value)

    @field_validator("secondary_observer_codes")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        return [_aavso_code(code) for code in value]

    @field_validator("camera", "telescope", "notes")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("must be one line (the report holds it on one line)")
        return value.strip()

    @model_validator(mode="after")
    def _complete(self) -> ImagingTransitsConfig:
        if self.enabled and self.observer_code is None:
            raise ValueError("transits are enabled: observer_code (your AAVSO observer code) is needed for reports")
        return self

    def ephemeris_path(self, scheduler: SchedulerTransitsConfig) -> Path | None:
        """The ephemeris file: this section's, else the scheduler's (one file serves both)."""
        return self.ephemeris_file or scheduler.ephemeris_file

    def baseline_minutes(self, scheduler: SchedulerTransitsConfig) -> float:
        return self.baseline_min if self.baseline_min is not None else scheduler.baseline_min


class ImagingEkosSignalConfig(Section):
    """Ekos's ``captureComplete`` D-Bus signal as a second ingest route beside the folder watch."""

    enabled: bool = Field(
        default=False, description="take each frame Ekos reports in captureComplete (deduplicated with the watch)"
    )
    bus_address: str | None = Field(default=None, description="D-Bus address; empty = $DBUS_SESSION_BUS_ADDRESS")
    retry_interval: float = Field(
        default=10.0, gt=0, le=600, description="seconds between tries to reach the session bus (KStars not up yet)"
    )


class ImagingConfig(ServiceSection):
    """The imaging service: frames from the capture program into the repository (docs/imaging.md)."""

    capture_folders: list[Path] = Field(
        default_factory=list,
        description="folders the capture program (Ekos, N.I.N.A., SGP) saves frames to, watched with their "
        "subfolders; empty = the Ekos FITSDirectory the scheduler writes into its sequences (scheduler.ekos.fits_dir)",
    )
    repository: Path | None = Field(
        default=None, description="root of the frame repository; empty = <data_dir>/imaging/repository"
    )
    quarantine: Path | None = Field(
        default=None,
        description="where unusable input is set aside with its reason; empty = <data_dir>/imaging/quarantine",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the imaging tables, e.g. postgresql+psycopg://obsy:secret@db/obsy; "
        "empty = SQLite <data_dir>/imaging/imaging.sqlite3",
    )
    settle_time: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="seconds a new file's size must stay unchanged (and it must be closed) before it is taken",
    )
    incomplete_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds a file may stay incomplete (still written, truncated) before it is quarantined",
    )
    suffixes: list[str] = Field(
        default_factory=lambda: list(IMAGING_FRAME_SUFFIXES),
        min_length=1,
        description="file name endings taken from the capture folders (case-insensitive)",
    )
    publish_interval: float = Field(default=30.0, gt=0, description="seconds between republishing the state")
    ekos_signal: ImagingEkosSignalConfig = ImagingEkosSignalConfig()
    grading: ImagingGradingConfig = ImagingGradingConfig()
    calibration: ImagingCalibrationConfig = ImagingCalibrationConfig()
    live_stack: ImagingLiveStackConfig = ImagingLiveStackConfig()
    night_stack: ImagingNightStackConfig = ImagingNightStackConfig()
    project_stack: ImagingProjectStackConfig = ImagingProjectStackConfig()
    photometry: ImagingPhotometryConfig = ImagingPhotometryConfig()
    transits: ImagingTransitsConfig = ImagingTransitsConfig()

    @field_validator("suffixes")
    @classmethod
    def _dotted(cls, value: list[str]) -> list[str]:
        bad = [suffix for suffix in value if not re.fullmatch(r"(\.[A-Za-z0-9]+)+", suffix)]
        if bad:
            raise ValueError(f"{bad} are not file name endings such as '.fits'")
        return [suffix.lower() for suffix in value]

    def capture_dirs(self, data_dir: Path, ekos_fits_dir: Path | None) -> list[Path]:
        """The folders to watch: the configured ones, else where the scheduler tells Ekos to save frames."""
        folders = self.capture_folders or [ekos_fits_dir or data_dir / "frames"]
        return [folder.expanduser().resolve() for folder in folders]

    def repository_dir(self, data_dir: Path) -> Path:
        return (self.repository or data_dir / "imaging" / "repository").resolve()

    def quarantine_dir(self, data_dir: Path) -> Path:
        return (self.quarantine or data_dir / "imaging" / "quarantine").resolve()

    def database(self, data_dir: Path) -> str:
        """The configured database URL, or the SQLite file under data_dir."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{(data_dir / 'imaging' / 'imaging.sqlite3').resolve()}"


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

    @model_validator(mode="after")
    def _token_with_url(self) -> UploadConfig:
        if self.url and self.token is None:
            raise ValueError("upload.url is set but upload.token is not (set OBSY_UPLOAD__TOKEN_FILE)")
        return self

    def queue_path(self, data_dir: Path) -> Path:
        return self.queue_dir or data_dir / "upload-queue"


class ObsyConfig(Section):
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
    weather: WeatherConfig = WeatherConfig()
    clouddetect: CloudDetectConfig = CloudDetectConfig()
    allsky: AllskyConfig = AllskyConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    mcp: McpConfig = McpConfig()
    web: WebConfig = WebConfig()
    imaging: ImagingConfig = ImagingConfig()
    alpaca: AlpacaConfig = AlpacaConfig()
    demo: DemoConfig = DemoConfig()
    upload: UploadConfig = UploadConfig()
    #: Sections of services that are not part of OBSY itself (add-ons), by service name.
    plugins: dict[str, ServiceSection] = Field(default_factory=dict)

    # Where the values came from, for messages; not part of the schema.
    source_file: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _transit_ephemerides(self) -> ObsyConfig:
        transits = self.imaging.transits
        if transits.enabled and transits.ephemeris_path(self.scheduler.transits) is None:
            raise ValueError(
                "imaging.transits is enabled but no ephemeris file is set: set imaging.transits.ephemeris_file "
                "or scheduler.transits.ephemeris_file (a NASA Exoplanet Archive CSV export)"
            )
        return self

    @model_validator(mode="after")
    def _sites_apart(self) -> ObsyConfig:
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


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping, or a :class:`ConfigError` naming the file and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config file {path} does not exist"]) from None
    except OSError as exc:
        raise ConfigError([f"config file {path} cannot be read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"config file {path} is not valid YAML{where}: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"config file {path} must hold a mapping of sections at the top, not {type(data).__name__}"])
    return data


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Nested overrides from OBSY_* variables, and which variable set each key."""
    overrides: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG_ENV:
            continue
        key = name[len(ENV_PREFIX) :]
        value: Any = raw
        if key.endswith("_FILE"):
            key = key[: -len("_FILE")]
            try:
                value = Path(raw).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    [f"environment variable {name}: cannot read secret file {raw}: {exc.strerror}"]
                ) from None
        path = tuple(part.lower() for part in key.split("__") if part)
        if not path:
            continue
        # Let YAML parsing turn "8883" into an int and "true" into a bool, as it would in the file.
        if isinstance(value, str) and not name.endswith("_FILE"):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                parsed = value
            value = parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError([f"environment variable {name} conflicts with another OBSY_ variable"])
        node[path[-1]] = value
        origin[path] = name
    return overrides, origin


def merge_settings(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, section by section (nested mappings merge, the rest replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _known_keys(model: type[BaseModel], path: tuple[str, ...]) -> list[str]:
    """Field names accepted at ``path`` (for 'did you mean' hints)."""
    current: Any = model
    for part in path:
        if part.isdigit() and get_origin(current) is list:  # an entry of a list of sections
            current = get_args(current)[0]
            continue
        member = _tagged_member(current, part)
        if member is not None:  # a list entry of a tagged union (e.g. a finish stage): pydantic names the tag
            current = member
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [name for name in current.model_fields if name != "source_file"]
    return []


def _tagged_member(annotation: Any, tag: str) -> type[BaseModel] | None:
    """The member of a discriminated union (``Annotated[A | B, Field(discriminator=...)]``) with ``tag``."""
    if get_origin(annotation) is not Annotated:
        return None
    union, *extras = get_args(annotation)
    key = next((getattr(e, "discriminator", None) for e in extras if getattr(e, "discriminator", None)), None)
    if not isinstance(key, str):
        return None
    for member in get_args(union):
        field = getattr(member, "model_fields", {}).get(key)
        if field is not None and tag in get_args(field.annotation):
            return member
    return None


def _describe(error: dict[str, Any], source: str, origin: dict[tuple[str, ...], str]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc) if loc else "(top level)"
    where = f"environment variable {origin[loc]}" if loc in origin else source
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = ""
        close = difflib.get_close_matches(loc[-1], _known_keys(ObsyConfig, loc[:-1]), n=1)
        if close:
            hint = f" (did you mean '{'.'.join((*loc[:-1], close[0]))}'?)"
        return f"unknown key '{key}' in {where}{hint}"
    if kind == "missing":
        return f"missing required key '{key}' in {where}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    given = error.get("input")
    shown = "" if isinstance(given, (dict, list)) or kind.startswith("value_error") else f" (got {given!r})"
    return f"invalid value for '{key}' in {where}: {message}{shown}"


def find_config_path(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The config file to use: the argument, else $OBSY_CONFIG, else ./config/obsy.yaml if present."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_PATH_ENV):
        return Path(env[CONFIG_PATH_ENV])
    default = Path("config/obsy.yaml")
    return default if default.exists() else None


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> ObsyConfig:
    """Load and validate the configuration; raises ConfigError with one line per problem."""
    env = os.environ if env is None else env
    config_path = find_config_path(path, env)
    data: dict[str, Any] = read_yaml(config_path) if config_path is not None else {}
    overrides, origin = _env_overrides(env)
    merged = merge_settings(data, overrides)
    merged.pop("source_file", None)
    source = f"config file {config_path}" if config_path is not None else "the configuration (no config file given)"
    try:
        config = ObsyConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError([_describe(err, source, origin) for err in exc.errors()]) from None
    config.source_file = config_path
    return config
