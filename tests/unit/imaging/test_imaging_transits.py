"""Transit library: the archive ephemeris reader, the night's transit windows, limb darkening,
the batman model against a direct integration, and the fit's partial and detrending paths."""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import replace

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time

from obsy.transits.occultation import limb_darkened_occultation
from obsy_imaging.transits.detrend import Detrending
from obsy_imaging.transits.ephemeris import Ephemeris, EphemerisError, parse_archive_csv, read_archive_csv
from obsy_imaging.transits.fit import McmcSettings, fit_transit, red_noise_beta
from obsy_imaging.transits.lightcurve import LightCurve
from obsy_imaging.transits.limbdarkening import UnknownFilterError, quadratic_coefficients, quadratic_to_nonlinear
from obsy_imaging.transits.model import TransitModel
from obsy_imaging.transits.predict import transits_between
from obsy_imaging.transits.simulate import Truth, correlated_noise, simulate_night, transit_flux

logging.getLogger("emcee").setLevel(logging.ERROR)

# The archive's export: a comment preamble, then the columns (a subset, in the archive's names).
ARCHIVE = """# This file was produced by the NASA Exoplanet Archive  http://exoplanetarchive.ipac.caltech.edu
# COLUMN pl_name:        Planet Name
#
pl_name,hostname,default_flag,pl_orbper,pl_orbpererr1,pl_orbpererr2,pl_tranmid,pl_tranmiderr1,pl_tranmiderr2,\
pl_tsystemref,pl_trandur,pl_trandep,pl_ratror,pl_ratdor,pl_ratdorerr1,pl_ratdorerr2,pl_orbincl,pl_orbinclerr1,\
pl_orbinclerr2,ra,dec,st_teff,st_logg
HAT-P-32 b,HAT-P-32,1,2.15000825,1.2e-07,-1.2e-07,2455867.402743,4.9e-05,-4.9e-05,BJD-TDB,3.1,2.3,0.1508,6.05,0.04,\
-0.04,88.98,0.68,-0.68,31.0428,46.6878,6269,4.33
HAT-P-32 b,HAT-P-32,0,2.150009,1e-06,-1e-06,2454420.44637,9e-05,-9e-05,BJD-TDB,,,,,,,,,,31.0428,46.6878,,
WASP-12 b,WASP-12,0,1.09142,,,,,,,,,,,,,,,,97.6366,29.6723,,
WASP-12 b,WASP-12,0,1.0914203,3e-07,-3e-07,2457010.51245,7e-05,-7e-05,BJD-TDB,3.0,1.4,0.117,3.04,,,83.37,0.7,-0.7,\
97.6366,29.6723,6300,4.38
"""


def test_the_archive_export_gives_one_ephemeris_per_planet(tmp_path) -> None:
    path = tmp_path / "PS_2026.12.06.csv"
    path.write_text(ARCHIVE.replace("\\\n", ""))
    table = read_archive_csv(path)
    assert sorted(table) == ["HAT-P-32 b", "WASP-12 b"]
    hat = table["HAT-P-32 b"]
    # The default row, not the older one; the archive's units converted (hours, per cent).
    assert hat.t0 == 2455867.402743 and hat.period == 2.15000825
    assert hat.t0_err == 4.9e-05 and hat.period_err == 1.2e-07
    assert hat.duration == pytest.approx(3.1 / 24) and hat.depth == pytest.approx(0.023)
    assert (hat.rp_rs, hat.a_rs, hat.a_rs_err, hat.inc, hat.host) == (0.1508, 6.05, 0.04, 88.98, "HAT-P-32")
    # No default row with a mid-time: the row that has one (the other has no pl_tranmid).
    wasp = table["WASP-12 b"]
    assert wasp.t0 == 2457010.51245 and wasp.period == 1.0914203
    # A prediction carries both uncertainties to the epoch.
    tc, err = hat.predicted(1000)
    assert tc == pytest.approx(2455867.402743 + 1000 * 2.15000825)
    assert err == pytest.approx(math.hypot(4.9e-05, 1000 * 1.2e-07))
    # The model's duration from the geometry agrees with the archive's within a few per cent.
    assert hat.model_duration() == pytest.approx(hat.duration, rel=0.05)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("pl_orbper,", "period,", 1), "no column pl_orbper"),
        (lambda t: t.replace("2.15000825", "2.15x", 1), "line 5 (HAT-P-32 b): pl_orbper is not a number: '2.15x'"),
        (lambda t: t.replace("2455867.402743", "55867.402743", 1), "line 5 (HAT-P-32 b): pl_tranmid 55867.402743"),
        (lambda t: t.replace("-0.04,88.98", "-0.04", 1), "line 5: 22 values for 23 columns"),
        (lambda t: "# only comments\n", "no header row"),
    ],
)
def test_a_bad_table_names_the_column_and_line(edit, message) -> None:
    with pytest.raises(EphemerisError) as error:
        parse_archive_csv(edit(ARCHIVE.replace("\\\n", "")), source="PS.csv")
    assert message in str(error.value)


def test_planets_without_a_usable_row_are_left_out_with_the_reason() -> None:
    text = ARCHIVE.replace("\\\n", "")
    # WASP-12 b's only row with a mid-time loses its period; HAT-P-32 b's default row is in HJD.
    table = parse_archive_csv(text.replace(",1.0914203,", ",,", 1).replace("BJD-TDB", "HJD-UTC", 1), source="PS.csv")
    assert "WASP-12 b" not in table
    assert table.skipped == {"WASP-12 b": "PS.csv line 7 (WASP-12 b): pl_tranmid is empty"}
    # HAT-P-32 b falls back to its other (older) row, in BJD-TDB.
    assert table["HAT-P-32 b"].t0 == 2454420.44637 and table["HAT-P-32 b"].period == 2.150009


def test_ephemerides_written_as_an_export_read_back_unchanged() -> None:
    from obsy.transits.ephemeris import format_archive_csv

    table = parse_archive_csv(ARCHIVE.replace("\\\n", ""))
    written = format_archive_csv(list(table.values()), preamble="two planets\nread back")
    assert written.startswith("# two planets\n# read back\npl_name,")
    again = parse_archive_csv(written)
    assert again == table  # every field, to the digits the archive gives
    with pytest.raises(EphemerisError, match="a name with a comma"):
        format_archive_csv([replace(table["WASP-12 b"], name="WASP-12, b")])


def test_a_missing_file_is_an_ephemeris_error(tmp_path) -> None:
    with pytest.raises(EphemerisError, match=r"cannot read nothing\.csv"):
        read_archive_csv(tmp_path / "nothing.csv")


def test_the_geometry_falls_back_to_the_depth_and_duration() -> None:
    ephemeris = Ephemeris(name="X b", t0=2460000.5, period=3.0, depth=0.01, duration=0.1)
    k, _, inc = ephemeris.geometry()
    assert (k, inc) == (0.1, 90.0)
    assert ephemeris.model_duration() == pytest.approx(0.1)  # central transit reproduces the duration
    with pytest.raises(EphemerisError, match="neither Rp/R"):
        Ephemeris(name="Y b", t0=2460000.5, period=3.0).geometry()
    with pytest.raises(EphemerisError, match="period must be positive"):
        Ephemeris(name="Z b", t0=2460000.5, period=0.0)


SITE = EarthLocation.from_geodetic(lon=11.0 * u.deg, lat=48.0 * u.deg, height=600 * u.m)
HAT = parse_archive_csv(ARCHIVE.replace("\\\n", ""))["HAT-P-32 b"]


def test_the_nights_windows_agree_with_astropys_barycentric_time() -> None:
    start, end = Time("2026-12-01T00:00:00", scale="utc"), Time("2026-12-11T00:00:00", scale="utc")
    windows = transits_between(HAT, start, end, SITE, baseline_days=1 / 24)
    # A 2.15-day period: four or five transits in ten days, in order, one period apart.
    assert len(windows) in (4, 5)
    assert np.allclose(np.diff([w.tc_bjd for w in windows]), HAT.period)
    target = SkyCoord(HAT.ra * u.deg, HAT.dec * u.deg)
    for window in windows:
        assert start <= window.tc_utc <= end and window.complete
        # Independently: astropy's light travel time from the site at the predicted UTC back to BJD_TDB.
        t = Time(window.tc_utc, location=SITE)
        bjd = (t.tdb + t.light_travel_time(target, kind="barycentric")).jd
        assert abs(bjd - window.tc_bjd) * 86400 < 1.0
        duration = HAT.model_duration()
        assert window.egress_bjd - window.ingress_bjd == pytest.approx(duration)
        assert (window.ingress_utc - window.start_utc).to_value(u.min) == pytest.approx(
            60 + 3 * 1440 * window.tc_err_days, abs=0.01
        )
        assert (window.end_utc - window.egress_utc).to_value(u.min) == pytest.approx(
            60 + 3 * 1440 * window.tc_err_days, abs=0.01
        )


def test_a_night_that_begins_mid_transit_gives_a_partial_window() -> None:
    window = transits_between(HAT, Time("2026-12-01", scale="utc"), Time("2026-12-04", scale="utc"), SITE)[0]
    half_way = window.tc_utc
    partial = transits_between(HAT, half_way, half_way + 6 * u.hour, SITE)
    assert len(partial) == 1
    assert not partial[0].ingress_observed and partial[0].egress_observed and not partial[0].complete
    assert transits_between(HAT, window.egress_utc + 1 * u.min, window.egress_utc + 2 * u.hour, SITE) == []


def test_limb_darkening_is_stronger_in_the_blue_and_converts_exactly() -> None:
    bands = [quadratic_coefficients(code, 5800.0) for code in ("B", "V", "R", "I")]
    centre_to_limb = [u1 + u2 for u1, u2 in bands]  # the limb's intensity is 1 − u1 − u2
    assert all(a > b for a, b in itertools.pairwise(centre_to_limb))
    assert all(0 < darkening < 1 for darkening in centre_to_limb)
    # Cooler stars are more limb darkened in the same band.
    assert sum(quadratic_coefficients("V", 4500.0)) > sum(quadratic_coefficients("V", 6500.0))
    u1, u2 = bands[1]
    c = quadratic_to_nonlinear(u1, u2)
    mu = np.linspace(0, 1, 11)
    quadratic = 1 - u1 * (1 - mu) - u2 * (1 - mu) ** 2
    nonlinear = 1 - sum(c[n] * (1 - mu ** ((n + 1) / 2)) for n in range(4))
    assert np.allclose(quadratic, nonlinear)
    with pytest.raises(UnknownFilterError, match="no passband for filter 'XX'"):
        quadratic_coefficients("XX")


def test_batmans_model_agrees_with_a_direct_integration_over_the_disc() -> None:
    u_r = quadratic_coefficients("R", 5800.0)
    for inc, k in ((90.0, 0.1), (87.5, 0.11), (84.0, 0.15)):  # central, typical, grazing-ish
        truth = Truth(tc=2460000.5, period=3.0, rp_rs=k, a_rs=9.0, inc=inc, limb_darkening=u_r)
        time = np.linspace(truth.tc - 0.12, truth.tc + 0.12, 241)
        batman = TransitModel(time, truth.period, u_r).flux(truth.tc, k, truth.a_rs, inc)
        direct = transit_flux(time, truth)
        assert np.max(np.abs(batman - direct)) < 1e-4  # 0.1 ppt: far below any night's noise
        assert batman.min() < 1 - 0.5 * k**2
    # Uniform disc, planet fully inside: the depth is k² exactly.
    assert limb_darkened_occultation(np.array([0.3]), 0.1, (0.0, 0.0))[0] == pytest.approx(0.99, abs=1e-6)


def test_detrending_solves_the_linear_coefficients() -> None:
    rng = np.random.default_rng(3)
    airmass = np.linspace(1.8, 1.1, 50)
    background = rng.normal(size=50)
    trend = Detrending.build(airmass, "linear", {"background": background, "constant": np.ones(50)})
    assert trend.names == ("c0", "airmass", "background")  # the constant regressor is dropped
    truth = 2.0 + 0.1 * trend.airmass_centred + 0.03 * trend.design[:, 2]
    c, systematics, chi2 = trend.solve(np.ones(50), truth, np.ones(50))
    assert np.allclose(c, [2.0, 0.1, 0.03]) and chi2 < 1e-20 and np.allclose(systematics, truth)
    exponential = Detrending.build(airmass, "exponential")
    c, systematics, _ = exponential.solve(
        np.ones(50), 3.0 * np.exp(-0.2 * exponential.airmass_centred), np.ones(50), -0.2
    )
    assert np.allclose(c, [3.0]) and exponential.nonlinear == 1
    with pytest.raises(ValueError, match="unknown airmass detrending 'cubic'"):
        Detrending.build(airmass, "cubic")


TRUTH = Truth(tc=2460650.75, period=3.0, rp_rs=0.11, a_rs=9.0, inc=87.5, limb_darkening=quadratic_coefficients("R"))
# A year-old ephemeris, slightly off in every number (as real ones are), about 100 periods before.
EPHEMERIS = Ephemeris(
    name="SIM-1 b", t0=TRUTH.tc - 100 * 3.0 + 0.002, t0_err=0.001, period=3.0, period_err=1e-6,
    rp_rs=0.105, a_rs=9.3, a_rs_err=0.3, inc=87.8, inc_err=0.6, ra=10.0, dec=30.0,
)  # fmt: skip
QUICK = McmcSettings(walkers=16, steps=600, burn=200, seed=5)


def test_a_partial_transit_is_said_to_be_and_its_error_carries_the_priors() -> None:
    # The night starts 20 minutes after mid-transit: egress and baseline only.
    lc = simulate_night(TRUTH, 11, points=200, start_offset_days=20 / 1440, span_days=0.15)
    fit = fit_transit(lc, EPHEMERIS, mcmc=QUICK)
    assert fit.partial and not fit.ingress_observed and fit.egress_observed
    # a/R* and inc follow their priors (the egress alone cannot measure the duration) ...
    assert fit.a_rs.value == pytest.approx(EPHEMERIS.a_rs, abs=EPHEMERIS.a_rs_err)
    assert fit.a_rs.error == pytest.approx(EPHEMERIS.a_rs_err, rel=0.5)
    # ... so Tc's error is larger than a full transit's of the same noise, and still minutes.
    full = fit_transit(simulate_night(TRUTH, 11, points=200), EPHEMERIS, mcmc=QUICK)
    assert full.tc.error < fit.tc.error < 6 / 1440
    assert abs(fit.tc.value - TRUTH.tc) < 3 * fit.tc.error


def test_a_full_transit_with_the_exponential_law_reports_everything() -> None:
    lc = simulate_night(TRUTH, 12, extinction_mag=0.05)
    fit = fit_transit(lc, EPHEMERIS, detrending="exponential", mcmc=QUICK)
    assert not fit.partial and fit.ingress_observed and fit.egress_observed
    assert abs(fit.tc.value - TRUTH.tc) < 3 * fit.tc.error
    # Bouguer's law: 0.05 mag per airmass is a2 = −0.4 ln 10 × 0.05.
    assert fit.a2 is not None and fit.a2.value == pytest.approx(-0.4 * math.log(10) * 0.05, abs=3 * fit.a2.error)
    assert fit.depth.value == pytest.approx(fit.rp_rs.value**2, rel=0.01)
    assert fit.o_minus_c.value == pytest.approx(fit.tc.value - EPHEMERIS.predicted(100)[0])
    assert fit.o_minus_c.error > fit.tc.error  # the prediction's uncertainty adds
    assert fit.epoch == 100 and fit.coefficients.keys() == {"c0"}
    assert np.allclose(fit.detrended * fit.systematics, fit.flux)
    assert abs(np.median(fit.detrended[np.abs(fit.time - fit.tc.value) > fit.duration.value / 2]) - 1) < 1e-3


def test_a_light_curve_that_misses_the_transit_is_refused() -> None:
    lc = simulate_night(TRUTH, 13, points=50, start_offset_days=0.5, span_days=0.1)
    with pytest.raises(ValueError, match="does not reach the transit predicted"):
        fit_transit(lc, EPHEMERIS, mcmc=QUICK)


def test_a_stale_ephemeris_is_found_out_by_the_o_minus_c() -> None:
    # The ephemeris predicts the transit 25 minutes early (well outside its stated error): the scan
    # over Tc still finds the transit, and O−C measures the drift.
    stale = Ephemeris(
        name="SIM-1 b", t0=TRUTH.tc - 300.0 - 25 / 1440, t0_err=0.002, period=3.0, period_err=1e-6,
        rp_rs=0.11, a_rs=9.0, a_rs_err=0.3, inc=87.5, inc_err=0.6,
    )  # fmt: skip
    lc = simulate_night(TRUTH, 14)
    fit = fit_transit(lc, stale, mcmc=QUICK)
    assert abs(fit.tc.value - TRUTH.tc) < 3 * fit.tc.error
    assert fit.o_minus_c.value * 1440 == pytest.approx(25, abs=3 * fit.o_minus_c.error * 1440)


def test_a_regressor_that_carries_a_trend_is_fitted_with_the_transit() -> None:
    # A background-like regressor (wiggling, so not mistaken for the transit's dip) adds a 4 ppt
    # trend that the airmass does not explain.
    night = simulate_night(TRUTH, 15)
    background = np.sin(np.linspace(0, 12, len(night.time))) + 0.1 * np.random.default_rng(15).normal(
        size=len(night.time)
    )
    trend = 1 + 0.004 * (background - background.mean()) / background.std()
    lc = LightCurve(
        time=night.time, flux=night.flux * trend, flux_err=night.flux_err, airmass=night.airmass,
        filter=night.filter, regressors={"background": background},
    )  # fmt: skip
    with_it = fit_transit(lc, EPHEMERIS, mcmc=QUICK)
    assert with_it.coefficients["background"] / with_it.coefficients["c0"] == pytest.approx(0.004, abs=0.001)
    assert abs(with_it.tc.value - TRUTH.tc) < 3 * with_it.tc.error
    assert with_it.depth.value == pytest.approx(TRUTH.depth, rel=0.1)
    # Without it the residuals keep the trend: the scatter grows and the errors are scaled up.
    without = fit_transit(replace(lc, regressors={}), EPHEMERIS, mcmc=QUICK)
    assert without.residual_rms > 1.1 * with_it.residual_rms and without.error_scale > with_it.error_scale


def test_long_exposures_are_integrated_over() -> None:
    time = np.linspace(TRUTH.tc - 0.1, TRUTH.tc + 0.1, 101)
    exposure_s = 300.0
    integrated = TransitModel(time, TRUTH.period, TRUTH.limb_darkening, exposure_s=exposure_s, supersample=15)
    # The same average by brute force: the instantaneous model at 301 instants across each exposure.
    offsets = np.linspace(-0.5, 0.5, 301) * exposure_s / 86400
    fine = TransitModel((time[:, None] + offsets).ravel(), TRUTH.period, TRUTH.limb_darkening)
    average = fine.flux(TRUTH.tc, TRUTH.rp_rs, TRUTH.a_rs, TRUTH.inc).reshape(len(time), -1).mean(axis=1)
    assert np.max(np.abs(integrated.flux(TRUTH.tc, TRUTH.rp_rs, TRUTH.a_rs, TRUTH.inc) - average)) < 2e-5
    instantaneous = TransitModel(time, TRUTH.period, TRUTH.limb_darkening).flux(
        TRUTH.tc, TRUTH.rp_rs, TRUTH.a_rs, TRUTH.inc
    )
    assert np.max(np.abs(instantaneous - average)) > 1e-4  # the contacts are visibly rounded


def test_beta_tells_correlated_noise_from_white() -> None:
    time = np.linspace(TRUTH.tc - 0.1, TRUTH.tc + 0.1, 300)
    white, red = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        white.append(red_noise_beta(time, rng.normal(size=300), 16 / 1440))
        # As much noise correlated over 15 minutes as white: it averages down far more slowly.
        correlated = rng.normal(size=300) + correlated_noise(time, 15 / 1440, rng)
        red.append(red_noise_beta(time, correlated / correlated.std(), 16 / 1440))
    assert 0.85 < np.median(white) < 1.2 and max(white) < 1.4
    assert np.median(red) > 2.0 and min(red) > 1.5


def test_red_noise_inflates_the_errors() -> None:
    calm = fit_transit(simulate_night(TRUTH, 16), EPHEMERIS, mcmc=QUICK)
    noisy = simulate_night(TRUTH, 16, noise=0.002, red_noise=0.0015, red_timescale_min=15)
    rough = fit_transit(noisy, EPHEMERIS, mcmc=QUICK)
    assert calm.red_noise_beta < 1.4 < rough.red_noise_beta
    assert rough.error_scale >= rough.red_noise_beta and rough.tc.error > 1.3 * calm.tc.error
