"""Scenario files: stars whose brightness changes with the simulated time, the truth photometry is
checked against.

    variables:
      - name: V1 Ori (test)
        ra: 83.90            # ICRS degrees
        dec: -5.30
        kind: sine           # mag + amplitude * sin(2 pi (t - epoch) / period)
        mag: 10.0
        amplitude: 0.4
        period_h: 5.0
        epoch: 2026-01-15T20:00:00Z
      - name: Planet host (test)
        ra: 83.70
        dec: -5.45
        kind: transit        # a trapezoid: flux 1 - depth at mid-transit
        mag: 9.5
        depth: 0.012         # fraction of the star's flux
        mid: 2026-01-15T22:30:00Z
        duration_h: 2.4      # first to last contact
        ingress_h: 0.25
        period_h: 84.0       # optional: the transit repeats

Errors name the file, the star and the field (:class:`ScenarioError`).
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and what is wrong."""


class _Star(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    ra: float = Field(ge=0, lt=360, description="ICRS degrees")
    dec: float = Field(ge=-90, le=90, description="ICRS degrees")
    mag: float = Field(ge=-2, le=25, description="V magnitude (out of transit, or the mean)")
    bv: float = Field(default=0.6, ge=-0.5, le=2.5)


class SineVariable(_Star):
    kind: Literal["sine"]
    amplitude: float = Field(gt=0, le=5, description="magnitudes")
    period_h: float = Field(gt=0)
    epoch: AwareDatetime

    def magnitude(self, when: datetime) -> float:
        phase = (when - self.epoch).total_seconds() / 3600.0 / self.period_h
        return self.mag + self.amplitude * math.sin(2 * math.pi * phase)


class TransitHost(_Star):
    kind: Literal["transit"]
    depth: float = Field(gt=0, lt=1, description="fraction of the flux lost at mid-transit")
    mid: AwareDatetime
    duration_h: float = Field(gt=0, description="first to last contact")
    ingress_h: float = Field(default=0.2, ge=0)
    period_h: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ingress_fits(self) -> TransitHost:
        if 2 * self.ingress_h > self.duration_h:
            raise ValueError(f"ingress_h {self.ingress_h} is more than half of duration_h {self.duration_h}")
        return self

    def flux_fraction(self, when: datetime) -> float:
        """The star's flux relative to out of transit (a trapezoid in time)."""
        hours = (when - self.mid).total_seconds() / 3600.0
        if self.period_h is not None:
            hours = (hours + self.period_h / 2) % self.period_h - self.period_h / 2
        from_edge = self.duration_h / 2 - abs(hours)  # hours inside the transit
        if from_edge <= 0:
            return 1.0
        share = 1.0 if self.ingress_h == 0 else min(1.0, from_edge / self.ingress_h)
        return 1.0 - self.depth * share

    def magnitude(self, when: datetime) -> float:
        return self.mag - 2.5 * math.log10(self.flux_fraction(when))


Variable = Annotated[SineVariable | TransitHost, Field(discriminator="kind")]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: list[Variable] = Field(default_factory=list)

    def at(self, when: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ra, dec, mag, bv) of every scenario star at ``when``."""
        v = self.variables
        return (
            np.array([s.ra for s in v], dtype=float),
            np.array([s.dec for s in v], dtype=float),
            np.array([s.magnitude(when) for s in v], dtype=float),
            np.array([s.bv for s in v], dtype=float),
        )


def load_scenario(path: str | Path) -> Scenario:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"the scenario {path} is not valid YAML: {exc}") from None
    if data is None:
        return Scenario()
    if not isinstance(data, dict):
        raise ScenarioError(f"the scenario {path} must be a mapping with 'variables', not {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            where = ".".join(map(str, loc))
            if len(loc) >= 2 and loc[0] == "variables" and isinstance(loc[1], int):
                stars = data.get("variables") or []
                star = stars[loc[1]] if loc[1] < len(stars) and isinstance(stars[loc[1]], dict) else {}
                rest = loc[2:]
                if rest and rest[0] in (
                    "sine",
                    "transit",
                ):  # pydantic names the kind it tried; the field is what counts
                    rest = rest[1:]
                where = f"variable {loc[1] + 1} ({star.get('name', 'unnamed')}): {'.'.join(map(str, rest))}"
            problems.append(f"{where}: {error['msg']}")
        raise ScenarioError(f"the scenario {path} is wrong: {'; '.join(problems)}") from None
