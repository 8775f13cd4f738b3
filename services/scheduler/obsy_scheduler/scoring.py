"""Scoring rules in the spirit of N.I.N.A. Target Scheduler.

Each rule scores every candidate 0..1; the score is the weighted mean of the rules
(weights from ``scheduler.weights``; a weight of 0 turns a rule off). All inputs are
arrays over the candidates at one decision time.

- priority: the target's priority / 10.
- setting soonest: 1 - (usable time left tonight / time left in the night), so a target
  about to set or be lost goes before one that stays up all night.
- percent complete: frames acquired and planned / frames wanted: finish what is started.
- meridian window: 1 at transit, falling linearly to 0 six hours away (lowest airmass).
- target switch: 1 for the target being imaged now, so the planner does not slew for a
  marginally better score.
- moon avoidance: with the Moon up, how far the target is beyond the separation its
  constraints require, as a fraction of the most it could be (180° - required); 1 when
  the Moon is down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obsy_scheduler.config import SchedulerWeightsConfig

RULES = ("priority", "setting_soonest", "percent_complete", "meridian_window", "target_switch", "moon_avoidance")


@dataclass(frozen=True)
class Rules:
    weights: dict[str, float]

    @classmethod
    def from_config(cls, config: SchedulerWeightsConfig) -> Rules:
        return cls({name: float(getattr(config, name)) for name in RULES})

    def parts(
        self,
        *,
        priority: np.ndarray,
        visible_fraction_left: np.ndarray,
        complete_fraction: np.ndarray,
        hour_angle: np.ndarray,
        is_current: np.ndarray,
        moon_up: bool,
        moon_separation: np.ndarray,
        required_separation: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Every rule's 0..1 score per candidate."""
        if moon_up:
            room = np.maximum(180.0 - required_separation, 1e-6)
            moon = np.clip((moon_separation - required_separation) / room, 0.0, 1.0)
        else:
            moon = np.ones_like(moon_separation)
        return {
            "priority": np.clip(priority / 10.0, 0.0, 1.0),
            "setting_soonest": np.clip(1.0 - visible_fraction_left, 0.0, 1.0),
            "percent_complete": np.clip(complete_fraction, 0.0, 1.0),
            "meridian_window": 1.0 - np.minimum(np.abs(hour_angle), 90.0) / 90.0,
            "target_switch": is_current.astype(float),
            "moon_avoidance": moon,
        }

    def score(self, **inputs: np.ndarray | bool) -> np.ndarray:
        """The weighted mean of :meth:`parts` (0..1) per candidate."""
        parts = self.parts(**inputs)  # type: ignore[arg-type]
        total = sum(self.weights.values())
        if total <= 0:
            return np.zeros_like(parts["priority"])
        return sum(self.weights[name] * parts[name] for name in RULES) / total
