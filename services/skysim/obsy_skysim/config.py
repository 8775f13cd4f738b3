"""The simulator's settings: one YAML file (``OBSY_SKYSIM_CONFIG`` names it), every field optional.

A driver started by indiserver gets no arguments, so the file is found through the environment
indiserver passes on. Unknown or wrong fields are errors that name the field (pydantic,
``extra="forbid"``), raised as :class:`ConfigError`.

    allsky:
      device: SkySim Allsky
      site: {latitude: 48.2, longitude: 16.4, elevation: 180}
      sensor: {width: 3856, height: 2180, bayer: RGGB}
      lens: {projection: equisolid, rotation: 0}   # zenith and scale default to the sensor's centre and a filled circle
      clouds: {kind: scattered, cover: 40, wind_speed: 8, wind_from: 270}
      clock_offset_s: 0
    camera:                  # the main camera (indi_obsy_camera)
      device: SkySim Camera
      sensor: {width: 6248, height: 4176, pixel_um: 3.76, bayer: MONO, temperature_c: -10}
                             # (fields left out keep the cooled sensor's: {width: 1600, height: 1200} is a cut)
      telescope: {focal_length_mm: 500, aperture_mm: 100, seeing_fwhm_arcsec: 2.5}
      mount_device: Telescope Simulator
      filter_device: Filter Simulator
      scenario: variables.yaml   # variable stars and transits (obsy_skysim.scenario)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from obsy.messages import validation_problems
from obsy.skymodel import SkyModel
from obsy_skysim.allsky import AllskyOptics, Site, default_lens
from obsy_skysim.clouds import CLOUD_KINDS, Clouds, make_clouds
from obsy_skysim.field import TelescopeOptics
from obsy_skysim.sensor import SensorSpec
from obsy_skysim.sky import SkyBrightness

CONFIG_ENV = "OBSY_SKYSIM_CONFIG"


class ConfigError(ValueError):
    """A settings file that cannot be used; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteSettings(_Section):
    latitude: float = Field(default=48.2, ge=-90, le=90, description="degrees, north positive")
    longitude: float = Field(default=16.4, ge=-180, le=180, description="degrees, east positive")
    elevation: float = Field(default=180.0, ge=-500, le=9000, description="metres")

    def site(self) -> Site:
        return Site(self.latitude, self.longitude, self.elevation)


class SensorSettings(_Section):
    width: int = Field(default=3856, ge=16, le=20000)
    height: int = Field(default=2180, ge=16, le=20000)
    pixel_um: float = Field(default=2.9, gt=0)
    bayer: Literal["RGGB", "MONO"] = "RGGB"
    read_noise_e: float = Field(default=2.5, ge=0)
    full_well_e: float = Field(default=40000.0, gt=0)
    offset_adu: float = Field(default=64.0, ge=0, le=4096)
    dark_current_e_s: float = Field(default=0.05, ge=0)
    temperature_c: float = 20.0
    hot_pixel_share: float = Field(default=2e-4, ge=0, le=0.01)
    amp_glow_e_s: float = Field(default=0.0, ge=0, description="dark current at the glowing corner")
    column_noise_adu: float = Field(default=0.0, ge=0, description="spread of the bias's column offsets")
    gain_max: float = Field(default=400.0, gt=0)
    seed: int = 7

    def spec(self) -> SensorSpec:
        return SensorSpec(
            width=self.width,
            height=self.height,
            pixel_um=self.pixel_um,
            bayer=None if self.bayer == "MONO" else self.bayer,
            read_noise_e=self.read_noise_e,
            full_well_e=self.full_well_e,
            offset_adu=self.offset_adu,
            dark_current_e_s=self.dark_current_e_s,
            temperature_c=self.temperature_c,
            hot_pixel_share=self.hot_pixel_share,
            amp_glow_e_s=self.amp_glow_e_s,
            column_noise_adu=self.column_noise_adu,
            gain_max=self.gain_max,
            seed=self.seed,
        )


class LensSettings(_Section):
    """The :class:`obsy.skymodel.SkyModel` of the lens; zenith and scale default to the sensor's centre
    and a horizon circle that nearly fills the sensor's shorter side."""

    zenith_x: float | None = None
    zenith_y: float | None = None
    scale: float | None = Field(default=None, gt=0, description="pixels per radian at the zenith")
    rotation: float = 0.0
    mirrored: bool = False
    projection: Literal["equidistant", "equisolid", "stereographic", "orthographic"] = "equisolid"
    distortion: float = Field(default=0.0, ge=-0.2, le=0.2)

    def model(self, width: int, height: int) -> SkyModel:
        base = default_lens(width, height, self.projection)
        return SkyModel(
            zenith_x=base.zenith_x if self.zenith_x is None else self.zenith_x,
            zenith_y=base.zenith_y if self.zenith_y is None else self.zenith_y,
            scale=base.scale if self.scale is None else self.scale,
            rotation=self.rotation,
            mirrored=self.mirrored,
            projection=self.projection,
            distortion=self.distortion,
        )


class OpticsSettings(_Section):
    zero_point: float = Field(default=12.0, description="magnitude giving 1 electron per second at the zenith")
    psf_sigma: float = Field(default=0.9, gt=0.2, le=20)
    psf_growth: float = Field(default=1.0, ge=0, le=10)
    limiting_magnitude: float = Field(default=6.5, le=6.5)
    night_sky: float = Field(default=21.0, ge=15, le=23, description="zenith night sky, mag/arcsec²")
    extinction: float = Field(default=0.25, ge=0, le=1)
    cloud_glow: float = Field(default=1.5, ge=0)

    def optics(self) -> AllskyOptics:
        return AllskyOptics(
            zero_point=self.zero_point,
            psf_sigma=self.psf_sigma,
            psf_growth=self.psf_growth,
            limiting_magnitude=self.limiting_magnitude,
            cloud_glow=self.cloud_glow,
            sky=SkyBrightness(night_zenith=self.night_sky, extinction=self.extinction),
        )


class CloudSettings(_Section):
    kind: Literal[CLOUD_KINDS] = "clear"  # type: ignore[valid-type]
    cover: float = Field(default=40.0, ge=0, le=100, description="percent, for scattered clouds")
    wind_speed: float = Field(default=8.0, ge=0, le=60, description="m/s")
    wind_from: float = Field(default=270.0, ge=0, le=360, description="degrees, where the wind comes from")
    veil_transmission: float = Field(default=0.4, ge=0, le=1)
    bank_top: float = Field(default=15.0, gt=0, le=90, description="degrees above the horizon at the start")
    seed: int = Field(default=1, ge=0)

    def clouds(self) -> Clouds:
        return make_clouds(
            self.kind,
            cover_percent=self.cover,
            veil_transmission=self.veil_transmission,
            wind_speed=self.wind_speed,
            wind_from=self.wind_from,
            bank_top_altitude=self.bank_top,
            seed=self.seed,
        )


class CameraSettings(_Section):
    """What every simulated camera has: a name, a site, a sensor and a clock."""

    device: str = Field(default="SkySim Camera", min_length=1, max_length=60)
    site: SiteSettings = Field(default_factory=SiteSettings)
    sensor: SensorSettings = Field(default_factory=SensorSettings)
    clock_offset_s: float = Field(default=0.0, description="seconds added to the system clock")
    max_exposure_s: float = Field(default=3600.0, gt=0)


class AllskyCameraSettings(CameraSettings):
    device: str = Field(default="SkySim Allsky", min_length=1, max_length=60)
    lens: LensSettings = Field(default_factory=LensSettings)
    optics: OpticsSettings = Field(default_factory=OpticsSettings)
    clouds: CloudSettings = Field(default_factory=CloudSettings)


class TelescopeSettings(_Section):
    focal_length_mm: float = Field(default=500.0, gt=0)
    aperture_mm: float = Field(default=100.0, gt=0)
    seeing_fwhm_arcsec: float = Field(default=2.5, gt=0.1, le=30)
    position_angle: float = Field(default=0.0, ge=-360, le=360)
    limiting_magnitude: float = Field(default=16.0, le=17.0)
    vignetting: float = Field(default=0.25, ge=0, lt=1)
    dust_per_filter: int = Field(default=3, ge=0, le=50)
    extinction: float = Field(default=0.25, ge=0, le=1)
    night_sky: float = Field(default=21.0, ge=15, le=23)
    seed: int = 11

    def optics(self) -> TelescopeOptics:
        return TelescopeOptics(
            focal_length_mm=self.focal_length_mm,
            aperture_mm=self.aperture_mm,
            seeing_fwhm_arcsec=self.seeing_fwhm_arcsec,
            position_angle=self.position_angle,
            limiting_magnitude=self.limiting_magnitude,
            vignetting=self.vignetting,
            dust_per_filter=self.dust_per_filter,
            extinction=self.extinction,
            seed=self.seed,
            sky=SkyBrightness(night_zenith=self.night_sky, extinction=self.extinction),
        )


def _main_sensor() -> SensorSettings:
    """A cooled mono sensor of the IMX455 class, with amplifier glow and a column pattern."""
    return SensorSettings(
        width=6248,
        height=4176,
        pixel_um=3.76,
        bayer="MONO",
        read_noise_e=1.5,
        full_well_e=50000.0,
        offset_adu=100.0,
        dark_current_e_s=0.003,
        temperature_c=-10.0,
        hot_pixel_share=5e-5,
        amp_glow_e_s=0.5,
        column_noise_adu=2.0,
        gain_max=300.0,
    )


class MainCameraSettings(CameraSettings):
    device: str = Field(default="SkySim Camera", min_length=1, max_length=60)
    sensor: SensorSettings = Field(default_factory=_main_sensor)
    telescope: TelescopeSettings = Field(default_factory=TelescopeSettings)
    mount_device: str = Field(default="Telescope Simulator", description="whose EQUATORIAL_EOD_COORD is snooped")
    drift_arcsec_per_min: tuple[float, float] = Field(
        default=(0.0, 0.0), description="tracking error (east, north) since the mount last moved"
    )
    filter_device: str = Field(default="Filter Simulator", description="whose FILTER_SLOT is snooped")
    scenario: str | None = Field(
        default=None, description="a scenario file of variable stars (see obsy_skysim.scenario)"
    )
    clouds: CloudSettings = Field(default_factory=CloudSettings)
    clouds_from: str | None = Field(
        default="SkySim Allsky", description="the allsky simulator whose clouds this camera follows (snooped)"
    )

    @field_validator("sensor", mode="before")
    @classmethod
    def _over_the_main_sensor(cls, value: object) -> object:
        """Sensor settings given in part (a cut: only width and height) keep the cooled sensor's others."""
        if isinstance(value, dict):
            return {**_main_sensor().model_dump(), **value}
        return value


class SkySimConfig(_Section):
    allsky: AllskyCameraSettings = Field(default_factory=AllskyCameraSettings)
    camera: MainCameraSettings = Field(default_factory=MainCameraSettings)


def load_config(path: str | Path | None = None) -> SkySimConfig:
    """The settings in ``path`` (or the file ``OBSY_SKYSIM_CONFIG`` names; defaults when neither is given)."""
    path = path or os.environ.get(CONFIG_ENV) or None
    if path is None:
        return SkySimConfig()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the sky simulator settings {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"the sky simulator settings {path} are not valid YAML: {exc}") from None
    if data is None:
        return SkySimConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"the sky simulator settings {path} must be a mapping, not {type(data).__name__}")
    try:
        return SkySimConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"the sky simulator settings {path} are wrong: {problems(exc)}") from None


def problems(exc: ValidationError) -> str:
    """A validation error in one line: each field's dotted path and what is wrong with it."""
    return validation_problems(exc, limit=10, whole="settings")
