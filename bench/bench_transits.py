"""Transit fit of one 300-point night (batman model, scipy start, emcee 24 walkers × 1500 steps)
against EXOTIC's own fitter on the same night (nested sampling, in EXOTIC's virtual environment,
where ``OBSY_EXOTIC_PYTHON`` names its interpreter). Target (issue 20): the fit alone in under 20 s
on 2 cores. ``--full`` adds the science figures over 20 seeded full nights and 20 partial ones
(hit rates, σ ratio, depth).

    python -m bench bench_transits [--full]
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time

import numpy as np

from obsy_imaging.transits.ephemeris import Ephemeris
from obsy_imaging.transits.fit import McmcSettings, fit_transit
from obsy_imaging.transits.limbdarkening import quadratic_coefficients
from obsy_imaging.transits.model import TransitModel
from obsy_imaging.transits.simulate import Truth, simulate_night

logging.getLogger("emcee").setLevel(logging.ERROR)

TRUTH = Truth(tc=2460650.75, period=3.0, rp_rs=0.11, a_rs=9.0, inc=87.5, limb_darkening=quadratic_coefficients("R"))
EPHEMERIS = Ephemeris(
    name="SIM-1 b", t0=TRUTH.tc - 300.0 + 0.002, t0_err=0.001, period=3.0, period_err=1e-6,
    rp_rs=0.105, a_rs=9.3, a_rs_err=0.3, inc=87.8, inc_err=0.6,
)  # fmt: skip
RUNS = 3


def science(nights: int = 20, *, partial: bool = False) -> None:
    errors, sigmas, depths, seconds = [], [], [], []
    for seed in range(nights):
        if partial:  # egress only, as tests/unit/imaging/test_imaging_transits_science.py
            lc = simulate_night(TRUTH, 100 + seed, points=200, start_offset_days=20 / 1440, span_days=0.15)
        else:
            lc = simulate_night(TRUTH, seed)
        started = time.perf_counter()
        fit = fit_transit(lc, EPHEMERIS, mcmc=McmcSettings(seed=seed))
        seconds.append(time.perf_counter() - started)
        errors.append(fit.tc.value - TRUTH.tc)
        sigmas.append(fit.tc.error)
        depths.append(fit.depth.value / TRUTH.depth - 1)
    z = np.abs(np.array(errors) / np.array(sigmas))
    print(
        f"  {nights} {'partial' if partial else 'full'} nights: Tc within 1σ {np.mean(z < 1):.0%}, "
        f"within 3σ {np.mean(z < 3):.0%} "
        f"(largest {z.max():.2f}σ); "
        f"median σ {statistics.median(sigmas) * 1440:.2f} min, scatter of Tc {np.std(errors, ddof=1) * 1440:.2f} min, "
        f"ratio {statistics.median(sigmas) / np.std(errors, ddof=1):.2f}, "
        f"mean error {np.mean(errors) * 1440:+.2f} min; depth error mean {np.mean(depths):+.1%}, "
        f"largest {np.max(np.abs(depths)):.1%}; fit {statistics.median(seconds):.1f} s median"
    )


def main() -> None:
    lc = simulate_night(TRUTH, 0)
    model = TransitModel(lc.time, TRUTH.period, TRUTH.limb_darkening)
    started = time.perf_counter()
    for _ in range(2000):
        model.flux(TRUTH.tc, TRUTH.rp_rs, TRUTH.a_rs, TRUTH.inc)
    print(f"  batman model, {len(lc.time)} points: {(time.perf_counter() - started) / 2000 * 1e6:.0f} µs per call")
    for law in ("linear", "exponential"):
        times = []
        for seed in range(RUNS):
            started = time.perf_counter()
            fit = fit_transit(lc, EPHEMERIS, detrending=law, mcmc=McmcSettings(seed=seed))
            times.append(time.perf_counter() - started)
        ours = statistics.median(times)
        print(
            f"  OBSY fit ({law} airmass), 300 points, 24 × 1500 steps: {ours:.1f} s "
            f"(Tc {fit.tc.value:.5f} ± {fit.tc.error * 1440:.2f} min, "
            f"autocorrelation {fit.autocorrelation_steps:.0f} steps)"
        )
    exotic = os.environ.get("OBSY_EXOTIC_PYTHON")
    if exotic and os.access(exotic, os.X_OK):
        from tests.unit.imaging.test_imaging_transits_exotic import exotic_fit

        started = time.perf_counter()
        theirs = exotic_fit(lc, EPHEMERIS, fit.limb_darkening)
        wall = time.perf_counter() - started
        print(
            f"  EXOTIC lc_fitter (nested sampling): {theirs['seconds']:.1f} s ({wall:.1f} s with its start-up), "
            f"Tc {theirs['tmid']:.5f} ± {theirs['tmid_err'] * 1440:.2f} min; "
            f"ratio EXOTIC/OBSY {theirs['seconds'] / ours:.1f}x"
        )
    else:
        print("  (EXOTIC not measured: set OBSY_EXOTIC_PYTHON to the interpreter of a venv with exotic installed)")
    if "--full" in sys.argv:
        science()
        science(partial=True)
