"""Exoplanet transits in the running imaging service: real broker, SQLite, an ephemeris file.

A night whose lights are too few for a fit goes out on ``imaging/transits`` as ``failed`` with the
reason (and a warning event) and is stored so; an ephemeris file that cannot be read is said once
as an error event, and the service stays up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from obsy.messages import Event, ImagingTransit
from obsy_imaging.repository import database
from obsy_imaging.repository.models import TransitFit
from obsy_imaging.repository.store import Repository
from obsy_imaging.transits.simulate import simulate_night
from tests.integration.imaging.test_imaging_service import Running, wait_online
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
        assert event.level == "error" and "planets.csv line 2 (SIM-1 b)" in event.message and "pl_orbper" in event.message
        assert watcher.on(TRANSITS) == []
        assert watcher.on("obsy/imaging/availability")[-1].payload == b"online"
