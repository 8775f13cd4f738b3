"""The transit fit: scipy.optimize for the start, emcee for the errors.

Free parameters: the mid-time Tc, Rp/R*, a/R* and the inclination (and ``a2`` for the
exponential airmass law); the period is fixed at the ephemeris' (one night cannot measure it),
the orbit circular, the limb darkening fixed (quadratic, ``limbdarkening.py`` unless given).
The detrending coefficients are solved linearly for each trial (``detrend.py``).

Priors: Tc uniform within 0.75 T14 plus five times the ephemeris' uncertainty of the predicted
mid-time (and never wholly outside the data); Rp/R* uniform in (0.005, 0.5); a/R* and the
inclination Gaussian about the ephemeris' values with its uncertainties (10 % and 1° where the
ephemeris has none), the inclination at most 90° and the planet crossing the star (b < 1 + k).

A **partial** transit (fewer than five points before the first or after the fourth contact)
cannot measure the duration: a/R* and the inclination are then constrained by their priors
alone, and sampling them (rather than holding them) carries the ephemeris' uncertainty of the
duration into Tc's error. Held at the ephemeris' values, the error came out too small (half the
simulated partial nights within 1σ, docs/imaging-transits.md). The result says ``partial``.

The start: a scan of Tc over its prior window with the ephemeris' shape (so that a stale
ephemeris does not trap the optimiser in a local minimum), then Nelder–Mead on the posterior.
Where the scatter about that fit exceeds the given errors (reduced χ² > 1) the errors are scaled
up by √χ²_red before the MCMC, and again by β where the residuals average down more slowly
than white noise over the ingress time scale (correlated "red" noise: seeing, guiding, flat-field
errors; ``red_noise_beta``), so the reported uncertainties follow the data, not the error model;
they are never scaled down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from obsy.transits.ephemeris import Ephemeris, transit_duration
from obsy_imaging.transits.detrend import Detrending
from obsy_imaging.transits.lightcurve import LightCurve
from obsy_imaging.transits.limbdarkening import quadratic_coefficients
from obsy_imaging.transits.model import TransitModel

if TYPE_CHECKING:
    import emcee

MIN_BASELINE_POINTS = 5


@dataclass(frozen=True)
class Value:
    value: float  # the posterior median
    error: float  # half the 16th–84th percentile width (1σ for a Gaussian)

    def __iter__(self):
        return iter((self.value, self.error))


@dataclass(frozen=True)
class McmcSettings:
    """emcee's ensemble: walkers × steps models in all (``burn`` steps discarded)."""

    walkers: int = 24
    steps: int = 1500
    burn: int = 500
    seed: int | None = None


@dataclass(frozen=True)
class TransitFit:
    planet: str
    epoch: int
    tc: Value  # BJD_TDB
    rp_rs: Value
    a_rs: Value  # for a partial transit: the prior's, in effect
    inc: Value  # degrees; for a partial transit: the prior's, in effect
    depth: Value  # (Rp/R*)², a fraction
    duration: Value  # T14, days
    predicted_tc: float
    predicted_tc_err: float | None
    o_minus_c: Value  # days: Tc − the ephemeris' prediction (error with the prediction's)
    partial: bool
    ingress_observed: bool
    egress_observed: bool
    limb_darkening: tuple[float, float]
    detrending: str
    coefficients: dict[str, float]  # the systematics' coefficients at the median parameters
    coefficient_errors: dict[str, float]  # their errors with the transit held at the median parameters
    a2: Value | None  # the exponential airmass law's exponent
    error_scale: float  # the factor the given errors were scaled by (≥ 1): √χ²_red × β
    red_noise_beta: float  # β of the time-averaging method (1 where the residuals bin down as white noise)
    chi2_reduced: float  # of the start, with the given errors
    residual_rms: float  # relative flux
    acceptance: float
    autocorrelation_steps: float  # emcee's longest integrated autocorrelation time (nan if too short to tell)
    time: np.ndarray
    flux: np.ndarray  # as given
    flux_err: np.ndarray  # as given times error_scale
    transit: np.ndarray  # the normalised transit model
    systematics: np.ndarray  # what the flux is divided by to detrend it
    detrended: np.ndarray  # flux / systematics
    detrended_err: np.ndarray
    airmass: np.ndarray


class _Problem:
    """The posterior over the free parameters, in a vector: [Tc − Tpred, Rp/R*, (a/R*, inc), (a2)]."""

    def __init__(self, lc: LightCurve, ephemeris: Ephemeris, detrending: Detrending, u: tuple[float, float]) -> None:
        self.lc = lc
        self.detrending = detrending
        self.flux = np.asarray(lc.flux, float)
        self.weight = 1.0 / np.asarray(lc.flux_err, float)
        self.model = TransitModel(lc.time, ephemeris.period, u, exposure_s=lc.exposure_s)
        self.k0, self.a0, self.inc0 = ephemeris.geometry()
        self.a_sigma = ephemeris.a_rs_err or 0.1 * self.a0
        self.inc_sigma = ephemeris.inc_err or 1.0
        self.period = ephemeris.period
        self.geometry_free = True
        self.t_ref = 0.0
        self.tc_low, self.tc_high = -np.inf, np.inf

    @property
    def names(self) -> list[str]:
        # The geometry is held only in the scan for the start (fit_transit).
        names = ["tc", "rp_rs"] + (["a_rs", "inc"] if self.geometry_free else [])
        return names + (["a2"] if self.detrending.nonlinear else [])

    def unpack(self, x: np.ndarray) -> tuple[float, float, float, float, float]:
        i = 2
        a, inc = self.a0, self.inc0
        if self.geometry_free:
            a, inc = x[2], x[3]
            i = 4
        a2 = x[i] if self.detrending.nonlinear else 0.0
        return self.t_ref + x[0], x[1], a, inc, a2

    def log_prior(self, x: np.ndarray) -> float:
        tc, k, a, inc, a2 = self.unpack(x)
        if not (self.tc_low <= tc <= self.tc_high and 0.005 < k < 0.5 and 1.2 < a < 500 and inc <= 90.0):
            return -np.inf
        if a * math.cos(math.radians(inc)) >= 1 + k or abs(a2) > 2.0:
            return -np.inf
        if not self.geometry_free:
            return 0.0
        return -0.5 * (((a - self.a0) / self.a_sigma) ** 2 + ((inc - self.inc0) / self.inc_sigma) ** 2)

    def evaluate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        tc, k, a, inc, a2 = self.unpack(x)
        transit = self.model.flux(tc, k, a, inc)
        c, systematics, chi2 = self.detrending.solve(transit, self.flux, self.weight, a2)
        return transit, systematics, c, chi2

    def log_probability(self, x: np.ndarray) -> float:
        prior = self.log_prior(x)
        if not np.isfinite(prior):
            return -np.inf
        return prior - 0.5 * self.evaluate(x)[3]

    def negative(self, x: np.ndarray) -> float:
        value = self.log_probability(x)
        return 1e30 if not np.isfinite(value) else -value

    def steps(self) -> np.ndarray:
        """Typical scales of the parameters: the optimiser's first simplex, the walkers' first ball."""
        steps = [0.002, 0.01] + ([0.05 * self.a0, 0.5] if self.geometry_free else [])
        return np.array(steps + ([0.05] if self.detrending.nonlinear else []))

    def start(self, tc_offset: float) -> np.ndarray:
        x = [tc_offset, self.k0] + ([self.a0, min(self.inc0, 89.9)] if self.geometry_free else [])
        return np.array(x + ([0.0] if self.detrending.nonlinear else []), float)


def _value(samples: np.ndarray) -> Value:
    low, median, high = np.percentile(samples, [15.865, 50.0, 84.135])
    return Value(float(median), float((high - low) / 2.0))


def _optimise(problem: _Problem, x0: np.ndarray) -> np.ndarray:
    steps = problem.steps()
    if "inc" in problem.names:  # keep the first simplex inside the prior: the inclination steps down from 90°
        steps[problem.names.index("inc")] *= -1
    simplex = np.vstack([x0, x0 + np.diag(steps)])
    from scipy import optimize  # here, not at the top: see _sample

    result = optimize.minimize(
        problem.negative,
        x0,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1e-7, "fatol": 1e-4, "maxiter": 5000, "maxfev": 10000},
    )
    return result.x


def _ingress_days(t14: float, k: float) -> float:
    """The ingress duration (T12) of a central transit: T14 · k / (1 + k)."""
    return t14 * k / (1 + k)


def red_noise_beta(time: np.ndarray, normalised_residual: np.ndarray, timescale_days: float) -> float:
    """β of the time-averaging method (Pont, Zucker & Queloz 2006; Winn et al. 2008): how much
    more the residuals scatter when averaged over bins of ``timescale_days`` (from half to twice
    it) than white noise would, ``σ_N / (σ_1 / √N · √(M / (M − 1))``, the median over the bin sizes.
    ``normalised_residual`` is residual / error, so β = 1 means the errors describe the noise on
    the time scale of the ingress, where the mid-time is measured."""
    cadence = float(np.median(np.diff(time)))
    sigma_1 = float(np.std(normalised_residual))
    betas = []
    for n in np.unique(np.round(np.geomspace(0.5, 2.0, 7) * timescale_days / cadence).astype(int)):
        m = len(normalised_residual) // n
        if n < 2 or m < 4:
            continue
        means = normalised_residual[: m * n].reshape(m, n).mean(axis=1)
        betas.append(float(np.std(means)) / (sigma_1 / math.sqrt(n) * math.sqrt(m / (m - 1))))
    return float(np.max(betas)) if betas else 1.0


def _sample(problem: _Problem, best: np.ndarray, mcmc: McmcSettings) -> tuple[emcee.EnsembleSampler, np.ndarray, float]:
    """emcee from a small ball about the optimum: the sampler, the flat chain after burn-in, the autocorrelation."""
    rng = np.random.default_rng(mcmc.seed)
    ndim = len(best)
    start: list[np.ndarray] = []
    for _ in range(1000 * mcmc.walkers):
        trial = best + 0.05 * problem.steps() * rng.standard_normal(ndim)
        if np.isfinite(problem.log_probability(trial)):
            start.append(trial)
            if len(start) == mcmc.walkers:
                break
    else:
        raise RuntimeError(f"no starting points for the sampler about {best} (the optimum lies outside the prior)")
    # emcee (and the SciPy it loads, about a second of CPU) is imported by the fit that needs it, not
    # by every importer of this module's types: the report reader, the web service, the tests.
    import emcee

    sampler = emcee.EnsembleSampler(mcmc.walkers, ndim, problem.log_probability)
    sampler.random_state = np.random.RandomState(rng.integers(2**31)).get_state()
    sampler.run_mcmc(np.array(start), mcmc.steps, progress=False)
    chain = sampler.get_chain(discard=mcmc.burn, flat=True)
    # tol=0: the estimate without emcee's check (and warning) that the chain is 50 τ long;
    # the caller sees τ and judges (docs/imaging-transits.md).
    tau = float(np.max(sampler.get_autocorr_time(discard=mcmc.burn, tol=0)))
    return sampler, chain, tau


def _durations(period: float, k: np.ndarray, a_rs: np.ndarray, inc_deg: np.ndarray) -> np.ndarray:
    """T14 (days) of each sample, as ``ephemeris.transit_duration``."""
    b = a_rs * np.cos(np.radians(inc_deg))
    chord = np.sqrt(np.clip((1 + k) ** 2 - b**2, 0, None))
    return period / np.pi * np.arcsin(np.clip(chord / (a_rs * np.sin(np.radians(inc_deg))), 0, 1))


def fit_transit(
    lc: LightCurve,
    ephemeris: Ephemeris,
    *,
    detrending: str = "linear",
    limb_darkening: tuple[float, float] | None = None,
    mcmc: McmcSettings = McmcSettings(),
    scale_errors: bool = True,
) -> TransitFit:
    """Fit one night's light curve (see the module's docstring for the model and the priors)."""
    u = limb_darkening or quadratic_coefficients(lc.filter, ephemeris.teff or 5800.0)
    systematics = Detrending.build(lc.airmass, detrending, lc.regressors)
    problem = _Problem(lc, ephemeris, systematics, u)
    time = np.asarray(lc.time, float)
    epoch = ephemeris.epoch(float(np.median(time)))
    predicted, predicted_err = ephemeris.predicted(epoch)
    t14 = transit_duration(ephemeris.period, problem.k0, problem.a0, problem.inc0) or (ephemeris.duration or 0.1)
    half_window = 0.75 * t14 + 5.0 * (predicted_err or 0.0)
    problem.t_ref = predicted
    problem.tc_low = max(predicted - half_window, time[0] - 0.45 * t14)
    problem.tc_high = min(predicted + half_window, time[-1] + 0.45 * t14)
    if problem.tc_low >= problem.tc_high:
        raise ValueError(
            f"{ephemeris.name}: the light curve ({time[0]:.4f}–{time[-1]:.4f}) does not reach the transit "
            f"predicted at {predicted:.4f} BJD_TDB (epoch {epoch})"
        )

    # Scan Tc with the ephemeris' shape; decide partial or full there.
    problem.geometry_free = False
    grid = np.linspace(problem.tc_low, problem.tc_high, 121) - predicted
    scores = [problem.negative(problem.start(offset)) for offset in grid]
    tc0 = predicted + grid[int(np.argmin(scores))]
    ingress_observed = int(np.sum(time < tc0 - t14 / 2)) >= MIN_BASELINE_POINTS
    egress_observed = int(np.sum(time > tc0 + t14 / 2)) >= MIN_BASELINE_POINTS
    partial = not (ingress_observed and egress_observed)
    problem.geometry_free = True

    best = _optimise(problem, problem.start(tc0 - predicted))
    n_free = len(best) + systematics.design.shape[1]
    transit, systematics_best, _, chi2 = problem.evaluate(best)
    chi2_reduced = chi2 / max(1, len(time) - n_free)
    white_scale = math.sqrt(chi2_reduced) if scale_errors and chi2_reduced > 1 else 1.0
    residual = (problem.flux - transit * systematics_best) * problem.weight / white_scale
    beta = red_noise_beta(time, residual, _ingress_days(t14, problem.k0)) if scale_errors else 1.0
    error_scale = white_scale * max(1.0, beta)
    problem.weight = problem.weight / error_scale

    sampler, chain, tau = _sample(problem, best, mcmc)
    columns = dict(zip(problem.names, chain.T, strict=True))
    tc_samples = predicted + columns["tc"]
    k_samples = columns["rp_rs"]
    a_samples = columns.get("a_rs", np.full_like(k_samples, problem.a0))
    inc_samples = columns.get("inc", np.full_like(k_samples, problem.inc0))
    durations = _durations(ephemeris.period, k_samples, a_samples, inc_samples)

    median = np.median(chain, axis=0)
    transit, systematics_values, coefficients, _ = problem.evaluate(median)
    a2_median = problem.unpack(median)[4]
    coefficient_errors = np.sqrt(np.diag(systematics.covariance(transit, problem.weight, a2_median)))
    tc = _value(tc_samples)
    oc_err = math.hypot(tc.error, predicted_err or 0.0)
    model = transit * systematics_values
    return TransitFit(
        planet=ephemeris.name,
        epoch=epoch,
        tc=tc,
        rp_rs=_value(k_samples),
        a_rs=_value(a_samples),
        inc=_value(inc_samples),
        depth=_value(k_samples**2),
        duration=_value(durations),
        predicted_tc=predicted,
        predicted_tc_err=predicted_err,
        o_minus_c=Value(tc.value - predicted, oc_err),
        partial=partial,
        ingress_observed=ingress_observed,
        egress_observed=egress_observed,
        limb_darkening=(float(u[0]), float(u[1])),
        detrending=detrending,
        coefficients=dict(zip(systematics.names, map(float, coefficients), strict=True)),
        coefficient_errors=dict(zip(systematics.names, map(float, coefficient_errors), strict=True)),
        a2=_value(columns["a2"]) if "a2" in columns else None,
        error_scale=error_scale,
        red_noise_beta=beta,
        chi2_reduced=float(chi2_reduced),
        residual_rms=float(np.std((lc.flux - model) / model)),
        acceptance=float(np.mean(sampler.acceptance_fraction)),
        autocorrelation_steps=tau,
        time=time,
        flux=np.asarray(lc.flux, float),
        flux_err=np.asarray(lc.flux_err, float) * error_scale,
        transit=transit,
        systematics=systematics_values,
        detrended=np.asarray(lc.flux, float) / systematics_values,
        detrended_err=np.asarray(lc.flux_err, float) * error_scale / systematics_values,
        airmass=np.asarray(lc.airmass, float),
    )
