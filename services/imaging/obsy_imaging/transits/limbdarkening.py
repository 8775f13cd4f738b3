"""Quadratic limb darkening for a filter and a star, computed, not looked up.

``I(μ)/I(1) = 1 − u1 (1 − μ) − u2 (1 − μ)²``. The coefficients come from a grey atmosphere in
the Eddington approximation, ``T⁴(τ) = ¾ Teff⁴ (τ + ⅔)``: the emergent intensity at wavelength λ
is ``I_λ(μ) = ∫ B_λ(T(μ s)) e^(−s) ds`` (Gauss–Laguerre), averaged flat over the filter's
passband, then fitted with the quadratic law over μ in (0, 1]. It gets the trends right (stronger
darkening in the blue and in cooler stars) with no tables to ship, but it is not a model
atmosphere: its curvature (u2) comes out smaller than tables (Claret 2000–2013) usually give.
The mid-time hardly depends on it (it comes from the symmetric ingress and egress); where the
coefficients matter (Rp/R*, a/R*), give tabulated ones (``quadratic_coefficients`` is only the
default).

The passbands (FWHM edges, nm) are AAVSO's filter list as Exoplanet Watch uses it; the clear and
DSLR ones are nominal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

H_C_OVER_K_NM_K = 1.438_776_877e7  # hc/k in nm·K


@dataclass(frozen=True)
class Passband:
    code: str  # AAVSO filter code (the report's #FILTER)
    description: str
    low_nm: float
    high_nm: float


PASSBANDS = {
    p.code: p
    for p in (
        Passband("U", "Johnson U", 333.8, 398.8),
        Passband("B", "Johnson B", 391.6, 480.6),
        Passband("V", "Johnson V", 502.8, 586.8),
        Passband("R", "Cousins R", 561.7, 719.7),
        Passband("I", "Cousins I", 721.0, 875.0),
        Passband("SU", "Sloan u", 321.8, 386.8),
        Passband("SG", "Sloan g", 402.5, 551.5),
        Passband("SR", "Sloan r", 553.1, 693.1),
        Passband("SI", "Sloan i", 697.5, 827.5),
        Passband("SZ", "Sloan z", 841.2, 978.2),
        Passband("CV", "Clear (unfiltered) reduced to V sequence", 350.0, 850.0),
        Passband("CR", "Clear (unfiltered) reduced to R sequence", 561.7, 719.7),
        Passband("CBB", "Clear with blue-blocking", 500.0, 1000.0),
        Passband("TB", "DSLR Blue", 400.0, 500.0),
        Passband("TG", "DSLR Green", 480.0, 600.0),
        Passband("TR", "DSLR Red", 570.0, 680.0),
    )
}


class UnknownFilterError(KeyError):
    """A filter code with no passband here."""


def passband(code: str) -> Passband:
    try:
        return PASSBANDS[code.upper()]
    except KeyError:
        raise UnknownFilterError(f"no passband for filter {code!r}; known: {', '.join(sorted(PASSBANDS))}") from None


def _planck(wavelength_nm: np.ndarray, temperature_k: np.ndarray) -> np.ndarray:
    """B_λ up to a constant factor (only ratios are used)."""
    return wavelength_nm**-5 / np.expm1(H_C_OVER_K_NM_K / (wavelength_nm * temperature_k))


def grey_intensity(mu: np.ndarray, wavelength_nm: np.ndarray, teff_k: float) -> np.ndarray:
    """Emergent intensity of an Eddington grey atmosphere, shape (len(mu), len(wavelength_nm))."""
    s, weights = np.polynomial.laguerre.laggauss(40)
    tau = mu[:, None, None] * s[None, None, :]
    temperature = teff_k * (0.75 * (tau + 2.0 / 3.0)) ** 0.25
    return (_planck(wavelength_nm[None, :, None], temperature) * weights).sum(axis=2)


@lru_cache(maxsize=256)
def quadratic_coefficients(filter_code: str, teff_k: float = 5800.0) -> tuple[float, float]:
    """(u1, u2) of the quadratic law for a filter (AAVSO code) and an effective temperature."""
    band = passband(filter_code)
    if not 2500.0 <= teff_k <= 50_000.0:
        raise ValueError(f"effective temperature {teff_k} K is outside 2500–50000 K")
    mu = np.linspace(0.01, 1.0, 100)
    wavelengths = np.linspace(band.low_nm, band.high_nm, 25)
    intensity = grey_intensity(np.append(mu, 1.0), wavelengths, teff_k)
    profile = intensity[:-1].mean(axis=1) / intensity[-1].mean()
    # 1 − I/I(1) = u1 (1 − μ) + u2 (1 − μ)²: linear least squares.
    x = 1.0 - mu
    (u1, u2), *_ = np.linalg.lstsq(np.column_stack([x, x**2]), 1.0 - profile, rcond=None)
    return float(u1), float(u2)


def quadratic_to_nonlinear(u1: float, u2: float) -> tuple[float, float, float, float]:
    """The same law in Claret's four-parameter form (EXOTIC reports u0…u3): exact, c1 = c3 = 0."""
    return 0.0, u1 + 2.0 * u2, 0.0, -u2
