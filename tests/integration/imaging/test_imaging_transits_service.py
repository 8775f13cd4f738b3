"""Exoplanet transits in the running imaging service: real broker, SQLite, an ephemeris file.

A sky-simulator night of a scripted transit (``tests/support/transits.py``: the physical light
curve of a hot Jupiter, 60 s exposures over T14 + 2 h) arrives in the capture folder as the camera
writes it (with a pedestal a master bias takes off); each light is ingested and calibrated (not
graded: ungraded lights count as accepted), and once the night's lights stop coming the night is
reduced and fitted: the fit on ``imaging/transits`` and in the table finds the scenario's mid-time
within its errors and its depth, the report validates, the plot is a PNG, and ``obsy-imaging
transit`` fits it again.

A night whose lights are too few for a fit goes out on ``imaging/transits`` as ``failed`` with the
reason (and a warning event) and is stored so; an ephemeris file that cannot be read is said once
as an error event, and the service stays up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from obsy.messages import Event, ImagingTransit
from obsy_imaging.cli import transit_command
from obsy_imaging.repository import database
from obsy_imaging.repository.models import TransitFit, TransitPoint
from obsy_imaging.repository.store import Repository
from obsy_imaging.transits.report import parse_report, results_of, validate_report
from obsy_imaging.transits.simulate import simulate_night
from tests.integration.imaging.test_imaging_calibration_service import repository_of
from tests.integration.imaging.test_imaging_photometry_service import write_raw
from tests.integration.imaging.test_imaging_service import Running, wait_online
from tests.support.photometry import noise_of
from tests.support.transits import EXPOSURE_S, GAIN, night_ephemeris, small_renderer, transit_host, write_transit_night
from tests.support.watcher import Watcher
from tests.unit.imaging.test_imaging_transiter import COLUMNS, NIGHT, ROW, TRUTH, add_lights

pytestmark = pytest.mark.integration

TRANSITS = "obsy/imaging/transits"
EVENTS = "obsy/imaging/events"


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/#"])
    yield w
    w.close()


def prepared(tmp_path: Path, mosquitto, ephemerides: str) -> Running:
    """The service configured for transits, 12 lights of a transit night stored."""
    planets = tmp_path / "planets.csv"
    planets.write_text(ephemerides)
    running = Running(
        tmp_path,
        mosquitto,
        transits={"enabled": True, "observer_code": "TST01", "ephemeris_file": str(planets)},
    )
    engine = database.make_engine(running.config.imaging.database(running.config.data_dir))
    database.upgrade(engine)
    add_lights(
        Repository(engine, running.repository, tmp_path / "quarantine"), list(simulate_night(TRUTH, 1, points=12).time)
    )
    engine.dispose()
    return running


def transit_events(watcher: Watcher, kind: str) -> list[Event]:
    events = [Event.model_validate_json(m.payload) for m in watcher.on(EVENTS)]
    return [e for e in events if e.kind == kind]


def test_a_night_with_too_few_lights_goes_out_failed_with_the_reason(tmp_path, mosquitto, watcher):
    with prepared(tmp_path, mosquitto, COLUMNS + "\n" + ROW + "\n") as running:
        wait_online(watcher)
        watcher.wait_for(lambda _: bool(watcher.on(TRANSITS)), timeout=60)
        message = ImagingTransit.model_validate_json(watcher.on(TRANSITS)[0].payload)
        assert message.status == "failed" and message.night == NIGHT and message.planet == "SIM-1 b"
        assert message.target == "sim-1" and message.tc is None and message.report is None
        assert message.reason == (
            f"12 usable light(s) of SIM-1 b on the night of {NIGHT}: fewer than imaging.transits.min_points (30)"
        )
        watcher.wait_for(lambda _: bool(transit_events(watcher, "transit_failed")), timeout=10)
        assert (
            "SIM-1 b (2026-10-15): no transit fit: 12 usable light(s)"
            in transit_events(watcher, "transit_failed")[0].message
        )
        engine = database.make_engine(running.config.imaging.database(running.config.data_dir))
        with Repository(engine, running.repository, tmp_path / "q").sessions() as session:
            row = session.scalars(select(TransitFit)).one()
        engine.dispose()
        assert row.id == message.fit_id and row.status == "failed" and row.reason == message.reason


def test_an_unreadable_ephemeris_file_is_said_once_and_the_service_stays_up(tmp_path, mosquitto, watcher):
    with prepared(tmp_path, mosquitto, COLUMNS + "\n" + ROW.replace("BJD-TDB,3.0,", "BJD-TDB,three,") + "\n"):
        wait_online(watcher)
        watcher.wait_for(lambda _: bool(transit_events(watcher, "transit_ephemerides_unusable")), timeout=60)
        event = transit_events(watcher, "transit_ephemerides_unusable")[0]
        assert event.level == "error" and "planets.csv line 2 (SIM-1 b)" in event.message
        assert "pl_orbper is not a number" in event.message
        assert watcher.on(TRANSITS) == []
        assert watcher.on("obsy/imaging/availability")[-1].payload == b"online"


FRAMES = 80
PEDESTAL = 500.0


def transit_messages(watcher) -> list[ImagingTransit]:
    return [ImagingTransit.model_validate_json(m.payload) for m in watcher.on(TRANSITS)]


def archive_row(ephemeris) -> str:
    """The ephemeris as a row of the archive's export (the columns of the unit tests' file)."""
    e = ephemeris
    return (
        f"{e.name},SIM-T1,{e.t0:.6f},{e.t0_err},{-e.t0_err},BJD-TDB,{e.period},{e.period_err},{-e.period_err},"
        f"{e.rp_rs},0.002,-0.002,{e.a_rs},{e.a_rs_err},{-e.a_rs_err},{e.inc},{e.inc_err},{-e.inc_err},"
        f"{e.ra},{e.dec},5800,1"
    )


@pytest.mark.long(seconds=180)
@pytest.mark.timeout(900)  # CPU-bound: on a loaded 2-core machine it has taken over 300 s
def test_a_transit_night_from_the_capture_folder_is_fitted_published_and_reported(tmp_path, mosquitto, watcher, capsys):
    renderer = small_renderer()
    night = write_transit_night(tmp_path / "rendered", seed=5, frames=FRAMES, renderer=renderer)
    ephemeris = night_ephemeris(transit_host())
    planets = tmp_path / "planets.csv"
    planets.write_text(COLUMNS + "\n" + archive_row(ephemeris) + "\n")
    noise = noise_of(renderer, GAIN, EXPOSURE_S, calibrated=True)
    transits = {
        "enabled": True,
        "ephemeris_file": str(planets),
        "observer_code": "TST01",
        "camera": "SkySim Camera",
        "quiet_time": 3,
        "gain_e_per_adu": noise.gain_e_per_adu,
        "read_noise_e": noise.read_noise_e,
        "saturation_adu": night.saturation_adu,
    }
    run = Running(
        tmp_path,
        mosquitto,
        # Ungraded lights are usable lights: grading (a star search per light, a third of this test's
        # CPU) is checked elsewhere, and here its limits would only be lifted.
        grading={"enabled": False},
        calibration={"require_dark": False, "require_flat": False, "quiet_time": 0.5, "quiet_exposures": 0},
        live_stack={"enabled": False},
        transits=transits,
    )
    first = renderer.render(
        transit_host().mid, (350.0, 40.0), EXPOSURE_S, GAIN, seed=1
    )  # a frame of the camera, for the biases' header
    rng = np.random.default_rng(3)
    with run:
        wait_online(watcher)
        for index in range(5):  # the pedestal: a master bias is all these lights need
            bias = rng.normal(PEDESTAL, 1.0, (500, 500))
            write_raw(run.capture / "Bias" / f"Bias_{index:03d}.fits", renderer, first, bias, "bias")
        watcher.wait_for(lambda msgs: any(m.topic == "obsy/imaging/masters" for m in msgs), timeout=180)
        for index, path in enumerate(night.paths):  # as the camera wrote them: whole ADU over the pedestal
            with fits.open(path) as hdul:
                data = np.clip(np.rint(hdul[0].data + PEDESTAL), 0, 65535).astype(np.uint16)
                raw = run.capture / "SIM-T1" / f"Light_R_{index:03d}.fits"
                raw.parent.mkdir(parents=True, exist_ok=True)
                fits.PrimaryHDU(data, hdul[0].header).writeto(raw.with_suffix(".part"))
                raw.with_suffix(".part").rename(raw)

        # Fitted once no light arrived for quiet_time. On a loaded machine the lights may pause longer
        # than that: the night then goes out early (failed for too few lights, or fitted on part of
        # them), and again once the rest are in (a night is due again whenever its lights change).
        def whole(m: ImagingTransit) -> bool:
            return m.status == "fitted" and (m.points_used or 0) + (m.points_rejected or 0) >= FRAMES

        watcher.wait_for(lambda _: any(whole(m) for m in transit_messages(watcher)), timeout=300)
        early = list(itertools.takewhile(lambda m: not whole(m), transit_messages(watcher)))
        message = next(m for m in transit_messages(watcher) if whole(m))

    for m in early:  # an earlier state of the same night, on fewer lights
        assert m.night == message.night and (m.points_used or 0) + (m.points_rejected or 0) < FRAMES, m
    assert message.planet == "SIM-T1 b" and message.target == "SIM-T1" and message.filter == "R"
    error_s = (message.tc - night.tc_bjd) * 86400.0
    summary = (
        f"service transit fit of {FRAMES} sky-simulator frames ({message.points_used} used, ensemble of "
        f"{message.ensemble_size}): Tc − truth {error_s:+.0f} s, σ {message.tc_err * 86400:.0f} s "
        f"({error_s / (message.tc_err * 86400):+.2f} σ); depth {100 * message.depth:.3f} "
        f"± {100 * message.depth_err:.3f} %"
        f" (truth {100 * night.depth:.3f} %); O−C {message.o_minus_c_min:+.2f} ± {message.o_minus_c_err_min:.2f} min;"
        f" β {message.red_noise_beta:.2f}, χ²_red {message.chi2_reduced:.2f}"
    )
    with capsys.disabled():
        print(summary)
    assert abs(message.tc - night.tc_bjd) < 3 * message.tc_err
    assert message.depth == pytest.approx(night.depth, rel=0.15)
    assert message.points_used >= FRAMES - 2 and message.ensemble_size >= 2 and message.partial is False

    repository = repository_of(run)
    try:
        with repository.sessions() as session:
            row = session.get(TransitFit, message.fit_id)
            points = session.scalars(select(TransitPoint).where(TransitPoint.fit_id == row.id)).all()
        assert row.status == "fitted" and row.tc == message.tc and len(points) == FRAMES
        assert sum(p.used for p in points) == message.points_used and all(p.frame_id for p in points)
    finally:
        repository.engine.dispose()
    text = (run.repository / message.report).read_text()
    assert validate_report(text) == [], text
    report = parse_report(text)
    assert report.parameters["STAR_NAME"] == "SIM-T1" and results_of(report)["Tc"][0] == pytest.approx(
        message.tc, abs=1e-4
    )
    assert (run.repository / message.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # On demand: the same night reduced and fitted again, printed.
    assert transit_command(["transit", "-c", str(run.config_path), message.night, "SIM-T1 b"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"SIM-T1 b on the night of {message.night}") and "report  reports/exoplanet/" in printed
