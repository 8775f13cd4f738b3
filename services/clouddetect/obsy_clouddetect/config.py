"""The clouddetect section of the configuration (registered in the ``obsy.config_sections`` entry-point group)."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
)

from obsy.config.base import Section, ServiceSection
from obsy.config.sections import SkyModelConfig


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
