"""The Exoplanet Watch report (#TYPE=EXOPLANET, the fields EXOTIC 4.3 writes): the writer against
the format, the parser and validator against the writer and against a file in EXOTIC's own layout."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from obsy_imaging.transits.ephemeris import Ephemeris
from obsy_imaging.transits.fit import McmcSettings, fit_transit
from obsy_imaging.transits.limbdarkening import quadratic_coefficients
from obsy_imaging.transits.report import (
    COLUMNS,
    PARAMETERS,
    ObservationInfo,
    ReportError,
    decimals_for,
    parse_report,
    results_of,
    rounded,
    validate_report,
    write_report,
)
from obsy_imaging.transits.simulate import Truth, simulate_night

logging.getLogger("emcee").setLevel(logging.ERROR)

TRUTH = Truth(tc=2460650.75, period=3.0, rp_rs=0.11, a_rs=9.0, inc=87.5, limb_darkening=quadratic_coefficients("R"))
EPHEMERIS = Ephemeris(
    name="SIM-1 b", host="SIM-1", t0=TRUTH.tc - 300.0 + 0.002, t0_err=0.001, period=3.0, period_err=1e-6,
    rp_rs=0.105, rp_rs_err=0.002, a_rs=9.3, a_rs_err=0.3, inc=87.8, inc_err=0.6,
)  # fmt: skip
INFO = ObservationInfo(
    obscode="TST01",
    software="OBSY 0.1",
    exposure_s=60.0,
    comparison={"ra": "10.1", "dec": "30.2", "x": None, "y": None},
)

# What EXOTIC 4.3 writes (exotic/output_files.py, OutputFiles.aavso), shortened to three rows.
EXOTIC_FILE = """#TYPE=EXOPLANET
#OBSCODE=ABC01
#SECONDARY_OBSCODES=
#SOFTWARE=EXOTIC v4.3.1
#DELIM=,
#DATE_TYPE=BJD_TDB
#OBSTYPE=CCD
#STAR_NAME=HAT-P-32
#EXOPLANET_NAME=HAT-P-32 b
#BINNING=1x1
#EXPOSURE_TIME=60.0
#COMP_STAR-XC={"ra": "31.1", "dec": "46.7", "x": "512", "y": "400"}
#NOTES=
#DETREND_PARAMETERS=AIRMASS, AIRMASS CORRECTION FUNCTION
#MEASUREMENT_TYPE=Rnflux
#FILTER=R
#FILTER-XC={"name": "R", "desc": "Cousins R", "fwhm": [{"value": "561.7", "units": "nm"}, FWHM_HIGH]}
#PRIORS=Period=2.15000825 +/- 1.2e-07,Rp/R*=0.1508 +/- 0.0004,a/R*=6.05 +/- 0.04,inc=88.98 +/- 0.68,ecc=0.0,LD
#PRIORS-XC={"Period": {"value": "2.15000825", "uncertainty": "1.2e-07", "units": "days"}}
#RESULTS=Tc=2460651.5162 +/- 0.00061,Rp/R*=0.1497 +/- 0.0021,inc=88.9 +/- 0.66,Am1=1.02 +/- 0.01,Am2=-0.03 +/- 0.011
#RESULTS-XC={"Tc": {"value": "2460651.5162", "uncertainty": "0.00061", "units": "BJD_TDB"}}
# EXOTIC is developed by Exoplanet Watch (exoplanets.nasa.gov/exoplanet-watch/), a citizen science project.
# Use of this data is governed by the AAVSO Data Usage Guidelines: aavso.org/data-usage-guidelines
#DATE,DIFF,ERR,DETREND_1,DETREND_2
2460651.40012345,1.0123456,0.0025,1.4567891,1.0101
2460651.40112345,1.0101234,0.0025,1.4467891,1.0099
2460651.40212345,1.0111111,0.0025,1.4367891,1.0097
""".replace("FWHM_HIGH", '{"value": "719.7", "units": "nm"}').replace(
    "LD", "u0=0.0 +/- 0.0,u1=0.9 +/- 0.1,u2=0.0 +/- 0.0,u3=-0.2 +/- 0.1"
)


@pytest.fixture(scope="module")
def fit():
    lc = simulate_night(TRUTH, 21, points=120)
    return fit_transit(lc, EPHEMERIS, mcmc=McmcSettings(walkers=16, steps=400, burn=150, seed=2))


def test_rounding_follows_the_uncertainty_as_exotic_does() -> None:
    assert decimals_for(0.00061) == 5 and decimals_for(0.011) == 3 and decimals_for(2.5) == 2
    assert rounded(2460651.516234, 0.000613) == "2460651.51623"
    assert rounded(0.149712, 0.00213) == "0.1497"
    assert rounded(88.912, 0.66) == "88.91"


def test_the_report_has_exotics_fields_in_order_and_the_fits_numbers(fit) -> None:
    text = write_report(INFO, fit, EPHEMERIS, "R")
    lines = text.splitlines()
    keys = [line[1:].partition("=")[0] for line in lines[: len(PARAMETERS)]]
    assert keys == list(PARAMETERS)
    assert lines[0] == "#TYPE=EXOPLANET" and "#DATE_TYPE=BJD_TDB" in lines and "#MEASUREMENT_TYPE=Rnflux" in lines
    assert lines.index("#" + ",".join(COLUMNS)) == len(lines) - len(fit.time) - 1
    report = parse_report(text)
    assert report.problems == []
    results = results_of(report)
    assert results["Tc"][0] == pytest.approx(fit.tc.value, abs=fit.tc.error / 10)
    assert results["Tc"][1] == pytest.approx(fit.tc.error, rel=0.05)
    assert results["Rp/R*"][0] == pytest.approx(fit.rp_rs.value, abs=fit.rp_rs.error / 10)
    assert set(results) == {"Tc", "Rp/R*", "inc", "Am1", "Am2"}
    xc = report.extended["RESULTS-XC"]
    assert xc["Tc"]["units"] == "BJD_TDB" and float(xc["Duration"]["value"]) == pytest.approx(
        fit.duration.value, rel=0.01
    )
    assert report.extended["FILTER-XC"]["fwhm"][0] == {"value": "561.7", "units": "nm"}
    assert report.extended["COMP_STAR-XC"] == INFO.comparison
    # The priors carry the ephemeris; the quadratic limb darkening in Claret's four-parameter form.
    priors = report.extended["PRIORS-XC"]
    assert priors["Period"] == {"value": "3.0", "uncertainty": "1e-06", "units": "days"}
    u0, u1, u2, _ = (float(priors[f"u{i}"]["value"]) for i in range(4))
    assert u0 == 0 and u2 == 0 and u1 == pytest.approx(fit.limb_darkening[0] + 2 * fit.limb_darkening[1], abs=0.01)
    # The rows: the light curve as fitted, the airmass, the correction function.
    assert np.allclose(report.data[:, 0], fit.time, atol=1e-8)
    level = fit.coefficients["c0"]
    assert np.allclose(report.data[:, 1], fit.flux / level, atol=1e-7)
    assert np.allclose(report.data[:, 2], fit.flux_err / level, atol=1e-7)
    out_of_transit = np.abs(fit.time - fit.tc.value) > fit.duration.value / 2
    assert abs(np.median(report.data[out_of_transit, 1]) - 1) < 2e-3  # normalised (Rnflux)
    assert np.allclose(report.data[:, 3], fit.airmass, atol=1e-7)
    assert np.allclose(report.data[:, 1] / report.data[:, 4], fit.detrended, atol=1e-6)
    # EXOTIC's Am1·exp(Am2·X) reproduces the correction function (linear law: to first order).
    am1, am2 = results["Am1"][0], results["Am2"][0]
    assert np.allclose(am1 * np.exp(am2 * fit.airmass), fit.systematics / level, rtol=2e-3)


def test_a_partial_transit_is_said_to_be_in_the_notes() -> None:
    lc = simulate_night(TRUTH, 22, points=100, start_offset_days=20 / 1440, span_days=0.15)
    partial = fit_transit(lc, EPHEMERIS, mcmc=McmcSettings(walkers=16, steps=300, burn=100, seed=3))
    report = parse_report(write_report(INFO, partial, EPHEMERIS, "R"))
    assert "partial transit (egress only)" in report.parameters["NOTES"]
    assert "a/R*" not in report.extended["RESULTS-XC"]  # the prior's, not measured


def test_a_file_in_exotics_layout_validates() -> None:
    report = parse_report(EXOTIC_FILE)
    assert report.problems == []
    assert report.data.shape == (3, 5)
    assert results_of(report)["Tc"] == (2460651.5162, 0.00061)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace("#DATE_TYPE=BJD_TDB", "#DATE_TYPE=JD"), "#DATE_TYPE= is 'JD', not 'BJD_TDB'"),
        (lambda t: t.replace("#OBSCODE=ABC01\n", ""), "missing parameter #OBSCODE="),
        (lambda t: t.replace("#OBSCODE=ABC01", "#OBSCODE="), "#OBSCODE= is empty"),
        (lambda t: t.replace('#COMP_STAR-XC={"ra"', "#COMP_STAR-XC={ra"), "COMP_STAR-XC is not JSON"),
        (lambda t: t.replace(",1.0097\n", "\n"), "line 27: 4 fields, not 5"),
        (lambda t: t.replace("2460651.40212345", "2460651.40002345"), "DATE does not increase"),
        (lambda t: t.replace("0.0025,1.4567891", "0.0,1.4567891"), "ERR is not positive in every row"),
        (lambda t: t.replace("Tc=2460651.5162 +/- 0.00061", "Tc=2460651.5162"), "no Tc with an uncertainty"),
        (lambda t: t.replace('"value": "2460651.5162"', '"value": "2460651.5163"'), "RESULTS-XC= Tc differs"),
        (lambda t: t.replace("Tc=2460651.5162", "Tc=2460655.5162").replace('"2460651.5162"', '"2460655.5162"'),
         "lies far outside the data"),
        (lambda t: t.replace("#DATE,DIFF,ERR,DETREND_1,DETREND_2\n", ""), "a data row before the"),
        (lambda t: t.replace("#OBSTYPE=CCD", "#OBSTYPE=EYE"), "#OBSTYPE= 'EYE' is not one of"),
    ],
)  # fmt: skip
def test_the_validator_names_each_problem(edit, problem) -> None:
    problems = validate_report(edit(EXOTIC_FILE))
    assert any(problem in p for p in problems), problems


def test_the_writer_refuses_what_the_format_cannot_hold(fit) -> None:
    for info, message in (
        (ObservationInfo(obscode=" ", software="OBSY"), "OBSCODE is empty"),
        (ObservationInfo(obscode="TST01", software="OBSY", obstype="VISUAL"), "OBSTYPE 'VISUAL'"),
        (ObservationInfo(obscode="TST01", software="OBSY", notes="two\nlines"), "NOTES holds a line break"),
        (ObservationInfo(obscode="TST,01", software="OBSY"), "must not hold the delimiter"),
    ):
        with pytest.raises(ReportError, match=message):
            write_report(info, fit, EPHEMERIS, "R")
    nameless = Ephemeris(name="SIM-1 b", t0=EPHEMERIS.t0, period=3.0, rp_rs=0.1, a_rs=9.0, inc=88.0)
    with pytest.raises(ReportError, match="STAR_NAME is unknown"):
        write_report(INFO, fit, nameless, "R")
    # Without uncertainties, the priors are written without "+/-" and null in the JSON.
    named = ObservationInfo(obscode="TST01", software="OBSY", star_name="SIM-1")
    report = parse_report(write_report(named, fit, nameless, "R"))
    assert "Period=3.0," in report.parameters["PRIORS"]
    assert json.loads(report.parameters["PRIORS-XC"])["a/R*"]["uncertainty"] is None
