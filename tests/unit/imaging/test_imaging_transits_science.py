"""The issue's science figures on scripted nights with a known truth: 20 seeded nights of 300
points at 2.5 ppt with an airmass trend, fitted against a slightly wrong, year-old ephemeris.

Tc within 1σ of the truth in ≥ 68 % of the nights and within 3σ in all; the reported σ within a
factor 1.5 of the scatter of Tc over the nights; the depth within 10 % of the truth every night.
The nights are made by direct integration over the stellar disc (``simulate.py``), not by the
fit's batman model.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from obsy_imaging.transits.ephemeris import Ephemeris
from obsy_imaging.transits.fit import McmcSettings, fit_transit
from obsy_imaging.transits.limbdarkening import quadratic_coefficients
from obsy_imaging.transits.simulate import Truth, simulate_night

logging.getLogger("emcee").setLevel(logging.ERROR)

NIGHTS = 20
TRUTH = Truth(tc=2460650.75, period=3.0, rp_rs=0.11, a_rs=9.0, inc=87.5, limb_darkening=quadratic_coefficients("R"))
EPHEMERIS = Ephemeris(
    name="SIM-1 b", t0=TRUTH.tc - 100 * 3.0 + 0.002, t0_err=0.001, period=3.0, period_err=1e-6,
    rp_rs=0.105, a_rs=9.3, a_rs_err=0.3, inc=87.8, inc_err=0.6,
)  # fmt: skip
#: 450 steps, 150 burnt: under a third of the fit's default chain (24 walkers × 1500 steps, 500
#: burnt), 7,200 samples after burn-in (about 12 autocorrelation times of about 25 steps), still
#: give each night's median and σ (both tests: 33 → 20 CPU s). With the default chain the figures
#: asserted below were: within 1σ 85 %, largest 2.77σ, σ/scatter 1.07, largest depth error 8.9 %;
#: partial nights 95 %, largest 1.04σ, σ/RMS 2.26. With 750 steps (250 burnt) and the MCMC seeds
#: offset by 0, 1000 and 2000: 85–90 %, 2.40–2.69σ, 1.02–1.11, 8.5–8.8 %; partial nights 95 %,
#: 1.00–1.06σ, 2.17–2.31. With this chain, the same offsets: 85–90 %, 2.50–2.63σ, 1.04–1.12,
#: 8.3–9.0 %; partial nights 95 %, 1.11–1.17σ, 2.17–2.30 (300 steps: largest 2.59–2.80σ, too
#: near the 3σ bound).
MCMC_STEPS, MCMC_BURN = 450, 150


@pytest.mark.slow
@pytest.mark.long(seconds=110)
@pytest.mark.timeout(900)  # CPU-bound: 20 fits; on a loaded machine beyond the suite's 300 s
def test_twenty_seeded_nights_recover_the_mid_time_and_depth_with_honest_errors() -> None:
    tc_error, tc_sigma, depth_error = [], [], []
    for seed in range(NIGHTS):
        lc = simulate_night(TRUTH, seed, points=300, noise=0.0025, extinction_mag=0.02)
        fit = fit_transit(lc, EPHEMERIS, mcmc=McmcSettings(steps=MCMC_STEPS, burn=MCMC_BURN, seed=seed))
        assert not fit.partial
        tc_error.append(fit.tc.value - TRUTH.tc)
        tc_sigma.append(fit.tc.error)
        depth_error.append(fit.depth.value / TRUTH.depth - 1)
    tc_error, tc_sigma = np.array(tc_error), np.array(tc_sigma)
    z = np.abs(tc_error / tc_sigma)
    assert np.mean(z < 1) >= 0.68, f"within 1σ: {np.mean(z < 1):.0%}"
    assert np.all(z < 3), f"largest |Tc − truth|/σ: {z.max():.2f}"
    ratio = np.median(tc_sigma) / np.std(tc_error, ddof=1)
    assert 1 / 1.5 <= ratio <= 1.5, f"reported σ / scatter of Tc: {ratio:.2f}"
    assert np.max(np.abs(depth_error)) < 0.10, f"depth errors: {np.round(depth_error, 3)}"


@pytest.mark.slow
@pytest.mark.long(seconds=55)
@pytest.mark.timeout(900)
def test_twenty_partial_nights_give_honest_errors() -> None:
    # Egress only: each night starts 20 minutes after mid-transit. The error carries the
    # ephemeris' uncertainty of the duration, which the scatter over nights of one ephemeris
    # does not show (its offset is common to all nights): so the reported σ may exceed that
    # scatter, but must not fall below it, and must cover the truth.
    tc_error, tc_sigma = [], []
    for seed in range(NIGHTS):
        lc = simulate_night(TRUTH, 100 + seed, points=200, start_offset_days=20 / 1440, span_days=0.15)
        fit = fit_transit(lc, EPHEMERIS, mcmc=McmcSettings(steps=MCMC_STEPS, burn=MCMC_BURN, seed=seed))
        assert fit.partial and fit.egress_observed and not fit.ingress_observed
        tc_error.append(fit.tc.value - TRUTH.tc)
        tc_sigma.append(fit.tc.error)
    z = np.abs(np.array(tc_error) / np.array(tc_sigma))
    assert np.mean(z < 1) >= 0.68, f"within 1σ: {np.mean(z < 1):.0%}"
    assert np.all(z < 3), f"largest |Tc − truth|/σ: {z.max():.2f}"
    rms = np.sqrt(np.mean(np.square(tc_error)))
    assert np.median(tc_sigma) >= rms / 1.5, f"reported σ {np.median(tc_sigma):.5f} d, RMS error {rms:.5f} d"
