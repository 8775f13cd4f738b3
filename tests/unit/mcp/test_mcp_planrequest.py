"""The MCP's request for a plan made now (the bus side runs against the real scheduler in
tests/integration/scheduler/test_scheduler_service.py)."""

from __future__ import annotations

import threading

from obsy.messages import PlanRequest, SchedulerPlan
from obsy_mcp.planrequest import PlanRequester


def answering(schedule: str | None, request_id: str | None = None) -> tuple[PlanRequester, list[PlanRequest]]:
    """A requester whose 'scheduler' answers every request at once with ``schedule``."""
    asked: list[PlanRequest] = []

    def publish(request: PlanRequest) -> None:
        asked.append(request)
        plan = SchedulerPlan(
            night="2026-11-21", ekos_schedule_path=schedule, request_id=request_id or request.request_id
        )
        threading.Timer(0.05, requester.on_plan, [plan]).start()

    requester = PlanRequester(publish, timeout=5)
    return requester, asked


def test_the_answer_to_this_request_gives_the_schedule():
    requester, asked = answering("/plans/2026-11-21/231500/obsy-2026-11-21.esl")
    assert requester.fresh_schedule("/plans/old.esl") == "/plans/2026-11-21/231500/obsy-2026-11-21.esl"
    assert len(asked) == 1 and asked[0].origin == "mcp"


def test_plans_answering_other_requests_are_not_taken_for_the_answer():
    requester, _ = answering("/plans/someone-elses.esl", request_id="another")
    requester.timeout = 0.3
    assert requester.fresh_schedule("/plans/old.esl") == "/plans/old.esl"


def test_an_answer_without_files_keeps_the_latest_schedule():
    requester, _ = answering(None)  # nothing left tonight
    assert requester.fresh_schedule("/plans/old.esl") == "/plans/old.esl"


def test_no_answer_in_time_or_no_scheduler_online_keeps_the_latest_schedule():
    silent = PlanRequester(lambda request: None, timeout=0.2)
    assert silent.fresh_schedule("/plans/old.esl") == "/plans/old.esl"
    asked: list[PlanRequest] = []
    offline = PlanRequester(asked.append, timeout=5, scheduler_online=lambda: False)
    assert offline.fresh_schedule("/plans/old.esl") == "/plans/old.esl"
    assert asked == []  # nobody to ask: no wait


def _ekos_loading(fallback: str) -> tuple[object, list[tuple]]:
    """An Ekos client whose D-Bus calls are recorded and whose plan request falls back to ``fallback``."""
    from obsy.config import McpEkosConfig
    from obsy.kstars.paths import SchedulerStatus
    from obsy_mcp.ekos import Ekos

    ekos = Ekos(McpEkosConfig(enabled=True, bus_address="unix:path=/nonexistent"), fresh_schedule=lambda _s: fallback)
    calls: list[tuple] = []
    ekos.start_ekos = lambda: None  # type: ignore[method-assign]
    ekos.call = lambda path, interface, method, *args: calls.append((method, *args)) or True  # type: ignore[method-assign]
    ekos.scheduler_status = lambda: SchedulerStatus.RUNNING  # type: ignore[method-assign]
    return ekos, calls


def test_the_run_ekos_loads_is_marked_kept_so_the_scheduler_never_removes_it(tmp_path):
    """The fallback loads the latest plan, which the scheduler did not write for a request: the MCP marks it."""
    from obsy.kstars.runs import KEEP_MARKER

    run = tmp_path / "2026-11-21" / "231500"
    run.mkdir(parents=True)
    schedule = run / "obsy-2026-11-21.esl"
    schedule.write_text("<SchedulerList/>")
    ekos, calls = _ekos_loading(str(schedule))
    ekos.start_night("/plans/older.esl")
    assert ("loadScheduler", "s", str(schedule)) in calls
    assert (run / KEEP_MARKER).read_text().endswith("loaded into Ekos by the MCP\n")


def test_a_run_that_cannot_be_marked_is_still_loaded_and_the_warning_says_why(tmp_path, caplog):
    missing = tmp_path / "elsewhere" / "obsy-2026-11-21.esl"  # e.g. the files on another machine's disk
    ekos, calls = _ekos_loading(str(missing))
    ekos.start_night("/plans/older.esl")
    assert ("loadScheduler", "s", str(missing)) in calls
    assert any("cannot mark the Ekos run" in r.getMessage() and str(missing) in r.getMessage() for r in caplog.records)
