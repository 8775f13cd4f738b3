"""The scheduler service: targets in, tonight's plan and Ekos files out.

- Subscribes to ``<p>/web/targets`` (retained :class:`~obsy.messages.TargetList`; an
  invalid payload is dropped and counted by the bus, the last good list stays).
- Plans on the runner's thread (``poll``), never on the bus thread: when the targets
  change (progress included: the web sends the acquired counts with the targets), once a
  day at ``scheduler.replan_at`` (site time), and when the observing night changes.
  Changes that arrive together are planned once (``DEBOUNCE_S``).
- Writes the Ekos schedule (.esl) and sequences (.esq) under ``scheduler.ekos.output_dir``
  and publishes the plan retained on ``<p>/scheduler/plan`` with their paths. If the files
  cannot be written, the plan still goes out (without paths) and the health says why.
- Until targets have arrived, it publishes an empty plan for the night after
  ``STARTUP_GRACE_S``, so that the dashboard shows the night's dark hours.
- On a :class:`~obsy.messages.PlanRequest` (``<p>/scheduler/plan/set``, sent by the MCP
  before it starts or restarts Ekos) it plans the rest of the night from now at once and
  answers with a plan carrying the request's id: files whose jobs all start from now on,
  none of which Ekos drops as "in the past".
- Filters are checked against the wheel's names, read from its INDI FILTER_NAME at every
  plan (or configured); a target with a filter the wheel lacks is excluded with the reason.
- Exoplanet targets are planned at their transits with the ephemerides of
  ``scheduler.transits.ephemeris_file`` (read again when the file changes); a file that
  cannot be used leaves every target ordinary, and the health says why.
- Every plan is written as a new set of files (see :func:`~obsy_scheduler.ekos.write_plan`),
  so a re-plan never changes the files of a schedule Ekos is running. Progress re-plans come
  with every accepted light, so the night's older runs go (:func:`~obsy_scheduler.ekos.prune_runs`)
  but never one Ekos may be running: a run written for a plan request is marked kept
  (:mod:`obsy.kstars.runs`; the MCP loads those), the MCP marks any other run it loads (its
  fallback to the latest plan), and the newest ``ekos.keep_runs`` unmarked runs stay for that
  fallback. The marker is a file, so a restarted scheduler keeps them too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from obsy import astro
from obsy.kstars.runs import keep_run
from obsy.messages import Event, EventKind, PlanRequest, SchedulerPlan, Target, TargetList
from obsy.runner import Service
from obsy.transits.ephemeris import EphemerisError, EphemerisTable
from obsy_scheduler.ekos import prune_old_nights, prune_runs, write_plan
from obsy_scheduler.filters import FilterNames, FilterReadError, WheelWatch, wheel_filters
from obsy_scheduler.planner import Planner
from obsy_scheduler.transits import EphemerisFile

DEBOUNCE_S = 1.0
STARTUP_GRACE_S = 5.0
#: How long reading the filter wheel's names may take, and how long after a failed read
#: plans go on with the names read before (or unchecked) without trying again.
FILTER_READ_TIMEOUT_S = 3.0
FILTER_RETRY_S = 60.0


class SchedulerService(Service):
    name = "scheduler"
    poll_interval = 0.5

    def start(self) -> None:
        self.planner = Planner(self.config.site, self.settings)
        self._lock = threading.Lock()
        self._targets: list[Target] | None = None
        self._changed_at: float | None = None
        self._started = time.monotonic()
        self._planned_night: date | None = None
        self._last_daily: date | None = None
        self._last_plan: SchedulerPlan | None = None
        self._requests: list[PlanRequest] = []
        self._wheel: FilterNames | None = None  # the names last read from the wheel
        self._wheel_watch: WheelWatch | None = None  # its connection, made at the first plan that needs it
        self._wheel_failed_at: float | None = None
        self._filters_note = ""
        self._last_error = ""
        self._planning_s = 0.0
        path = self.settings.transits.ephemeris_file
        self._ephemeris_file = EphemerisFile(path) if path else None
        self._transits_note = ""
        self.bus.subscribe(self.topics.web_targets, self._on_targets, TargetList)
        self.bus.subscribe(self.topics.scheduler_plan_command, self._on_plan_request, PlanRequest)
        # Compute tonight's sky now, in the background (a few milliseconds, cached per
        # night), so that the first plan is as quick as the next.
        threading.Thread(target=self._warm_up, name="scheduler-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            self.planner.sky(astro.night_of(self.config.site, self.clock()))
        except Exception:  # the real planning reports any problem; this is only a head start
            self.log.debug("warm-up failed", exc_info=True)

    # ----------------------------------------------------------------- inputs

    def _on_targets(self, _topic: str, message: TargetList) -> None:
        with self._lock:
            self._targets = list(message.targets)
            self._changed_at = time.monotonic()
        self.log.info("received %d targets", len(message.targets), extra={"event": "targets_received"})

    def _on_plan_request(self, _topic: str, request: PlanRequest) -> None:
        with self._lock:
            self._requests.append(request)
        self.log.info(
            "plan requested by %s (%s)",
            request.origin or "?",
            request.reason or "no reason given",
            extra={"event": "plan_requested", "request_id": request.request_id},
        )

    # ----------------------------------------------------------------- planning

    def poll(self) -> None:
        now = self.clock()
        with self._lock:
            requests, self._requests = self._requests, []
        if requests:  # requests that arrived together get one plan, published once for each
            self.replan("request", now, request_ids=[request.request_id for request in requests])
            return
        trigger = self._trigger(now)
        if trigger:
            self.replan(trigger, now)

    def _trigger(self, now: datetime) -> str | None:
        """Why to plan now, or None. Any plan made after today's ``replan_at`` counts as the daily one."""
        trigger = self._why(now)
        local = now.astimezone(ZoneInfo(self.config.site.timezone))
        hour, minute = (int(part) for part in self.settings.replan_at.split(":"))
        daily_due = local.date() != self._last_daily and (local.hour, local.minute) >= (hour, minute)
        if daily_due and (trigger or self._last_plan is not None):
            self._last_daily = local.date()
            trigger = trigger or "daily"
        return trigger

    def _why(self, now: datetime) -> str | None:
        with self._lock:
            changed_at = self._changed_at
            have_targets = self._targets is not None
        monotonic = time.monotonic()
        if changed_at is not None and monotonic - changed_at >= DEBOUNCE_S:
            return "targets"
        if not have_targets:
            if self._last_plan is None and monotonic - self._started >= STARTUP_GRACE_S:
                return "start"
            return None
        if self._planned_night is not None and astro.night_of(self.config.site, now) != self._planned_night:
            return "night"
        return None

    def replan(self, trigger: str, now: datetime | None = None, request_ids: Sequence[str] = ()) -> SchedulerPlan:
        """Plan the current night from ``now`` with the latest targets, write the Ekos files, publish.

        With ``request_ids``, the plan is published once for each, carrying its id.
        """
        now = now or self.clock()
        with self._lock:
            targets = list(self._targets or [])
            self._changed_at = None
        filters = self._filter_names()
        started = time.perf_counter()
        ephemerides = self._ephemerides()
        plan = self.planner.plan(targets, now=now, filters=filters, ephemerides=ephemerides)
        if ephemerides is not None:
            planned = sum(b.transit is not None for b in plan.blocks)
            self._transits_note = f"{planned} of {len(plan.transits)} transits of the night planned"
        self._planning_s = time.perf_counter() - started
        schedule_path: str | None = None
        sequences: list[str] = []
        block_sequences: list[str | None] = [None] * len(plan.blocks)
        self._last_error = ""
        if plan.blocks:
            try:
                files = write_plan(
                    plan,
                    self.settings.ekos,
                    self._output_dir(),
                    self._fits_dir(),
                    self.config.site.timezone,
                    written_at=now,
                )
                for request_id in request_ids:  # the MCP loads this run: it stays all night
                    keep_run(files.schedule, f"written for plan request {request_id}")
                schedule_path = str(files.schedule)
                sequences = [str(path) for path in files.sequence_paths()]
                block_sequences = [str(path) for path in files.block_sequences()]
            except OSError as exc:
                self._last_error = f"cannot write the Ekos files: {exc}"
                self.log.error(self._last_error, extra={"event": "ekos_write_failed"})
            self._prune(plan.night)
        message = plan.to_message(trigger=trigger, schedule_path=schedule_path, site=self.config.site)
        message.sequence_paths = sequences
        for block, sequence in zip(message.blocks, block_sequences, strict=True):
            block.sequence_path = sequence
        for request_id in request_ids:
            answer = message.model_copy(update={"request_id": request_id})
            self.bus.publish(self.topics.scheduler_plan, answer, qos=1, retain=True)
        if not request_ids:
            self.bus.publish(self.topics.scheduler_plan, message, qos=1, retain=True)
        self._planned_night = plan.night
        self._last_plan = message
        self.log.info(
            "planned night %s (%s): %d blocks, %d excluded, %.0f%% of %.1f dark hours, %.0f ms",
            message.night,
            trigger,
            len(message.blocks),
            len(message.excluded),
            100 * (message.filled_fraction or 0),
            message.dark_hours or 0,
            1000 * self._planning_s,
            extra={"event": "planned"},
        )
        self.bus.publish_event(
            Event(
                service=self.name,
                kind=EventKind.PLAN,
                message=f"planned {len(message.blocks)} blocks for the night of {message.night} ({trigger})",
                data={"night": message.night, "blocks": len(message.blocks), "trigger": trigger},
            )
        )
        return message

    def _filter_names(self) -> FilterNames | None:
        """The wheel's names to check plans against (see filters.py); the last ones read when it cannot be read."""
        ekos = self.settings.ekos
        if not ekos.filter_wheel or ekos.filters:
            self._filters_note = "from scheduler.ekos.filters" if ekos.filter_wheel else "no filter wheel"
            return wheel_filters(ekos, self._read_wheel)
        recently_failed = (
            self._wheel_failed_at is not None and time.monotonic() - self._wheel_failed_at < FILTER_RETRY_S
        )
        if not recently_failed:
            try:
                self._wheel = wheel_filters(ekos, self._read_wheel)
                self._wheel_failed_at = None
                self._filters_note = f"read from {ekos.filter_wheel} FILTER_NAME"
            except FilterReadError as exc:
                self._wheel_failed_at = time.monotonic()
                self._filters_note = (
                    f"{exc}; checked against the names read before" if self._wheel else f"not checked: {exc}"
                )
                self.log.warning("filter names: %s", self._filters_note, extra={"event": "filter_names_unread"})
        return self._wheel

    def _read_wheel(self, device: str) -> tuple[str, ...]:
        if self._wheel_watch is None or self._wheel_watch.device != device:
            if self._wheel_watch is not None:
                self._wheel_watch.close()
            self._wheel_watch = WheelWatch(self.config.indi, device, FILTER_READ_TIMEOUT_S)
        return self._wheel_watch.names()

    def stop(self) -> None:
        if self._wheel_watch is not None:
            self._wheel_watch.close()

    def _ephemerides(self) -> EphemerisTable | None:
        """The transit ephemerides, or None (no file configured, or one that cannot be used: said in the health)."""
        if self._ephemeris_file is None:
            return None
        try:
            return self._ephemeris_file.table()
        except EphemerisError as exc:
            self._transits_note = f"no transit planning: {exc}"
            self.log.error(self._transits_note, extra={"event": "ephemerides_unread"})
            return None

    def _prune(self, night: date) -> None:
        """Old nights' Ekos files go (``ekos.keep_nights``), and the night's runs nobody can be running
        (``ekos.keep_runs``, :func:`~obsy_scheduler.ekos.prune_runs`); a failure is logged, never stops planning."""
        output_dir = self._output_dir().expanduser().absolute()
        try:
            removed = prune_old_nights(output_dir, night, self.settings.ekos.keep_nights)
            runs = prune_runs(output_dir / night.isoformat(), self.settings.ekos.keep_runs)
        except OSError as exc:
            self.log.warning("cannot remove old Ekos files: %s", exc, extra={"event": "ekos_prune_failed"})
            return
        if removed:
            names = ", ".join(folder.name for folder in removed)
            self.log.info("removed old Ekos files of %s", names, extra={"event": "ekos_pruned"})
        if runs:
            self.log.debug(
                "removed %d unrequested runs of %s", len(runs), night.isoformat(), extra={"event": "ekos_runs_pruned"}
            )

    def _output_dir(self) -> Path:
        return self.settings.ekos.output_dir or (self.config.data_dir / "ekos")

    def _fits_dir(self) -> Path:
        return self.settings.ekos.fits_dir or (self.config.data_dir / "frames")

    # ----------------------------------------------------------------- health

    def health_details(self) -> dict[str, Any]:
        plan = self._last_plan
        details: dict[str, Any] = {
            "targets": len(self._targets) if self._targets is not None else None,
            "planning_ms": round(1000 * self._planning_s, 1),
        }
        if plan is not None:
            details.update(night=plan.night, blocks=len(plan.blocks), excluded=len(plan.excluded), trigger=plan.trigger)
        if self._filters_note:
            details["filters"] = self._filters_note
        if self._transits_note:
            details["transits"] = self._transits_note
        if self._last_error:
            details["error"] = self._last_error
        return details


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry, which lives in :mod:`obsy_scheduler.main` (it starts without this module)."""
    from obsy_scheduler.main import main as console_main

    return console_main(argv)
