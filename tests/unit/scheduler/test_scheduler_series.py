"""Time-series targets in the planner: a visit every cadence within the window, never outside it
or while the target breaks a constraint; the ordinary targets in between, clear of Ekos's lead time;
a cadence too short to leave gives one continuous block; two series share the night by priority;
every visit is an Ekos job of its own with a fixed start; what cannot be planned says why."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from obsy.messages import ExposurePlan, Target, TimeSeries
from obsy_scheduler.ekos import plan_jobs, schedule_xml
from obsy_scheduler.planner import Planner
from tests.unit.scheduler.test_scheduler_planner import NIGHT, VIENNA, settings, target

#: Up all night from Vienna above 30° (declination 75°: lowest at 33°).
POLAR = (30.0, 75.0)
START = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
END = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


def variable(tid: str, cadence_min: float, *, priority: int = 5, start=START, end=END, **plan) -> Target:
    return Target(
        id=tid,
        name=tid.upper(),
        ra_deg=POLAR[0],
        dec_deg=POLAR[1],
        priority=priority,
        exposure_plans=[ExposurePlan(filter="V", exposure_s=plan.get("exposure_s", 120), count=1)],
        time_series=TimeSeries(cadence_min=cadence_min, window_start=start, window_end=end,
                               frames_per_visit=plan.get("frames", 2)),
    )  # fmt: skip


def test_visits_keep_the_cadence_within_the_window_and_others_fill_the_gaps() -> None:
    s = settings()
    series = variable("v1", 60)
    other = target("m31", 10.68, 41.27, frames=200)
    plan = Planner(VIENNA, s).plan([series, other], NIGHT)
    visits = [b for b in plan.blocks if b.target.id == "v1"]
    # One visit an hour from the window's start: 18:00, 19:00 ... 22:00 (the 23:00 one would end outside).
    assert [v.start for v in visits] == [START + timedelta(hours=h) for h in range(5)]
    visit_s = s.switch_overhead_s + 2 * (120 + s.exposure_overhead_s)
    for v in visits:
        assert v.time_series and v.exposure_count == 2 and v.score == 1.0
        assert (v.end - v.start).total_seconds() == pytest.approx(visit_s)
        assert v.start >= START and v.end <= END and v.min_altitude >= 30 - 0.01
    others = [b for b in plan.blocks if b.target.id == "m31"]
    assert others, "the ordinary target fills the time between visits"
    for b in others:
        for v in visits:  # never during a visit, nor within the lead time Ekos needs around it
            assert b.end.timestamp() + s.switch_gap_s <= v.start.timestamp() + 1e-6 or (
                v.end.timestamp() + s.switch_gap_s <= b.start.timestamp() + 1e-6
            )
    message = plan.to_message()
    assert sum(b.time_series for b in message.blocks) == len(visits)
    # The frames already taken do not end a time series.
    done = variable("v1", 60).model_copy(
        update={"exposure_plans": [ExposurePlan(filter="V", exposure_s=120, count=1, acquired=50)]}
    )
    assert len([b for b in Planner(VIENNA, s).plan([done], NIGHT).blocks]) == 5


def test_a_cadence_too_short_to_leave_keeps_the_telescope_on_the_target() -> None:
    s = settings()
    plan = Planner(VIENNA, s).plan([variable("v1", 3, frames=1)], NIGHT)
    assert len(plan.blocks) == 1
    block = plan.blocks[0]
    assert block.start == START and block.end <= END and block.time_series
    per_frame = 120 + s.exposure_overhead_s
    assert block.exposure_count == int((END - START).total_seconds() - s.switch_overhead_s) // int(per_frame)


def test_visits_only_while_the_target_keeps_its_constraints() -> None:
    # Capella-like at declination 46°: rises through 30° in the evening; with a 50° floor it becomes
    # usable only later, and the visits begin then, at the cadence from the first.
    low = variable("low", 30, end=datetime(2026, 11, 22, 4, 0, tzinfo=UTC)).model_copy(
        update={"ra_deg": 79.17, "dec_deg": 45.99, "constraints": {"min_altitude": 50}}
    )
    plan = Planner(VIENNA, settings()).plan([low], NIGHT)
    assert plan.blocks
    assert all(b.min_altitude >= 50 - 0.01 for b in plan.blocks)
    starts = [b.start for b in plan.blocks]
    assert starts[0] > START
    assert all((b - a) >= timedelta(minutes=30) for a, b in itertools.pairwise(starts))


def test_two_series_share_the_night_by_priority() -> None:
    s = settings()
    high = variable("high", 30, priority=8)
    low = variable("low", 30, priority=2)
    plan = Planner(VIENNA, s).plan([low, high], NIGHT)
    first = [b.start for b in plan.blocks if b.target.id == "high"]
    assert first == [START + timedelta(minutes=30 * k) for k in range(10)]  # 18:00 to 22:30
    blocks = sorted(plan.blocks, key=lambda b: b.start)
    for a, b in itertools.pairwise(blocks):
        assert a.end.timestamp() + s.switch_gap_s <= b.start.timestamp() + 1e-6
    assert any(b.target.id == "low" for b in plan.blocks)  # slipped between the higher one's visits


def test_each_visit_is_an_ekos_job_at_its_time(tmp_path: Path) -> None:
    s = settings()
    plan = Planner(VIENNA, s).plan([variable("v1", 60)], NIGHT)
    jobs = plan_jobs(plan.blocks, tmp_path)
    assert len(jobs) == len(plan.blocks) == 5
    assert all(job.fixed and not job.transit for job in jobs)
    assert [job.key for job in jobs][:2] == ["V1", "V1_2"]
    assert {job.name for job in jobs} == {"V1"}  # every visit's frames name the star (OBJECT)
    root = ET.fromstring(schedule_xml(jobs, s.ekos, ZoneInfo("UTC")))
    for job, element in zip(jobs, root.iter("Job"), strict=True):
        startup = element.find("StartupCondition/Condition")
        assert startup.text == "At" and datetime.fromisoformat(startup.get("value")) == job.start
        assert element.find("CompletionCondition/Condition").text == "Sequence"


def test_what_cannot_be_planned_says_why() -> None:
    elsewhere = variable("later", 30, start=START + timedelta(days=3), end=END + timedelta(days=3))
    flats = variable("flats", 30).model_copy(
        update={"exposure_plans": [ExposurePlan(filter="V", exposure_s=1, count=10, frame_type="Flat")]}
    )
    plan = Planner(VIENNA, settings(ekos={"calibration": {"flat_source": "panel"}})).plan([elsewhere, flats], NIGHT)
    assert plan.blocks == []
    assert plan.excluded["later"] == "time series: no usable time in its window tonight"
    assert plan.excluded["flats"] == "a time series needs a Light exposure plan"
    with pytest.raises(ValidationError, match="with a time zone"):
        TimeSeries(cadence_min=10, window_start=datetime(2026, 11, 21, 18, 0))
    with pytest.raises(ValidationError, match="ends before it starts"):
        TimeSeries(cadence_min=10, window_start=END, window_end=START)
    with pytest.raises(ValidationError):
        TimeSeries(cadence_min=0)
