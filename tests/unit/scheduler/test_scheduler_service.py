"""When the scheduler service re-plans: targets changed, start without targets, a new night, the daily time.

The service is built on a bus that is never started (nothing is sent); the bus side is
tested against a real broker in tests/integration/scheduler/test_scheduler_service.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from obsy.bus import Bus
from obsy.config import ObsyConfig
from obsy.messages import TargetList
from obsy_scheduler import service as service_module
from obsy_scheduler.service import SchedulerService

#: The wheel's names, configured: these tests do not read them from INDI (that is test_scheduler_filters.py).
WHEEL = ["Red", "Green", "Blue", "Luminance"]


@pytest.fixture
def service(tmp_path) -> SchedulerService:
    config = ObsyConfig.model_validate(
        {
            "site": {"latitude": 48.2, "longitude": 16.4, "timezone": "Europe/Vienna"},
            "data_dir": str(tmp_path),
            "scheduler": {"replan_at": "12:00", "ekos": {"filters": WHEEL}},
            "homeassistant": {"enabled": False},
        }
    )
    svc = SchedulerService(config, Bus(config.broker, "scheduler"))
    svc.start()
    return svc


def vienna(hour: int, minute: int = 0, day: int = 21) -> datetime:
    return datetime(2026, 11, day, hour - 1, minute, tzinfo=UTC)  # Vienna is UTC+1 in November


def test_targets_trigger_a_plan_after_the_debounce(service, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(service_module.time, "monotonic", lambda: clock[0])
    service._on_targets("obsy/web/targets", TargetList(targets=[]))
    assert service._trigger(vienna(20)) is None  # changes arriving together are planned once
    clock[0] += service_module.DEBOUNCE_S
    assert service._trigger(vienna(20)) == "targets"


def test_without_targets_an_empty_plan_after_the_grace_period(service, monkeypatch):
    clock = [service._started]
    monkeypatch.setattr(service_module.time, "monotonic", lambda: clock[0])
    assert service._trigger(vienna(20)) is None
    clock[0] += service_module.STARTUP_GRACE_S
    assert service._trigger(vienna(20)) == "start"


def test_a_new_night_and_the_daily_time_trigger_a_plan(service):
    service._targets = []
    service._planned_night = date(2026, 11, 20)
    service._last_plan = object()
    service._last_daily = date(2026, 11, 21)
    assert service._trigger(vienna(13)) == "night"  # past local noon: the night of the 21st
    service._planned_night = date(2026, 11, 21)
    assert service._trigger(vienna(23)) is None
    # next day, before and after the daily time
    service._planned_night = date(2026, 11, 21)
    service._last_daily = date(2026, 11, 21)
    assert service._trigger(vienna(11, 0, day=22)) is None  # still the night of the 21st, before 12:00
    assert service._trigger(vienna(12, 0, day=22)) == "night"  # noon: a new night, and that is today's plan
    service._planned_night = date(2026, 11, 22)
    assert service._trigger(vienna(12, 1, day=22)) is None  # not twice
    service._planned_night = date(2026, 11, 23)  # as if the night of the 23rd had been planned early
    assert service._trigger(vienna(13, 0, day=23)) == "daily"
    assert service._trigger(vienna(13, 1, day=23)) is None  # once a day


def test_replan_publishes_and_writes_files(service, tmp_path):
    from obsy.messages import ExposurePlan, Target

    service._targets = [
        Target(id="n", name="North", ra_deg=40.0, dec_deg=80.0, exposure_plans=[ExposurePlan(exposure_s=60, count=5)])
    ]
    sent = []
    service.bus.publish = lambda topic, payload, **kw: sent.append((topic, payload, kw))  # type: ignore[method-assign]
    service.bus.publish_event = lambda payload: sent.append(("event", payload, {}))  # type: ignore[method-assign]
    plan = service.replan("targets", now=vienna(14))
    assert plan.night == "2026-11-21" and plan.blocks
    topic, payload, options = sent[0]
    assert topic == "obsy/scheduler/plan" and options == {"qos": 1, "retain": True}
    assert payload.ekos_schedule_path.startswith(str(tmp_path / "ekos" / "2026-11-21"))
    assert payload.blocks[0].sequence_path in payload.sequence_paths
    # It names the site it is for (a fleet's centre draws its altitudes and turns its nights with it).
    site = service.config.site
    assert payload.site is not None
    assert (payload.site.latitude, payload.site.longitude, payload.site.timezone) == (
        site.latitude,
        site.longitude,
        site.timezone,
    )
    assert sent[1][0] == "event"


def test_unwritable_output_still_publishes_the_plan_and_reports_the_error(tmp_path):
    from obsy.messages import ExposurePlan, Target

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the output directory should be")
    config = ObsyConfig.model_validate(
        {
            "site": {"latitude": 48.2, "longitude": 16.4, "timezone": "Europe/Vienna"},
            "data_dir": str(tmp_path),
            "scheduler": {"ekos": {"output_dir": str(blocker), "filters": WHEEL}},
            "homeassistant": {"enabled": False},
        }
    )
    svc = SchedulerService(config, Bus(config.broker, "scheduler"))
    svc.start()
    svc._targets = [
        Target(id="n", name="North", ra_deg=40.0, dec_deg=80.0, exposure_plans=[ExposurePlan(exposure_s=60, count=5)])
    ]
    sent = []
    svc.bus.publish = lambda topic, payload, **kw: sent.append(payload)  # type: ignore[method-assign]
    svc.bus.publish_event = lambda payload: None  # type: ignore[method-assign]
    plan = svc.replan("targets", now=vienna(14))
    assert plan.blocks and plan.ekos_schedule_path is None and plan.sequence_paths == []
    assert all(b.sequence_path is None for b in plan.blocks)
    assert sent == [plan]
    assert "cannot write the Ekos files" in svc.health_details()["error"]
    assert blocker.read_text().startswith("a file")  # nothing of the user's was touched


def test_a_plan_request_is_answered_with_a_plan_from_now_carrying_its_id(service, monkeypatch):
    """The MCP asks before it starts Ekos: no job in the answer starts before now (Ekos would drop it)."""
    from obsy.messages import ExposurePlan, PlanRequest, Target

    service._targets = [
        Target(id="n", name="North", ra_deg=40.0, dec_deg=80.0, exposure_plans=[ExposurePlan(exposure_s=60, count=50)])
    ]
    sent = []
    service.bus.publish = lambda topic, payload, **kw: sent.append(payload)  # type: ignore[method-assign]
    service.bus.publish_event = lambda payload: None  # type: ignore[method-assign]
    earlier = service.replan("targets", now=vienna(14))
    service._last_daily = date(2026, 11, 21)
    midnight = vienna(23, 59)
    service.clock = lambda: midnight
    for request_id in ("a1", "b2"):  # two requests before the next poll: one plan, an answer for each
        service._on_plan_request("obsy/scheduler/plan/set", PlanRequest(request_id=request_id, origin="mcp"))
    sent.clear()
    service.poll()
    assert [plan.request_id for plan in sent] == ["a1", "b2"]
    answer = sent[-1]
    assert answer.trigger == "request" and answer.blocks
    assert earlier.blocks[0].start < midnight <= answer.blocks[0].start
    assert answer.ekos_schedule_path != earlier.ekos_schedule_path  # a new set of files; the earlier one stays
    service.poll()
    assert len(sent) == 2  # answered once


def _restarted(service: SchedulerService) -> SchedulerService:
    """A new scheduler on the same configuration (and so the same output folder), as after a restart."""
    svc = SchedulerService(service.config, Bus(service.config.broker, "scheduler"))
    svc.start()
    svc._targets = service._targets  # the web's retained targets, received again
    svc.bus.publish = lambda topic, payload, **kw: None  # type: ignore[method-assign]
    svc.bus.publish_event = lambda payload: None  # type: ignore[method-assign]
    return svc


def test_progress_replans_leave_a_bounded_number_of_runs_and_keep_the_requested_one(service, tmp_path):
    """A re-plan with every accepted light: the night's folders stay few; the run the MCP asked for stays."""
    from datetime import timedelta

    from obsy.kstars.runs import KEEP_MARKER
    from obsy.messages import ExposurePlan, PlanRequest, Target

    service._targets = [
        Target(id="n", name="North", ra_deg=40.0, dec_deg=80.0, exposure_plans=[ExposurePlan(exposure_s=4, count=500)])
    ]
    service.bus.publish = lambda topic, payload, **kw: None  # type: ignore[method-assign]
    service.bus.publish_event = lambda payload: None  # type: ignore[method-assign]
    night = tmp_path / "ekos" / "2026-11-21"
    keep_runs = service.settings.ekos.keep_runs
    moment = vienna(23, 50)
    service._last_daily = date(2026, 11, 21)
    service.clock = lambda: moment
    service._on_plan_request("obsy/scheduler/plan/set", PlanRequest(request_id="r1", origin="mcp"))
    service.poll()
    requested = Path(service._last_plan.ekos_schedule_path)
    assert (requested.parent / KEEP_MARKER).read_text().endswith("written for plan request r1\n")

    progress = []
    for light in range(1, 40):  # on past midnight: the run names wrap to 00xxxx, still newest
        progress.append(service.replan("targets", now=moment + timedelta(seconds=30 * light)))
    runs = sorted(p.name for p in night.iterdir())
    assert len(runs) == keep_runs + 1
    assert requested.is_file() and requested.parent.name in runs
    newest = [Path(plan.ekos_schedule_path) for plan in progress[-keep_runs:]]
    assert all(path.is_file() for path in newest)  # the MCP's fallback (the latest plan) finds its files
    assert not Path(progress[0].ekos_schedule_path).exists()

    restarted = _restarted(service)
    for light in range(40, 50):
        last = restarted.replan("targets", now=moment + timedelta(seconds=30 * light))
    assert Path(last.ekos_schedule_path).is_file()
    assert len(list(night.iterdir())) == keep_runs + 1
    assert requested.is_file()


def test_a_run_the_mcp_loaded_is_kept_however_many_replans_follow(service, tmp_path):
    """The MCP's fallback loads the latest plan, requested or not: it marks that run, and it stays."""
    from datetime import timedelta

    from obsy.kstars.runs import keep_run
    from obsy.messages import ExposurePlan, Target

    service._targets = [
        Target(id="n", name="North", ra_deg=40.0, dec_deg=80.0, exposure_plans=[ExposurePlan(exposure_s=4, count=500)])
    ]
    service.bus.publish = lambda topic, payload, **kw: None  # type: ignore[method-assign]
    service.bus.publish_event = lambda payload: None  # type: ignore[method-assign]
    moment = vienna(21)
    loaded = Path(service.replan("targets", now=moment).ekos_schedule_path)
    keep_run(loaded, "loaded into Ekos by the MCP")  # what obsy_mcp.ekos.keep_loaded_run writes
    restarted = _restarted(service)
    for light in range(1, 20):
        restarted.replan("targets", now=moment + timedelta(seconds=10 * light))
    assert loaded.is_file()
    assert len(list(loaded.parent.parent.iterdir())) == service.settings.ekos.keep_runs + 1
