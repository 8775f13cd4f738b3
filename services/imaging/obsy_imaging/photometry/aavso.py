"""AAVSO Extended File Format (version 1.2): the report WebObs accepts, and a validator for it.

Six parameter lines (``#TYPE=EXTENDED``, ``#OBSCODE``, ``#SOFTWARE``, ``#DELIM``, ``#DATE``,
``#OBSTYPE``), a commented header row, then one observation per line with 15 fields: NAME, DATE,
MAG, MERR, FILT, TRANS, MTYPE, CNAME, CMAG, KNAME, KMAG, AMASS, GROUP, CHART, NOTES. A missing
optional value is ``na``. With one comparison star CNAME is its label and CMAG its *instrumental*
magnitude; with an ensemble CNAME is ``ENSEMBLE``, CMAG ``na``, and the check star (KNAME, KMAG,
also instrumental) is required. The observer's own comparison stars (no AAVSO sequence) mean
CHART ``na`` and a note saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FIELDS = (
    "NAME", "DATE", "MAG", "MERR", "FILT", "TRANS", "MTYPE", "CNAME",
    "CMAG", "KNAME", "KMAG", "AMASS", "GROUP", "CHART", "NOTES",
)  # fmt: skip
#: Length limits of AAVSO's specification (NOTES has none short enough to matter).
LIMITS = {
    "NAME": 30, "DATE": 16, "MAG": 8, "MERR": 6, "FILT": 5, "TRANS": 3, "MTYPE": 3, "CNAME": 20,
    "CMAG": 8, "KNAME": 20, "KMAG": 8, "AMASS": 7, "GROUP": 5, "CHART": 20,
}  # fmt: skip
FILTERS = frozenset(
    [
        "U",
        "B",
        "V",
        "R",
        "I",
        "J",
        "H",
        "K",
        "TG",
        "TB",
        "TR",
        "CV",
        "CR",
        "SZ",
        "SU",
        "SG",
        "SR",
        "SI",
        "STU",
        "STV",
        "STB",
        "STY",
        "STHBW",
        "STHBN",
        "MA",
        "MB",
        "MI",
        "ZS",
        "Y",
        "HA",
        "HAC",
        "O",
    ]
)
DATE_TYPES = ("JD", "HJD")
OBS_TYPES = ("CCD", "DSLR", "PEP", "CMOS", "PHOTO", "VISDIG")
ENSEMBLE = "ENSEMBLE"
NA = "na"
FORBIDDEN_DELIMITERS = frozenset("# ")


class ReportError(ValueError):
    """An observation or report that AAVSO would refuse; the message says which field and why."""


@dataclass(frozen=True)
class Observation:
    """One line of the report. Magnitudes of CMAG and KMAG are instrumental, as AAVSO asks."""

    name: str
    date: float  # JD or HJD (the report's DATE parameter), mid-exposure
    mag: float
    mag_err: float | None
    filter: str
    comparison: str  # the comparison star's label, or ENSEMBLE
    comparison_instrumental: float | None  # None for an ensemble
    check: str | None = None
    check_instrumental: float | None = None
    airmass: float | None = None
    transformed: bool = False
    mtype: str = "STD"  # STD (comparison magnitudes applied) or DIF (differential only)
    group: str | None = None
    chart: str | None = None  # AAVSO sequence ID; None for the observer's own comparison stars
    notes: dict[str, str] | None = None  # written as |KEY=VALUE subfields
    fainter_than: bool = False


@dataclass(frozen=True)
class ReportHeader:
    obscode: str
    software: str
    date_type: str = "JD"
    obstype: str = "CCD"
    delimiter: str = ","


def _number(value: float | None, decimals: int) -> str:
    if value is None or not math.isfinite(value):
        return NA
    return f"{value:.{decimals}f}"


def observation_fields(o: Observation) -> dict[str, str]:
    """The 15 fields of one observation, as text, before any check."""
    notes = dict(o.notes or {})
    if o.chart is None and o.comparison != NA:
        notes.setdefault("SEQUENCE", "observer's own comparison stars (no AAVSO chart)")
    note_text = "".join(f"|{key}={value}" for key, value in notes.items()) if notes else NA
    mag = _number(o.mag, 3)
    return {
        "NAME": o.name.strip(),
        "DATE": _number(o.date, 5),
        "MAG": ("<" + mag) if o.fainter_than else mag,
        "MERR": _number(o.mag_err, 3),
        "FILT": o.filter,
        "TRANS": "YES" if o.transformed else "NO",
        "MTYPE": o.mtype,
        "CNAME": o.comparison or NA,
        "CMAG": _number(o.comparison_instrumental, 3),
        "KNAME": o.check or NA,
        "KMAG": _number(o.check_instrumental, 3),
        "AMASS": _number(o.airmass, 4),
        "GROUP": o.group or NA,
        "CHART": o.chart or NA,
        "NOTES": note_text,
    }


def field_problems(values: dict[str, str], delimiter: str) -> list[str]:
    """What AAVSO would refuse in one observation's fields (empty when it is fine)."""
    problems = []
    for name in FIELDS:
        value = values.get(name, "")
        if value == "":
            problems.append(f"{name} is empty (use 'na' for an unknown)")
        if delimiter in value:
            problems.append(f"{name} holds the delimiter {delimiter!r}: {value!r}")
        if name in LIMITS and len(value) > LIMITS[name]:
            problems.append(f"{name} is longer than {LIMITS[name]} characters: {value!r}")
    if values.get("NAME", NA).lower() == NA:
        problems.append("NAME is required")
    mag = values.get("MAG", "").lstrip("<")
    if "." not in mag or not _is_number(mag):
        problems.append(f"MAG must be a number with a decimal point, not {values.get('MAG')!r}")
    if not _is_number(values.get("DATE", "")):
        problems.append(f"DATE must be a number, not {values.get('DATE')!r}")
    for name in ("MERR", "CMAG", "KMAG", "AMASS"):
        value = values.get(name, NA)
        if value.lower() != NA and not _is_number(value):
            problems.append(f"{name} must be a number or 'na', not {value!r}")
    if values.get("FILT", "").upper() not in FILTERS:
        problems.append(f"FILT {values.get('FILT')!r} is not one of AAVSO's filter codes")
    if values.get("TRANS", "").upper() not in ("YES", "NO"):
        problems.append("TRANS must be YES or NO")
    return problems + _comparison_problems(values)


def _comparison_problems(values: dict[str, str]) -> list[str]:
    """AAVSO's rules for MTYPE and the comparison and check stars."""
    problems = []
    mtype, cname, cmag = values.get("MTYPE", "").upper(), values.get("CNAME", NA), values.get("CMAG", NA)
    kname, kmag = values.get("KNAME", NA), values.get("KMAG", NA)
    if mtype not in ("STD", "DIF"):
        problems.append(f"MTYPE must be STD or DIF, not {values.get('MTYPE')!r}")
    if cname.upper() == ENSEMBLE:
        if cmag.lower() != NA:
            problems.append("an ensemble's CMAG must be 'na'")
        if kname.lower() == NA or kmag.lower() == NA:
            problems.append("an ensemble needs a check star (KNAME and KMAG)")
        if mtype == "DIF":
            problems.append("a differential (DIF) magnitude needs one named comparison star, not an ensemble")
    elif cname.lower() != NA and cmag.lower() == NA:
        problems.append(f"comparison {cname} has no instrumental magnitude (CMAG)")
    if mtype == "DIF" and (cname.lower() == NA or cmag.lower() == NA):
        problems.append("a differential (DIF) magnitude needs CNAME and CMAG")
    if (kname.lower() == NA) != (kmag.lower() == NA):
        problems.append("KNAME and KMAG go together")
    return problems


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def write_report(header: ReportHeader, observations: list[Observation]) -> str:
    """The report's text; raises :class:`ReportError` naming the first observation AAVSO would refuse."""
    _check_header(header)
    lines = [
        "#TYPE=EXTENDED",
        f"#OBSCODE={header.obscode}",
        f"#SOFTWARE={header.software}",
        f"#DELIM={header.delimiter}",
        f"#DATE={header.date_type}",
        f"#OBSTYPE={header.obstype}",
        "#" + header.delimiter.join(FIELDS),
    ]
    for number, o in enumerate(observations, start=1):
        values = observation_fields(o)
        problems = field_problems(values, header.delimiter)
        if problems:
            raise ReportError(f"observation {number} ({o.name}): " + "; ".join(problems))
        lines.append(header.delimiter.join(values[name] for name in FIELDS))
    return "\n".join(lines) + "\n"


def _check_header(header: ReportHeader) -> None:
    d = header.delimiter
    if len(d) != 1 or not (32 <= ord(d) <= 126) or d in FORBIDDEN_DELIMITERS:
        raise ReportError(f"DELIM must be one printable ASCII character other than '#' and space, not {d!r}")
    if not header.obscode or not header.obscode.isalnum():
        raise ReportError(f"OBSCODE must be the observer code AAVSO assigned, not {header.obscode!r}")
    if header.date_type not in DATE_TYPES:
        raise ReportError(f"DATE must be one of {', '.join(DATE_TYPES)}, not {header.date_type!r}")
    if header.obstype not in OBS_TYPES:
        raise ReportError(f"OBSTYPE must be one of {', '.join(OBS_TYPES)}, not {header.obstype!r}")
    if not header.software or len(header.software) > 255:
        raise ReportError("SOFTWARE must name the software, in at most 255 characters")


def validate_report(text: str) -> list[str]:
    """Every problem AAVSO would find in a report's text (empty when it would accept it)."""
    problems: list[str] = []
    parameters: dict[str, str] = {}
    data: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            problems.append(f"line {number}: blank lines must be commented out with '#'")
        elif line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            if sep and key.strip().upper() in ("TYPE", "OBSCODE", "SOFTWARE", "DELIM", "DATE", "OBSTYPE"):
                parameters[key.strip().upper()] = value.strip()
        else:
            data.append((number, line))
    for key in ("TYPE", "OBSCODE", "SOFTWARE", "DELIM", "DATE", "OBSTYPE"):
        if key not in parameters:
            problems.append(f"the #{key}= parameter is missing")
    if parameters.get("TYPE", "").upper() != "EXTENDED":
        problems.append("#TYPE must be EXTENDED")
    if parameters.get("DATE", "").upper() not in DATE_TYPES:
        problems.append(f"#DATE must be one of {', '.join(DATE_TYPES)}")
    delimiter = parameters.get("DELIM", ",")
    delimiter = {"comma": ",", "tab": "\t"}.get(delimiter.lower(), delimiter)
    for number, line in data:
        parts = line.split(delimiter)
        if len(parts) != len(FIELDS):
            problems.append(f"line {number}: {len(parts)} fields, not {len(FIELDS)}")
            continue
        problems += [f"line {number}: {p}" for p in field_problems(dict(zip(FIELDS, parts, strict=True)), delimiter)]
    return problems
