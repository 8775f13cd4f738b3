"""The light curve a transit fit takes: differential flux against BJD_TDB, with its errors and
the quantities to detrend by."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LightCurve:
    """Relative flux of the host against a comparison ensemble, one point per frame."""

    time: np.ndarray  # BJD_TDB, mid-exposure
    flux: np.ndarray  # target / ensemble, any scale
    flux_err: np.ndarray  # same scale as flux
    airmass: np.ndarray  # towards the target
    filter: str = "CV"  # AAVSO filter code
    exposure_s: float = 0.0  # for the model's time integration (0: none)
    #: Optional further regressors (background, FWHM, x/y position…), each one value per point.
    regressors: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arrays = {"time": self.time, "flux": self.flux, "flux_err": self.flux_err, "airmass": self.airmass}
        arrays.update({f"regressor {k}": v for k, v in self.regressors.items()})
        n = len(self.time)
        for name, values in arrays.items():
            if np.shape(values) != (n,):
                raise ValueError(f"{name} has shape {np.shape(values)}, not ({n},) like time")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{name} holds values that are not finite")
        if n < 10:
            raise ValueError(f"{n} points are too few for a transit fit")
        if np.any(np.asarray(self.flux_err) <= 0):
            raise ValueError("flux_err must be positive")
        if np.any(np.diff(self.time) <= 0):
            raise ValueError("time must increase strictly")
