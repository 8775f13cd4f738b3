"""The Ekos scheduler while the MCP observes: started after the roof opened, stopped first when closing, watched.

While observing, the scheduler's status is read every ``ekos.poll_interval`` on a worker thread
(a D-Bus call must never hold up the controller) and acted upon on the controller's thread: a
schedule that finishes ends the night ("schedule finished"); one that aborts follows
``ekos.on_abort`` (start it once more, close, or only report).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from obsy.messages import EventKind
from obsy_mcp.config import McpEkosConfig
from obsy_mcp.ekos import Ekos, EkosError, SchedulerStatus
from obsy_mcp.inputs import Clock
from obsy_mcp.publishing import EventSink
from obsy_mcp.steps import Steps

SCHEDULE_FINISHED = "schedule finished"
EKOS_ABORTED = "the Ekos scheduler aborted"
#: Scheduler states that mean a schedule is being worked on.
EKOS_ACTIVE = frozenset({SchedulerStatus.STARTUP, SchedulerStatus.RUNNING, SchedulerStatus.PAUSED})


class EkosWatch:
    """Starts, stops and watches the Ekos scheduler; ``status`` is its last status seen (published)."""

    def __init__(
        self,
        ekos: Ekos,
        *,
        settings: McpEkosConfig,
        clock: Clock,
        event: EventSink,
        steps: Steps,
        schedule_path: Callable[[], str | None],
    ) -> None:
        self.ekos = ekos
        self.settings = settings
        self.clock = clock
        self._event = event
        self._steps = steps
        self._schedule_path = schedule_path
        self.status: str | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-ekos-watch")
        self._poll: Future[SchedulerStatus] | None = None
        self._polled_at: float | None = None
        self._was_running = False
        self._retried = self._unreachable = False

    # --- the sequences' steps ---------------------------------------------------------
    def start_schedule(self, schedule: str) -> None:
        """Load and start ``schedule`` (a step of the opening order)."""
        self.ekos.start_night(schedule)
        self.status = self.ekos.scheduler_status().name.lower()
        self._was_running = True  # from now on, idle means the schedule has finished
        self._polled_at = self.clock()

    def stop_scheduler(self) -> None:
        """Stop the scheduler (the first step of the closing order)."""
        self.ekos.stop_scheduler()
        self.status = self.ekos.scheduler_status().name.lower()

    def night_opens(self) -> None:
        """A new opening: the schedule may be started once more if it aborts."""
        self._retried = False

    # --- while observing ----------------------------------------------------------------
    def check(self, observing: bool) -> str | None:
        """Act on the last status read; start the next read when due. Returns why the night ends, or None."""
        if not observing:
            self._poll = None  # a reading from before the closing means nothing now
            return None
        ends = None
        poll = self._poll
        if poll is not None and poll.done():
            self._poll = None
            try:
                status = poll.result()
            except EkosError as error:
                if not self._unreachable:
                    self._unreachable = True
                    self._event(EventKind.EKOS_UNREACHABLE, f"cannot read the Ekos scheduler: {error}", level="warning")
            else:
                self._unreachable = False
                ends = self._seen(status)
        now = self.clock()
        due = self._polled_at is None or now - self._polled_at >= self.settings.poll_interval
        if self._poll is None and due:
            self._polled_at = now
            self._poll = self._worker.submit(self.ekos.scheduler_status)
        return ends

    def _seen(self, status: SchedulerStatus) -> str | None:
        name = status.name.lower()
        if name != self.status:
            self._event(EventKind.EKOS_SCHEDULER, f"Ekos scheduler: {name}", data={"status": name, "was": self.status})
            self.status = name
        if status in EKOS_ACTIVE:
            self._was_running = True
        elif status is SchedulerStatus.SHUTDOWN or (status is SchedulerStatus.IDLE and self._was_running):
            self._was_running = False
            self._event(
                EventKind.EKOS_SCHEDULE_FINISHED, f"the Ekos schedule has finished ({name}): closing for the night"
            )
            return SCHEDULE_FINISHED
        elif status is SchedulerStatus.ABORTED:
            return self._aborted()
        return None

    def _aborted(self) -> str | None:
        policy = self.settings.on_abort
        schedule = self._schedule_path()
        retry = bool(policy == "retry_then_close" and not self._retried and schedule)
        if policy == "keep_open":
            what = "reported only (on_abort keep_open)"
        else:
            what = "starting it once more" if retry else "closing for the night"
        self._event(
            EventKind.EKOS_SCHEDULER_ABORTED,
            f"the Ekos scheduler aborted: {what}",
            level="warning" if retry or policy == "keep_open" else "error",
            data={"policy": policy, "retried": self._retried},
        )
        if policy == "keep_open":
            return None
        if retry:
            self._retried = True
            restart = lambda: self.start_schedule(schedule or "")  # noqa: E731
            if self._steps.run("restart_ekos_schedule", restart, critical=False, retry=False):
                return None
        self._was_running = False
        return EKOS_ABORTED

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
