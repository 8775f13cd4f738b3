"""The photometry's bookkeeping: filter names to AAVSO codes, sequences of configured targets, and
the night's AAVSO report from stored magnitudes (JD or HJD, observations AAVSO would refuse left
out with the reason)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from obsy.config import ImagingPhotometryConfig, SiteConfig
from obsy_imaging.photometer import MEASURED, NO_SEQUENCE, Photometer, band_for
from obsy_imaging.photometry.aavso import validate_report
from obsy_imaging.photometry.vsp import ChartError
from obsy_imaging.repository.models import Calibration, Frame, Grade, PhotometryMeasurement
from obsy_imaging.repository.store import Repository

SITE = SiteConfig(latitude=48.2, longitude=16.4, elevation=180)
NOW = datetime(2026, 10, 15, 22, 0, tzinfo=UTC)
CHART = {
    "chartid": "X12345ABC",
    "star": "RZ Cet",
    "ra": "00:49:41.40",
    "dec": "-08:52:51.0",
    "photometry": [
        {
            "auid": "000-A",
            "label": "112",
            "ra": "00:50:02.1",
            "dec": "-08:55:10",
            "bands": [{"band": "V", "mag": 11.2}],
        },
        {
            "auid": "000-B",
            "label": "118",
            "ra": "00:49:20.7",
            "dec": "-08:49:02",
            "bands": [{"band": "V", "mag": 11.8}],
        },
    ],
}


def settings(tmp_path: Path, own_fields: tuple[str, ...] = (), **extra) -> ImagingPhotometryConfig:
    chart = tmp_path / "chart.json"
    chart.write_text(json.dumps(CHART))
    targets = [
        {"name": "RZ Cet", "chart_file": str(chart), "check": "118", "filters": {"Johnson-V": "V"}},
        {
            "name": "Own Star",
            "fields": list(own_fields),
            "ra": 10.0,
            "dec": 20.0,
            "check": "K",
            "comparisons": [
                {"label": "A", "ra": 10.1, "dec": 20.0, "mag": 11.0},
                {"label": "K", "ra": 10, "dec": 20.1, "mag": 12.0},
            ],
        },
        {"name": "Far Away", "chart_id": "X55555ZZZ"},
    ]
    return ImagingPhotometryConfig(enabled=True, observer_code="TST01", targets=targets, **extra)


def test_filter_names_become_aavso_codes(tmp_path: Path) -> None:
    rz = settings(tmp_path).targets[0]
    assert [band_for(name, rz) for name in ("V", "v", "Johnson-V", None, "L", "Lum", "Green", "Rc", "SG", "Ha")] == [
        "V", "V", "V", "CV", "CV", "CV", "TG", "R", "SG", "HA",
    ]  # fmt: skip
    assert band_for("OIII-7nm", rz) is None


def test_sequences_of_charts_and_own_stars_and_what_is_missing(tmp_path: Path, repository: Repository) -> None:
    photometer = Photometer(repository, settings(tmp_path), SITE, tmp_path)
    rz, own, far = photometer.settings.targets
    sequence = photometer.sequence(rz, "V")
    assert sequence.chart_id == "X12345ABC" and [s.label for s in sequence.comparisons] == ["112"]
    assert sequence.check is not None and sequence.check.mag == 11.8
    mine = photometer.sequence(own, "TG")
    assert mine.chart_id is None and [s.label for s in mine.comparisons] == ["A"] and mine.check.label == "K"
    with pytest.raises(ChartError, match="AAVSO chart X55555ZZZ is needed, fetching charts is off"):
        photometer.sequence(far, "V")
    with pytest.raises(ChartError, match="check star 118 has no B magnitude"):
        photometer.sequence(rz, "B")


def add(repository: Repository, frame_id: int, **row) -> None:
    with repository.sessions.begin() as session:
        session.add(
            Frame(
                id=frame_id,
                sha256=f"{frame_id:064d}",
                path=f"lights/{frame_id}.fits",
                placement="hardlink",
                source_path=f"/capture/{frame_id}.fits",
                source_mtime_ns=0,
                size_bytes=1,
                route="watch",
                ingested_at=NOW,
                frame_type="light",
                program="indi",
                night="2026-10-15",
                target="rz cet",
                binning_x=1,
                binning_y=1,
                bitpix=16,
                header=[],
            )
        )
        session.flush()  # the frame first: the measurement refers to it
        session.add(
            PhotometryMeasurement(
                frame_id=frame_id,
                night="2026-10-15",
                target="RZ Cet",
                filter="V",
                band="V",
                status=MEASURED,
                comparisons=[{"label": "112", "catalogue_mag": 11.2, "instrumental_mag": -8.5}],
                reasons=[],
                measured_at=NOW,
                chart_id="X12345ABC",
                **row,
            )
        )


def test_the_nights_report_from_stored_magnitudes(tmp_path: Path, repository: Repository) -> None:
    photometer = Photometer(repository, settings(tmp_path), SITE, tmp_path)
    add(repository, 2, jd=2461329.40, hjd=2461329.401, magnitude=11.634, error=0.011, airmass=1.5)
    add(repository, 1, jd=2461329.30, hjd=2461329.301, magnitude=11.601, error=0.012, airmass=1.4,
        check_label="118", check_instrumental=-7.9, check_magnitude=11.79)  # fmt: skip
    add(repository, 3, jd=2461329.50, magnitude=123456.5, error=0.01)  # too long for MAG: left out, with why
    report = photometer.write_report("2026-10-15", "rzcet")
    assert report.path == (tmp_path / "repository" / "reports" / "aavso" / "2026-10-15" / "RZ_Cet.txt").resolve()
    assert report.text is not None and report.path.read_text() == report.text and validate_report(report.text) == []
    lines = [line for line in report.text.splitlines() if not line.startswith("#")]
    assert lines == [
        "RZ Cet,2461329.30000,11.601,0.012,V,NO,STD,112,-8.500,118,-7.900,1.4000,na,X12345ABC,na",
        "RZ Cet,2461329.40000,11.634,0.011,V,NO,STD,112,-8.500,na,na,1.5000,na,X12345ABC,na",
    ]
    assert report.observations == 2 and report.left_out == ["frame 3: MAG is longer than 8 characters: '123456.500'"]

    hjd = Photometer(repository, settings(tmp_path, date_type="HJD"), SITE, tmp_path).report("2026-10-15", "RZ Cet")
    assert "#DATE=HJD" in (hjd.text or "") and "2461329.30100" in (hjd.text or "")
    assert hjd.left_out[-1] == "frame 3: no HJD, magnitude or filter"
    nothing = photometer.report("2026-10-16", "RZ Cet")
    assert nothing.text is None and not nothing.path.exists()


def light(
    repository: Repository, frame_id: int, target: str | None, *, accepted: bool | None = True, status="calibrated"
):
    """A registered light, its calibration row (and grade)."""
    with repository.sessions.begin() as session:
        session.add(
            Frame(
                id=frame_id, sha256=f"{frame_id:064d}", path=f"lights/{frame_id}.fits", placement="hardlink",
                source_path=f"/capture/{frame_id}.fits", source_mtime_ns=0, size_bytes=1, route="watch",
                ingested_at=NOW, frame_type="light", program="indi", night="2026-10-15", target=target,
                filter="V", exposure_s=30.0, binning_x=1, binning_y=1, bitpix=16, header=[],
            )
        )  # fmt: skip
        session.flush()  # the frame first: the other rows refer to it
        session.add(
            Calibration(
                frame_id=frame_id, night="2026-10-15", status=status, path=f"calibrated/{frame_id}.fits",
                queued_at=NOW, calibrated_at=NOW,
            )
        )  # fmt: skip
        if accepted is not None:
            session.add(
                Grade(
                    frame_id=frame_id, night="2026-10-15", target=target, filter="V", stars=50, background=100.0,
                    noise=5.0, accepted=accepted, reasons=[], graded_at=NOW,
                )
            )  # fmt: skip


def test_which_lights_and_a_missing_chart_tried_again_after_a_restart(tmp_path: Path, repository: Repository) -> None:
    photometer = Photometer(repository, settings(tmp_path), SITE, tmp_path)
    light(repository, 1, "M 42")  # not a variable-star target
    light(repository, 2, "rz  CET")  # a target, however written
    light(repository, 3, "Far Away", accepted=None)  # not graded: taken
    light(repository, 4, "RZ Cet", accepted=False)  # rejected by grading
    light(repository, 5, "RZ Cet", status="waiting")  # not calibrated yet
    light(repository, 6, None)
    assert photometer.pending() == [2, 3]

    done = photometer.measure(3)  # its chart is not cached and fetching is off
    assert done.row.status == NO_SEQUENCE and done.report is None
    assert done.row.reasons[0].startswith("no sequence: AAVSO chart X55555ZZZ is needed, fetching charts is off")
    assert photometer.pending() == [2]
    assert photometer.retry_without_sequence() == 1 and photometer.pending() == [2, 3]


def test_a_binned_report_says_how_many_frames_each_line_holds(tmp_path: Path, repository: Repository) -> None:
    photometer = Photometer(repository, settings(tmp_path, bin_frames=3), SITE, tmp_path)
    for i in range(7):  # one a minute; the last two transformed (a colour term configured later)
        add(repository, i + 1, jd=2461329.3 + i / 1440, magnitude=11.60 + 0.01 * i, error=0.012, airmass=1.4,
            transformed=i >= 5)  # fmt: skip
    report = photometer.write_report("2026-10-15", "RZ Cet")
    assert report.text is not None and validate_report(report.text) == []
    lines = [line.split(",") for line in report.text.splitlines() if not line.startswith("#")]
    assert [(line[5], line[-1]) for line in lines] == [("NO", "|BINNED=3"), ("NO", "|BINNED=2"), ("YES", "|BINNED=2")]
    assert lines[0][1] == f"{2461329.3 + 1 / 1440:.5f}" and lines[0][2] == "11.610"  # the mean time and magnitude
    assert float(lines[0][3]) < 0.012  # three frames know more than one


def test_a_field_holding_two_targets_measures_and_reports_each(tmp_path: Path, repository: Repository) -> None:
    """Own Star lies in RZ Cet's field: a light of RZ Cet gives a row (and report) for each; a light of
    Own Star is Own Star's alone."""
    photometer = Photometer(repository, settings(tmp_path, own_fields=("RZ Cet",)), SITE, tmp_path)
    assert [t.name for t in photometer.settings.targets_in("rzcet")] == ["RZ Cet", "Own Star"]
    light(repository, 2, "RZ Cet")
    light(repository, 3, "Own Star")
    assert photometer.pending() == [2, 3]
    assert [t.name for t in photometer.unmeasured(2)] == ["RZ Cet", "Own Star"]
    first = photometer.measure(2)  # the target its OBJECT names
    assert first.row.target == "RZ Cet" and photometer.pending() == [2, 3]
    assert [t.name for t in photometer.unmeasured(2)] == ["Own Star"]
    rest = photometer.measure_all(2)
    assert [m.row.target for m in rest] == ["Own Star"] and photometer.pending() == [3]
    # The file is not there: each row says so, for its own target.
    assert all(m.row.reasons[0].startswith("cannot read 2.fits") for m in [first, *rest])
    given_up = photometer.give_up(3, "unexpected error: boom")
    assert [(m.row.target, m.row.reasons) for m in given_up] == [("Own Star", ["unexpected error: boom"])]
    assert photometer.pending() == []
    with repository.sessions() as session:
        rows = session.execute(select(PhotometryMeasurement.frame_id, PhotometryMeasurement.target)).all()
    assert sorted(rows) == [(2, "Own Star"), (2, "RZ Cet"), (3, "Own Star")]
