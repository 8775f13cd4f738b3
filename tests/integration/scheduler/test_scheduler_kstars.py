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

import pytest
from astropy.time import Time

from obsy import astro
from obsy.config import SchedulerConfig, SchedulerEkosConfig
from obsy.messages import ExposurePlan, Target
from obsy_scheduler.ekos import write_plan
from obsy_scheduler.planner import Planner
from tests.support.ekos_plans import (
    VIENNA,
    catalogue_targets,
    circumpolar_targets,
    one_block_plan,
    run_now_settings,
    wait_until_scheduled,
    zenith_ra,
)
from tests.support.kstars import SCHEDULER, SCHEDULER_PATH, KStars, ekos_running, requires_kstars

pytestmark = [
    pytest.mark.integration,
    requires_kstars,
]


@pytest.fixture(scope="module")
def kstars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KStars]:
    """KStars in Vienna (its own city list has it; the plans are made for the same place), Ekos'
    own indiserver."""
    with ekos_running(tmp_path_factory.mktemp("kstars"), ("Telescope Simulator", "CCD Simulator")) as ks:
        yield ks


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
    catalogue = [
        ("M 31", 10.6848, 41.2691), ("M 33", 23.4621, 30.6599), ("NGC 7000", 314.8214, 44.5288),
        ("M 42", 83.8221, -5.3911), ("M 45", 56.8692, 24.1053), ("IC 434", 85.2537, -2.4538),
        ("M 81", 148.8882, 69.0653), ("NGC 2244", 97.9875, 4.9417),
    ]  # fmt: skip
    plans = [
        ExposurePlan(filter="Red", exposure_s=180, count=20, gain=100, offset=10),
        ExposurePlan(filter="Green", exposure_s=180, count=20, binning=2),
    ]
    targets = catalogue_targets(catalogue, plans)
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
    targets = circumpolar_targets(priority=5, count=8)
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
        wait_until_scheduled(kstars, jobs, after=mark)
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


def test_a_job_runs_against_the_simulators_and_writes_frames_under_fits_directory(kstars, tmp_path):
    now = datetime.now(UTC)
    target = Target(
        id="zenith",
        name="Zenith Field",
        ra_deg=zenith_ra(now),
        dec_deg=VIENNA.latitude,
        # the second plan names no filter: it gets the default one (the wheel has "Luminance")
        exposure_plans=[ExposurePlan(filter="Red", exposure_s=1, count=2), ExposurePlan(exposure_s=1, count=1)],
    )
    exposures = [(target.exposure_plans[0], 2), (target.exposure_plans[1], 1)]
    plan = one_block_plan(target, exposures, now, now + timedelta(minutes=5))
    files = write_plan(plan, run_now_settings(), tmp_path / "ekos", tmp_path / "frames", VIENNA.timezone)
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
    ordinary = circumpolar_targets(priority=10, count=40)
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
        wait_until_scheduled(kstars, jobs, after=mark)
        text = kstars.log_text()[mark:]
        assert "marking invalid" not in text and "unachievable" not in text
    finally:
        kstars.stop_scheduler()
