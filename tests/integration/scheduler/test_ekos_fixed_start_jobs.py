"""OBSY's fixed-start jobs run by the real KStars 3.6 against the simulators, in real time.

The scheduler's planner plans, from now, a time-series target (a visit every few minutes, two
frames each, after the transit) and an exoplanet transit from an ephemeris CSV (a planet whose short transit window
opens a few minutes after the test starts); :func:`obsy_scheduler.ekos.write_plan` writes the Ekos
files, and headless KStars runs them with the telescope simulator and the sky simulator's main
camera (``indi_obsy_camera``, a small sensor and short exposures). KStars' clock is the real one,
at the site KStars knows by name (:func:`tests.support.e2e_site.dark_site`).

Every job starts "At" its planned time; a visit ends with its sequence (exactly its frames), the
transit "At" its planned end (Ekos repeats its sequence until then). KStars' lead time (its minimum
time between jobs, 5 minutes by default) is set to the planner's ``switch_gap_s`` (30 s), which a
cadence of minutes needs. What Ekos did is read back from the frames: every visit's planned Light
frames in its own folder, the target's name in every frame's OBJECT (the second visit too), the first
frame begun at (not before) the job's fixed start and soon after it (a slew and a settle), and the
transit's frames covering its whole window, ingress to egress, and ending with its planned end.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import astropy.units as u
import pytest
from astropy.time import Time

from obsy import astro
from obsy.config import SchedulerConfig, SiteConfig
from obsy.messages import ExposurePlan, Target, TimeSeries
from obsy.transits.ephemeris import read_archive_csv
from obsy.transits.predict import bjd_tdb
from obsy_scheduler.ekos import EkosFiles, EkosJob, number, write_plan
from obsy_scheduler.planner import Planner
from obsy_skysim.config import _main_sensor
from tests.support.e2e_observatory import folder, write_main_camera_settings
from tests.support.e2e_site import dark_site
from tests.support.ekos_plans import run_now_settings
from tests.support.indiserver import CCD, TELESCOPE, IndiServer, pyindi_available, require_indi
from tests.support.kstars import (
    PROFILE,
    SCHEDULER,
    SCHEDULER_PATH,
    KStars,
    ekos_running,
    requires_kstars,
    written_frames,
)

CAMERA_DRIVER = Path(sys.executable).with_name("indi_obsy_camera")
CAMERA = "SkySim Camera"
#: The main camera's sensor cut small: quick to read out, send and save.
SENSOR = {**_main_sensor().model_dump(), "width": 400, "height": 300}
EXPOSURE_S = 2.0
#: How much of a job's start Ekos may spend before its first exposure begins (the slew, the settle).
START_SLACK_S = 60.0
#: How early a first exposure may begin before the fixed start (KStars' clock against the camera's).
EARLY_S = 2.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.long(seconds=480),
    pytest.mark.timeout(900),
    requires_kstars,
    pytest.mark.skipif(not pyindi_available(), reason="pyindi-client is not installed"),
    pytest.mark.skipif(not CAMERA_DRIVER.exists(), reason="the sky simulator is not installed (services/skysim)"),
]

SETTINGS = dict(
    grid_step_s=10,
    exposure_overhead_s=3,
    switch_overhead_s=15,
    switch_gap_s=30,
    constraints={"min_altitude": 20, "twilight": "astronomical", "min_time_on_target_min": 0},
)
PLANET = "OBSY-T1 b"
ARCHIVE_HEADER = "pl_name,hostname,default_flag,pl_tranmid,pl_orbper,pl_trandur,pl_trandep,ra,dec,pl_tsystemref\n"


def meridian_ra(site: SiteConfig, moment: datetime) -> float:
    """The right ascension (degrees) on the site's meridian at ``moment``."""
    return Time(moment).sidereal_time("apparent", longitude=site.longitude * u.deg).to_value(u.deg) % 360.0


def ephemeris_csv(path: Path, *, mid: datetime, ra: float, dec: float, duration_min: float) -> Path:
    """A NASA Exoplanet Archive export with one planet transiting (its mid-time) at ``mid``."""
    t0 = bjd_tdb(Time(mid), ra, dec)
    row = f"{PLANET},OBSY-T1,1,{t0:.6f},1.7,{duration_min / 60:.4f},1.2,{ra:.5f},{dec:.5f},BJD-TDB\n"
    path.write_text("# exported from the archive\n" + ARCHIVE_HEADER + row)
    return path


def targets(site: SiteConfig, now: datetime) -> list[Target]:
    """A variable star and a transit host a few degrees either side of the meridian, high up."""
    ra = meridian_ra(site, now + timedelta(minutes=4))
    dec = round(min(site.latitude, 80.0), 4)
    light = ExposurePlan(exposure_s=EXPOSURE_S, count=1)
    return [
        Target(
            id="variable",
            name="OBSY V1",
            ra_deg=(ra - 3.0) % 360,
            dec_deg=dec,
            priority=7,
            exposure_plans=[light],
            time_series=TimeSeries(
                cadence_min=1.5,  # a visit (a slew, two frames) and Ekos' lead time fit in it, as in the science night
                frames_per_visit=2,
                # From the transit's end (its block: 2.5-4.5 min from now): a job ends "At" its planned end
                # only for the transit, a visit with its sequence, so a visit first could run past the
                # transit's fixed start on a loaded machine (the suite's first minutes: Ekos then refuses it).
                window_start=now + timedelta(minutes=4.5),
                window_end=now + timedelta(minutes=7.5),  # two visits, never three
            ),
        ),
        Target(id="planet", name=PLANET, ra_deg=(ra + 3.0) % 360, dec_deg=dec, priority=9, exposure_plans=[light]),
    ]


def started(header) -> datetime:
    return datetime.fromisoformat(str(header["DATE-OBS"])).replace(tzinfo=UTC)


def frames_of(job: EkosJob) -> list:
    assert job.frames_dir is not None
    return written_frames(job.frames_dir)


def done(job: EkosJob) -> bool:
    """A visit is done with its frames; a transit at its planned end (it takes frames until then)."""
    if job.transit:
        return datetime.now(UTC) > job.end + timedelta(seconds=EXPOSURE_S + 5)
    return len(frames_of(job)) >= sum(n for _, n in job.exposures())


def wait_for_jobs(kstars: KStars, files: EkosFiles, mark: int, timeout: float) -> None:
    """Until every job has all its frames (or Ekos refuses one, which fails at once with its reason)."""
    deadline = time.monotonic() + timeout
    while True:
        log = kstars.log_text()[mark:]
        refused = re.search(r"job '[^']+' (has|is) [^\n]*marking (invalid|aborted)[^\n]*", log, re.IGNORECASE)
        assert refused is None, f"Ekos refused a job: {refused[0]}"
        pending = [job.key for job in files.jobs if not done(job)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"jobs {pending} not done within {timeout:.0f} s; Ekos said:\n"
                + "\n".join(reversed(kstars.module_log(SCHEDULER_PATH, SCHEDULER)[:25]))
            )
        time.sleep(1)


def test_ekos_runs_time_series_visits_and_a_transit_at_their_fixed_starts(tmp_path: Path) -> None:
    require_indi(["indi_simulator_telescope"])
    dark = dark_site()
    site = SiteConfig.model_validate(dark.site_config())
    with contextlib.ExitStack() as stack:
        skysim = write_main_camera_settings(
            folder(tmp_path / "skysim") / "skysim.yaml",
            dark.site_config(),
            SENSOR,
            mount=TELESCOPE,
            device=CAMERA,
            clouds_from=None,
        )
        indi = stack.enter_context(
            IndiServer(
                tmp_path / "indi",
                ["indi_simulator_telescope", str(CAMERA_DRIVER)],
                env={"OBSY_SKYSIM_CONFIG": str(skysim)},
            )
        )
        kstars = stack.enter_context(
            ekos_running(
                folder(tmp_path / "kstars"),
                (TELESCOPE, CCD),
                indi=indi,
                city=(dark.city, dark.province, dark.country),
                # Ekos' minimum time between jobs ("lead time", 5 minutes by default): the planner's
                # switch_gap_s keeps it between a visit and the next job; a cadence of minutes needs it short.
                settings={("Scheduler", "LeadTime"): number(SETTINGS["switch_gap_s"] / 60)},
                devices=(TELESCOPE, CAMERA),
            )
        )

        # ------------------------------------------------------------ the plan, from now
        now = datetime.now(UTC)
        ours = targets(site, now)
        planet = next(t for t in ours if t.name == PLANET)
        # The transit's window (T1 less the baseline) opens two and a half minutes from now; the visits follow it.
        duration_min, baseline_min = 1.0, 0.5
        mid = now + timedelta(minutes=2.5 + baseline_min + duration_min / 2)
        csv = ephemeris_csv(
            tmp_path / "planets.csv", mid=mid, ra=planet.ra_deg, dec=planet.dec_deg, duration_min=duration_min
        )
        settings = SchedulerConfig.model_validate(
            {
                **SETTINGS,
                "transits": {"ephemeris_file": str(csv), "baseline_min": baseline_min, "timing_sigmas": 0},
                "ekos": run_now_settings(profile=PROFILE, camera=CAMERA, filter_wheel=None),
            }
        )
        plan = Planner(site, settings).plan(
            ours, astro.night_of(site, now), now=now, ephemerides=read_archive_csv(settings.transits.ephemeris_file)
        )
        assert not plan.excluded, plan.excluded
        files = write_plan(plan, settings.ekos, tmp_path / "ekos", tmp_path / "frames", site.timezone)
        kinds = [("transit" if job.transit else "visit", job.key, job.start) for job in files.jobs]
        print("jobs:", [(kind, name, f"{start - now}") for kind, name, start in kinds])
        assert sum(kind == "visit" for kind, *_ in kinds) >= 2 and sum(kind == "transit" for kind, *_ in kinds) == 1
        assert all(job.fixed for job in files.jobs)

        # ------------------------------------------------------------ Ekos runs it
        mark = len(kstars.log_text())
        assert kstars.load_schedule(files.schedule)
        kstars.start_scheduler()
        try:
            wait_for_jobs(kstars, files, mark, timeout=(files.jobs[-1].end - datetime.now(UTC)).total_seconds() + 180)
        finally:
            kstars.stop_scheduler()

        # ------------------------------------------------------------ what Ekos wrote
        for job in files.jobs:
            frames = frames_of(job)
            planned = sum(n for _, n in job.exposures())
            first = min(started(header) for _, header in frames)
            objects = sorted({str(header.get("OBJECT")) for _, header in frames})
            print(
                f"{job.key}: {len(frames)} frames (planned {planned}), first begun "
                f"{(first - job.start).total_seconds():+.1f} s after its fixed start; OBJECT {objects}"
            )
            if not job.transit:  # a visit: exactly its frames (a transit's: until its end)
                assert len(frames) == planned, (job.key, len(frames), planned)
            assert all(path.parent.name == "Light" for path, _ in frames), [str(p) for p, _ in frames]
            assert objects == [job.target.name], job.key
            assert job.start - timedelta(seconds=EARLY_S) <= first <= job.start + timedelta(seconds=START_SLACK_S), (
                job.key,
                first,
                job.start,
            )
            if job.transit:  # observed whole: a frame begun by ingress, one ended at egress or after
                window = job.blocks[0].transit.window
                last = max(started(header) for _, header in frames) + timedelta(seconds=EXPOSURE_S)
                ingress, egress = (t.to_datetime(timezone=UTC) for t in (window.ingress_utc, window.egress_utc))
                assert first <= ingress and last >= egress, (first, last, ingress, egress)
                # and no longer than its planned end (the next job's lead time is kept)
                assert last <= job.end + timedelta(seconds=EXPOSURE_S + 2), (last, job.end)
