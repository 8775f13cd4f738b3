"""A planned night run by the real KStars 3.6 (Ekos, INDI telescope and CCD simulators with its filter wheel).

KStars' clock is set to a time of one night at the site (Vienna, KStars' own city list),
and runs faster than real time, so that the waits between jobs (Ekos' lead time) pass
quickly; the simulators expose in real time. The plan is made by the planner for that
clock time; what Ekos did is read back from the FITS files it wrote (count per filter,
and the GAIN, OFFSET, FILTER and EXPTIME headers the camera driver wrote).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from astropy.io import fits

from obsy.config import SchedulerConfig
from obsy.indi import IndiClient
from obsy.messages import ExposurePlan, Target, TargetConstraints
from obsy_scheduler.ekos import EkosFiles, write_plan
from obsy_scheduler.planner import Block, Plan, Planner
from tests.support.ekos_plans import VIENNA, catalogue_targets, run_now_settings, zenith_ra
from tests.support.indiserver import CCD, IndiServer, module_server
from tests.support.kstars import SCHEDULER, SCHEDULER_PATH, KStars, ekos_running, requires_kstars

pytestmark = [
    pytest.mark.integration,
    pytest.mark.long(seconds=80),
    requires_kstars,
]

ZONE = ZoneInfo(VIENNA.timezone)
NIGHT = date(2026, 11, 21)
#: KStars' clock runs this many times faster than real time.
CLOCK_SCALE = 10.0
DRIVERS = ("indi_simulator_telescope", "indi_simulator_ccd")
#: Planner settings for short test jobs; the gap between jobs stays Ekos' lead time (5 min).
SETTINGS = SchedulerConfig(
    grid_step_s=10,
    exposure_overhead_s=5,
    switch_overhead_s=60,
    switch_gap_s=300,
    constraints={"min_altitude": 30, "twilight": "astronomical", "min_time_on_target_min": 0},
    ekos=run_now_settings(profile="OBSY test", startup="at"),  # each job at its planned start
)


#: Our own indiserver on a free port, which Ekos uses (a remote profile). Ekos' own local server
#: would take port 7624, and any KStars on the machine ends every process named indiserver when
#: it exits; this one runs under another name.
indi = module_server(DRIVERS)


@pytest.fixture(scope="module")
def kstars_running(tmp_path_factory: pytest.TempPathFactory, indi: IndiServer) -> Iterator[KStars]:
    with ekos_running(tmp_path_factory.mktemp("kstars"), ("Telescope Simulator", "CCD Simulator"), indi=indi) as ks:
        yield ks


@pytest.fixture
def kstars(kstars_running: KStars) -> KStars:
    """KStars with Ekos and its devices connected: a schedule that finishes ends with Ekos stopping INDI."""
    kstars_running.reconnect_ekos()
    return kstars_running


def targets_near_zenith(moment: datetime) -> list[Target]:
    """Two targets high up at ``moment``, each with its own filters, gains and offsets."""
    ra = zenith_ra(moment)
    return [
        Target(
            id="first",
            name="First Field",
            ra_deg=(ra - 4.0) % 360.0,
            dec_deg=VIENNA.latitude,
            priority=9,
            exposure_plans=[ExposurePlan(filter="Red", exposure_s=1, count=2, gain=40, offset=12)],
        ),
        Target(
            id="second",
            name="Second Field",
            ra_deg=(ra + 4.0) % 360.0,
            dec_deg=VIENNA.latitude,
            priority=5,
            exposure_plans=[
                ExposurePlan(filter="H_Alpha", exposure_s=2, count=3, gain=75, offset=5),
                ExposurePlan(filter="Blue", exposure_s=1, count=1, gain=20, offset=30),
            ],
        ),
    ]


class CameraWatch:
    """The camera's offset at the start of every exposure, watched on Ekos' indiserver.

    The CCD simulator writes GAIN but no OFFSET into its FITS headers, so the offset each
    frame was taken with is read from the camera's CCD_OFFSET when its exposure starts.
    """

    def __init__(self, indi: IndiServer, camera: str = CCD) -> None:
        self.camera = camera
        self.client = IndiClient(indi.host, indi.port, reconnect=False)
        self.offset: float | None = None
        self.exposing = False
        self.offsets: list[float | None] = []

    def __enter__(self) -> CameraWatch:
        self.client.connect()
        self.client.wait_property(self.camera, "CCD_OFFSET")
        self.offset = self.client.get_number(self.camera, "CCD_OFFSET")["OFFSET"]
        self.client.add_listener(self._update)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.disconnect()

    def _update(self, device: str, name: str, state: str, values: Mapping[str, Any]) -> None:
        if device != self.camera:
            return
        if name == "CCD_OFFSET":
            self.offset = values["OFFSET"]
        elif name == "CCD_EXPOSURE":
            if state == "Busy" and not self.exposing:
                self.offsets.append(self.offset)
            self.exposing = state == "Busy"


def frames_by_job(files: EkosFiles) -> dict[str, Counter]:
    """What Ekos wrote, from the FITS headers: per job, Counter of (filter, exposure, gain)."""
    found: dict[str, Counter] = {}
    for job in files.jobs:
        counter: Counter = Counter()
        for path in sorted((files.fits_dir / job.name).rglob("*.fits")):
            header = fits.getheader(path)
            counter[(header.get("FILTER"), float(header["EXPTIME"]), header.get("GAIN"))] += 1
        found[job.name] = counter
    return found


def planned_by_job(files: EkosFiles) -> dict[str, Counter]:
    return {
        job.name: Counter({(plan.filter, float(plan.exposure_s), plan.gain): count for plan, count in job.exposures()})
        for job in files.jobs
    }


def planned_offsets(files: EkosFiles) -> list[float | None]:
    """The offset of every planned frame, in the order Ekos takes them."""
    return [plan.offset for job in files.jobs for plan, count in job.exposures() for _ in range(count)]


def run_night_at(kstars: KStars, clock: datetime, targets: list[Target], workdir: Path) -> tuple[EkosFiles, int]:
    """Plan the night from ``clock``, set KStars' clock there, load and start the schedule.

    Returns the files and the log position where this run starts.
    """
    plan = Planner(VIENNA, SETTINGS).plan(targets, NIGHT, now=clock)
    assert plan.blocks, plan.excluded
    files = write_plan(plan, SETTINGS.ekos, workdir / "ekos", workdir / "frames", VIENNA.timezone)
    mark = len(kstars.log_text())
    kstars.set_clock(clock.astimezone(ZONE), scale=CLOCK_SCALE)
    assert kstars.load_schedule(files.schedule)
    kstars.start_scheduler()
    return files, mark


def wait_for_jobs(kstars: KStars, files: EkosFiles, mark: int, timeout: float) -> None:
    """Until every job is complete (or one is refused, which fails at once with Ekos' reason)."""
    deadline = time.monotonic() + timeout
    pending = [job.name for job in files.jobs]
    while pending:
        log = kstars.log_text()[mark:]
        refused = re.search(r"job '[^']+' (has|is) [^\n]*marking (invalid|aborted)[^\n]*", log, re.IGNORECASE)
        assert refused is None, f"Ekos refused a job: {refused[0] if refused else ''}"
        pending = [name for name in pending if f"Job '{name}' is complete" not in log]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"jobs {pending} not complete within {timeout:.0f} s; Ekos said:\n"
                + "\n".join(reversed(kstars.module_log(SCHEDULER_PATH, SCHEDULER)[:20]))
            )
        time.sleep(1)


def night_clock(moment: str) -> datetime:
    """A clock time of the test night: a few minutes before dusk, midnight, an hour before dawn."""
    dark = Planner(VIENNA, SETTINGS).plan([], NIGHT)
    assert dark.dark_start is not None and dark.dark_end is not None
    return {
        "before dusk": dark.dark_start - timedelta(minutes=3),
        "midnight": datetime(2026, 11, 22, 0, 30, tzinfo=ZONE),
        "an hour before dawn": dark.dark_end - timedelta(hours=1),
    }[moment]


@pytest.mark.parametrize("moment", ["before dusk", "midnight", "an hour before dawn"])
def test_every_job_takes_exactly_its_planned_frames_with_its_gain_offset_and_filter(kstars, indi, tmp_path, moment):
    clock = night_clock(moment)
    with CameraWatch(indi) as camera:
        files, mark = run_night_at(kstars, clock, targets_near_zenith(clock), tmp_path)
        try:
            assert [job.name for job in files.jobs] == ["First_Field", "Second_Field"]
            wait_for_jobs(kstars, files, mark, timeout=400)
            time.sleep(3)  # Ekos would start another round here if the completion condition asked for it
        finally:
            kstars.stop_scheduler()
            kstars.reset_clock()
    assert frames_by_job(files) == planned_by_job(files)
    assert camera.offsets == planned_offsets(files)


MESSIER = [
    ("M 31", 10.6848, 41.2691), ("M 33", 23.4621, 30.6599), ("NGC 7000", 314.8214, 44.5288),
    ("M 42", 83.8221, -5.3911), ("M 45", 56.8692, 24.1053), ("M 81", 148.8882, 69.0653),
    ("NGC 2244", 97.9875, 4.9417), ("M 13", 250.4235, 36.4613),
]  # fmt: skip


def test_every_plan_loads_at_its_planned_start_with_no_job_refused(kstars, tmp_path):
    """From before dusk to the last job before dawn: what the planner placed, Ekos accepts.

    At each clock time the plan is made from that time (as the MCP asks before it starts
    Ekos) and loaded with KStars' clock there; Ekos must schedule every job at its planned
    start and refuse none (its twilight, altitude, Moon, "in the past" and previous-sibling
    checks included).
    """
    targets = catalogue_targets(MESSIER, [ExposurePlan(filter="Red", exposure_s=300, count=40, gain=50)])
    settings = SchedulerConfig(max_block_min=20, ekos=SETTINGS.ekos)
    planner = Planner(VIENNA, settings)
    night_plan = planner.plan(targets, NIGHT)
    blocks = night_plan.blocks
    assert night_plan.dark_start is not None and night_plan.dark_end is not None and len(blocks) >= 8
    # the edges matter most: Ekos' own twilight (with its pre-dawn margin) refused the first and last jobs
    assert night_plan.dark_end - blocks[-1].start < timedelta(minutes=30), "the test wants a job near dawn"
    clocks = [night_plan.dark_start - timedelta(minutes=30), blocks[0].start, blocks[len(blocks) // 2].start]
    clocks += [block.start for block in blocks[-3:]]
    checked = 0
    for clock in clocks:
        plan = planner.plan(targets, NIGHT, now=clock)
        files = write_plan(plan, settings.ekos, tmp_path / "ekos", tmp_path / "frames", VIENNA.timezone)
        assert files.jobs, f"nothing planned from {clock}"
        mark = len(kstars.log_text())
        kstars.set_clock(clock.astimezone(ZONE))
        assert kstars.load_schedule(files.schedule)
        kstars.start_scheduler()
        try:
            for job in files.jobs:
                local = job.start.astimezone(ZONE).strftime("%d/%m %H:%M")
                scheduled = rf"Job '{job.name}' is scheduled to start at {local}"
                found = kstars.wait_for_log(rf"{scheduled}|[^\n]*marking (?:invalid|aborted)[^\n]*", 60, after=mark)
                assert "marking" not in found[0], f"at {clock.astimezone(ZONE):%H:%M} Ekos said: {found[0]}"
            checked += len(files.jobs)
        finally:
            kstars.stop_scheduler()
            kstars.call(SCHEDULER_PATH, SCHEDULER, "removeAllJobs")
    kstars.reset_clock()
    assert checked >= len(clocks)


def setting_ra(moment: datetime, dec: float, altitude: float) -> float:
    """The right ascension (degrees) of a star at ``dec`` that is setting through ``altitude`` at ``moment``."""
    lat = math.radians(VIENNA.latitude)
    d = math.radians(dec)
    cos_ha = (math.sin(math.radians(altitude)) - math.sin(lat) * math.sin(d)) / (math.cos(lat) * math.cos(d))
    hour_angle = math.degrees(math.acos(cos_ha))  # west of the meridian: setting
    return (zenith_ra(moment) - hour_angle) % 360.0


def test_a_first_job_whose_target_sets_early_is_stopped_and_the_night_goes_on_with_the_next(kstars, indi, tmp_path):
    """The first target sinks below Ekos' altitude limit long before its planned end (the sky was not as
    planned): Ekos stops that job, and the next job still starts at its planned time and takes all its frames."""
    clock = datetime(2026, 11, 22, 0, 30, tzinfo=ZONE)
    floor = 30.0  # the plan's
    ekos_floor = floor - SETTINGS.ekos.setting_altitude_cutoff - 1.0  # what Ekos is given
    # just high enough for Ekos to start it (its setting cutoff above its floor), and sinking
    start_altitude = ekos_floor + SETTINGS.ekos.setting_altitude_cutoff + 0.7
    setting = Target(
        id="setting",
        name="Setting Field",
        ra_deg=setting_ra(clock, 20.0, start_altitude),
        dec_deg=20.0,
        exposure_plans=[ExposurePlan(filter="Green", exposure_s=10, count=30)],
    )
    (high,) = [t for t in targets_near_zenith(clock) if t.id == "second"]
    first_end = clock + timedelta(minutes=30)  # its 30 frames fit; its target sinks out after ~25 minutes
    second_start = first_end + timedelta(seconds=SETTINGS.switch_gap_s)
    plan = Plan(
        night=NIGHT,
        blocks=[
            Block(setting, TargetConstraints(min_altitude=floor), clock, first_end,
                  [(setting.exposure_plans[0], 30)], start_altitude, ekos_floor, 0.0, 1.0),
            Block(high, TargetConstraints(min_altitude=floor), second_start, second_start + timedelta(minutes=3),
                  [(plan, plan.count) for plan in high.exposure_plans], 85.0, 84.0, 0.0, 1.0),
        ],
        excluded={}, dark_start=None, dark_end=None, dark_hours=10.0, filled_fraction=0.1, moon_illumination=0.5,
    )  # fmt: skip
    files = write_plan(plan, SETTINGS.ekos, tmp_path / "ekos", tmp_path / "frames", VIENNA.timezone)
    mark = len(kstars.log_text())
    kstars.set_clock(clock.astimezone(ZONE), scale=2 * CLOCK_SCALE)  # the target sinks faster, the wait is shorter
    assert kstars.load_schedule(files.schedule)
    kstars.start_scheduler()
    try:
        kstars.wait_for_log(r"Job 'Setting_Field' current altitude \([^)]*\) fails constraints", 300, after=mark)
        kstars.wait_for_log(r"Job 'Second_Field' is complete", 300, after=mark)
        time.sleep(3)
    finally:
        kstars.stop_scheduler()
        kstars.reset_clock()
    taken = frames_by_job(files)
    assert 0 < sum(taken["Setting_Field"].values()) < 30  # stopped when its target sank
    assert taken["Second_Field"] == planned_by_job(files)["Second_Field"]
