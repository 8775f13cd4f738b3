"""Judging one frame with the methods that apply: star transmission at night, the classifier
whenever one is configured. Knows nothing of the bus (the service feeds it frames)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from obsy import astro
from obsy.config import ObsyConfig
from obsy.files import write_atomic
from obsy.skymodel import SkyModel
from obsy_clouddetect.catalogue import load_catalogue
from obsy_clouddetect.classifier.runtime import Classification, SkyClassifier
from obsy_clouddetect.transmission.analyser import (
    CLEAR,
    TransmissionAnalyser,
    TransmissionResult,
    TransmissionSettings,
    ZeroPointReference,
)

log = logging.getLogger("obsy.clouddetect")

UNKNOWN = "unknown"


@dataclass
class Judgement:
    cover: float | None = None
    label: str = UNKNOWN
    confidence: float | None = None
    clear: bool | None = None  # this frame's opinion, before debouncing
    methods: list[str] = field(default_factory=list)
    transmission: TransmissionResult | None = None
    classification: Classification | None = None
    reason: str = ""


class FrameJudge:
    def __init__(self, config: ObsyConfig, classifier: SkyClassifier | None = None) -> None:
        self.config = config
        self.settings = config.clouddetect
        self.workdir = config.data_dir / "clouddetect"
        self.classifier = classifier
        t = self.settings.transmission
        fixed = t.sky_model is not None
        model = SkyModel(**t.sky_model.model_dump()) if fixed else self._load_model()
        site = config.site
        self.analyser = TransmissionAnalyser(
            load_catalogue(),
            site.latitude,
            site.longitude,
            site.elevation,
            settings=TransmissionSettings(
                min_altitude=t.min_altitude,
                limiting_magnitude=t.limiting_magnitude,
                clear_transmission=t.clear_transmission,
                extinction=t.extinction,
            ),
            model=model,
            zero_point=ZeroPointReference(self.workdir / "zero_point.json", fixed=t.zero_point),
            fixed_model=fixed,
        )

    @property
    def model_path(self) -> Path:
        return self.workdir / "sky_model.json"

    def _load_model(self) -> SkyModel | None:
        try:
            return SkyModel.from_dict(json.loads(self.model_path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring the saved sky model %s: %s", self.model_path, exc)
            return None

    def judge(self, image: np.ndarray, when: datetime, exposure_s: float, gain: float | None) -> Judgement:
        site = self.config.site
        sun_alt = float(astro.sun_altaz(site, when).alt)
        night = sun_alt <= self.settings.night_sun_altitude
        judgement = Judgement()
        if self.classifier is not None:
            judgement.classification = self.classifier.classify(image)
            judgement.methods.append("classifier")
        if night and self.settings.transmission.enabled:
            moon = astro.moon_altaz(site, when)
            previous = self.analyser.model
            result = self.analyser.analyse(image, when, exposure_s, gain, moon=(float(moon.alt), float(moon.az)))
            judgement.transmission = result
            judgement.methods.append("transmission")
            if result.model is not None and result.model != previous and not self.analyser.fixed_model:
                self._save_model(result.model)
            self.analyser.zero_point.save()
        elif not night:
            judgement.reason = f"daytime (sun at {sun_alt:.1f} degrees)"
        return self._combine(judgement)

    def _combine(self, j: Judgement) -> Judgement:
        clear_labels = {label.lower() for label in self.settings.classifier.clear_labels}
        c = j.classification
        confident = c is not None and c.confidence >= self.settings.classifier.min_confidence
        class_clear = (c.label.lower() in clear_labels) if confident else None
        t = j.transmission
        if t is not None and t.cover is not None:
            j.cover, j.label, j.confidence = round(t.cover, 1), t.label, t.confidence
            star_clear = t.label == CLEAR
            # Either method seeing cloud is enough to say "not clear".
            j.clear = star_clear and class_clear is not False
            if class_clear is False and star_clear:
                j.reason = f"the classifier says {c.label}"
            return j
        if t is not None:
            j.reason = t.reason
        if confident:
            j.label, j.confidence, j.clear = c.label, round(c.confidence, 3), class_clear
            return j
        if c is not None:
            j.reason = j.reason or f"classifier unsure ({c.label} at {c.confidence:.2f})"
        j.label, j.clear = UNKNOWN, None
        if not j.methods:
            j.reason = j.reason or "no method applies"
        return j

    def _save_model(self, model: SkyModel) -> None:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            values = {k: float(v) if isinstance(v, np.floating) else v for k, v in model.to_dict().items()}
            write_atomic(self.model_path, json.dumps(values))
        except OSError as exc:
            log.warning("cannot save the sky model to %s: %s", self.model_path, exc)
