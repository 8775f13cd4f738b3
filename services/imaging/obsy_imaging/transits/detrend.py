"""Detrending: the slow changes a differential light curve keeps (the extinction difference
between the host and its comparisons as the airmass changes, and optionally background, seeing
or drift), modelled together with the transit, never divided out beforehand.

``flux = transit(t) × systematics``, where the systematics are

* ``"linear"``: ``c0 + c1 (X − X̄) + Σ cᵢ rᵢ``;
* ``"exponential"``: ``exp(a2 (X − X̄)) × (c0 + Σ cᵢ rᵢ)`` (EXOTIC's ``a1·exp(a2·X)``, the
  Bouguer law of a colour difference), with ``a2`` fitted with the transit;

``X`` the airmass, ``rᵢ`` the optional regressors, each standardised (zero mean, unit spread).
The ``c`` enter linearly: for any transit shape (and ``a2``) they are solved by weighted least
squares, so the sampler only explores the transit's own parameters (and ``a2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("linear", "exponential")


@dataclass(frozen=True)
class Detrending:
    kind: str  # "linear" or "exponential"
    airmass_centred: np.ndarray  # X − X̄
    design: np.ndarray  # (n, m): the columns multiplied by the c's
    names: tuple[str, ...]  # one per design column

    @classmethod
    def build(cls, airmass: np.ndarray, kind: str = "linear", regressors: dict[str, np.ndarray] | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown airmass detrending {kind!r}; use one of {', '.join(KINDS)}")
        x = np.asarray(airmass, float) - float(np.mean(airmass))
        columns, names = [np.ones_like(x)], ["c0"]
        if kind == "linear":
            columns.append(x)
            names.append("airmass")
        for name, given in (regressors or {}).items():
            values = np.asarray(given, float)
            spread = float(np.std(values))
            if spread == 0:
                continue  # a constant regressor only repeats c0
            columns.append((values - values.mean()) / spread)
            names.append(name)
        return cls(kind=kind, airmass_centred=x, design=np.column_stack(columns), names=tuple(names))

    @property
    def nonlinear(self) -> int:
        """How many systematics parameters the sampler carries (a2 for the exponential law)."""
        return 1 if self.kind == "exponential" else 0

    def covariance(self, transit: np.ndarray, weight: np.ndarray, a2: float = 0.0) -> np.ndarray:
        """The covariance of the linear coefficients for this transit shape (held fixed)."""
        scale = transit * np.exp(a2 * self.airmass_centred) if self.kind == "exponential" else transit
        a = self.design * (scale * weight)[:, None]
        return np.linalg.inv(a.T @ a)

    def solve(
        self, transit: np.ndarray, flux: np.ndarray, weight: np.ndarray, a2: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """The best linear coefficients for this transit shape: (c, systematics, χ²); ``weight`` is 1/σ."""
        scale = transit * np.exp(a2 * self.airmass_centred) if self.kind == "exponential" else transit
        a = self.design * (scale * weight)[:, None]
        b = flux * weight
        c = np.linalg.solve(a.T @ a, a.T @ b)
        residual = a @ c - b
        systematics = self.design @ c
        if self.kind == "exponential":
            systematics = systematics * np.exp(a2 * self.airmass_centred)
        return c, systematics, float(residual @ residual)
