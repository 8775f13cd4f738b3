"""Ekos schedule (.esl) and capture sequence (.esq) files for a planned night.

The format is what KStars 3.6 reads (its Scheduler::loadScheduler and
Capture::loadSequenceQueue):

- compact XML (no whitespace between elements), parsed by INDI's LilXML;
- numbers in the C locale (a dot as decimal separator), whatever the system locale;
- J2000 RA in decimal *hours*, Dec in decimal degrees;
- ``<Sequence>`` holds an absolute path (KStars resolves a relative one against its own
  working directory, not the .esl's);
- in a .esq every top-level element KStars does not know is read as a capture job, so
  only known elements are written.

Ekos stores frames under ``FITSDirectory/<job name>/<frame type>/<filter>`` and, to decide
whether a job is complete, counts the files there; a job with no filter on a camera
with a filter wheel never counts as complete. So every Light job gets a filter (the
configured ``default_filter`` when the plan names none, if there is a wheel), and the
FITSDirectory is one directory per written set of files (a "run", see :func:`write_plan`),
so that the counts in its sequences (the frames planned) start from zero.

Ekos writes the job's name, its underscores turned to blanks, into the frames' OBJECT: the name
is the target's (:func:`job_name`) for every job of the target, so that every frame names it.
A target that comes back later in the night (a time series' next visit) gets the same name and
a FITSDirectory of its own (``<run>/<name>_2``...), where Ekos counts its frames from zero.

Each job starts "At" its planned time (in the site's time zone with its UTC offset) and
is complete when its sequence is ("Sequence"): Ekos then takes exactly the planned
frames and goes on with the next job. (An "At" completion makes Ekos repeat the
sequence until that time.)

A time series' visit always starts "At" its planned time and ends with its sequence. An
exoplanet transit's job (a block with ``transit``) starts "At" its planned time and ends "At"
its planned end, whatever ``startup`` and ``completion`` say: its start and end are fixed by
the planet, and Ekos takes frames (repeating the sequence if it runs short) until the window
is over, however quick the camera turns out to be.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from obsy.files import write_atomic
from obsy.kstars.runs import KEEP_MARKER, is_kept
from obsy.messages import ExposurePlan, FrameType, Target
from obsy_scheduler.calibration import flat_source
from obsy_scheduler.config import SchedulerCalibrationConfig, SchedulerEkosConfig
from obsy_scheduler.planner import Block, Plan

ESL_VERSION = "1.6"
ESQ_VERSION = "2.5"
#: Blocks of one target closer than this become one Ekos job.
MERGE_GAP = timedelta(minutes=5)
#: How much looser than the plan the altitude and Moon limits handed to Ekos are.
CONSTRAINT_TOLERANCE_DEG = 1.0


@dataclass
class EkosJob:
    """One Ekos scheduler job: back-to-back blocks of one target, with its own sequence."""

    name: str  # Ekos' name of the job: its target's (the frames' OBJECT, their directory)
    blocks: list[Block]
    sequence: Path
    key: str = ""  # unique in the night: the name, then <name>_2, _3... for a target that comes back
    fits_dir: Path | None = None  # the sequence's FITSDirectory (Ekos adds the name below it)

    def __post_init__(self) -> None:
        self.key = self.key or self.name

    @property
    def frames_dir(self) -> Path | None:
        """Where Ekos writes the job's frames (under ``<frame type>/`` there)."""
        return None if self.fits_dir is None else self.fits_dir / self.name

    @property
    def target(self) -> Target:
        return self.blocks[0].target

    @property
    def start(self) -> datetime:
        return self.blocks[0].start

    @property
    def end(self) -> datetime:
        return self.blocks[-1].end

    @property
    def transit(self) -> bool:
        """The job observes an exoplanet transit: a fixed start and exactly its frames."""
        return self.blocks[0].transit is not None

    @property
    def fixed(self) -> bool:
        """A transit or a time series' visit: it starts "At" its time and takes exactly its frames."""
        return self.transit or self.blocks[0].time_series

    @property
    def required_moon_separation(self) -> float:
        return max(b.required_moon_separation for b in self.blocks)

    def exposures(self) -> list[tuple[ExposurePlan, int]]:
        """Frames per exposure plan over the job's blocks, in plan order."""
        totals: dict[int, list] = {}
        for block in self.blocks:
            for plan, count in block.exposures:
                totals.setdefault(id(plan), [plan, 0])[1] += count
        return [(plan, count) for plan, count in totals.values()]


@dataclass
class EkosFiles:
    schedule: Path
    jobs: list[EkosJob] = field(default_factory=list)
    fits_dir: Path | None = None

    def sequence_paths(self) -> list[Path]:
        return [job.sequence for job in self.jobs]

    def block_sequences(self) -> list[Path]:
        """The sequence of every block of the plan, in plan order."""
        return [job.sequence for job in self.jobs for _ in job.blocks]


def job_name(name: str) -> str:
    """A target name Ekos can use as a directory name: letters, digits, '-', '_' and '.'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("_.")
    return cleaned or "target"


def number(value: float) -> str:
    """A number as the C locale writes it (never a decimal comma, no exponent for normal values)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def _element(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attributes)
    if text is not None:
        child.text = text
    return child


def _serialise(root: ET.Element) -> bytes:
    """Compact XML with the declaration KStars writes."""
    body = ET.tostring(root, encoding="unicode", short_empty_elements=False)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


# --------------------------------------------------------------------------- sequences

#: Where INDI cameras keep gain and offset: (property, gain element, offset element).
#: KStars 3.6 reads a job's gain and offset only from its ``<Properties>`` (the camera's
#: own INDI properties, saved with the job), taking the pair the connected camera has:
#: CCD_GAIN/CCD_OFFSET (the CCD simulator, QHY, Atik...) or CCD_CONTROLS (ZWO, ToupTek...).
#: Both are written, so the file fits either kind of camera.
GAIN_PROPERTIES = (("CCD_GAIN", "GAIN", None), ("CCD_OFFSET", None, "OFFSET"), ("CCD_CONTROLS", "Gain", "Offset"))


def _camera_properties(job: ET.Element, plan: ExposurePlan) -> None:
    """Gain and offset as INDI property vectors, the only place KStars 3.6 reads them from."""
    vectors = []
    for vector, gain_element, offset_element in GAIN_PROPERTIES:
        elements = [
            (element, value)
            for element, value in ((gain_element, plan.gain), (offset_element, plan.offset))
            if element is not None and value is not None
        ]
        if elements:
            vectors.append((vector, elements))
    if not vectors:
        return
    properties = _element(job, "Properties")
    for vector, elements in vectors:
        vector_element = _element(properties, "PropertyVector", name=vector)
        for element, value in elements:
            _element(vector_element, "OneElement", number(value), name=element)


def sequence_xml(
    name: str, exposures: list[tuple[ExposurePlan, int]], fits_dir: Path, ekos: SchedulerEkosConfig
) -> bytes:
    """A SequenceQueue: one capture job per exposure plan, ``count`` frames each."""
    root = ET.Element("SequenceQueue", version=ESQ_VERSION)
    _element(root, "CCD", ekos.camera)
    if ekos.filter_wheel:
        _element(root, "FilterWheel", ekos.filter_wheel)
    _element(root, "GuideDeviation", "2", enabled="false")
    _element(root, "Autofocus", "0", enabled="false")
    _element(root, "RefocusEveryN", "60", enabled="false")
    _element(root, "MeridianFlip", "0", enabled="false")
    prefix = job_name(name)
    for plan, count in exposures:
        job = _element(root, "Job")
        _element(job, "Exposure", number(plan.exposure_s))
        _element(job, "Format", "Mono")
        _element(job, "Encoding", "FITS")
        binning = _element(job, "Binning")
        _element(binning, "X", str(plan.binning))
        _element(binning, "Y", str(plan.binning))
        _element(job, "Temperature", "0", force="false")
        frame_filter = plan.filter or (ekos.default_filter if ekos.filter_wheel else None)
        if frame_filter and ekos.filter_wheel:
            _element(job, "Filter", frame_filter)
        _element(job, "Type", plan.frame_type.value)
        prefix_el = _element(job, "Prefix")
        _element(prefix_el, "RawPrefix", prefix)
        _element(prefix_el, "FilterEnabled", "1" if ekos.filter_wheel else "0")
        _element(prefix_el, "ExpEnabled", "0")
        _element(prefix_el, "TimeStampEnabled", "0")
        _element(job, "Count", str(count))
        _element(job, "Delay", "0")
        _element(job, "FITSDirectory", str(fits_dir))
        _element(job, "UploadMode", "0")
        _camera_properties(job, plan)
        _calibration(job, plan.frame_type, ekos.calibration)
    return _serialise(root)


def _calibration(job: ET.Element, frame_type: FrameType, settings: SchedulerCalibrationConfig) -> None:
    """How Ekos prepares the frame: the dust cap, the flat light, the flat exposure, parking.

    The elements KStars 3.6 reads (``SequenceJob``, format 2.5): ``FlatSource/Type``
    (``Manual``, ``FlatCap``, ``DarkCap``, ``Wall`` with ``Az``/``Alt``; anything else is
    dawn/dusk), ``FlatDuration`` (``dark`` attribute: dark flats; ``Type`` ``Manual``, or
    ``Value``/``Tolerance``: a target ADU), ``PreMountPark``, ``PreDomePark``.
    """
    calibration = _element(job, "Calibration")
    source_type = flat_source(frame_type, settings)
    source = _element(calibration, "FlatSource")
    _element(source, "Type", source_type)
    if source_type == "Wall":
        _element(source, "Az", number(settings.wall_az))
        _element(source, "Alt", number(settings.wall_alt))
    duration = _element(calibration, "FlatDuration", dark="false")
    if frame_type is FrameType.FLAT and settings.flat_adu is not None:
        _element(duration, "Type", "ADU")
        _element(duration, "Value", number(settings.flat_adu))
        _element(duration, "Tolerance", number(settings.flat_adu_tolerance))
    else:
        _element(duration, "Type", "Manual")
    flat = frame_type is FrameType.FLAT
    _element(calibration, "PreMountPark", "True" if flat and settings.park_mount and source_type != "Wall" else "False")
    _element(calibration, "PreDomePark", "True" if flat and settings.park_dome else "False")


# --------------------------------------------------------------------------- schedule


def _when(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def plan_jobs(blocks: list[Block], directory: Path, gap: timedelta = MERGE_GAP) -> list[EkosJob]:
    """The plan's blocks as Ekos jobs, each with its own sequence file in ``directory``.

    Back-to-back blocks of one target become one job (the planner re-decides every
    ``max_block_min``). A target that comes back later in the night gets a new job of the
    same name (the frames' OBJECT), keyed ``<name>_2``, ``_3``... (its sequence file and, in
    :func:`write_plan`, its own FITSDirectory): Ekos estimates a job's duration from its
    sequence and counts its frames in its directory, so every job must hold only its own
    frames, or Ekos overestimates it and rejects the job after it as unachievable.
    """
    groups: list[list[Block]] = []
    for block in blocks:
        joins = groups and groups[-1][-1].target.id == block.target.id and block.start - groups[-1][-1].end <= gap
        fixed = block.transit is not None or block.time_series
        before = groups[-1][-1] if groups else None
        if joins and not fixed and before is not None and before.transit is None and not before.time_series:
            groups[-1].append(block)
        else:
            groups.append([block])
    used: set[str] = set()
    names: dict[str, str] = {}  # job name -> target id
    occurrences: dict[str, int] = defaultdict(int)
    jobs = []
    for group in groups:
        target = group[0].target
        occurrences[target.id] += 1
        name = job_name(target.name)
        while name in names and names[name] != target.id:  # another target whose name cleans to the same
            name += "_"
        names[name] = target.id
        key = name if occurrences[target.id] == 1 else f"{name}_{occurrences[target.id]}"
        while key in used:
            key += "_"
        used.add(key)
        jobs.append(EkosJob(name, group, directory / f"{key}.esq", key))
    return jobs


def _constraints(parent: ET.Element, job: EkosJob, ekos: SchedulerEkosConfig) -> None:
    """The constraints Ekos itself checks while a job runs: a safety net behind the plan.

    They are written ``CONSTRAINT_TOLERANCE_DEG`` looser than the plan's, because Ekos
    refuses a job with a fixed start where its own figures fall short by a hair (and stops
    a running one there): the plan puts blocks right up to its limits. The minimum
    altitude is lower still by Ekos' setting altitude cutoff: Ekos refuses a fixed start of
    a *setting* target less than that cutoff above the minimum. Twilight is not
    written (Ekos's twilight is its own almanac with user offsets and a pre-dawn margin,
    and refuses the first and last job of a plan); the planner keeps every job in the
    target's darkness and the MCP closes the roof when the Sun rises.
    """
    constraints = job.blocks[0].constraints
    floor = (constraints.min_altitude or 0.0) - ekos.setting_altitude_cutoff - CONSTRAINT_TOLERANCE_DEG
    if floor > 0:
        _element(parent, "Constraint", "MinimumAltitude", value=number(floor))
    separation = round(job.required_moon_separation - CONSTRAINT_TOLERANCE_DEG, 1)
    if separation > 0:
        _element(parent, "Constraint", "MoonSeparation", value=number(separation))
    if ekos.enforce_weather:
        _element(parent, "Constraint", "EnforceWeather")


def schedule_xml(jobs: list[EkosJob], ekos: SchedulerEkosConfig, zone: ZoneInfo) -> bytes:
    """A SchedulerList with the jobs in plan order."""
    root = ET.Element("SchedulerList", version=ESL_VERSION)
    _element(root, "Profile", ekos.profile)
    for job in jobs:
        element = _element(root, "Job")
        _element(element, "Name", job.name)
        coordinates = _element(element, "Coordinates")
        _element(coordinates, "J2000RA", number(job.target.ra_deg / 15.0))
        _element(coordinates, "J2000DE", number(job.target.dec_deg))
        _element(element, "Sequence", str(job.sequence))
        startup = _element(element, "StartupCondition")
        if ekos.startup == "at" or job.fixed:
            _element(startup, "Condition", "At", value=_when(job.start, zone))
        else:
            _element(startup, "Condition", "ASAP")
        _constraints(_element(element, "Constraints"), job, ekos)
        completion = _element(element, "CompletionCondition")
        if job.transit:
            _element(completion, "Condition", "At", value=_when(job.end, zone))
        elif job.fixed:
            _element(completion, "Condition", "Sequence")
        elif ekos.completion == "at":
            _element(completion, "Condition", "At", value=_when(job.end, zone))
        elif ekos.completion == "repeat":
            _element(completion, "Condition", "Repeat", value=str(ekos.repeats))
        else:
            _element(completion, "Condition", "Sequence")
        steps = _element(element, "Steps")
        for step in ekos.steps:
            _element(steps, "Step", step)
    startup_procedure = _element(root, "StartupProcedure")
    for procedure in ekos.startup_procedure:
        _element(startup_procedure, "Procedure", procedure)
    shutdown_procedure = _element(root, "ShutdownProcedure")
    for procedure in ekos.shutdown_procedure:
        _element(shutdown_procedure, "Procedure", procedure)
    return _serialise(root)


def write_plan(
    plan: Plan,
    ekos: SchedulerEkosConfig,
    output_dir: Path,
    fits_root: Path,
    timezone: str,
    *,
    written_at: datetime | None = None,
) -> EkosFiles:
    """Write the plan's .esq files (one per job) and its .esl into a new run directory.

    Every call writes a new set, ``<output_dir>/<night>/<run>/``, and never touches an
    earlier one: Ekos reads a job's .esq when the job starts, so a set it is running must
    not change under it. Its frames go to ``<fits_root>/<night>/<run>/``: Ekos counts the
    frames already in a job's directory as done, so each set starts from zero and takes
    exactly the frames it asks for (a target's later jobs in the night each in ``<run>/<key>/``,
    :func:`plan_jobs`). ``<run>`` is the site time of writing (``HHMMSS``).
    Paths are absolute; files are replaced atomically, so Ekos never reads half a file.
    The night's runs that Ekos cannot be running go later (:func:`prune_runs`).
    """
    night = plan.night.isoformat()
    zone = ZoneInfo(timezone)
    run = run_name(output_dir.expanduser().absolute() / night, written_at or datetime.now(zone), zone)
    directory = output_dir.expanduser().absolute() / night / run
    directory.mkdir(parents=True)
    fits_dir = fits_root.expanduser().absolute() / night / run
    jobs = plan_jobs(plan.blocks, directory)
    for job in jobs:
        job.fits_dir = fits_dir if job.key == job.name else fits_dir / job.key
        exposures = [(p, n) for p, n in job.exposures() if n]
        write_atomic(job.sequence, sequence_xml(job.name, exposures, job.fits_dir, ekos))
    schedule = directory / f"obsy-{night}.esl"
    write_atomic(schedule, schedule_xml(jobs, ekos, zone))
    return EkosFiles(schedule, jobs, fits_dir)


def prune_old_nights(output_dir: Path, night: date, keep_nights: int) -> list[Path]:
    """Remove the night folders of Ekos files older than ``keep_nights`` nights before ``night``.

    Only folders named as a night (``YYYY-MM-DD``) that hold nothing but run folders of .esl
    and .esq files (and their keep markers) are removed; anything else in ``output_dir`` is left alone. The frames are
    elsewhere (``fits_dir``) and never touched. Returns the folders removed.
    """
    oldest = night - timedelta(days=keep_nights - 1)
    removed = []
    root = output_dir.expanduser().absolute()
    for folder in sorted(root.glob("????-??-??")):
        try:
            folder_night = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if folder_night >= oldest or not folder.is_dir() or folder.is_symlink():
            continue
        if not _only_ours(folder):
            continue  # not only ours: leave it to a person
        shutil.rmtree(folder)
        removed.append(folder)
    return removed


def _only_ours(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but what :func:`write_plan` and the keep markers put there."""
    files = [p for p in folder.rglob("*") if not p.is_dir()]
    return not any(p.is_symlink() or (p.suffix not in (".esl", ".esq") and p.name != KEEP_MARKER) for p in files)


def _run_order(run: Path) -> tuple[bool, str]:
    """Sorts a night's run folders by when they were written: ``HHMMSS[-n]`` site time, noon to noon."""
    return (run.name[:2] < "12", run.name)


def prune_runs(night_dir: Path, keep_runs: int) -> list[Path]:
    """Remove the night's run folders that Ekos cannot be running: all but the newest ``keep_runs`` unkept ones.

    Progress re-plans (one per accepted light) each write a run, so without this a night of
    short lights leaves a folder per light. Which runs can Ekos be running? The MCP loads the
    run written for its plan request, or, when the scheduler does not answer (offline, late,
    nothing left), the latest plan's run, which can be any. So a run marked kept
    (:data:`~obsy.kstars.runs.KEEP_MARKER`: written for a plan request, or loaded into Ekos by
    the MCP) is never removed here, and the newest ``keep_runs`` unmarked runs stay, so that
    the latest plan's files are always there for the MCP's fallback (which marks the run it
    loads) and the web. Nor is a run holding anything but .esl/.esq files removed (a person's
    file keeps it), nor a folder not named as a run. The frames are elsewhere and never
    touched. Returns the folders removed, oldest first.
    """
    if not night_dir.is_dir():
        return []
    runs = sorted(
        (
            run
            for run in night_dir.iterdir()
            if run.is_dir() and not run.is_symlink() and RUN_NAME.fullmatch(run.name) and not is_kept(run)
        ),
        key=_run_order,
    )
    removed = []
    for run in runs[: max(len(runs) - keep_runs, 0)]:
        if not _only_ours(run):
            continue  # not only ours: leave it to a person
        shutil.rmtree(run)
        removed.append(run)
    return removed


#: The name of a run folder (:func:`run_name`).
RUN_NAME = re.compile(r"\d{6}(-\d+)?")


def run_name(night_dir: Path, moment: datetime, zone: ZoneInfo) -> str:
    """A name for a new run directory under ``night_dir``: the site time, made unique."""
    base = moment.astimezone(zone).strftime("%H%M%S")
    name, counter = base, 1
    while (night_dir / name).exists():
        counter += 1
        name = f"{base}-{counter}"
    return name
