"""Cross-check with EXOTIC (Exoplanet Watch's own reduction code) on the same light curve.

EXOTIC 4.3 pins an older numpy and astropy than OBSY's, so it lives in its own virtual
environment: ``scripts/exotic-env.sh`` makes it (``.venv-exotic``, which ``make test`` and CI use),
or set ``OBSY_EXOTIC_PYTHON`` to another one's interpreter; without either the test is skipped.
EXOTIC fits as it fits a night (nested sampling; Rp/R*, Tc, inc and the airmass exponent free,
a/R* fixed), OBSY with the same exponential airmass law and the same limb darkening.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from obsy_imaging.transits.fit import McmcSettings, fit_transit
from obsy_imaging.transits.limbdarkening import quadratic_to_nonlinear
from obsy_imaging.transits.simulate import simulate_night
from tests.unit.imaging.test_imaging_transits_science import EPHEMERIS, TRUTH

logging.getLogger("emcee").setLevel(logging.ERROR)

EXOTIC_PYTHON = os.environ.get("OBSY_EXOTIC_PYTHON", "")
RUNNER = Path(__file__).parents[2] / "support" / "exotic_fit.py"


def exotic_fit(lc, ephemeris, limb_darkening: tuple[float, float]) -> dict:
    """EXOTIC's lc_fitter on ``lc`` with EXOTIC's own priors and bounds (exotic.py, 4.3)."""
    u0, u1, u2, u3 = quadratic_to_nonlinear(*limb_darkening)
    predicted, predicted_err = ephemeris.predicted(ephemeris.epoch(float(lc.time.mean())))
    prior = {
        "rprs": ephemeris.rp_rs, "ars": ephemeris.a_rs, "per": ephemeris.period, "inc": ephemeris.inc,
        "u0": u0, "u1": u1, "u2": u2, "u3": u3, "ecc": 0.0, "omega": 0.0, "tmid": predicted, "a2": 0.0,
    }  # fmt: skip
    window = 35 * (predicted_err or 0.001)  # EXOTIC's: 35σ of the ephemeris about the prediction
    bounds = {
        "rprs": [0.0, ephemeris.rp_rs * 1.25],
        "tmid": [predicted - window, predicted + window],
        "inc": [ephemeris.inc - 5, min(90.0, ephemeris.inc + 5)],
        "a2": [-3.0, 3.0],
    }
    payload = {
        "time": lc.time.tolist(), "flux": lc.flux.tolist(), "flux_err": lc.flux_err.tolist(),
        "airmass": lc.airmass.tolist(), "prior": prior, "bounds": bounds,
    }  # fmt: skip
    done = subprocess.run(
        [EXOTIC_PYTHON, str(RUNNER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.skipif(not os.access(EXOTIC_PYTHON, os.X_OK), reason="no EXOTIC environment (set OBSY_EXOTIC_PYTHON)")
def test_obsy_and_exotic_agree_on_the_mid_time() -> None:
    lc = simulate_night(TRUTH, 0)
    ours = fit_transit(lc, EPHEMERIS, detrending="exponential", mcmc=McmcSettings(seed=0))
    theirs = exotic_fit(lc, EPHEMERIS, ours.limb_darkening)
    larger = max(ours.tc.error, theirs["tmid_err"])
    assert abs(ours.tc.value - theirs["tmid"]) < larger, (ours.tc, theirs)
    # Both errors describe the same data: within a factor 1.5 of each other.
    assert 1 / 1.5 < ours.tc.error / theirs["tmid_err"] < 1.5, (ours.tc, theirs)
