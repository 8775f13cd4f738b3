"""The scheduler service as a process on a real Mosquitto: targets in, plan and Ekos files out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.messages import ExposurePlan, SchedulerPlan, ServiceHealth, Target, TargetList
from tests.support.configs import evening_site, write_config
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

PLAN = "obsy/scheduler/plan"
TARGETS = "obsy/web/targets"
AVAILABILITY = "obsy/scheduler/availability"
HEALTH = "obsy/scheduler/health"
REPO = Path(__file__).resolve().parents[3]


def targets(acquired: int = 0) -> TargetList:
    """Circumpolar targets (up every night of the year at 48° N) and some that cannot be planned."""
    plans = [ExposurePlan(filter="Red", exposure_s=300, count=6, acquired=acquired)]
    return TargetList(
        targets=[
            Target(id="north1", name="North 1", ra_deg=40.0, dec_deg=80.0, priority=8, exposure_plans=plans,
                   constraints={"twilight": "nautical"}),
            Target(id="north2", name="North 2", ra_deg=220.0, dec_deg=82.0, priority=6,
                   exposure_plans=[ExposurePlan(filter="Green", exposure_s=300, count=6)],
                   constraints={"twilight": "nautical"}),
            Target(id="south", name="Deep South", ra_deg=100.0, dec_deg=-70.0, exposure_plans=plans),
            Target(id="typo", name="Typo", ra_deg=40.0, dec_deg=80.0, exposure_plans=plans,
                   constraints={"min_altitde": 20}),
            Target(id="off", name="Off", ra_deg=40.0, dec_deg=80.0, enabled=False, exposure_plans=plans),
        ]
    )  # fmt: skip


@pytest.fixture
def service(mosquitto, tmp_path, watcher) -> Iterator[subprocess.Popen[bytes]]:
    watcher.publish(TARGETS, targets().to_json(), retain=True)  # retained before the service starts
    config = write_config(
        tmp_path,
        mosquitto,
        site=evening_site(),  # the whole night ahead, whatever the hour the test runs at
        scheduler={"heartbeat_interval": 1, "ekos": {"output_dir": str(tmp_path / "ekos")}},
    )
    env = {**os.environ, "OBSY_RUN_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "obsy_scheduler", "run", "--config", str(config), "--log-format", "text"],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "scheduler.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def plans(watcher: Watcher) -> list[SchedulerPlan]:
    return [SchedulerPlan.model_validate_json(m.payload) for m in watcher.on(PLAN)]


def test_plans_targets_writes_ekos_files_and_explains_exclusions(service, watcher, tmp_path):
    watcher.wait_payload(AVAILABILITY, b"online", timeout=30)
    watcher.wait_for(lambda _: len(plans(watcher)) >= 1, timeout=60)
    plan = plans(watcher)[-1]
    assert plan.trigger == "targets"
    assert {b.target_id for b in plan.blocks} == {"north1", "north2"}
    assert "never rises" in plan.excluded["south"]
    assert "min_altitde" in plan.excluded["typo"]
    assert plan.excluded["off"] == "disabled"
    assert plan.dark_hours and 0 < plan.filled_fraction <= 1
    # The Ekos files are where the plan says, with absolute sequence paths.
    schedule = Path(plan.ekos_schedule_path)
    assert schedule.is_absolute() and schedule.is_relative_to(tmp_path / "ekos")
    jobs = ET.fromstring(schedule.read_bytes()).findall("Job")
    assert {j.findtext("Name") for j in jobs} == {"North_1", "North_2"}
    for job in jobs:
        assert job.findtext("Sequence") in plan.sequence_paths
        assert Path(job.findtext("Sequence")).exists()
    assert all(b.sequence_path in plan.sequence_paths for b in plan.blocks)
    frames = {b.target_id: 0 for b in plan.blocks}
    for block in plan.blocks:
        frames[block.target_id] += block.exposures
    assert frames == {"north1": 6, "north2": 6}


def test_bad_payload_is_counted_and_progress_triggers_a_replan(service, watcher):
    watcher.wait_for(lambda _: len(plans(watcher)) >= 1, timeout=60)
    first = plans(watcher)[-1]
    watcher.publish(TARGETS, b"{not json")
    watcher.publish(TARGETS, json.dumps({"targets": [{"id": "x"}]}))  # valid JSON, not a TargetList
    watcher.wait_for(
        lambda ms: any(
            m.topic == HEALTH and ServiceHealth.model_validate_json(m.payload).invalid_messages >= 2 for m in ms
        ),
        timeout=20,
    )
    assert service.poll() is None
    assert len(plans(watcher)) == 1, "an invalid payload must not change the plan"
    # Progress: every frame of north1 acquired -> re-planned without it.
    watcher.publish(TARGETS, targets(acquired=6).to_json(), retain=True)
    watcher.wait_for(lambda _: len(plans(watcher)) >= 2, timeout=30)
    second = plans(watcher)[-1]
    assert second.excluded["north1"].startswith("complete")
    assert {b.target_id for b in second.blocks} == {"north2"}
    assert second.night == first.night
    # retained for late joiners
    late = Watcher(watcher.client._port, [PLAN])
    try:
        late.wait_for(lambda ms: any(m.retain for m in ms), timeout=10)
        assert SchedulerPlan.model_validate_json(late.on(PLAN)[-1].payload).excluded["north1"].startswith("complete")
    finally:
        late.close()
    service.send_signal(signal.SIGTERM)
    assert service.wait(20) == 0
    watcher.wait_payload(AVAILABILITY, b"stopped", timeout=10)


def test_without_targets_an_empty_plan_shows_the_night(mosquitto, tmp_path, watcher):
    config = write_config(tmp_path, mosquitto, scheduler={"ekos": {"output_dir": str(tmp_path / "ekos")}})
    env = {**os.environ, "OBSY_RUN_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "obsy_scheduler", "run", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        watcher.wait_for(lambda _: len(plans(watcher)) >= 1, timeout=60)
        plan = plans(watcher)[-1]
        assert plan.trigger == "start" and plan.blocks == [] and plan.ekos_schedule_path is None
        assert plan.dark_hours is not None
        time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_the_mcp_gets_files_written_now_before_it_starts_ekos(service, watcher, tmp_path):
    """The MCP's request over the real broker: a plan made now, files of their own, every job from now on."""
    from datetime import UTC, datetime

    from obsy.bus import Bus
    from obsy.config import load_config
    from obsy.kstars.runs import KEEP_MARKER
    from obsy_mcp.planrequest import PlanRequester
    from obsy_scheduler.config import SchedulerEkosConfig

    watcher.wait_for(lambda _: len(plans(watcher)) >= 1, timeout=60)
    latest = plans(watcher)[-1].ekos_schedule_path
    bus = Bus(load_config(tmp_path / "obsy.yaml").broker, "mcp")
    requester = PlanRequester(lambda request: bus.publish(bus.topics.scheduler_plan_command, request, qos=1), 30)
    bus.subscribe(bus.topics.scheduler_plan, lambda _t, plan: requester.on_plan(plan), SchedulerPlan)
    try:
        assert bus.start(wait=10)
        asked_at = datetime.now(UTC).replace(microsecond=0)
        fresh = requester.fresh_schedule(latest)
    finally:
        bus.stop()
    answer = plans(watcher)[-1]
    assert answer.trigger == "request" and answer.request_id
    if not answer.blocks:  # run after the targets' last dark hour: nothing left, the latest files are loaded
        assert fresh == latest
        return
    assert answer.ekos_schedule_path == fresh
    assert fresh != latest and Path(latest).exists()  # a new set of files; the earlier set is left as it was
    starts = [
        datetime.fromisoformat(job.find("StartupCondition/Condition").get("value"))
        for job in ET.fromstring(Path(fresh).read_bytes()).findall("Job")
    ]
    assert starts and min(starts) >= asked_at  # Ekos drops a job whose fixed start has passed
    # A light accepted after another: a re-plan each. The night's runs stay bounded; the requested one stays.
    for acquired in range(1, 6):
        seen = len(plans(watcher))
        watcher.publish(TARGETS, targets(acquired=acquired).to_json(), retain=True)
        watcher.wait_for(lambda _, seen=seen: len(plans(watcher)) > seen, timeout=30)
    latest = plans(watcher)[-1].ekos_schedule_path
    assert latest and Path(latest).is_file()
    runs = list(Path(fresh).parents[1].iterdir())
    assert len(runs) == SchedulerEkosConfig().keep_runs + 1  # the newest few and the requested one
    assert Path(fresh).is_file() and (Path(fresh).parent / KEEP_MARKER).is_file()
