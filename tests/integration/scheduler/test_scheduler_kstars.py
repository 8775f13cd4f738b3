"""The scheduler's .esl/.esq files in the real KStars 3.6 (Ekos with the INDI simulators).

loadScheduler answers true even for a file it could not use, so these tests read
KStars' scheduler debug log ("Job 'X' at row #n was saved." for every job it accepted)
and, for the run, look for the frames Ekos wrote under the sequence's FITSDirectory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import astropy.units as u
import pytest
from astropy.time import Time

from obsy import astro
from obsy.config import SchedulerConfig, SchedulerEkosConfig, SiteConfig
from obsy.messages import ExposurePlan, Target, TargetConstraints
from obsy_scheduler.ekos import write_plan
from obsy_scheduler.planner import Block, Plan, Planner
from tests.support.kstars import SCHEDULER, SCHEDULER_PATH, KStars, kstars_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not kstars_available(), reason="KStars (Debian package kstars) is not installed"),
]

# KStars' own city list has Vienna; the plan is made for the same place.
VIENNA = SiteConfig(name="Vienna", latitude=48.2, longitude=16.37, elevation=170, timezone="Europe/Vienna")


@pytest.fixture(scope="module")
def kstars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KStars]:
    ks = KStars(tmp_path_factory.mktemp("kstars"))
    try:
        ks.start()
        ks.set_location("Vienna", "", "Austria")
        ks.start_ekos(drivers=("Telescope Simulator", "CCD Simulator"))
        yield ks
    finally:
        ks.stop()


def saved_jobs(ks: KStars, after: int) -> list[tuple[str, int]]:
    import re

    return [(m[0], int(m[1])) for m in re.findall(r"Job '([^']+)' at row #(\d+) was saved", ks.log_text()[after:])]


def wait_for_saved(ks: KStars, after: int, count: int, timeout: float = 30.0) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = saved_jobs(ks, after)
        if len(jobs) >= count:
            return jobs
        time.sleep(0.5)
    return saved_jobs(ks, after)


def test_ekos_loads_every_job_of_a_planned_night(kstars, tmp_path):
    names = ["M 31", "M 33", "NGC 7000", "M 42", "M 45", "IC 434", "M 81", "NGC 2244"]
    coordinates = [
        (10.6848, 41.2691), (23.4621, 30.6599), (314.8214, 44.5288), (83.8221, -5.3911),
        (56.8692, 24.1053), (85.2537, -2.4538), (148.8882, 69.0653), (97.9875, 4.9417),
    ]  # fmt: skip
    targets = [
        Target(
            id=f"t{i}",
            name=name,
            ra_deg=ra,
            dec_deg=dec,
            priority=5 + i % 3,
            exposure_plans=[
                ExposurePlan(filter="Red", exposure_s=180, count=20, gain=100, offset=10),
                ExposurePlan(filter="Green", exposure_s=180, count=20, binning=2),
            ],
            constraints={"moon_avoidance_distance": 60, "moon_avoidance_width": 7} if i % 2 else {},
        )
        for i, (name, (ra, dec)) in enumerate(zip(names, coordinates, strict=True))
    ]
    settings = SchedulerConfig(max_block_min=60)
    plan = Planner(VIENNA, settings).plan(targets, date(2026, 11, 21))
    files = write_plan(plan, settings.ekos, tmp_path / "ekos", tmp_path / "frames", VIENNA.timezone)
    expected = [job.name for job in files.jobs]
    assert len(expected) >= 4, "the test wants a night with several jobs"

    mark = len(kstars.log_text())
    assert kstars.load_schedule(files.schedule) is True
    jobs = wait_for_saved(kstars, mark, len(expected))
    assert [name for name, _ in jobs] == expected
    assert [row for _, row in jobs] == list(range(1, len(expected) + 1))
    assert "Unable to" not in " ".join(kstars.module_log(SCHEDULER_PATH, SCHEDULER)[:5])


def test_ekos_schedules_every_job_at_its_planned_local_time(kstars, tmp_path):
    """Started on tonight's plan, Ekos puts each job at the time the plan says (site time, KStars in Vienna)."""
    now = datetime.now(UTC)
    night = astro.night_of(VIENNA, now + timedelta(hours=12))  # the night ahead, or the one going on
    targets = [
        Target(
            id=f"c{i}",
            name=f"Circumpolar {i}",
            ra_deg=ra,
            dec_deg=78.0,
            priority=5,
            exposure_plans=[ExposurePlan(filter="Red", exposure_s=300, count=8)],
            constraints={"twilight": "nautical", "min_altitude": 30},
        )
        for i, ra in enumerate((0.0, 90.0, 180.0, 270.0))
    ]
    settings = SchedulerConfig(ekos=SchedulerEkosConfig(enforce_weather=False))
    plan = Planner(VIENNA, settings).plan(targets, night, now=now + timedelta(minutes=10))
    assert plan.blocks, plan.excluded
    files = write_plan(plan, settings.ekos, tmp_path / "ekos", tmp_path / "frames", VIENNA.timezone)
    jobs = files.jobs
    mark = len(kstars.log_text())
    assert kstars.load_schedule(files.schedule)
    assert len(wait_for_saved(kstars, mark, len(jobs))) == len(jobs)
    kstars.start_scheduler()
    try:
        zone = ZoneInfo(VIENNA.timezone)
        for job in jobs:
            local = job.start.astimezone(zone).strftime("%d/%m %H:%M")
            kstars.wait_for_log(rf"Job '{job.name}' is scheduled to start at {local}", timeout=60, after=mark)
        assert "marking invalid" not in kstars.log_text()[mark:]
    finally:
        kstars.stop_scheduler()


def test_garbage_is_accepted_by_loadscheduler_but_loads_no_job(kstars, tmp_path):
    garbage = tmp_path / "garbage.esl"
    garbage.write_text("this is not a schedule <Job><Name>")
    mark = len(kstars.log_text())
    assert kstars.load_schedule(garbage) is True  # what KStars answers, hence the log checks
    time.sleep(3)
    assert saved_jobs(kstars, mark) == []


def zenith_now(site: SiteConfig) -> tuple[float, float]:
    """J2000-ish RA/Dec of the zenith now (good to a fraction of a degree)."""
    lst = Time.now().sidereal_time("mean", longitude=site.longitude * u.deg).to_value(u.deg)
    return lst % 360.0, site.latitude


def test_a_job_runs_against_the_simulators_and_writes_frames_under_fits_directory(kstars, tmp_path):
    ra, dec = zenith_now(VIENNA)
    target = Target(
        id="zenith",
        name="Zenith Field",
        ra_deg=ra,
        dec_deg=dec,
        # the second plan names no filter: it gets the default one (the wheel has "Luminance")
        exposure_plans=[ExposurePlan(filter="Red", exposure_s=1, count=2), ExposurePlan(exposure_s=1, count=1)],
    )
    now = datetime.now(UTC)
    block = Block(
        target=target,
        constraints=TargetConstraints(min_altitude=20, twilight="civil"),  # it is daytime: no twilight rule
        start=now,
        end=now + timedelta(minutes=5),
        exposures=[(target.exposure_plans[0], 2), (target.exposure_plans[1], 1)],
        expected_altitude=90.0,
        min_altitude=85.0,
        required_moon_separation=0.0,
        score=1.0,
    )
    plan = Plan(
        night=now.date(),
        blocks=[block],
        excluded={},
        dark_start=None,
        dark_end=None,
        dark_hours=0.0,
        filled_fraction=0.0,
        moon_illumination=0.0,
    )
    ekos = SchedulerEkosConfig(
        startup="asap",
        completion="sequence",
        enforce_weather=False,
        steps=["Track"],
        startup_procedure=["UnparkMount"],
        shutdown_procedure=[],
    )
    files = write_plan(plan, ekos, tmp_path / "ekos", tmp_path / "frames", VIENNA.timezone)
    mark = len(kstars.log_text())
    assert kstars.load_schedule(files.schedule)
    assert [name for name, _ in wait_for_saved(kstars, mark, 1)] == ["Zenith_Field"]
    kstars.start_scheduler()
    light = files.fits_dir / "Zenith_Field" / "Light"
    deadline = time.monotonic() + 180
    frames: dict[str, list[Path]] = {}
    while time.monotonic() < deadline and (len(frames.get("Red", [])), len(frames.get("Luminance", []))) != (2, 1):
        frames = {f: sorted((light / f).glob("*.fits")) for f in ("Red", "Luminance")}
        time.sleep(1)
    try:
        assert {f: len(found) for f, found in frames.items()} == {"Red": 2, "Luminance": 1}, (
            f"frames under {light}: {sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*'))}\n"
            f"{kstars.module_log(SCHEDULER_PATH, SCHEDULER)[:15]}"
        )
        assert all(f.stat().st_size > 2880 for found in frames.values() for f in found)  # FITS header and data
        kstars.wait_for_log(r"Job 'Zenith_Field' is complete", timeout=60, after=mark)
    finally:
        kstars.stop_scheduler()


def test_ekos_schedules_a_transit_at_its_start_between_ordinary_jobs(kstars, tmp_path):
    """An exoplanet transit tonight, planned with ordinary targets: Ekos accepts every job and
    puts the transit's job at its fixed start, with no job marked invalid or unachievable."""
    from obsy.transits.ephemeris import Ephemeris
    from obsy.transits.predict import bjd_tdb
    from obsy_scheduler.transits import site_location

    now = datetime.now(UTC)
    night = astro.night_of(VIENNA, now + timedelta(hours=12))
    settings = SchedulerConfig(ekos=SchedulerEkosConfig(enforce_weather=False), transits={"baseline_min": 30})
    planner = Planner(VIENNA, settings)
    ordinary = [
        Target(
            id=f"c{i}",
            name=f"Circumpolar {i}",
            ra_deg=ra,
            dec_deg=78.0,
            priority=10,
            exposure_plans=[ExposurePlan(filter="Red", exposure_s=300, count=40)],
            constraints={"twilight": "nautical", "min_altitude": 30},
        )
        for i, ra in enumerate((0.0, 90.0, 180.0, 270.0))
    ]
    # A circumpolar planet whose transit is in the middle of what is left of the night.
    dark = planner.plan(ordinary, night, now=now + timedelta(minutes=10))
    assert dark.dark_start and dark.dark_end
    if dark.dark_end - max(dark.dark_start, now) < timedelta(hours=4.5):  # late in the night: take the next
        night += timedelta(days=1)
        dark = planner.plan(ordinary, night, now=now + timedelta(minutes=10))
    start = max(dark.dark_start, now + timedelta(minutes=10))
    middle = start + (dark.dark_end - start) / 2
    ra, dec = 45.0, 75.0
    tc = bjd_tdb(Time(middle), ra, dec, site_location(VIENNA))
    eph = Ephemeris(name="OBSY-T 1 b", t0=tc - 50 * 3.0, period=3.0, duration=1.0 / 24, ra=ra, dec=dec)
    planet = Target(
        id="planet",
        name="OBSY-T 1 b",
        ra_deg=ra,
        dec_deg=dec,
        priority=0,
        exposure_plans=[ExposurePlan(filter="Red", exposure_s=120, count=1)],
        constraints={"twilight": "nautical", "min_altitude": 30},
    )
    plan = planner.plan([*ordinary, planet], night, now=now + timedelta(minutes=10), ephemerides={eph.name: eph})
    transit_blocks = [b for b in plan.blocks if b.transit is not None]
    assert len(transit_blocks) == 1, (plan.excluded, [t.reason for t in plan.transits])
    files = write_plan(plan, settings.ekos, tmp_path / "ekos", tmp_path / "frames", VIENNA.timezone)
    jobs = files.jobs
    transit_job = next(job for job in jobs if job.transit)
    assert any(job.end <= transit_job.start for job in jobs if not job.transit), "the test wants a job before it"
    assert any(job.start >= transit_job.end for job in jobs if not job.transit), "and one after it"
    mark = len(kstars.log_text())
    assert kstars.load_schedule(files.schedule)
    assert [name for name, _ in wait_for_saved(kstars, mark, len(jobs))] == [job.name for job in jobs]
    kstars.start_scheduler()
    try:
        zone = ZoneInfo(VIENNA.timezone)
        for job in jobs:
            local = job.start.astimezone(zone).strftime("%d/%m %H:%M")
            kstars.wait_for_log(rf"Job '{job.name}' is scheduled to start at {local}", timeout=60, after=mark)
        text = kstars.log_text()[mark:]
        assert "marking invalid" not in text and "unachievable" not in text
    finally:
        kstars.stop_scheduler()
