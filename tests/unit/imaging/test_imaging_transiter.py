"""Exoplanet transits on the repository (obsy_imaging.transiter): which nights are due, the fit of
a scripted night stored with its points, the Exoplanet Watch report (validated), the plot and the
CSV written, and the nights without a fit stored with the reason. On SQLite and Postgres.

The light curve is a simulated night with a known truth (``transits/simulate.py``: the transit
integrated over the disc, not by the fit's model), handed to the transiter in place of the
reduction from frames; the reduction itself is tested with sky-simulator frames elsewhere.
"""

from __future__ import annotations

import csv
import logging
import re
import struct
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from astropy.time import Time
from sqlalchemy import select

from obsy.config import ImagingTransitsConfig, SchedulerTransitsConfig, SiteConfig
from obsy.transits.ephemeris import EphemerisError
from obsy.transits.predict import bjd_tdb
from obsy_imaging.repository.models import Calibration, Frame, Grade, TransitFit, TransitPoint
from obsy_imaging.repository.store import Repository
from obsy_imaging.transiter import FAILED, FITTED, WAITING, NightData, NightPoint, Transiter
from obsy_imaging.transits.fit import McmcSettings
from obsy_imaging.transits.limbdarkening import quadratic_coefficients
from obsy_imaging.transits.report import parse_report, results_of, validate_report
from obsy_imaging.transits.simulate import Truth, simulate_night

logging.getLogger("emcee").setLevel(logging.ERROR)

SITE = SiteConfig(latitude=48.2, longitude=16.4, elevation=180)
NIGHT = "2026-10-15"
RA, DEC = 10.0, 30.0
TC = bjd_tdb(Time("2026-10-15T22:30:00", scale="utc"), RA, DEC)
TRUTH = Truth(tc=TC, period=3.0, rp_rs=0.11, a_rs=9.0, inc=87.5, limb_darkening=quadratic_coefficients("R"))
CALIBRATED = datetime(2026, 10, 16, 1, 0, tzinfo=UTC)  # the night's lights calibrated by then
QUICK = McmcSettings(walkers=16, steps=300, burn=100, seed=3)
COLUMNS = (
    "pl_name,hostname,pl_tranmid,pl_tranmiderr1,pl_tranmiderr2,pl_tsystemref,pl_orbper,pl_orbpererr1,pl_orbpererr2,"
    "pl_ratror,pl_ratrorerr1,pl_ratrorerr2,pl_ratdor,pl_ratdorerr1,pl_ratdorerr2,pl_orbincl,pl_orbinclerr1,"
    "pl_orbinclerr2,ra,dec,st_teff,default_flag"
)
# A year-old ephemeris, slightly off (as the library's science tests): T0 +2.9 min.
ROW = (
    f"SIM-1 b,SIM-1,{TC - 100 * 3.0 + 0.002:.6f},0.001,-0.001,BJD-TDB,3.0,0.000001,-0.000001,"
    f"0.105,0.002,-0.002,9.3,0.3,-0.3,87.8,0.6,-0.6,{RA},{DEC},5800,1"
)


def ephemeris_file(tmp_path: Path, rows: list[str] | None = None) -> Path:
    path = tmp_path / "planets.csv"
    path.write_text("# NASA Exoplanet Archive export (test)\n" + COLUMNS + "\n" + "\n".join(rows or [ROW]) + "\n")
    return path


def transiter(tmp_path: Path, repository: Repository, data: NightData | None = None, **settings) -> Transiter:
    """The transiter with the ephemeris file the scheduler is configured with (one file serves both),
    and the simulated night in place of the reduction from frames."""
    scheduler = SchedulerTransitsConfig(ephemeris_file=ephemeris_file(tmp_path))
    config = ImagingTransitsConfig(enabled=True, observer_code="tst01", camera="ASI 294MM", **settings)

    def simulated(paths: list[Path], ephemeris, site) -> NightData:
        assert data is not None and len(paths) == len(data.points), "the lights of the night go to the reduction"
        for point, path in zip(data.points, paths, strict=True):
            point.frame_id = path  # the reduction names frames by path; the transiter maps them
        return data

    return Transiter(repository, config, scheduler, SITE, reducer=simulated, mcmc=QUICK)


def add_lights(repository: Repository, times: list[float], *, first_id: int = 1, target: str = "sim-1") -> None:
    """Calibrated lights of the night (OBJECT: the host's name, spelt loosely), graded accepted."""
    now = CALIBRATED
    with repository.sessions.begin() as session:
        for i, t in enumerate(times, start=first_id):
            session.add(
                Frame(
                    id=i, sha256=f"{i:064d}", path=f"lights/{i}.fits", placement="hardlink",
                    source_path=f"/capture/{i}.fits", source_mtime_ns=0, size_bytes=1, route="watch",
                    ingested_at=now, frame_type="light", program="indi", night=NIGHT, target=target, filter="R",
                    exposure_s=60.0, binning_x=1, binning_y=1, bitpix=16, header=[], jd_mid=t,
                )
            )  # fmt: skip
            session.flush()
            session.add(
                Calibration(
                    frame_id=i, night=NIGHT, status="calibrated", path=f"calibrated/{i}.fits", queued_at=now,
                    calibrated_at=now,
                )
            )  # fmt: skip
            session.add(
                Grade(
                    frame_id=i, night=NIGHT, target=target, filter="R", stars=200, background=800.0, noise=12.0,
                    accepted=True, reasons=[], graded_at=now,
                )
            )  # fmt: skip


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_a_night_waits_for_the_window_under_way_not_for_a_later_transit_the_same_night(
    tmp_path: Path, repository: Repository
):
    """A 12-hour planet transits twice between the night's noons (22:30 and 10:30 UTC): once the
    observed window is over the night is due, not held until the second one (in daylight) ends."""
    short = ROW.replace("SIM-1 b,SIM-1,", "SIM-2 b,SIM-2,").replace(",BJD-TDB,3.0,", ",BJD-TDB,0.5,")
    short = short.replace(f"{TC - 100 * 3.0 + 0.002:.6f}", f"{TC - 100 * 0.5:.6f}")
    add_lights(repository, [TC - 0.04 + 0.001 * i for i in range(80)], target="sim-2")
    work = transiter(tmp_path, repository)
    ephemeris_file(tmp_path, [short])  # in place of the one transiter() wrote: read when it changes
    assert work.due(datetime(2026, 10, 15, 22, 30, tzinfo=UTC)) == []  # during the transit: it waits
    with repository.sessions() as session:
        waiting = session.scalars(select(TransitFit)).one()
    assert "window ends at 2026-10-15 23:" in waiting.reason, waiting.reason  # this transit's window, not the next
    assert work.due(datetime(2026, 10, 16, 1, 10, tzinfo=UTC)) == [(NIGHT, "SIM-2 b")]


def test_a_transit_night_is_waited_for_then_fitted_stored_and_reported(tmp_path: Path, repository: Repository):
    lc = simulate_night(TRUTH, 5, points=120, exposure_s=60.0)
    data = NightData.of_light_curve(lc, [None] * len(lc.time), ensemble_size=4)
    add_lights(repository, list(lc.time))
    work = transiter(tmp_path, repository, data)

    # During the transit the window is open: the night waits, and says until when.
    assert work.due(datetime(2026, 10, 15, 22, 45, tzinfo=UTC)) == []
    with repository.sessions() as session:
        waiting = session.scalars(select(TransitFit)).one()
    assert waiting.status == WAITING and waiting.planet == "SIM-1 b" and "window ends at 2026-10-16" in waiting.reason

    after = datetime(2026, 10, 16, 4, 0, tzinfo=UTC)
    assert work.due(after) == [(NIGHT, "SIM-1 b")]
    done = work.process(NIGHT, "SIM-1 b")
    row = done.row
    assert done.problems == [] and row.status == FITTED and row.reason is None
    assert row.target == "sim-1" and row.filter == "R" and row.partial is False and row.contact is None
    assert abs(row.tc - TRUTH.tc) < 3 * row.tc_err and row.tc_err < 2 / 1440  # within 3σ; σ under 2 min
    assert row.depth == pytest.approx(TRUTH.depth, rel=0.15)
    assert row.o_minus_c == pytest.approx(row.tc - row.predicted_tc) and row.o_minus_c_err >= row.tc_err
    assert row.points_used == 120 and row.points_rejected == 0 and row.ensemble_size == 4
    assert row.lights == 120 and row.last_frame_id == 120
    assert work.due(after) == []  # fitted with these very lights

    # The points: every light, its model and residual.
    with repository.sessions() as session:
        points = session.scalars(select(TransitPoint).where(TransitPoint.fit_id == row.id)).all()
    assert sorted(p.frame_id for p in points) == list(range(1, 121)) and all(p.used for p in points)
    assert all(p.residual == pytest.approx(p.flux - p.model) for p in points)
    assert max(abs(p.residual) for p in points) < 6 * 0.0025 * max(p.flux for p in points)

    # The report validates and carries the stored Tc; the plot is a PNG of its size; the CSV has every light.
    root = repository.root.resolve()
    assert row.report_path == f"reports/exoplanet/{NIGHT}/SIM-1_b.txt"
    text = (root / row.report_path).read_text()
    assert validate_report(text) == []
    report = parse_report(text)
    assert report.parameters["OBSCODE"] == "TST01" and report.parameters["STAR_NAME"] == "SIM-1"
    assert "ASI 294MM" in report.parameters["NOTES"] and "ensemble of 4 comparison stars" in report.parameters["NOTES"]
    assert results_of(report)["Tc"][0] == pytest.approx(row.tc, abs=row.tc_err / 5)
    assert len(report.data) == 120
    from obsy_imaging.transits.plot import SIZE_PX  # matplotlib: imported by this test only

    assert png_size(root / row.plot_path) == SIZE_PX
    with (root / row.points_path).open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 120 and {r["used"] for r in rows} == {"yes"}
    assert float(rows[0]["bjd_tdb"]) == pytest.approx(lc.time[0])

    # A light more (a late frame): the night is due again, and the fit replaces the old one.
    add_lights(repository, [float(lc.time[-1]) + 0.001], first_id=121)
    assert work.due(after) == [(NIGHT, "SIM-1 b")]


def test_nights_without_a_fit_are_stored_with_the_reason(tmp_path: Path, repository: Repository):
    lc = simulate_night(TRUTH, 6, points=12)
    add_lights(repository, list(lc.time))
    work = transiter(tmp_path, repository, NightData.of_light_curve(lc, [None] * 12))
    assert work.due(datetime(2026, 10, 16, 4, 0, tzinfo=UTC)) == [(NIGHT, "SIM-1 b")]

    few = work.process(NIGHT, "SIM-1 b").row
    assert few.status == FAILED and few.lights == 12
    assert few.reason == (
        f"12 usable light(s) of SIM-1 b on the night of {NIGHT}: fewer than imaging.transits.min_points (30)"
    )
    assert work.due(datetime(2026, 10, 16, 4, 0, tzinfo=UTC)) == []  # not tried again until more lights come

    # The next night has no transit of the planet (the period is 3 days).
    none = work.process("2026-10-16", "SIM-1 b").row
    assert none.status == FAILED and none.reason == "no transit of SIM-1 b is predicted on the night of 2026-10-16"

    # A planet that is not in the file.
    missing = work.process(NIGHT, "SIM-2 c").row
    assert missing.status == FAILED and "SIM-2 c is not in the ephemeris file" in missing.reason

    # A malformed ephemeris file: the fit says which line and column; due() raises it for the worker to say.
    ephemeris_file(tmp_path, [ROW.replace("BJD-TDB,3.0,", "BJD-TDB,three,")])
    with pytest.raises(EphemerisError, match="line 3"):
        work.due(datetime(2026, 10, 16, 4, 0, tzinfo=UTC))
    broken = work.process(NIGHT, "SIM-1 b").row
    assert broken.status == FAILED and "planets.csv line 3" in broken.reason and "pl_orbper" in broken.reason
    with repository.sessions() as session:
        stored = {(r.night, r.planet): r.status for r in session.scalars(select(TransitFit))}
    assert stored == {(NIGHT, "SIM-1 b"): FAILED, ("2026-10-16", "SIM-1 b"): FAILED, (NIGHT, "SIM-2 c"): FAILED}


def test_a_night_the_fit_broke_on_is_stored_and_not_tried_again_until_its_lights_change(tmp_path, repository):
    lc = simulate_night(TRUTH, 9, points=40)
    add_lights(repository, list(lc.time))
    work = transiter(tmp_path, repository, NightData(None, []))  # a reduction that returns nonsense
    after = datetime(2026, 10, 16, 4, 0, tzinfo=UTC)
    with pytest.raises(AssertionError, match="the lights of the night go to the reduction"):
        work.process(NIGHT, "SIM-1 b")  # a bug, not bad input: the worker catches it and gives up
    row = work.give_up(NIGHT, "SIM-1 b", "unexpected error: the lights of the night go to the reduction").row
    assert row.status == FAILED and row.lights == 40 and row.last_frame_id == 40
    assert work.due(after) == []
    add_lights(repository, [float(lc.time[-1]) + 0.001], first_id=41)
    assert work.due(after) == [(NIGHT, "SIM-1 b")]


def test_lights_the_reduction_left_out_are_stored_with_the_reason(tmp_path: Path, repository: Repository):
    full = simulate_night(TRUTH, 7, points=90)
    add_lights(repository, list(full.time))
    kept = [i for i in range(90) if not 10 <= i < 30]  # 20 lights lost to a cloud
    lc = replace(
        full, time=full.time[kept], flux=full.flux[kept], flux_err=full.flux_err[kept], airmass=full.airmass[kept]
    )
    data = NightData.of_light_curve(lc, [None] * len(kept), ensemble_size=3)
    data.points[10:10] = [NightPoint(frame_id=None, reason="the host is not found (clouds?)") for _ in range(20)]
    row = transiter(tmp_path, repository, data).process(NIGHT, "SIM-1 b").row
    assert row.status == FITTED and row.points_used == 70 and row.points_rejected == 20
    with repository.sessions() as session:
        points = session.scalars(select(TransitPoint).where(TransitPoint.fit_id == row.id)).all()
    left_out = sorted(p.frame_id for p in points if not p.used)
    assert left_out == list(range(11, 31)) and {p.reason for p in points if not p.used} == {
        "the host is not found (clouds?)"
    }
    assert all(p.model is None and p.flux is None for p in points if not p.used)

    # Too many lost: fewer points than min_points is a failure with the reason, not a fit.
    refused = transiter(tmp_path, repository, data, min_points=80).process(NIGHT, "SIM-1 b").row
    assert refused.status == FAILED
    assert refused.reason == "70 point(s) left after the reduction: fewer than imaging.transits.min_points (80)"


def test_the_ephemeris_file_is_the_schedulers_unless_given(tmp_path: Path):
    scheduler = SchedulerTransitsConfig(ephemeris_file=tmp_path / "a.csv", baseline_min=45)
    assert ImagingTransitsConfig().ephemeris_path(scheduler) == tmp_path / "a.csv"
    own = ImagingTransitsConfig(ephemeris_file=tmp_path / "b.csv", baseline_min=30)
    assert own.ephemeris_path(scheduler) == tmp_path / "b.csv" and own.baseline_minutes(scheduler) == 30
    assert ImagingTransitsConfig().baseline_minutes(scheduler) == 45


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"enabled": True}, "observer_code (your AAVSO observer code) is needed"),
        ({"observer_code": "too long a code"}, "is not an AAVSO observer code"),
        ({"secondary_observer_codes": ["AB,CD"]}, "'AB,CD' is not an AAVSO observer code"),
        ({"detrending": "quadratic"}, "'linear' or 'exponential'"),
        ({"regressors": ["seeing"]}, "'background', 'fwhm' or 'position'"),
        ({"min_points": 3}, "greater than or equal to 10"),
        ({"camera": "ASI\n294"}, "must be one line"),
        ({"fit_everything": True}, "Extra inputs are not permitted"),
    ],
)
def test_bad_transit_settings_are_refused_with_the_reason(settings: dict, problem: str):
    with pytest.raises(ValueError, match=re.escape(problem)):
        ImagingTransitsConfig(**settings)


def test_transits_enabled_without_any_ephemeris_file_is_refused(tmp_path: Path):
    from obsy.config import ObsyConfig

    with pytest.raises(ValueError, match=r"no ephemeris file is set: set imaging\.transits\.ephemeris_file or sched"):
        ObsyConfig(site=SITE, imaging={"transits": {"enabled": True, "observer_code": "TST01"}})
    config = ObsyConfig(
        site=SITE,
        scheduler={"transits": {"ephemeris_file": str(tmp_path / "p.csv")}},
        imaging={"transits": {"enabled": True, "observer_code": "TST01"}},
    )
    assert config.imaging.transits.ephemeris_path(config.scheduler.transits) == tmp_path / "p.csv"
