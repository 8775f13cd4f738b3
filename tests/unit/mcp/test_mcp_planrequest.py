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
