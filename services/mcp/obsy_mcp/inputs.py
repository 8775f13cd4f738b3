"""What the MCP knows about the world, and how it turns that into :class:`Conditions`.

Every input carries the time it arrived on the MCP's own clock (injected, so tests can
move time on without sleeping). "Unknown is unsafe": after the start-up grace period a
missing verdict, a service that is not ``online``, a heartbeat older than its limit, or
the broker gone for longer than its grace period is a hazard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from obsy.messages import CloudState, Mode, SafetyVerdict, SchedulerPlan, ServiceHealth
from obsy.topics import ONLINE
from obsy_mcp.config import McpConfig
from obsy_mcp.operator_state import OperatorState
from obsy_mcp.statemachine import Conditions

Clock = Callable[[], float]


@dataclass
class Seen:
    value: Any
    at: float  # MCP clock


@dataclass
class Inputs:
    """The latest value of every input, guarded by one lock (written by the bus thread).

    Callers change it only through its methods, each of which takes the lock; reading one
    field needs no lock.
    """

    config: McpConfig
    clock: Clock
    started_at: float = 0.0
    verdict: Seen | None = None
    cloud: Seen | None = None
    plan: Seen | None = None
    availability: dict[str, Seen] = field(default_factory=dict)
    health: dict[str, Seen] = field(default_factory=dict)
    broker_connected: bool = True
    broker_lost_at: float | None = None
    mode: Mode = Mode.AUTO
    night_aborted: bool = False
    night_end_reason: str = ""
    night_ended_for: date | None = None  # the observing night (obsy.astro.night_of) that was ended
    awaiting_operator: bool = False  # started without a saved decision: no opening until an operator decides
    last_unsafe_at: float | None = None
    last_other_unsafe_at: float | None = None  # the last hazard other than the weather's own verdict
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    # --- updates (bus thread) --------------------------------------------------------
    def set_verdict(self, verdict: SafetyVerdict) -> None:
        with self.lock:
            self.verdict = Seen(verdict, self.clock())

    def set_cloud(self, cloud: CloudState) -> None:
        with self.lock:
            self.cloud = Seen(cloud, self.clock())

    def set_plan(self, plan: SchedulerPlan) -> None:
        with self.lock:
            self.plan = Seen(plan, self.clock())

    def set_availability(self, service: str, value: str) -> None:
        with self.lock:
            self.availability[service] = Seen(value, self.clock())

    def set_health(self, service: str, health: ServiceHealth) -> None:
        # A retained heartbeat may be old already: count its age from when it was sent.
        age = max(0.0, (datetime.now(UTC) - health.timestamp).total_seconds())
        with self.lock:
            self.health[service] = Seen(health, self.clock() - age)

    def end_night(self, reason: str, night: date, *, awaiting_operator: bool = False) -> None:
        """The observing ``night`` is over (the operator, Ekos finished...): closed until START or the next night."""
        with self.lock:
            self.night_aborted = True
            self.night_end_reason = reason
            self.night_ended_for = night
            self.awaiting_operator = awaiting_operator

    def resume_night(self) -> None:
        with self.lock:
            self.night_aborted = False
            self.night_end_reason = ""
            self.night_ended_for = None
            self.awaiting_operator = False

    def operator_decided(self) -> None:
        """An operator decided something (a mode): a hold set for want of a saved decision is lifted."""
        with self.lock:
            if self.awaiting_operator:
                self.resume_night()

    def set_mode(self, mode: Mode) -> None:
        """The operator's mode command: the mode, and a hold for want of a saved decision lifted."""
        with self.lock:
            self.mode = mode
            self.operator_decided()

    def stop_takes_over(self) -> None:
        """STOP: in auto mode the operator takes over (manual) where the roof stands."""
        with self.lock:
            if self.mode is Mode.AUTO:
                self.mode = Mode.MANUAL

    def restore(self, saved: OperatorState, tonight: date, default_reason: str) -> None:
        """Take up the operator's decision from the state file: its mode, and its night ended if that is tonight."""
        with self.lock:
            self.mode = saved.mode
            if saved.night_ended(tonight):
                assert saved.night_ended_for is not None
                reason = saved.night_end_reason or default_reason
                self.end_night(reason, saved.night_ended_for, awaiting_operator=saved.awaiting_operator)

    def operator_state(self, alarm: str) -> OperatorState:
        """The operator's decisions as they stand now, with the latched ``alarm``: what the state file keeps."""
        with self.lock:
            return OperatorState(
                mode=self.mode,
                night_ended_for=self.night_ended_for if self.night_aborted else None,
                night_end_reason=self.night_end_reason if self.night_aborted else "",
                alarm=alarm,
                awaiting_operator=self.awaiting_operator,
            )

    def resume_if_ended_before(self, tonight: date) -> tuple[date, str] | None:
        """A night ended holds for the night it was ended for: resume it once ``tonight`` is a later night.

        Returns the night that was ended and why, when it was resumed; None when nothing changed.
        """
        with self.lock:
            ended_for = self.night_ended_for
            if not self.night_aborted or ended_for is None or ended_for >= tonight:
                return None
            reason = self.night_end_reason
            self.resume_night()
        return ended_for, reason

    def set_broker(self, connected: bool) -> None:
        with self.lock:
            if connected:
                self.broker_lost_at = None
            elif self.broker_connected:
                self.broker_lost_at = self.clock()
            self.broker_connected = connected

    # --- assessment ---------------------------------------------------------------------
    def conditions(
        self, *, sun_altitude: float | None, tonight: str | None, alarm: str = "", now: float | None = None
    ) -> Conditions:
        """The conditions now; also remembers when they were last unsafe (for the hysteresis)."""
        now = self.clock() if now is None else now
        with self.lock:
            hazards: list[str] = []
            pending: list[str] = []
            in_grace = now - self.started_at < self.config.startup_grace

            def missing(what: str) -> None:
                (pending if in_grace else hazards).append(what)

            weather_unsafe = self.verdict is not None and not self.verdict.value.safe
            if self.verdict is None:
                missing("no weather verdict")
            elif weather_unsafe:
                reasons = [r.message or r.quantity for r in self.verdict.value.reasons]
                hazards.append("weather unsafe: " + (", ".join(reasons) or "no reason given"))
            for service in self.config.required_services:
                hazards.extend(self._service_problems(service, now, missing))
            if not self.broker_connected and self.broker_lost_at is not None:
                lost_for = now - self.broker_lost_at
                if lost_for >= self.config.broker_grace:
                    hazards.append(f"broker lost for {lost_for:.0f} s")
            sky: list[str] = []
            if self.config.require_clear_sky:
                if self.cloud is None:
                    if in_grace:
                        pending.append("no cloud verdict")
                    else:
                        sky.append("no cloud verdict")
                elif self.cloud.value.clear is not True:
                    state = self.cloud.value
                    why = "unknown" if state.clear is None else state.label
                    sky.append(f"sky not clear ({why}{': ' + state.reason if state.reason else ''})")
            has_plan, plan_reason = self._plan(tonight)
            if hazards or sky:
                self.last_unsafe_at = now
            if len(hazards) > int(weather_unsafe) or sky:
                self.last_other_unsafe_at = now
            safe_for = self._safe_for(now)
            return Conditions(
                mode=self.mode,
                hazards=tuple(hazards),
                sky=tuple(sky),
                pending=tuple(pending),
                sun_altitude=sun_altitude,
                sun_limit=self.config.sun_altitude_limit,
                has_plan=has_plan,
                plan_reason=plan_reason,
                night_aborted=self.night_aborted,
                night_end_reason=self.night_end_reason,
                safe_for=safe_for,
                safe_delay=self.config.safe_delay,
                alarm=alarm,
                manual_closes_on_unsafe=self.config.manual_closes_on_unsafe,
            )

    def _safe_for(self, now: float) -> float | None:
        """Seconds since the last hazard ended (None: never unsafe since the start).

        The weather service waits its own ``safe_delay`` before it says safe, and says since when
        the weather has been fine (``fine_since``). That wait counts here too: for a hazard of
        the weather alone the roof reopens after the longer of the two delays, not their sum.
        Every other hazard (a silent service, clouds, the broker) counts from when it ended.
        """
        ended = self.last_unsafe_at
        verdict = self.verdict.value if self.verdict is not None else None
        if ended is None or verdict is None or not verdict.safe or verdict.fine_since is None:
            return None if ended is None else now - ended
        fine_for = max(0.0, (datetime.now(UTC) - verdict.fine_since).total_seconds())
        weather_ended = min(ended, now - fine_for)
        if self.last_other_unsafe_at is not None:
            weather_ended = max(weather_ended, self.last_other_unsafe_at)
        return now - weather_ended

    def _service_problems(self, service: str, now: float, missing: Callable[[str], None]) -> list[str]:
        problems: list[str] = []
        available = self.availability.get(service)
        if available is None:
            missing(f"no availability from {service}")
        elif available.value != ONLINE:
            problems.append(f"{service} is {available.value}")
        health = self.health.get(service)
        if health is None:
            missing(f"no heartbeat from {service}")
        elif self.broker_connected:  # without the broker no heartbeat can come: broker_grace rules then
            limit = self.config.heartbeat_limit_factor * health.value.heartbeat_interval_s
            age = now - health.at
            if age > limit:
                problems.append(f"{service} silent for {age:.0f} s (limit {limit:.0f} s)")
        return problems

    def service_problems(self, services: list[str], now: float | None = None) -> dict[str, str | None]:
        """For supervision: each service seen on the bus so far -> its problem now, or None."""
        now = self.clock() if now is None else now
        with self.lock:
            if not self.broker_connected:
                return {}  # nothing can be judged without the broker
            seen = [s for s in services if s in self.availability or s in self.health]
            return {s: "; ".join(self._service_problems(s, now, lambda _what: None)) or None for s in seen}

    def _plan(self, tonight: str | None) -> tuple[bool, str]:
        if not self.config.require_plan:
            return True, ""
        if self.plan is None:
            return False, "no plan from the scheduler"
        plan: SchedulerPlan = self.plan.value
        if tonight is not None and plan.night != tonight:
            return False, f"the plan is for {plan.night}, not tonight ({tonight})"
        if not plan.blocks:
            return False, "tonight's plan has no targets"
        return True, ""

    def is_online(self, service: str) -> bool:
        """Whether ``service`` last said it is online."""
        with self.lock:
            available = self.availability.get(service)
            return available is not None and available.value == ONLINE

    def schedule_path(self) -> str | None:
        with self.lock:
            return None if self.plan is None else self.plan.value.ekos_schedule_path
