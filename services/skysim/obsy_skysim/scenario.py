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
        kind: transit        # a planet on a circular orbit across the limb-darkened star
        mag: 9.5
        mid: 2026-01-15T22:30:00Z   # UTC at the observatory
        period_h: 72.0
        rp_rs: 0.11          # depth about rp_rs², a little more at the centre (limb darkening)
        a_rs: 9.0
        inc: 87.5            # degrees
        u1: 0.52             # quadratic limb darkening (default 0.5, 0.1)
        u2: 0.08
      - name: Trapezoid host (test)
        ra: 83.75
        dec: -5.40
        kind: transit        # or a trapezoid: flux 1 - depth between the inner contacts
        mag: 10.5
        depth: 0.012         # fraction of the star's flux
        mid: 2026-01-15T22:30:00Z
        duration_h: 2.4      # first to last contact
        ingress_h: 0.25
        period_h: 84.0       # optional here: the transit repeats

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

from obsy.transits.occultation import transit_flux


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
    """A star with a transiting planet, in one of two forms.

    * **Physical** (``rp_rs``, ``a_rs``, ``inc``, ``period_h``, optional ``u1``/``u2``): the planet's
      disc crossing the limb-darkened star on a circular orbit, integrated over the disc
      (:mod:`obsy.transits.occultation`), the light curve a transit fit expects.
    * **Trapezoid** (``depth``, ``duration_h``, ``ingress_h``): flux ``1 − depth`` between the inner
      contacts, linear ingress and egress; simple to reason about, not a real transit's shape.

    ``mid`` is the mid-transit instant in UTC as seen from the observatory (the simulator's clock);
    its BJD_TDB is that instant plus the light travel time towards the star (the imaging
    service's ``bjd_tdb``).
    """

    kind: Literal["transit"]
    mid: AwareDatetime
    period_h: float | None = Field(default=None, gt=0, description="optional for a trapezoid: it repeats")
    depth: float | None = Field(default=None, gt=0, lt=1, description="fraction of the flux lost at mid-transit")
    duration_h: float | None = Field(default=None, gt=0, description="first to last contact")
    ingress_h: float = Field(default=0.2, ge=0)
    rp_rs: float | None = Field(default=None, gt=0, lt=1, description="planet radius / star radius")
    a_rs: float | None = Field(default=None, gt=1, description="orbit radius / star radius")
    inc: float | None = Field(default=None, gt=0, le=90, description="orbital inclination, degrees")
    u1: float = Field(default=0.5, ge=-1, le=2, description="quadratic limb darkening")
    u2: float = Field(default=0.1, ge=-1, le=2, description="quadratic limb darkening")

    @model_validator(mode="after")
    def _one_form(self) -> TransitHost:
        physical = [k for k in ("rp_rs", "a_rs", "inc") if getattr(self, k) is not None]
        trapezoid = [k for k in ("depth", "duration_h") if getattr(self, k) is not None]
        if physical and trapezoid:
            raise ValueError("give either rp_rs, a_rs, inc and period_h or depth and duration_h, not both")
        if physical:
            missing = [k for k in ("rp_rs", "a_rs", "inc", "period_h") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a physical transit needs {', '.join(missing)} too")
            return self
        missing = [k for k in ("depth", "duration_h") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"needs {', '.join(missing)} (or rp_rs, a_rs, inc and period_h)")
        if 2 * self.ingress_h > self.duration_h:
            raise ValueError(f"ingress_h {self.ingress_h} is more than half of duration_h {self.duration_h}")
        return self

    @property
    def physical(self) -> bool:
        return self.rp_rs is not None

    def flux_fraction(self, when: datetime) -> float:
        """The star's flux relative to out of transit."""
        hours = (when - self.mid).total_seconds() / 3600.0
        if self.physical:
            return float(
                transit_flux(
                    np.array([hours / 24.0]),
                    tc=0.0,
                    period=self.period_h / 24.0,
                    rp_rs=self.rp_rs,
                    a_rs=self.a_rs,
                    inc=self.inc,
                    limb_darkening=(self.u1, self.u2),
                )[0]
            )
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
