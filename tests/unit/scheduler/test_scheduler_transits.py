"""Exoplanet transits in the scheduler: tonight's transits judged at the site (against astropy),
the transit block that outranks ordinary targets, and the Ekos files that carry it."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import astropy.units as u
import numpy as np
import pytest
import yaml
from astropy.coordinates import AltAz, SkyCoord, get_body, get_sun
from astropy.time import Time

from obsy.config import SchedulerConfig, SiteConfig
from obsy.messages import ExposurePlan, Target, TargetConstraints
from obsy.transits.ephemeris import Ephemeris
from obsy.transits.predict import bjd_tdb
from obsy_scheduler.ekos import write_plan
from obsy_scheduler.planner import Planner
from obsy_scheduler.service import main
from obsy_scheduler.transits import OBSERVABLE, PARTIAL, UNOBSERVABLE, planet_key, site_location

VIENNA = SiteConfig(name="Vienna", latitude=48.2, longitude=16.4, elevation=180, timezone="Europe/Vienna")
NIGHT = date(2026, 11, 21)  # Moon 90 % illuminated, up in the evening
PERIOD = 2.5
DURATION_H = 2.5


def settings(**overrides: object) -> SchedulerConfig:
    base = {"constraints": TargetConstraints(min_altitude=30, twilight="astronomical", min_time_on_target_min=15)}
    return SchedulerConfig.model_validate({**base, **overrides})


def ephemeris(name: str, ra: float, dec: float, tc_utc: str, *, with_coordinates: bool = True) -> Ephemeris:
    """A hand-made ephemeris with a transit whose mid-time reaches the site at ``tc_utc``."""
    tc = bjd_tdb(Time(tc_utc, scale="utc"), ra, dec, site_location(VIENNA))
    return Ephemeris(
        name=name,
        t0=tc - 100 * PERIOD,
        period=PERIOD,
        duration=DURATION_H / 24.0,
        ra=ra if with_coordinates else None,
        dec=dec if with_coordinates else None,
    )


def target(name: str, ra: float, dec: float, *, priority: int = 5, exposure_s: float = 60, **constraints) -> Target:
    return Target(
        id=planet_key(name),
        name=name,
        ra_deg=ra,
        dec_deg=dec,
        priority=priority,
        exposure_plans=[ExposurePlan(filter="L", exposure_s=exposure_s, count=1)],
        constraints=dict(constraints),
    )


def ordinary(tid: str, ra: float, dec: float, *, priority: int = 10) -> Target:
    return Target(
        id=tid,
        name=tid.upper(),
        ra_deg=ra,
        dec_deg=dec,
        priority=priority,
        exposure_plans=[ExposurePlan(filter="L", exposure_s=300, count=200)],
    )


def astropy_track(ra: float, dec: float, start: datetime, end: datetime) -> tuple[np.ndarray, np.ndarray, Time]:
    """Target and Sun altitudes (geometric) every minute from ``start`` to ``end``, by astropy."""
    minutes = np.arange(0, (end - start).total_seconds() / 60.0 + 1.0)
    times = Time(start) + minutes * u.min
    location = site_location(VIENNA)
    frame = AltAz(obstime=times, location=location, pressure=0 * u.hPa)
    alt = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame).alt.deg
    sun = get_sun(times).transform_to(frame).alt.deg
    return alt, sun, times


def setting_time(ra: float, dec: float, altitude: float) -> datetime:
    """When, after astronomical dusk on NIGHT, the target sinks below ``altitude`` (astropy, to a minute)."""
    start = datetime(2026, 11, 21, 17, 30, tzinfo=UTC)
    alt, _, times = astropy_track(ra, dec, start, start + timedelta(hours=8))
    below = np.flatnonzero((alt[:-1] >= altitude) & (alt[1:] < altitude))
    assert below.size, "the test target must set through the limit"
    return times[below[0]].to_datetime(timezone=UTC)


# --------------------------------------------------------------------------- prediction


def test_an_observable_transit_has_its_window_and_frames_and_astropy_agrees():
    eph = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    s = settings()
    plan = Planner(VIENNA, s).plan([target("TEST-1 b", 30.0, 40.0)], NIGHT, ephemerides={eph.name: eph})
    (transit,) = plan.transits
    assert transit.status == OBSERVABLE and transit.reason is None and transit.planned
    window = transit.window
    tc = window.tc_utc.to_datetime(timezone=UTC)
    assert abs((tc - datetime(2026, 11, 21, 22, 0, tzinfo=UTC)).total_seconds()) < 1.0
    # Ingress and egress half the duration away; the window one baseline (60 min) beyond them.
    half = timedelta(hours=DURATION_H / 2)
    assert abs((window.ingress_utc.to_datetime(timezone=UTC) - (tc - half)).total_seconds()) < 1.0
    assert abs((window.egress_utc.to_datetime(timezone=UTC) - (tc + half)).total_seconds()) < 1.0
    window_start = window.start_utc.to_datetime(timezone=UTC)
    window_end = window.end_utc.to_datetime(timezone=UTC)
    assert abs((window_start - (tc - half - timedelta(hours=1))).total_seconds()) < 1.0
    # The block: the slew before the window, then frames to its end.
    per_frame = 60 + s.exposure_overhead_s
    frames = math.ceil((window_end - window_start).total_seconds() / per_frame)
    assert transit.frames == frames == 250
    assert abs((transit.start - (window_start - timedelta(seconds=s.switch_overhead_s))).total_seconds()) < 0.01
    assert transit.end >= window_end
    # astropy: above 30° and astronomically dark over the whole block; the lowest altitude agrees.
    alt, sun, _ = astropy_track(30.0, 40.0, transit.start, transit.end)
    assert alt.min() > 30 and sun.max() < -18
    assert transit.min_altitude == pytest.approx(alt.min(), abs=0.5)


def test_a_transit_at_dusk_is_partial_because_of_the_sun():
    eph = ephemeris("DUSK-1 b", 300.0, 40.0, "2026-11-21T17:00:00")
    plan = Planner(VIENNA, settings()).plan([target("DUSK-1 b", 300.0, 40.0)], NIGHT, ephemerides={eph.name: eph})
    (transit,) = plan.transits
    _, sun, _ = astropy_track(300.0, 40.0, transit.start, transit.end)
    assert sun.max() > -18 > sun.min()  # astropy: the block starts before astronomical dusk
    assert transit.status == PARTIAL
    assert "the Sun is above -18° (astronomical)" in transit.reason
    assert not transit.planned
    assert "partial" in plan.excluded["dusk1b"] and "scheduler.transits.partial: skip" in plan.excluded["dusk1b"]


def test_a_transit_of_a_target_that_never_rises_high_enough_is_unobservable():
    eph = ephemeris("LOW-1 b", 30.0, -30.0, "2026-11-21T22:00:00")
    plan = Planner(VIENNA, settings()).plan([target("LOW-1 b", 30.0, -30.0)], NIGHT, ephemerides={eph.name: eph})
    (transit,) = plan.transits
    alt, _, _ = astropy_track(30.0, -30.0, transit.start, transit.end)
    assert alt.max() < 30
    assert transit.status == UNOBSERVABLE and "below its altitude limit" in transit.reason
    assert plan.blocks == []


def test_a_transit_close_to_the_moon_is_refused_with_the_moon_as_reason():
    when = Time("2026-11-21T21:00:00", scale="utc")
    frame = AltAz(obstime=when, location=site_location(VIENNA), pressure=0 * u.hPa)
    moon = get_body("moon", when, site_location(VIENNA)).transform_to(frame)
    assert 20 < moon.alt.deg < 70  # up, and room for a target 10° above it
    star = SkyCoord(alt=moon.alt + 10 * u.deg, az=moon.az, frame=frame).icrs
    ra, dec = float(star.ra.deg), float(star.dec.deg)
    eph = ephemeris("MOON-1 b", ra, dec, "2026-11-21T21:00:00")
    plan = Planner(VIENNA, settings()).plan(
        [target("MOON-1 b", ra, dec, moon_separation=30)], NIGHT, ephemerides={eph.name: eph}
    )
    (transit,) = plan.transits
    assert transit.status in {PARTIAL, UNOBSERVABLE}
    assert "the Moon is closer than 30°" in transit.reason
    assert plan.blocks == []


def test_the_targets_coordinates_serve_when_the_table_has_none_and_names_match_loosely():
    eph = ephemeris("WASP-Test 1 b", 30.0, 40.0, "2026-11-21T22:00:00", with_coordinates=False)
    plan = Planner(VIENNA, settings()).plan([target("wasp-test1b", 30.0, 40.0)], NIGHT, ephemerides={eph.name: eph})
    assert [t.status for t in plan.transits] == [OBSERVABLE]


# --------------------------------------------------------------------------- planning


def test_a_transit_outranks_ordinary_targets_which_are_planned_around_it():
    s = settings()
    eph = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    targets = [
        target("TEST-1 b", 30.0, 40.0, priority=0),
        ordinary("m31", 10.68, 41.27, priority=10),
        ordinary("m33", 23.46, 30.66, priority=10),
    ]
    plan = Planner(VIENNA, s).plan(targets, NIGHT, ephemerides={eph.name: eph})
    transit_blocks = [b for b in plan.blocks if b.transit is not None]
    assert len(transit_blocks) == 1
    block = transit_blocks[0]
    assert block.target.name == "TEST-1 b" and block.exposure_count == 250
    assert block.start == block.transit.start and block.end == block.transit.end
    others = [b for b in plan.blocks if b.transit is None]
    assert others, "the ordinary targets still get the rest of the night"
    for other in others:
        assert other.end + timedelta(seconds=s.switch_gap_s) <= block.start or other.start >= block.end + timedelta(
            seconds=s.switch_gap_s
        )
    assert [b.start for b in plan.blocks] == sorted(b.start for b in plan.blocks)


def test_an_ordinary_target_coming_back_after_a_transit_pays_the_slew_again():
    s = settings()
    eph = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    targets = [target("TEST-1 b", 30.0, 40.0), ordinary("polaris", 37.95, 89.26)]  # one target, up all night
    plan = Planner(VIENNA, s).plan(targets, NIGHT, ephemerides={eph.name: eph})
    transit = next(b for b in plan.blocks if b.transit is not None)
    after = next(b for b in plan.blocks if b.transit is None and b.start > transit.end)
    assert any(b.transit is None and b.end < transit.start for b in plan.blocks)
    frames_s = sum(count * (p.exposure_s + s.exposure_overhead_s) for p, count in after.exposures)
    assert (after.end - after.start).total_seconds() == pytest.approx(frames_s + s.switch_overhead_s)


def test_frames_already_taken_do_not_keep_a_transit_target_from_its_next_transit():
    eph = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    done = target("TEST-1 b", 30.0, 40.0).model_copy(
        update={"exposure_plans": [ExposurePlan(filter="L", exposure_s=120, count=10, acquired=10)]}
    )
    plan = Planner(VIENNA, settings()).plan([done], NIGHT, ephemerides={eph.name: eph})
    (block,) = plan.blocks
    assert block.transit is not None and block.exposures[0][0].exposure_s == 120
    assert block.exposure_count == plan.transits[0].frames


def test_a_transit_target_without_a_transit_tonight_is_not_planned_as_an_ordinary_target():
    eph = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-22T22:00:00")  # a day later: P = 2.5 d puts none tonight
    plan = Planner(VIENNA, settings()).plan([target("TEST-1 b", 30.0, 40.0)], NIGHT, ephemerides={eph.name: eph})
    assert plan.blocks == []
    assert plan.excluded["test1b"] == "no transit of TEST-1 b this night"


def test_overlapping_transits_the_higher_priority_goes_first():
    a = ephemeris("A-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    b = ephemeris("B-1 b", 40.0, 45.0, "2026-11-21T23:00:00")
    plan = Planner(VIENNA, settings()).plan(
        [target("A-1 b", 30.0, 40.0, priority=3), target("B-1 b", 40.0, 45.0, priority=8)],
        NIGHT,
        ephemerides={a.name: a, b.name: b},
    )
    assert [blk.target.name for blk in plan.blocks] == ["B-1 b"]
    assert "overlaps the transit of B-1 b" in plan.excluded["a1b"]


def test_a_transit_partly_below_the_altitude_limit_is_left_out_or_its_observable_part_planned():
    ra, dec = 300.0, 40.0
    sets = setting_time(ra, dec, 30.0)
    # Egress 15 min before the target sinks below 30°: the baseline after it is lost.
    tc = sets - timedelta(hours=DURATION_H / 2) - timedelta(minutes=15)
    eph = ephemeris("SET-1 b", ra, dec, tc.strftime("%Y-%m-%dT%H:%M:%S"))
    planet = target("SET-1 b", ra, dec)

    skipped = Planner(VIENNA, settings()).plan([planet], NIGHT, ephemerides={eph.name: eph})
    (transit,) = skipped.transits
    assert transit.status == PARTIAL and "below its altitude limit" in transit.reason
    assert skipped.blocks == [] and "partial" in skipped.excluded["set1b"]

    s = settings(transits={"partial": "plan"})
    planned = Planner(VIENNA, s).plan([planet], NIGHT, ephemerides={eph.name: eph})
    (block,) = planned.blocks
    assert block.transit is not None and block.transit.status == PARTIAL
    egress = block.transit.window.egress_utc.to_datetime(timezone=UTC)
    assert block.start <= egress <= block.end
    assert block.end <= sets + timedelta(minutes=3)  # within a grid step of astropy's setting time
    alt, _, _ = astropy_track(ra, dec, block.start, block.end)
    assert alt.min() > 29.5


# --------------------------------------------------------------------------- Ekos files


@pytest.mark.parametrize(("startup", "completion"), [("at", "sequence"), ("asap", "at")])
def test_the_ekos_schedule_starts_the_transit_at_its_time_with_enough_frames(tmp_path, startup, completion):
    s = settings(ekos={"startup": startup, "completion": completion})
    eph = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    targets = [target("TEST-1 b", 30.0, 40.0, priority=0), ordinary("m31", 10.68, 41.27)]
    plan = Planner(VIENNA, s).plan(targets, NIGHT, ephemerides={eph.name: eph})
    files = write_plan(plan, s.ekos, tmp_path / "out", tmp_path / "frames", VIENNA.timezone)
    root = ET.fromstring(files.schedule.read_bytes())
    jobs = {job.findtext("Name"): job for job in root.findall("Job")}
    transit_job = jobs["TEST-1_b"]
    block = next(b for b in plan.blocks if b.transit is not None)
    start = transit_job.find("StartupCondition/Condition")
    assert start.text == "At"
    assert datetime.fromisoformat(start.get("value")) == block.start.replace(microsecond=0)
    assert datetime.fromisoformat(start.get("value")).utcoffset() == timedelta(hours=1)  # CET
    # It ends at its planned end (Ekos repeats the sequence if the camera is quicker than planned).
    end = transit_job.find("CompletionCondition/Condition")
    assert end.text == "At"
    assert datetime.fromisoformat(end.get("value")) == block.end.replace(microsecond=0)
    sequence = ET.fromstring((tmp_path / "out").joinpath(transit_job.findtext("Sequence")).read_bytes())
    (capture,) = sequence.findall("Job")
    assert int(capture.findtext("Count")) == block.transit.frames == 250
    assert float(capture.findtext("Exposure")) == 60
    window_s = (block.transit.window.end_utc - block.transit.window.start_utc).to_value(u.s)
    assert int(capture.findtext("Count")) * (60 + s.exposure_overhead_s) >= window_s
    # No other job runs into the transit.
    zone = ZoneInfo(VIENNA.timezone)
    for job in files.jobs:
        if job.transit:
            continue
        assert job.end <= block.start or job.start >= block.end, job.name
        if startup == "at":
            value = jobs[job.name].find("StartupCondition/Condition").get("value")
            assert datetime.fromisoformat(value).astimezone(zone) != block.start.astimezone(zone)


# --------------------------------------------------------------------------- command line

ARCHIVE_HEADER = "pl_name,hostname,default_flag,pl_tranmid,pl_orbper,pl_trandur,pl_trandep,ra,dec,pl_tsystemref\n"


def archive_csv(tmp_path, *ephemerides: Ephemeris):
    path = tmp_path / "planets.csv"
    rows = [
        f"{e.name},host,1,{e.t0:.6f},{e.period},{(e.duration or 0) * 24:.4f},1.0,{e.ra},{e.dec},BJD-TDB\n"
        for e in ephemerides
    ]
    path.write_text("# exported\n" + ARCHIVE_HEADER + "".join(rows))
    return path


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "obsy.yaml"
    site = {"name": "Vienna", "latitude": 48.2, "longitude": 16.4, "elevation": 180, "timezone": "Europe/Vienna"}
    path.write_text(
        yaml.safe_dump(
            {
                "site": site,
                "data_dir": str(tmp_path / "data"),
                "homeassistant": {"enabled": False},
                "scheduler": {"ekos": {"filters": ["L", "Luminance"]}},
            }
        )
    )
    return path


def test_the_transits_command_lists_the_nights_transits(tmp_path, config, capsys):
    good = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    dusk = ephemeris("DUSK-1 b", 300.0, 40.0, "2026-11-21T17:00:00")
    path = archive_csv(tmp_path, good, dusk)
    assert main(["transits", str(path), "--night", "2026-11-21", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1 observable, 1 partial, 0 not observable" in out
    # Local time (CET), minutes cut: the block starts 2 min (the slew) before T1 - 60 min - 3 sigma.
    assert "observable   TEST-1 b: block 20:42 - 01:15 (T1 21:44 Tc 23:00 T4 00:15), 250x60s" in out
    assert "partial      DUSK-1 b" in out and "the Sun is above -18°" in out


def test_the_transits_command_with_targets_checks_only_them_with_their_own_settings(tmp_path, config, capsys):
    good = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    dusk = ephemeris("DUSK-1 b", 300.0, 40.0, "2026-11-21T17:00:00")
    path = archive_csv(tmp_path, good, dusk)
    targets = tmp_path / "targets.json"
    targets.write_text("[" + target("test-1b", 30.0, 40.0, exposure_s=120, min_altitude=85).model_dump_json() + "]")
    argv = ["transits", str(path), "--night", "2026-11-21", "--targets", str(targets), "--all", "-c", str(config)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0 observable, 0 partial, 1 not observable" in out  # it culminates at 81.8°
    assert "unobservable TEST-1 b" in out and "x120s" in out and "DUSK-1 b" not in out


def test_the_transits_command_names_a_bad_file(tmp_path, config, capsys):
    path = tmp_path / "planets.csv"
    path.write_text("pl_name,ra\nX b,10\n")
    assert main(["transits", str(path), "-c", str(config)]) == 1
    assert "no column pl_tranmid, pl_orbper" in capsys.readouterr().err


def test_the_plan_command_plans_transits_from_the_ephemerides(tmp_path, config, capsys):
    eph = ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00")
    path = archive_csv(tmp_path, eph)
    targets = tmp_path / "targets.json"
    targets.write_text("[" + target("TEST-1 b", 30.0, 40.0).model_dump_json() + "]")
    argv = ["plan", "--night", "2026-11-21", "--targets", str(targets), "--out", str(tmp_path / "plans")]
    assert main([*argv, "--ephemerides", str(path), "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "TEST-1_b: 250x60s L  transit" in out


# --------------------------------------------------------------------------- service


def scheduler_service(tmp_path, ephemeris_file):
    from obsy.bus import Bus
    from obsy.config import ObsyConfig
    from obsy_scheduler.service import SchedulerService

    config = ObsyConfig.model_validate(
        {
            "site": {"latitude": 48.2, "longitude": 16.4, "elevation": 180, "timezone": "Europe/Vienna"},
            "data_dir": str(tmp_path / "data"),
            "scheduler": {"ekos": {"filters": ["L"]}, "transits": {"ephemeris_file": str(ephemeris_file)}},
            "homeassistant": {"enabled": False},
        }
    )
    svc = SchedulerService(config, Bus(config.broker, "scheduler"))
    svc.start()
    svc._targets = [target("TEST-1 b", 30.0, 40.0), ordinary("m31", 10.68, 41.27)]
    svc.bus.publish = lambda topic, payload, **kw: None  # type: ignore[method-assign]
    svc.bus.publish_event = lambda payload: None  # type: ignore[method-assign]
    return svc


def test_the_service_plans_transits_from_the_configured_file_and_publishes_them(tmp_path):
    path = archive_csv(tmp_path, ephemeris("TEST-1 b", 30.0, 40.0, "2026-11-21T22:00:00"))
    svc = scheduler_service(tmp_path, path)
    message = svc.replan("targets", now=datetime(2026, 11, 21, 13, 0, tzinfo=UTC))
    transit_blocks = [b for b in message.blocks if b.transit]
    assert [(b.transit, b.transit_partial, b.exposures) for b in transit_blocks] == [("TEST-1 b", False, 250)]
    assert any(b.target_id == "m31" for b in message.blocks)
    assert svc.health_details()["transits"] == "1 of 1 transits of the night planned"


def test_an_unusable_ephemeris_file_leaves_every_target_ordinary_and_says_why(tmp_path):
    svc = scheduler_service(tmp_path, tmp_path / "missing.csv")
    message = svc.replan("targets", now=datetime(2026, 11, 21, 13, 0, tzinfo=UTC))
    assert message.blocks and not any(b.transit for b in message.blocks)
    assert svc.health_details()["transits"].startswith("no transit planning: cannot read the ephemeris file")
