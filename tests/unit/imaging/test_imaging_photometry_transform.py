"""Transformation to the standard system (AAVSO's Tv_bv convention): on frames of a camera whose V
filter has a known colour term (synthetic frames, and the sky simulator's camera given that term),
the transformed magnitudes recover the stars' true V and the untransformed ones miss it by the term
times the colour difference; what cannot be transformed says why, and the report carries TRANS=YES
only for transformed magnitudes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS

from obsy.config import ImagingPhotometryConfig
from obsy_imaging.headers.normalise import Site as HeaderSite
from obsy_imaging.photometry.aavso import ENSEMBLE, Observation, ReportHeader, validate_report, write_report
from obsy_imaging.photometry.aperture import Apertures, CcdNoise
from obsy_imaging.photometry.differential import Sequence, Star, measure_sequence
from obsy_imaging.photometry.reduce import reduce_frame
from obsy_imaging.photometry.transform import colour_terms, transform_for, transform_for_filter
from obsy_skysim.allsky import Site
from obsy_skysim.field import FieldRenderer, TelescopeOptics
from obsy_skysim.scenario import Scenario
from tests.support.photometry import noise_of, write_night
from tests.support.skysim import SITE
from tests.unit.imaging.test_imaging_photometry import ACROSS_ZERO, EXPOSURE, NIGHT_START, SMALL, VARIABLE
from tests.unit.imaging.test_imaging_photometry import GAIN as SIMULATOR_GAIN

#: The camera's colour term: its v = V − T·(B−V) + zero point, as Tv_bv is defined.
TV_BV = 0.12
ZERO_POINT = 23.0  # an instrumental 0 mag star gives 10^(0.4·23) electrons in the exposure
GAIN, READ_NOISE_E, SKY_E = 1.0, 5.0, 200.0
FWHM = 4.0
SIZE = 400
#: (label, x, y, V, B−V): a red variable among bluer comparison stars, and a check star.
STARS = [
    ("VAR", 200.0, 200.0, 11.5, 1.45),
    ("C1", 80.0, 90.0, 11.2, 0.35),
    ("C2", 320.0, 100.0, 11.9, 0.55),
    ("C3", 90.0, 310.0, 11.6, 0.25),
    ("K", 310.0, 320.0, 12.0, 0.80),
]


def frame_wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, -20.0]
    wcs.wcs.crpix = [SIZE / 2 + 1, SIZE / 2 + 1]
    wcs.wcs.cd = [[-1.5 / 3600, 0.0], [0.0, 1.5 / 3600]]
    return wcs


def render(seed: int) -> np.ndarray:
    """Gaussian stars with the colour term in their flux, sky, photon and read noise (ADU)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    sigma = FWHM / 2.3548
    electrons = np.full((SIZE, SIZE), SKY_E)
    for _, x, y, v, bv in STARS:
        instrumental = v - TV_BV * bv - ZERO_POINT
        total = 10 ** (-0.4 * instrumental)
        electrons += total / (2 * np.pi * sigma**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    noisy = rng.poisson(electrons) + rng.normal(0.0, READ_NOISE_E, electrons.shape)
    return (noisy / GAIN).astype(np.float32)  # a calibrated frame: the sky is the annulus' business


def sequence(wcs: WCS, *, colours: bool = True, own: bool = False) -> Sequence:
    """The stars as a chart gives them (B and V), or (``own``) as the observer's own stars with their
    B−V given; ``colours=False``: V alone."""

    def star(label, x, y, v, bv):
        ra, dec = wcs.all_pix2world([[x, y]], 0)[0]
        if own:
            return Star(label, float(ra), float(dec), v, 0.0, colours={"B-V": bv})
        bands = {"V": v, "B": v + bv} if colours else {"V": v}
        return Star(label, float(ra), float(dec), v, 0.0, bands=bands)

    stars = [star(*s) for s in STARS]
    target = Star(stars[0].label, stars[0].ra_deg, stars[0].dec_deg)
    return Sequence(target, tuple(stars[1:4]), stars[4], chart_id="X99999TST")


def test_transformed_magnitudes_recover_the_truth_and_untransformed_do_not() -> None:
    wcs = frame_wcs()
    seq = sequence(wcs)
    terms = colour_terms({"Tv_bv": TV_BV})
    transform, why = transform_for("V", terms, {"B-V": STARS[0][4]})
    assert why is None and transform is not None
    noise = CcdNoise(GAIN, READ_NOISE_E)
    apertures = Apertures.from_fwhm(FWHM)
    true_v, target_bv = STARS[0][3], STARS[0][4]
    comparisons_bv = np.array([s[4] for s in STARS[1:4]])
    transformed, plain = [], []
    for seed in range(12):
        image = render(seed)
        t = measure_sequence(image, wcs, seq, apertures, noise, saturation_adu=1e9, transform=transform)
        p = measure_sequence(image, wcs, seq, apertures, noise, saturation_adu=1e9)
        assert t.transformed and not p.transformed
        own = measure_sequence(image, wcs, sequence(wcs, own=True), apertures, noise, saturation_adu=1e9,
                               transform=transform)  # fmt: skip
        assert own.transformed and own.mag == pytest.approx(t.mag, abs=1e-9)  # own stars' colours: the same
        transformed.append((t.mag, t.mag_err, t.check_residual, t.check_err))
        plain.append((p.mag, p.mag_err, p.check_residual))
    t_mag, t_err, k_res, k_err = (np.array(c) for c in zip(*transformed, strict=True))
    p_mag = np.array([m for m, _, _ in plain])
    # Transformed: within the errors of the truth, and so is the check star.
    assert np.all(np.abs(t_mag - true_v) <= 3 * t_err)
    assert abs(np.mean(t_mag) - true_v) < 3 * np.median(t_err) / np.sqrt(len(t_mag))
    assert np.all(np.abs(k_res) <= 3 * k_err)
    # Untransformed: off by −T times the target's colour against the comparisons' (a red star looks
    # brighter; an ensemble: their weighted mean colour, between the bluest and the reddest).
    offset = np.mean(p_mag) - true_v
    assert -TV_BV * (target_bv - comparisons_bv.min()) <= offset <= -TV_BV * (target_bv - comparisons_bv.max())
    assert abs(offset) > 10 * np.median(t_err)
    assert np.all(np.abs(p_mag - true_v) > 3 * t_err)


@pytest.mark.long(seconds=30)
def test_on_the_sky_simulator_the_transformed_variable_recovers_its_scripted_magnitudes(tmp_path: Path) -> None:
    """The simulator's camera with a colour term renders the scripted red variable (B−V 1.5) and its
    field (the stars' own colours) as that camera sees them; against a chart of the field stars with
    their B and V, the transformed magnitudes match the scenario's V, the untransformed ones do not."""
    renderer = FieldRenderer(
        Site(*SITE), SMALL, TelescopeOptics(limiting_magnitude=15.0, seeing_fwhm_arcsec=3.5, colour_term=TV_BV)
    )
    variable = VARIABLE.model_copy(update={"epoch": NIGHT_START, "bv": 1.5})
    times = [NIGHT_START + timedelta(minutes=20 * i) for i in range(8)]
    paths, expected, plain_sequence = write_night(
        renderer, Scenario(variables=[variable]), variable, pointing=ACROSS_ZERO, times=times, folder=tmp_path,
        exposure_s=EXPOSURE, gain=SIMULATOR_GAIN, seed=5000,
    )  # fmt: skip
    stars = renderer.render(times[0], ACROSS_ZERO, EXPOSURE, SIMULATOR_GAIN, seed=1).truth.stars
    by_position = {
        (float(r), float(d)): (float(m), float(c))
        for r, d, m, c in zip(stars.ra, stars.dec, stars.mag, stars.bv, strict=True)
    }

    def charted(star: Star) -> Star:  # the chart's B and V of a field star (VSP gives both)
        v, bv = by_position[(star.ra_deg, star.dec_deg)]
        return replace(star, bands={"V": v, "B": v + bv})

    sequence = replace(
        plain_sequence,
        comparisons=tuple(charted(c) for c in plain_sequence.comparisons),
        check=charted(plain_sequence.check),
    )
    transform, _ = transform_for("V", colour_terms({"Tv_bv": TV_BV}), {"B-V": variable.bv})
    noise = noise_of(renderer, SIMULATOR_GAIN, EXPOSURE, calibrated=True)
    site = HeaderSite(*SITE)
    z_transformed, z_plain, check_z = [], [], []
    for path, truth in zip(paths, expected, strict=True):
        t = reduce_frame(path, sequence, noise, site=site, saturation_adu=25000.0, transform=transform).magnitudes
        p = reduce_frame(path, sequence, noise, site=site, saturation_adu=25000.0).magnitudes
        assert t.transformed and not p.transformed and t.reasons == []
        z_transformed.append((t.mag - truth) / t.mag_err)
        z_plain.append((p.mag - truth) / p.mag_err)
        check_z.append(t.check_residual / t.check_err)
    colours = np.array([c.bands["B"] - c.bands["V"] for c in sequence.comparisons])
    print(
        f"comparisons B-V {colours.min():.2f}..{colours.max():.2f}; transformed z "
        + " ".join(f"{z:+.1f}" for z in z_transformed) + "; untransformed z " + " ".join(f"{z:+.1f}" for z in z_plain)
    )  # fmt: skip
    assert all(abs(z) <= 3 for z in z_transformed) and abs(np.mean(z_transformed)) < 3 / np.sqrt(len(paths))
    assert all(abs(z) <= 3 for z in check_z)
    assert all(z < -3 for z in z_plain)  # the red variable looks brighter to this camera


def test_what_cannot_be_transformed_says_why() -> None:
    wcs = frame_wcs()
    terms = colour_terms({"Tv_bv": TV_BV, "Tb_bv": 0.08})
    assert set(terms) == {"V", "B"} and terms["V"].colour == "B-V"
    assert transform_for("Rc", terms, {"B-V": 1.0}) == (None, None)  # no coefficient: nothing to say
    assert transform_for_filter("V", terms, {"B-V": 1.0})[0].term.name == "Tv_bv"
    assert transform_for_filter("CV", terms, {"B-V": 1.0}) == (None, None)  # unfiltered: V's zero point only
    assert transform_for_filter("TG", terms, {"B-V": 1.0}) == (None, None)
    none, why = transform_for("V", terms, {})
    assert none is None and why == "not transformed: Tv_bv needs the target's B-V (its colours)"
    transform, _ = transform_for("V", terms, {"B-V": 1.45})
    result = measure_sequence(
        render(1), wcs, sequence(wcs, colours=False), Apertures.from_fwhm(FWHM), CcdNoise(GAIN, READ_NOISE_E),
        saturation_adu=1e9, transform=transform,
    )  # fmt: skip
    assert result.mag is not None and not result.transformed
    assert "not transformed: comparison C1, C2, C3 has no B-V (chart or colours)" in result.reasons
    full = sequence(wcs)
    colourless_check = replace(full, check=replace(full.check, bands={"V": full.check.mag}))
    result = measure_sequence(
        render(1), wcs, colourless_check, Apertures.from_fwhm(FWHM), CcdNoise(GAIN, READ_NOISE_E),
        saturation_adu=1e9, transform=transform,
    )  # fmt: skip
    assert result.transformed and result.reasons == ["check K: no B-V (chart or colours), not transformed"]
    with pytest.raises(ValueError, match="two transformation coefficients for V"):
        colour_terms({"Tv_bv": 0.1, "Tv_vi": 0.05})


def test_the_configuration_names_coefficients_and_colours_as_aavso_does() -> None:
    good = ImagingPhotometryConfig(
        transformation={"Tv_bv": 0.05, "Ti_vi": -0.02},
        targets=[{"name": "SS Cyg", "chart_id": "X1234", "colours": {"b - v": 0.71}}],
    )
    assert good.targets[0].colours == {"B-V": 0.71}
    own = ImagingPhotometryConfig(
        targets=[{"name": "RZ Cet", "ra": 12.4, "dec": -8.9, "comparisons": [
            {"label": "A", "ra": 12.5, "dec": -8.9, "mag": 11.2, "colours": {"B-V": 0.55}}]}]
    )  # fmt: skip
    assert own.targets[0].comparisons[0].colours == {"B-V": 0.55}
    with pytest.raises(ValueError, match="not transformation coefficients as AAVSO names them"):
        ImagingPhotometryConfig(transformation={"V_coefficient": 0.05})
    with pytest.raises(ValueError, match="two transformation coefficients for one band: Tv_bv and TV_VI"):
        ImagingPhotometryConfig(transformation={"Tv_bv": 0.05, "TV_VI": 0.03})
    with pytest.raises(ValueError, match="not a colour index such as B-V"):
        ImagingPhotometryConfig(targets=[{"name": "SS Cyg", "chart_id": "X1234", "colours": {"BV": 0.7}}])


def test_the_report_says_trans_yes_only_for_transformed_magnitudes() -> None:
    def line(transformed: bool) -> Observation:
        return Observation(
            "SS CYG", 2460000.5, 11.5, 0.01, "V", ENSEMBLE, None, check="K", check_instrumental=-8.1,
            transformed=transformed, chart="X99999TST",
        )  # fmt: skip

    text = write_report(ReportHeader("TST01", "test"), [line(True), line(False)])
    assert validate_report(text) == []
    rows = [r.split(",") for r in text.splitlines() if not r.startswith("#")]
    assert [r[5] for r in rows] == ["YES", "NO"]
