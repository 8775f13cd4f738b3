"""The transit light curve: batman (Kreidberg 2015), the analytic Mandel & Agol (2002) model.

batman computes a quadratic-limb-darkened light curve of 300 points in tens of microseconds,
which is what lets an MCMC of tens of thousands of models run in seconds. One ``batman``
model object is made per light curve (it keeps the times and the integration set-up) and only
its parameters change between calls.
"""

from __future__ import annotations

import numpy as np

DAY_S = 86_400.0


class TransitModel:
    """Normalised flux (1 out of transit) of a circular orbit at fixed times, period and limb darkening."""

    def __init__(
        self,
        time: np.ndarray,
        period: float,
        limb_darkening: tuple[float, float],
        *,
        exposure_s: float = 0.0,
        supersample: int = 5,
    ) -> None:
        # batman here, not at the top: it loads distutils and pkg_resources (a tenth of a second),
        # which every importer of the fitting module's types would pay.
        import batman

        self.params = batman.TransitParams()
        self.params.t0 = float(np.median(time))
        self.params.per = float(period)
        self.params.rp = 0.1
        self.params.a = 10.0
        self.params.inc = 90.0
        self.params.ecc = 0.0
        self.params.w = 90.0
        self.params.limb_dark = "quadratic"
        self.params.u = list(limb_darkening)
        # Integrate over the exposure only where it is long enough to round the contacts (> 1 min).
        if exposure_s > 60.0:
            self._model = batman.TransitModel(
                self.params, np.asarray(time, float), supersample_factor=supersample, exp_time=exposure_s / DAY_S
            )
        else:
            self._model = batman.TransitModel(self.params, np.asarray(time, float))

    def flux(self, tc: float, rp_rs: float, a_rs: float, inc_deg: float) -> np.ndarray:
        p = self.params
        p.t0, p.rp, p.a, p.inc = tc, rp_rs, a_rs, inc_deg
        return self._model.light_curve(p)
