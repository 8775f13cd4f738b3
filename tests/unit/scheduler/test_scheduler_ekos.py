"""The Ekos .esl/.esq writer: structure, units, paths and the rules KStars 3.6 needs (see also the KStars test)."""

from __future__ import annotations

import locale
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from obsy.config import SchedulerConfig, SchedulerEkosConfig, SiteConfig
from obsy.messages import ExposurePlan, Target, TargetConstraints
from obsy_scheduler.ekos import ESQ_VERSION, job_name, number, write_plan
from obsy_scheduler.planner import Block, Plan, Planner

VIENNA = SiteConfig(name="Vienna", latitude=48.2, longitude=16.4, timezone="Europe/Vienna")
KNOWN_ESQ_TOP_LEVEL = {"CCD", "FilterWheel", "GuideDeviation", "Autofocus", "RefocusEveryN", "MeridianFlip", "Job"}


@pytest.fixture
def written(tmp_path):
    targets = [
        Target(
            id="m31",
            name="M 31",
            ra_deg=10.6848,
            dec_deg=41.2691,
            exposure_plans=[
                ExposurePlan(filter="Red", exposure_s=120.5, count=10, gain=100, offset=12),
                ExposurePlan(exposure_s=60, count=5, binning=2),
            ],
        ),
        Target(
            id="m42",
            name="M42 / Orion",
            ra_deg=83.8221,
            dec_deg=-5.3911,
            constraints={"moon_avoidance_distance": 60, "moon_avoidance_width": 7},
            exposure_plans=[ExposurePlan(filter="Green", exposure_s=300, count=30)],
        ),
    ]
    settings = SchedulerConfig(max_block_min=60)
    plan = Planner(VIENNA, settings).plan(targets, date(2026, 11, 21))
    files = write_plan(plan, settings.ekos, tmp_path / "out", tmp_path / "frames", VIENNA.timezone)
    return plan, files, settings


def test_schedule_lists_jobs_in_plan_order_with_hours_and_degrees(written):
    plan, files, _ = written
    root = ET.fromstring(files.schedule.read_bytes())
    assert root.tag == "SchedulerList" and root.get("version") == "1.6"
    assert root.findtext("Profile") == "Simulators"
    jobs = root.findall("Job")
    assert [j.findtext("Name") for j in jobs] == [job.name for job in files.jobs]
    assert sum(len(job.blocks) for job in files.jobs) == len(plan.blocks)
    m31 = next(j for j in jobs if j.findtext("Name") == "M_31")
    assert float(m31.findtext("Coordinates/J2000RA")) == pytest.approx(10.6848 / 15)
    assert float(m31.findtext("Coordinates/J2000DE")) == pytest.approx(41.2691)
    sequence = m31.findtext("Sequence")
    assert sequence.startswith("/") and sequence.endswith("M_31.esq")
    assert (files.schedule.parent / "M_31.esq").exists()
    constraints = {c.text: c.get("value") for c in m31.findall("Constraints/Constraint")}
    # 30° planned: a degree looser (Ekos refuses edges by a hair), and 3° more for Ekos' setting altitude cutoff
    assert constraints["MinimumAltitude"] == "26"
    assert "EnforceWeather" in constraints
    # Ekos' own twilight (its almanac, user offsets, a pre-dawn margin) refuses the plan's first and last jobs
    assert "EnforceTwilight" not in constraints
    steps = [s.text for s in m31.findall("Steps/Step")]
    assert steps == ["Track"]
    assert [p.text for p in root.findall("StartupProcedure/Procedure")] == ["UnparkMount"]
    assert [p.text for p in root.findall("ShutdownProcedure/Procedure")] == ["ParkMount"]


def test_jobs_start_at_their_planned_time_and_end_with_their_planned_frames(written):
    """ "At" a fixed end Ekos repeats the sequence until then: many more frames than planned."""
    _, files, _ = written
    root = ET.fromstring(files.schedule.read_bytes())
    for job, element in zip(files.jobs, root.findall("Job"), strict=True):
        start = element.find("StartupCondition/Condition")
        assert start.text == "At"
        assert datetime.fromisoformat(start.get("value")) == job.blocks[0].start.replace(microsecond=0)
        assert start.get("value").endswith("+01:00")  # site time, November in Vienna
        assert element.findtext("CompletionCondition/Condition") == "Sequence"


def test_at_completion_carries_the_planned_end(tmp_path):
    target = Target(
        id="a", name="A", ra_deg=10.68, dec_deg=41.27, exposure_plans=[ExposurePlan(exposure_s=60, count=3)]
    )
    settings = SchedulerConfig(ekos=SchedulerEkosConfig(completion="at"))
    plan = Planner(VIENNA, settings).plan([target], date(2026, 11, 21))
    files = write_plan(plan, settings.ekos, tmp_path, tmp_path / "frames", VIENNA.timezone)
    end = ET.fromstring(files.schedule.read_bytes()).find("Job/CompletionCondition/Condition")
    assert end.text == "At"
    assert datetime.fromisoformat(end.get("value")) == files.jobs[0].end.replace(microsecond=0)


def test_lorentzian_target_gets_its_moon_separation(written):
    _, files, _ = written
    root = ET.fromstring(files.schedule.read_bytes())
    orion = [j for j in root.findall("Job") if j.findtext("Name") == "M42_Orion"]
    assert orion
    for job in orion:
        values = {c.text: c.get("value") for c in job.findall("Constraints/Constraint")}
        assert 30 < float(values["MoonSeparation"]) <= 60  # ~58° two days before full Moon, width 7 days


def test_sequence_has_every_plan_with_filter_binning_gain_and_absolute_directory(written):
    plan, files, settings = written
    (job,) = [j for j in files.jobs if j.target.id == "m31"]  # M31 gets one stretch of the night
    root = ET.fromstring(job.sequence.read_bytes())
    assert root.tag == "SequenceQueue" and root.get("version") == ESQ_VERSION
    assert {child.tag for child in root} <= KNOWN_ESQ_TOP_LEVEL
    assert root.findtext("CCD") == "CCD Simulator" and root.findtext("FilterWheel") == "CCD Simulator"
    jobs = root.findall("Job")
    planned = {}
    for block in plan.blocks:
        if block.target.id == "m31":
            for p, n in block.exposures:
                planned[p.exposure_s] = planned.get(p.exposure_s, 0) + n
    assert [float(j.findtext("Exposure")) for j in jobs] == list(planned)
    assert [int(j.findtext("Count")) for j in jobs] == list(planned.values())
    red, lum = jobs
    assert red.findtext("Filter") == "Red"
    # KStars 3.6 reads gain and offset only from the camera's INDI properties saved with the job,
    # CCD_GAIN/CCD_OFFSET or CCD_CONTROLS, whichever the connected camera has
    properties = {
        (vector.get("name"), element.get("name")): element.text
        for vector in red.findall("Properties/PropertyVector")
        for element in vector.findall("OneElement")
    }
    assert properties == {
        ("CCD_GAIN", "GAIN"): "100",
        ("CCD_OFFSET", "OFFSET"): "12",
        ("CCD_CONTROLS", "Gain"): "100",
        ("CCD_CONTROLS", "Offset"): "12",
    }
    assert red.find("Gain") is None and red.find("Offset") is None  # not read by KStars 3.6
    assert lum.find("Properties") is None  # no gain or offset planned: the camera's stay
    assert red.findtext("Exposure") == "120.5"
    # a plan without a filter gets the default filter: with a wheel, a filterless job never completes
    assert lum.findtext("Filter") == settings.ekos.default_filter
    assert lum.findtext("Binning/X") == "2" and lum.findtext("Binning/Y") == "2"
    assert red.findtext("Type") == "Light"
    assert red.findtext("Prefix/RawPrefix") == "M_31"
    directory = red.findtext("FITSDirectory")
    assert directory == str(files.fits_dir) and directory.startswith("/")
    assert files.fits_dir.parent.name == "2026-11-21" and files.fits_dir.name == files.schedule.parent.name


def test_files_are_compact_xml(written):
    _, files, _ = written
    for path in [files.schedule, *files.sequence_paths()]:
        text = path.read_text()
        header, body = text.split("\n", 1)
        assert header == '<?xml version="1.0" encoding="UTF-8"?>'
        assert not re.search(r">\s+<", body), path


def test_numbers_use_a_decimal_point_whatever_the_locale():
    for name in ("de_DE.UTF-8", "fr_FR.UTF-8", "C.UTF-8"):
        try:
            locale.setlocale(locale.LC_NUMERIC, name)
        except locale.Error:
            continue
        try:
            assert number(12.5) == "12.5"
            assert number(0.71232) == "0.71232"
            assert number(-5.3911) == "-5.3911"
            assert number(-0.0000001) == "0"
            assert number(300) == "300"
        finally:
            locale.setlocale(locale.LC_NUMERIC, "C")


def test_camera_without_filter_wheel_writes_no_filter(tmp_path):
    target = Target(
        id="a", name="A", ra_deg=10.68, dec_deg=41.27, exposure_plans=[ExposurePlan(exposure_s=60, count=3)]
    )
    settings = SchedulerConfig(ekos=SchedulerEkosConfig(filter_wheel=None, startup="asap", completion="sequence"))
    plan = Planner(VIENNA, settings).plan([target], date(2026, 11, 21))
    files = write_plan(plan, settings.ekos, tmp_path, tmp_path / "frames", VIENNA.timezone)
    sequence = ET.fromstring(files.jobs[0].sequence.read_bytes())
    assert sequence.find("FilterWheel") is None and sequence.find("Job/Filter") is None
    job = ET.fromstring(files.schedule.read_bytes()).find("Job")
    assert job.findtext("StartupCondition/Condition") == "ASAP"
    assert job.findtext("CompletionCondition/Condition") == "Sequence"


def test_job_names_are_safe_directory_names():
    assert job_name("M 31") == "M_31"
    assert job_name("  NGC 7000 / North America ") == "NGC_7000_North_America"
    assert job_name("../../etc") == "etc"
    assert job_name("???") == "target"


def test_repeat_completion_carries_the_count(tmp_path):
    target = Target(
        id="a", name="A", ra_deg=10.68, dec_deg=41.27, exposure_plans=[ExposurePlan(exposure_s=60, count=3)]
    )
    settings = SchedulerConfig(ekos=SchedulerEkosConfig(completion="repeat", repeats=4))
    plan = Planner(VIENNA, settings).plan([target], date(2026, 11, 21))
    files = write_plan(plan, settings.ekos, tmp_path, tmp_path / "frames", VIENNA.timezone)
    condition = ET.fromstring(files.schedule.read_bytes()).find("Job/CompletionCondition/Condition")
    assert (condition.text, condition.get("value")) == ("Repeat", "4")


def test_a_target_coming_back_gets_its_own_job_and_sequence(tmp_path):
    """Ekos estimates a job from its sequence: each job holds only its own frames."""
    red = ExposurePlan(filter="Red", exposure_s=300, count=40)
    green = ExposurePlan(filter="Green", exposure_s=300, count=40)
    alpha = Target(id="a", name="Alpha", ra_deg=40.0, dec_deg=80.0, exposure_plans=[red])
    beta = Target(id="b", name="Beta", ra_deg=42.0, dec_deg=80.0, exposure_plans=[green])
    start = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)

    def block(target, plan, begin_min, frames):
        begin = start + timedelta(minutes=begin_min)
        return Block(target, TargetConstraints(min_altitude=30), begin, begin + timedelta(minutes=5 * frames + 2),
                     [(plan, frames)], 50.0, 45.0, 0.0, 0.5)  # fmt: skip

    blocks = [
        block(alpha, red, 0, 6),
        block(alpha, red, 33, 4),  # back to back with the first: the same job
        block(beta, green, 60, 5),
        block(alpha, red, 95, 3),  # Alpha again later: a job of its own
    ]
    plan = Plan(date(2026, 11, 21), blocks, {}, None, None, 10.0, 0.5, 0.9)
    files = write_plan(plan, SchedulerEkosConfig(), tmp_path, tmp_path / "frames", VIENNA.timezone)
    assert [(job.key, len(job.blocks)) for job in files.jobs] == [("Alpha", 2), ("Beta", 1), ("Alpha_2", 1)]
    # Alpha again is Alpha to Ekos (its frames' OBJECT), its frames in a folder of their own
    assert [job.name for job in files.jobs] == ["Alpha", "Beta", "Alpha"]
    assert [job.sequence.name for job in files.jobs] == ["Alpha.esq", "Beta.esq", "Alpha_2.esq"]
    assert [j.findtext("Name") for j in ET.fromstring(files.schedule.read_bytes()).findall("Job")] == [
        "Alpha", "Beta", "Alpha"
    ]  # fmt: skip
    directories = [ET.fromstring(job.sequence.read_bytes()).findtext("Job/FITSDirectory") for job in files.jobs]
    assert directories == [str(files.fits_dir)] * 2 + [str(files.fits_dir / "Alpha_2")]
    assert files.jobs[2].frames_dir == files.fits_dir / "Alpha_2" / "Alpha"
    counts = [sum(int(c.text) for c in ET.fromstring(job.sequence.read_bytes()).iter("Count")) for job in files.jobs]
    assert counts == [10, 5, 3]
    assert [ET.fromstring(j.sequence.read_bytes()).findtext("Job/Prefix/RawPrefix") for j in files.jobs] == [
        "Alpha", "Beta", "Alpha"
    ]  # fmt: skip
    assert files.block_sequences() == [files.jobs[0].sequence] * 2 + [files.jobs[1].sequence, files.jobs[2].sequence]


def test_every_write_is_a_new_run_and_leaves_the_earlier_files_untouched(tmp_path):
    """Ekos reads a job's .esq when the job starts: a re-plan must not change the files of a running schedule."""
    target = Target(
        id="a", name="A", ra_deg=10.68, dec_deg=41.27, exposure_plans=[ExposurePlan(exposure_s=60, count=3)]
    )
    settings = SchedulerConfig()
    plan = Planner(VIENNA, settings).plan([target], date(2026, 11, 21))
    moment = datetime(2026, 11, 21, 17, 30, 5, tzinfo=UTC)
    first = write_plan(plan, settings.ekos, tmp_path / "out", tmp_path / "frames", VIENNA.timezone, written_at=moment)
    before = {path: path.read_bytes() for path in first.schedule.parent.iterdir()}
    target.exposure_plans[0].count = 7
    replanned = Planner(VIENNA, settings).plan([target], date(2026, 11, 21))
    second = write_plan(
        replanned, settings.ekos, tmp_path / "out", tmp_path / "frames", VIENNA.timezone, written_at=moment
    )
    assert first.schedule.parent.name == "183005"  # site time of writing
    assert second.schedule.parent.name == "183005-2"
    assert {path: path.read_bytes() for path in first.schedule.parent.iterdir()} == before
    assert second.fits_dir != first.fits_dir  # Ekos counts frames already there as done: each run starts empty
    assert ET.fromstring(second.jobs[0].sequence.read_bytes()).findtext("Job/Count") == "7"


def test_old_nights_of_ekos_files_are_removed_and_nothing_else(tmp_path):
    from obsy.kstars.runs import keep_run
    from obsy_scheduler.ekos import prune_old_nights

    settings = SchedulerConfig()
    target = Target(
        id="m31", name="M 31", ra_deg=10.68, dec_deg=41.27, exposure_plans=[ExposurePlan(exposure_s=60, count=5)]
    )
    out = tmp_path / "ekos"
    for night in (date(2026, 11, 1), date(2026, 11, 7), date(2026, 11, 8), date(2026, 11, 21)):
        plan = Planner(VIENNA, settings).plan([target], night)
        files = write_plan(plan, settings.ekos, out, tmp_path / "frames", VIENNA.timezone)
        keep_run(files.schedule, "written for plan request r1")  # kept all night, not for ever
    mine = out / "2026-10-30" / "notes.txt"  # a person's file among the night folders
    mine.parent.mkdir()
    mine.write_text("keep me")
    (out / "not-a-night").mkdir()

    removed = prune_old_nights(out, date(2026, 11, 21), keep_nights=14)  # keeps 2026-11-08 onwards

    assert [folder.name for folder in removed] == ["2026-11-01", "2026-11-07"]
    assert sorted(p.name for p in out.iterdir()) == ["2026-10-30", "2026-11-08", "2026-11-21", "not-a-night"]
    assert mine.read_text() == "keep me"
    assert prune_old_nights(out, date(2026, 11, 21), keep_nights=14) == []


def _calibration_jobs(tmp_path, **calibration):
    from obsy.config import SchedulerCalibrationConfig
    from obsy.messages import FrameType

    plans = [
        ExposurePlan(filter="Red", exposure_s=60, count=2),
        ExposurePlan(filter="Red", exposure_s=60, count=2, frame_type=FrameType.DARK),
        ExposurePlan(filter="Red", exposure_s=0.001, count=2, frame_type=FrameType.BIAS),
        ExposurePlan(filter="Red", exposure_s=2, count=2, frame_type=FrameType.FLAT),
    ]
    target = Target(id="a", name="A", ra_deg=10.68, dec_deg=41.27, exposure_plans=plans)
    settings = SchedulerConfig(ekos=SchedulerEkosConfig(calibration=SchedulerCalibrationConfig(**calibration)))
    plan = Planner(VIENNA, settings).plan([target], date(2026, 11, 21))
    assert plan.blocks, plan.excluded
    files = write_plan(plan, settings.ekos, tmp_path, tmp_path / "frames", VIENNA.timezone)
    jobs = ET.fromstring(files.jobs[0].sequence.read_bytes()).findall("Job")
    return {job.findtext("Type"): job.find("Calibration") for job in jobs}


def test_calibration_with_a_shutter_camera_and_a_flat_panel(tmp_path):
    """Darks: the shutter (Manual: Ekos asks nobody once KStars knows the camera has one); flats: the panel."""
    jobs = _calibration_jobs(tmp_path, camera_shutter=True, flat_source="panel", flat_adu=25000, park_dome=True)
    assert jobs["Dark"].findtext("FlatSource/Type") == "Manual"
    assert jobs["Bias"].findtext("FlatSource/Type") == "Manual"
    assert jobs["Light"].findtext("FlatSource/Type") == "FlatCap"  # the panel's light off before lights
    flat = jobs["Flat"]
    assert flat.findtext("FlatSource/Type") == "FlatCap"
    assert flat.find("FlatDuration").get("dark") == "false"
    assert flat.findtext("FlatDuration/Type") == "ADU"
    assert flat.findtext("FlatDuration/Value") == "25000" and flat.findtext("FlatDuration/Tolerance") == "1000"
    assert flat.findtext("PreMountPark") == "False" and flat.findtext("PreDomePark") == "True"
    assert jobs["Light"].findtext("FlatDuration/Type") == "Manual"
    assert jobs["Light"].findtext("PreDomePark") == "False"  # parking is for flats only


def test_calibration_with_a_dust_cap_and_a_wall(tmp_path):
    jobs = _calibration_jobs(tmp_path, dust_cap=True, flat_source="wall", wall_az=120.5, wall_alt=5, park_mount=True)
    assert jobs["Dark"].findtext("FlatSource/Type") == "DarkCap"  # Ekos closes the cap (and its light off)
    assert jobs["Bias"].findtext("FlatSource/Type") == "DarkCap"
    assert jobs["Light"].findtext("FlatSource/Type") == "DarkCap"  # and opens it again before lights
    flat = jobs["Flat"]
    assert flat.findtext("FlatSource/Type") == "Wall"
    assert flat.findtext("FlatSource/Az") == "120.5" and flat.findtext("FlatSource/Alt") == "5"
    assert flat.findtext("FlatDuration/Type") == "Manual"  # the plan's exposure
    assert flat.findtext("PreMountPark") == "False"  # Ekos never parks before wall flats: it points at the wall


def test_calibration_with_a_cap_that_is_a_flat_panel(tmp_path):
    jobs = _calibration_jobs(tmp_path, dust_cap=True, flat_source="panel")
    assert {t: c.findtext("FlatSource/Type") for t, c in jobs.items()} == dict.fromkeys(jobs, "FlatCap")


def test_a_nights_older_unkept_runs_are_removed_and_nothing_else(tmp_path):
    from obsy.kstars.runs import keep_run
    from obsy_scheduler.ekos import prune_runs

    night = tmp_path / "2026-11-21"
    names = ["180000", "200000", "200000-2", "233000", "001500", "013000"]  # written in this order
    for name in names:
        (night / name).mkdir(parents=True)
        (night / name / "obsy-2026-11-21.esl").write_text("<SchedulerList/>")
        (night / name / "M_31.esq").write_text("<SequenceQueue/>")
    keep_run(night / "180000" / "obsy-2026-11-21.esl", "written for plan request r1")
    (night / "200000" / "notes.txt").write_text("a person's file keeps its run")
    (night / "not-a-run").mkdir()

    removed = prune_runs(night, keep_runs=2)

    assert [run.name for run in removed] == ["200000-2", "233000"]  # oldest first; past midnight is newer
    assert sorted(p.name for p in night.iterdir()) == ["001500", "013000", "180000", "200000", "not-a-run"]
    assert prune_runs(night, keep_runs=2) == []
    assert prune_runs(tmp_path / "2026-11-22", keep_runs=2) == []  # no folder for the night yet
