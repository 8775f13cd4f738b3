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

Ekos stores frames under ``FITSDirectory/<target>/<frame type>/<filter>`` and, to decide
whether a job is complete, counts the files there; a job with no filter on a camera
with a filter wheel never counts as complete. So every Light job gets a filter (the
configured ``default_filter`` when the plan names none, if there is a wheel), and the
FITSDirectory is one directory per night, so that the counts in tonight's sequences
(the frames planned tonight) start from zero each night.

Times of "At" conditions are written in the site's time zone with their UTC offset.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from obsy.config import SchedulerEkosConfig
from obsy.messages import ExposurePlan, FrameType
from obsy_scheduler.planner import Block, Plan

ESL_VERSION = "1.6"
ESQ_VERSION = "2.5"
#: Blocks of one target closer than this become one Ekos job.
MERGE_GAP = timedelta(minutes=5)


@dataclass
class EkosFiles:
    schedule: Path
    sequences: dict[str, Path] = field(default_factory=dict)  # target id -> .esq
    fits_dir: Path | None = None


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


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- sequences


def sequence_xml(
    target_name: str, exposures: list[tuple[ExposurePlan, int]], fits_dir: Path, ekos: SchedulerEkosConfig
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
    prefix = job_name(target_name)
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
        if plan.gain is not None:
            _element(job, "Gain", number(plan.gain))
        if plan.offset is not None:
            _element(job, "Offset", number(plan.offset))
        calibration = _element(job, "Calibration")
        _element(_element(calibration, "FlatSource"), "Type", "Manual")
        _element(_element(calibration, "FlatDuration"), "Type", "Manual")
        _element(calibration, "PreMountPark", "False")
        _element(calibration, "PreDomePark", "False")
    return _serialise(root)


# --------------------------------------------------------------------------- schedule


def _when(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def merge_consecutive(blocks: list[Block], gap: timedelta = MERGE_GAP) -> list[tuple[Block, datetime]]:
    """Blocks as Ekos jobs: back-to-back blocks of one target become one job (first block, last end).

    The planner re-decides every ``max_block_min``; when it keeps the same target, one
    Ekos job is what people expect to see (and Ekos warns about duplicate jobs otherwise).
    """
    jobs: list[tuple[Block, datetime]] = []
    for block in blocks:
        if jobs and jobs[-1][0].target.id == block.target.id and block.start - jobs[-1][1] <= gap:
            first = jobs[-1][0]
            first_sep = max(first.required_moon_separation, block.required_moon_separation)
            jobs[-1] = (replace(first, required_moon_separation=first_sep), block.end)
        else:
            jobs.append((block, block.end))
    return jobs


def _constraints(parent: ET.Element, block: Block, ekos: SchedulerEkosConfig) -> None:
    """The constraints Ekos itself checks while a job runs (a safety net behind the plan)."""
    floor = block.constraints.min_altitude or 0.0
    if floor > 0:
        _element(parent, "Constraint", "MinimumAltitude", value=number(floor))
    if block.required_moon_separation > 0:
        _element(parent, "Constraint", "MoonSeparation", value=number(round(block.required_moon_separation, 1)))
    if (block.constraints.twilight or "astronomical") == "astronomical":
        _element(parent, "Constraint", "EnforceTwilight")  # Ekos' twilight is astronomical
    if ekos.enforce_weather:
        _element(parent, "Constraint", "EnforceWeather")


def schedule_xml(blocks: list[Block], sequences: dict[str, Path], ekos: SchedulerEkosConfig, zone: ZoneInfo) -> bytes:
    """A SchedulerList with one job per planned block, in plan order."""
    root = ET.Element("SchedulerList", version=ESL_VERSION)
    _element(root, "Profile", ekos.profile)
    for block, end in merge_consecutive(blocks):
        target = block.target
        job = _element(root, "Job")
        _element(job, "Name", job_name(target.name))
        coordinates = _element(job, "Coordinates")
        _element(coordinates, "J2000RA", number(target.ra_deg / 15.0))
        _element(coordinates, "J2000DE", number(target.dec_deg))
        _element(job, "Sequence", str(sequences[target.id]))
        startup = _element(job, "StartupCondition")
        if ekos.startup == "at":
            _element(startup, "Condition", "At", value=_when(block.start, zone))
        else:
            _element(startup, "Condition", "ASAP")
        _constraints(_element(job, "Constraints"), block, ekos)
        completion = _element(job, "CompletionCondition")
        if ekos.completion == "at":
            _element(completion, "Condition", "At", value=_when(end, zone))
        elif ekos.completion == "repeat":
            _element(completion, "Condition", "Repeat", value=str(ekos.repeats))
        else:
            _element(completion, "Condition", "Sequence")
        steps = _element(job, "Steps")
        for step in ekos.steps:
            _element(steps, "Step", step)
    startup_procedure = _element(root, "StartupProcedure")
    for procedure in ekos.startup_procedure:
        _element(startup_procedure, "Procedure", procedure)
    shutdown_procedure = _element(root, "ShutdownProcedure")
    for procedure in ekos.shutdown_procedure:
        _element(shutdown_procedure, "Procedure", procedure)
    return _serialise(root)


def write_plan(plan: Plan, ekos: SchedulerEkosConfig, output_dir: Path, fits_root: Path, timezone: str) -> EkosFiles:
    """Write tonight's .esq files (one per target) and the .esl into ``output_dir``/<night>/.

    Paths are made absolute. Files are replaced atomically, so Ekos never reads half a file.
    """
    night = plan.night.isoformat()
    directory = output_dir.expanduser().absolute() / night
    directory.mkdir(parents=True, exist_ok=True)
    fits_dir = fits_root.expanduser().absolute() / night
    frames: dict[str, dict[int, list]] = defaultdict(dict)  # target id -> plan index -> [plan, frames]
    names: dict[str, str] = {}
    for block in plan.blocks:
        names[block.target.id] = block.target.name
        for plan_entry, count in block.exposures:
            key = id(plan_entry)
            frames[block.target.id].setdefault(key, [plan_entry, 0])[1] += count
    sequences: dict[str, Path] = {}
    used_names: set[str] = set()
    for target_id, by_plan in frames.items():
        stem = job_name(names[target_id])
        while stem in used_names:  # two targets whose names clean to the same file name
            stem += "_"
        used_names.add(stem)
        path = directory / f"{stem}.esq"
        exposures = [(p, n) for p, n in by_plan.values() if p.frame_type == FrameType.LIGHT or n]
        _write_atomically(path, sequence_xml(names[target_id], exposures, fits_dir, ekos))
        sequences[target_id] = path
    schedule = directory / f"obsy-{night}.esl"
    _write_atomically(schedule, schedule_xml(plan.blocks, sequences, ekos, ZoneInfo(timezone)))
    return EkosFiles(schedule, sequences, fits_dir)
