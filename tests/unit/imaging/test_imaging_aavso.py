"""The AAVSO Extended File Format writer and validator against the specification (version 1.2):
the six parameter lines, the 15 fields, 'na', the comparison-star rules, the field limits."""

from __future__ import annotations

import pytest

from obsy_imaging.photometry.aavso import (
    ENSEMBLE,
    FIELDS,
    Observation,
    ReportError,
    ReportHeader,
    validate_report,
    write_report,
)

HEADER = ReportHeader(obscode="TST01", software="OBSY 0.1", date_type="JD", obstype="CCD", delimiter=",")
PARAMETERS = "#TYPE=EXTENDED\n#OBSCODE=TST01\n#SOFTWARE=OBSY 0.1\n#DELIM=,\n#DATE=JD\n#OBSTYPE=CCD\n"

# Modelled on the specification's examples (SS Cyg, comparison 105, check 110, chart 070613).
SINGLE = Observation(
    name="SS CYG",
    date=2450702.1234,
    mag=11.235,
    mag_err=0.003,
    filter="B",
    comparison="105",
    comparison_instrumental=10.593,
    check="110",
    check_instrumental=11.090,
    airmass=1.561,
    group="1",
    chart="070613",
)
ENSEMBLE_OBSERVATION = Observation(
    name="SS CYG",
    date=2450702.1254,
    mag=11.135,
    mag_err=0.003,
    filter="V",
    comparison=ENSEMBLE,
    comparison_instrumental=None,
    check="110",
    check_instrumental=11.091,
    airmass=1.563,
    group="1",
    chart="070613",
)


def test_the_parameters_and_lines_are_as_specified() -> None:
    text = write_report(HEADER, [SINGLE, ENSEMBLE_OBSERVATION])
    assert text == (
        PARAMETERS
        + "#" + ",".join(FIELDS) + "\n"
        + "SS CYG,2450702.12340,11.235,0.003,B,NO,STD,105,10.593,110,11.090,1.5610,1,070613,na\n"
        + "SS CYG,2450702.12540,11.135,0.003,V,NO,STD,ENSEMBLE,na,110,11.091,1.5630,1,070613,na\n"
    )  # fmt: skip
    assert FIELDS == (
        "NAME", "DATE", "MAG", "MERR", "FILT", "TRANS", "MTYPE", "CNAME",
        "CMAG", "KNAME", "KMAG", "AMASS", "GROUP", "CHART", "NOTES",
    )  # fmt: skip
    assert validate_report(text) == []


def test_unknowns_are_na_and_hjd_is_stated() -> None:
    bare = Observation(
        name="V1 PSC", date=2461329.33, mag=9.0, mag_err=None, filter="V", comparison="C1", comparison_instrumental=-8.1
    )
    text = write_report(ReportHeader("TST01", "OBSY", date_type="HJD"), [bare])
    assert "#DATE=HJD\n" in text
    line = text.splitlines()[-1]
    # MAG keeps its decimal point; MERR, KNAME, KMAG, AMASS, GROUP, CHART are 'na'; own comparisons noted.
    assert line.startswith("V1 PSC,2461329.33000,9.000,na,V,NO,STD,C1,-8.100,na,na,na,na,na,|SEQUENCE=")
    assert validate_report(text) == []


def test_the_comparison_star_rules() -> None:
    assert validate_report(write_report(HEADER, [ENSEMBLE_OBSERVATION])) == []
    lines = {
        "an ensemble's CMAG must be 'na'": "SS CYG,2450702.1,11.1,0.003,V,NO,STD,ENSEMBLE,10.5,110,11.0,na,na,na,na",
        "an ensemble needs a check star": "SS CYG,2450702.1,11.1,0.003,V,NO,STD,ENSEMBLE,na,na,na,na,na,na,na",
        "DIF) magnitude needs CNAME and CMAG": "SS CYG,2450702.1,0.5,0.003,V,NO,DIF,na,na,na,na,na,na,na,na",
        "comparison 105 has no instrumental magnitude": "SS CYG,2450702.1,11.1,0.003,V,NO,STD,105,na,na,na,na,na,na,na",
        "KNAME and KMAG go together": "SS CYG,2450702.1,11.1,0.003,V,NO,STD,105,10.5,110,na,na,na,na,na",
    }
    for expected, line in lines.items():
        problems = validate_report(PARAMETERS + line + "\n")
        assert any(expected in p for p in problems), (expected, problems)
    with pytest.raises(ReportError, match="an ensemble needs a check star"):
        write_report(HEADER, [Observation("SS CYG", 2450702.1, 11.1, 0.003, "V", ENSEMBLE, None)])


def test_what_aavso_would_refuse_is_named() -> None:
    cases = {
        "NAME is longer than 30 characters": "A" * 31 + ",2450702.1,11.1,na,V,NO,STD,105,10.5,na,na,na,na,na,na",
        "MAG must be a number with a decimal point": "SS CYG,2450702.1,11,na,V,NO,STD,105,10.5,na,na,na,na,na,na",
        "FILT 'Lum' is not one of AAVSO's": "SS CYG,2450702.1,11.1,na,Lum,NO,STD,105,10.5,na,na,na,na,na,na",
        "TRANS must be YES or NO": "SS CYG,2450702.1,11.1,na,V,maybe,STD,105,10.5,na,na,na,na,na,na",
        "MTYPE must be STD or DIF": "SS CYG,2450702.1,11.1,na,V,NO,ABS,105,10.5,na,na,na,na,na,na",
        "GROUP is longer than 5 characters": "SS CYG,2450702.1,11.1,na,V,NO,STD,105,10.5,na,na,na,night1,na,na",
        "16 fields, not 15": "SS CYG,2450702.1,11.1,na,V,NO,STD,105,10.5,na,na,na,na,na,na,extra",
        "MERR is empty": "SS CYG,2450702.1,11.1,,V,NO,STD,105,10.5,na,na,na,na,na,na",
    }
    for expected, line in cases.items():
        problems = validate_report(PARAMETERS + line + "\n")
        assert any(expected in p for p in problems), (expected, problems)
    assert "line 8: blank lines must be commented out with '#'" in validate_report(
        PARAMETERS + "#NAME\n\nSS CYG,2450702.1,11.1,na,V,NO,STD,105,10.5,na,na,na,na,na,na\n"
    )
    missing = validate_report(PARAMETERS.replace("#OBSTYPE=CCD\n", "").replace("#DATE=JD", "#DATE=MJD"))
    assert "the #OBSTYPE= parameter is missing" in missing and "#DATE must be one of JD, HJD" in missing


def test_the_writer_refuses_what_would_break_the_file() -> None:
    with pytest.raises(ReportError, match="NAME holds the delimiter"):
        write_report(HEADER, [Observation("SS CYG, again", 2450702.1, 11.1, None, "V", "105", 10.5)])
    with pytest.raises(ReportError, match="DELIM"):
        write_report(ReportHeader("TST01", "OBSY", delimiter="#"), [SINGLE])
    with pytest.raises(ReportError, match="OBSCODE"):
        write_report(ReportHeader("", "OBSY"), [SINGLE])
    with pytest.raises(ReportError, match="DATE must be one of"):
        write_report(ReportHeader("TST01", "OBSY", date_type="BJD"), [SINGLE])
    # Another delimiter: the fields may then hold commas (in NOTES), and the file says which.
    noted = Observation(
        "SS CYG",
        2450702.1,
        11.1,
        0.01,
        "V",
        "105",
        10.5,
        chart="X16382L",
        notes={"VMAGINS": "-7.1", "COMMENT": "thin cloud, windy"},
    )
    text = write_report(ReportHeader("TST01", "OBSY", delimiter="!"), [noted])
    assert "#DELIM=!\n" in text and text.rstrip().endswith("|VMAGINS=-7.1|COMMENT=thin cloud, windy")
    assert validate_report(text) == []
