"""The Exoplanet Watch report: AAVSO's ``#TYPE=EXOPLANET`` file, as EXOTIC 4.3 writes it, and a
parser and validator for it.

Parameter lines, in EXOTIC's order: ``TYPE`` (``EXOPLANET``), ``OBSCODE``, ``SECONDARY_OBSCODES``,
``SOFTWARE``, ``DELIM`` (``,``), ``DATE_TYPE`` (``BJD_TDB``), ``OBSTYPE``, ``STAR_NAME``,
``EXOPLANET_NAME``, ``BINNING``, ``EXPOSURE_TIME`` (s), ``COMP_STAR-XC`` (JSON), ``NOTES``,
``DETREND_PARAMETERS`` (``AIRMASS, AIRMASS CORRECTION FUNCTION``), ``MEASUREMENT_TYPE``
(``Rnflux``: relative, normalised flux), ``FILTER``, ``FILTER-XC`` (JSON: name, description,
FWHM edges in nm), ``PRIORS`` and ``PRIORS-XC``, ``RESULTS`` and ``RESULTS-XC``. ``-XC`` lines
hold JSON (values as strings, EXOTIC's way); the others ``KEY=value +/- error`` lists. Then
comment lines, the column header ``#DATE,DIFF,ERR,DETREND_1,DETREND_2`` and one row per frame:
BJD_TDB (8 decimals), the relative flux and its error (7), the airmass and the airmass
correction function the flux is divided by to detrend it (7). The flux, its error and the
correction function are normalised by the fit's baseline level ``c0`` (``Rnflux``: about 1 out of
transit).

Numbers are rounded as EXOTIC does: to two significant figures of the uncertainty (two decimals
for an uncertainty of 1 or more). Limb darkening is written in Claret's four-parameter form
(``u0…u3``), the quadratic law converted exactly; coefficients held fixed have no uncertainty.
``Am1``/``Am2`` are EXOTIC's ``a1·exp(a2·X)``: for the exponential law they are the fit's; for the
linear law, ``a2 = c1/c0`` (the same slope at the mean airmass), and ``a1`` follows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from obsy.transits.ephemeris import Ephemeris
from obsy_imaging.transits.limbdarkening import passband, quadratic_to_nonlinear

if TYPE_CHECKING:  # a type only: reading and checking a report needs no fitting (emcee, SciPy)
    from obsy_imaging.transits.fit import TransitFit

PARAMETERS = (
    "TYPE", "OBSCODE", "SECONDARY_OBSCODES", "SOFTWARE", "DELIM", "DATE_TYPE", "OBSTYPE", "STAR_NAME",
    "EXOPLANET_NAME", "BINNING", "EXPOSURE_TIME", "COMP_STAR-XC", "NOTES", "DETREND_PARAMETERS",
    "MEASUREMENT_TYPE", "FILTER", "FILTER-XC", "PRIORS", "PRIORS-XC", "RESULTS", "RESULTS-XC",
)  # fmt: skip
REQUIRED_NONEMPTY = ("OBSCODE", "SOFTWARE", "OBSTYPE", "STAR_NAME", "EXOPLANET_NAME", "FILTER", "PRIORS", "RESULTS")
COLUMNS = ("DATE", "DIFF", "ERR", "DETREND_1", "DETREND_2")
DETREND_PARAMETERS = "AIRMASS, AIRMASS CORRECTION FUNCTION"
OBS_TYPES = ("CCD", "DSLR", "CMOS")
MAX_TC_OUTSIDE_DAYS = 0.25
CREDIT = (
    "# Reduced unattended by OBSY: differential photometry, airmass detrending, batman transit model, emcee.\n"
    "# Use of this data is governed by the AAVSO Data Usage Guidelines: aavso.org/data-usage-guidelines\n"
)


class ReportError(ValueError):
    """A report that cannot be written as asked; the message names the field."""


@dataclass(frozen=True)
class ObservationInfo:
    """What the report says about the observation beyond the fit (EXOTIC asks the user for these)."""

    obscode: str  # the observer's AAVSO code
    software: str  # e.g. "OBSY 0.1"
    obstype: str = "CCD"
    secondary_obscodes: str = ""
    star_name: str | None = None  # default: the ephemeris' host
    binning: str = "1x1"
    exposure_s: float | None = None
    comparison: dict[str, str | None] | None = None  # ra, dec, x, y of the (main) comparison star
    notes: str = ""


@dataclass(frozen=True)
class ExoplanetReport:
    """A parsed report: the parameter lines (text), the ``-XC`` ones (JSON), the data columns."""

    parameters: dict[str, str]
    extended: dict[str, object]
    data: np.ndarray  # (n, 5): DATE, DIFF, ERR, DETREND_1, DETREND_2
    problems: list[str] = field(default_factory=list)


def decimals_for(error: float | None) -> int:
    """EXOTIC's rounding: two significant figures of the uncertainty, two decimals from 1 up."""
    if error is None or error == 0 or not math.isfinite(error) or abs(error) >= 1:
        return 2
    return -math.floor(math.log10(abs(error))) + 1


def rounded(value: float, error: float | None = None) -> str:
    return repr(round(float(value), decimals_for(error if error is not None else value)))


def _pair(value: float | None, error: float | None) -> tuple[str, str | None]:
    if value is None:
        return "null", None
    return rounded(value, error), (rounded(error) if error else None)


def _text(key: str, value: float | None, error: float | None) -> str:
    shown, uncertainty = _pair(value, error)
    return f"{key}={shown}" + (f" +/- {uncertainty}" if uncertainty is not None else "")


def _xc(value: float | None, error: float | None, units: str | None = None) -> dict[str, str | None]:
    shown, uncertainty = _pair(value, error)
    entry: dict[str, str | None] = {"value": None if value is None else shown, "uncertainty": uncertainty}
    if units:
        entry["units"] = units
    return entry


def airmass_coefficients(fit: TransitFit) -> tuple[tuple[float, float | None], tuple[float, float | None]]:
    """(Am1, error), (Am2, error) of EXOTIC's ``a1·exp(a2·X)`` for this fit, on the report's
    normalised flux scale (the flux divided by ``c0``; see the module's docstring)."""
    mean_x = float(np.mean(fit.airmass))
    c0, c0_err = fit.coefficients["c0"], fit.coefficient_errors["c0"]
    if fit.a2 is not None:
        a2, a2_err = fit.a2.value, fit.a2.error
    else:
        a2 = fit.coefficients.get("airmass", 0.0) / c0
        a2_err = fit.coefficient_errors.get("airmass", 0.0) / abs(c0)
    a1 = math.exp(-a2 * mean_x)  # c0 / c0: its error kept, the normalisation is itself estimated
    return (a1, abs(a1) * math.hypot(c0_err / c0, mean_x * a2_err)), (a2, a2_err)


def _check_line_value(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ReportError(f"{name} holds a line break")


def write_report(info: ObservationInfo, fit: TransitFit, ephemeris: Ephemeris, filter_code: str) -> str:
    """The report's text for one fitted night."""
    if not info.obscode.strip():
        raise ReportError("OBSCODE is empty: the observer's AAVSO code is required")
    if info.obstype not in OBS_TYPES:
        raise ReportError(f"OBSTYPE {info.obstype!r} is not one of {', '.join(OBS_TYPES)}")
    star = info.star_name or ephemeris.host
    if not star:
        raise ReportError("STAR_NAME is unknown: no host in the ephemeris and none given")
    band = passband(filter_code)
    for name, value in (
        ("NOTES", info.notes),
        ("SOFTWARE", info.software),
        ("SECONDARY_OBSCODES", info.secondary_obscodes),
    ):
        _check_line_value(name, value)
    if "," in info.obscode or "," in star or "," in ephemeris.name:
        raise ReportError("OBSCODE, STAR_NAME and EXOPLANET_NAME must not hold the delimiter ','")

    ld = quadratic_to_nonlinear(*fit.limb_darkening)
    priors_text = ",".join(
        [
            _text("Period", ephemeris.period, ephemeris.period_err),
            _text("Rp/R*", ephemeris.rp_rs, ephemeris.rp_rs_err),
            _text("a/R*", ephemeris.a_rs, ephemeris.a_rs_err),
            _text("inc", ephemeris.inc, ephemeris.inc_err),
            _text("ecc", ephemeris.ecc, None),
        ]
        + [_text(f"u{i}", c, None) for i, c in enumerate(ld)]
    )
    priors_xc = {
        "Period": _xc(ephemeris.period, ephemeris.period_err, "days"),
        "Rp/R*": _xc(ephemeris.rp_rs, ephemeris.rp_rs_err),
        "a/R*": _xc(ephemeris.a_rs, ephemeris.a_rs_err),
        "inc": _xc(ephemeris.inc, ephemeris.inc_err, "degrees"),
        "ecc": _xc(ephemeris.ecc, None),
    } | {f"u{i}": _xc(c, None) for i, c in enumerate(ld)}
    (am1, am1_err), (am2, am2_err) = airmass_coefficients(fit)
    results_text = ",".join(
        [
            _text("Tc", fit.tc.value, fit.tc.error),
            _text("Rp/R*", fit.rp_rs.value, fit.rp_rs.error),
            _text("inc", fit.inc.value, fit.inc.error or None),
            _text("Am1", am1, am1_err),
            _text("Am2", am2, am2_err),
        ]
    )
    results_xc = {
        "Tc": _xc(fit.tc.value, fit.tc.error, "BJD_TDB"),
        "Rp/R*": _xc(fit.rp_rs.value, fit.rp_rs.error),
        "inc": _xc(fit.inc.value, fit.inc.error or None),
        "Am1": _xc(am1, am1_err),
        "Am2": _xc(am2, am2_err),
        "Duration": _xc(fit.duration.value, fit.duration.error, "days"),
    }
    if not fit.partial:  # a partial transit does not measure a/R*: its value is the prior's
        results_xc["a/R*"] = _xc(fit.a_rs.value, fit.a_rs.error)
    filter_xc = {
        "name": band.code,
        "desc": band.description,
        "fwhm": [{"value": str(band.low_nm), "units": "nm"}, {"value": str(band.high_nm), "units": "nm"}],
    }
    notes = info.notes
    if fit.partial:
        contact = "egress" if fit.egress_observed else "ingress" if fit.ingress_observed else "neither contact"
        notes = (notes + "; " if notes else "") + f"partial transit ({contact} only): a/R* and inc from the priors"
    values = {
        "TYPE": "EXOPLANET",
        "OBSCODE": info.obscode,
        "SECONDARY_OBSCODES": info.secondary_obscodes,
        "SOFTWARE": info.software,
        "DELIM": ",",
        "DATE_TYPE": "BJD_TDB",
        "OBSTYPE": info.obstype,
        "STAR_NAME": star,
        "EXOPLANET_NAME": ephemeris.name,
        "BINNING": info.binning,
        "EXPOSURE_TIME": str(info.exposure_s if info.exposure_s is not None else -1),
        "COMP_STAR-XC": json.dumps(info.comparison),
        "NOTES": notes,
        "DETREND_PARAMETERS": DETREND_PARAMETERS,
        "MEASUREMENT_TYPE": "Rnflux",
        "FILTER": band.code,
        "FILTER-XC": json.dumps(filter_xc),
        "PRIORS": priors_text,
        "PRIORS-XC": json.dumps(priors_xc),
        "RESULTS": results_text,
        "RESULTS-XC": json.dumps(results_xc),
    }
    lines = [f"#{key}={values[key]}" for key in PARAMETERS]
    level = fit.coefficients["c0"]  # Rnflux: normalised, about 1 out of transit
    rows = [
        f"{round(t, 8)},{round(f / level, 7)},{round(e / level, 7)},{round(x, 7)},{round(s / level, 7)}"
        for t, f, e, x, s in zip(fit.time, fit.flux, fit.flux_err, fit.airmass, fit.systematics, strict=True)
    ]
    return "\n".join(lines) + "\n" + CREDIT + "#" + ",".join(COLUMNS) + "\n" + "\n".join(rows) + "\n"


def _split_results(text: str) -> dict[str, tuple[float, float | None]]:
    """``KEY=value +/- error`` list (the PRIORS and RESULTS lines) → {key: (value, error)}."""
    out: dict[str, tuple[float, float | None]] = {}
    for item in text.split(","):
        key, _, rest = item.partition("=")
        value_text, _, error_text = rest.partition("+/-")
        value = float(value_text) if value_text.strip() not in ("", "null", "None") else math.nan
        error = float(error_text) if error_text.strip() not in ("", "null", "None") else None
        out[key.strip()] = (value, error)
    return out


def parse_report(text: str) -> ExoplanetReport:
    """The report's parts, with every problem found (``problems`` empty for a good report)."""
    problems: list[str] = []
    parameters: dict[str, str] = {}
    extended: dict[str, object] = {}
    header_seen = False
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            problems.append(f"line {number}: blank line")
            continue
        if line.startswith("#"):
            if line[1:].replace(" ", "") == ",".join(COLUMNS):
                header_seen = True
            elif "=" in line and not line.startswith("# ") and not header_seen:
                key, _, value = line[1:].partition("=")
                parameters[key] = value
                if key.endswith("-XC"):
                    try:
                        extended[key] = json.loads(value)
                    except json.JSONDecodeError as error:
                        problems.append(f"line {number}: {key} is not JSON ({error.msg})")
            continue
        if not header_seen:
            problems.append(f"line {number}: a data row before the #{','.join(COLUMNS)} header")
            continue
        fields = line.split(parameters.get("DELIM", ","))
        if len(fields) != len(COLUMNS):
            problems.append(f"line {number}: {len(fields)} fields, not {len(COLUMNS)}")
            continue
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            problems.append(f"line {number}: a field is not a number: {line[:60]!r}")
    data = np.array(rows, float).reshape(-1, len(COLUMNS))
    problems += _check(parameters, extended, data, header_seen)
    return ExoplanetReport(parameters=parameters, extended=extended, data=data, problems=problems)


def _check(parameters: dict[str, str], extended: dict[str, object], data: np.ndarray, header_seen: bool) -> list[str]:
    problems = [f"missing parameter #{key}=" for key in PARAMETERS if key not in parameters]
    problems += [f"#{key}= is empty" for key in REQUIRED_NONEMPTY if key in parameters and not parameters[key].strip()]
    expected = {"TYPE": "EXOPLANET", "DELIM": ",", "DATE_TYPE": "BJD_TDB", "MEASUREMENT_TYPE": "Rnflux"}
    problems += [
        f"#{key}= is {parameters[key]!r}, not {value!r}"
        for key, value in expected.items()
        if key in parameters and parameters[key] != value
    ]
    if "OBSTYPE" in parameters and parameters["OBSTYPE"] not in OBS_TYPES:
        problems.append(f"#OBSTYPE= {parameters['OBSTYPE']!r} is not one of {', '.join(OBS_TYPES)}")
    if not header_seen:
        problems.append(f"no #{','.join(COLUMNS)} column header")
    if len(data) == 0:
        problems.append("no data rows")
        return problems
    if np.any(np.diff(data[:, 0]) <= 0):
        problems.append("DATE does not increase")
    if np.any(data[:, 0] < 2_400_000):
        problems.append("DATE is not a full BJD_TDB")
    if np.any(data[:, 2] <= 0):
        problems.append("ERR is not positive in every row")
    if np.any(data[:, 3] < 1):
        problems.append("DETREND_1 (airmass) below 1")
    if "RESULTS" in parameters:
        problems += _check_results(parameters["RESULTS"], extended.get("RESULTS-XC"), data)
    return problems


def _check_results(text: str, xc: object, data: np.ndarray) -> list[str]:
    try:
        results = _split_results(text)
    except ValueError:
        return ["#RESULTS= is not a list of KEY=value +/- error"]
    tc = results.get("Tc")
    if tc is None or tc[1] is None:
        return ["#RESULTS= has no Tc with an uncertainty"]
    problems = []
    # A partial transit's mid-time may lie outside the data, but not by more than a transit's length.
    if not data[0, 0] - MAX_TC_OUTSIDE_DAYS <= tc[0] <= data[-1, 0] + MAX_TC_OUTSIDE_DAYS:
        problems.append(f"Tc {tc[0]} lies far outside the data ({data[0, 0]}–{data[-1, 0]})")
    if isinstance(xc, dict) and float(xc.get("Tc", {}).get("value", "nan")) != tc[0]:
        problems.append("#RESULTS-XC= Tc differs from #RESULTS=")
    return problems


def validate_report(text: str) -> list[str]:
    """Every problem found in a report's text (empty when it is fine)."""
    return parse_report(text).problems


def results_of(report: ExoplanetReport) -> dict[str, tuple[float, float | None]]:
    """The RESULTS line as {key: (value, error)}."""
    return _split_results(report.parameters["RESULTS"])
