"""Asks the scheduler for a plan made now, right before Ekos is started or restarted.

Ekos drops a job whose fixed start lies more than its lead time in the past, so files
written at noon lose every job that has begun by the time the roof opens. Before every
start the MCP publishes a :class:`~obsy.messages.PlanRequest` on
``<p>/scheduler/plan/set`` and waits (``mcp.ekos.plan_timeout``) for the plan that
carries its ``request_id``; Ekos then loads that plan's files. With the scheduler not
online (nobody to ask), without an answer in time, or when the answer has no files
(nothing left tonight), the latest plan's files are loaded: Ekos runs the jobs still
ahead in them, or finds none and the night ends.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from obsy.messages import PlanRequest, SchedulerPlan

log = logging.getLogger(__name__)

Publish = Callable[[PlanRequest], None]


class PlanRequester:
    def __init__(self, publish: Publish, timeout: float, scheduler_online: Callable[[], bool] = lambda: True) -> None:
        self._publish = publish
        self.timeout = timeout
        self._scheduler_online = scheduler_online
        self._answers: dict[str, SchedulerPlan] = {}
        self._waiting: set[str] = set()
        self._cond = threading.Condition()

    def on_plan(self, plan: SchedulerPlan) -> None:
        """Every plan from the bus; keeps those that answer a request being waited for."""
        if plan.request_id is None:
            return
        with self._cond:
            if plan.request_id in self._waiting:
                self._answers[plan.request_id] = plan
                self._cond.notify_all()

    def fresh_schedule(self, latest: str) -> str:
        """The .esl of a plan made now; ``latest`` (the last plan's) when none comes in time or it has none."""
        if not self._scheduler_online():
            log.warning("the scheduler is not online: loading the last plan (%s)", latest)
            return latest
        request = PlanRequest(request_id=uuid.uuid4().hex, origin="mcp", reason="Ekos is about to start")
        with self._cond:
            self._waiting.add(request.request_id)
        try:
            self._publish(request)
            with self._cond:
                self._cond.wait_for(lambda: request.request_id in self._answers, timeout=self.timeout)
                answer = self._answers.pop(request.request_id, None)
        finally:
            with self._cond:
                self._waiting.discard(request.request_id)
        if answer is None:
            log.warning(
                "the scheduler did not answer the plan request within %.0f s: loading the last plan (%s)",
                self.timeout,
                latest,
                extra={"event": "plan_request_unanswered"},
            )
            return latest
        if not answer.ekos_schedule_path:
            log.info("the plan made now has no jobs: loading the last plan (%s)", latest)
            return latest
        return answer.ekos_schedule_path
