"""The MCP's states, the rules that choose one, and the transitions allowed between them.

Two tables, meant to be read by people (docs/mcp.md draws them):

- :data:`RULES` decides, from the current :class:`Conditions`, which state the
  observatory should be in and where the roof must be (open, closed, or left alone).
  The first rule that matches wins, so the order *is* the priority: safety first.
- :data:`TRANSITIONS` lists every move the controller may make. The controller checks
  each transition against it; a move that is not listed is a bug and raises an alarm.

:func:`next_state` turns the decision and the roof as read back into the controller's
move; it answers every roof reading in every state, and every answer is in the table.

Nothing here touches a device or the bus: the functions are pure and are tested
without either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from obsy.messages import Mode


class State(StrEnum):
    STARTING = "starting"  # just started: reading the devices back, waiting for the first inputs
    DAY = "day"  # the Sun is up; roof closed
    WAITING_FOR_DARK = "waiting_for_dark"  # Sun below the horizon but above the configured limit
    STANDBY = "standby"  # dark, safe, but nothing to do (no plan, or the night was ended)
    WAITING_FOR_SAFE = "waiting_for_safe"  # safe again, waiting until it has stayed safe long enough
    OPENING = "opening"  # opening sequence running
    OBSERVING = "observing"  # roof open, Ekos scheduler running
    CLOSING = "closing"  # closing sequence running
    CLOSED_UNSAFE = "closed_unsafe"  # unsafe: roof closed (or being made so)
    MANUAL = "manual"  # the operator drives the roof
    ALARM = "alarm"  # a device step failed: retrying, needs attention
    OFF = "off"  # the MCP moves nothing by itself


class RoofPosition(StrEnum):
    """Where the roof is, as its driver last reported it (``devices.roof_position``)."""

    OPEN = "open"
    CLOSED = "closed"
    OPENING = "opening"
    CLOSING = "closing"
    STOPPED = "stopped"  # halted between open and closed, or the driver reports Alert
    UNKNOWN = "unknown"  # no driver report (indiserver unreachable, device not connected)


class RoofGoal(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ANY = "any"  # leave the roof where it is


@dataclass(frozen=True)
class Conditions:
    """Everything the rules look at, as the controller saw it at one moment."""

    mode: Mode
    hazards: tuple[str, ...] = ()
    """Reasons the roof must close: bad weather, silent services, the broker gone."""
    sky: tuple[str, ...] = ()
    """Reasons not to observe that do not endanger the hardware (clouds)."""
    pending: tuple[str, ...] = ()
    """Inputs not seen yet during the start-up grace period: do not open, do not close."""
    sun_altitude: float | None = None
    sun_limit: float = -12.0
    has_plan: bool = False
    plan_reason: str = ""
    night_aborted: bool = False
    night_end_reason: str = ""
    """Why the night ended ("schedule finished", ...); empty: the operator ended it."""
    safe_for: float | None = None
    """Seconds since the last hazard or sky reason; None when none was seen since start."""
    safe_delay: float = 0.0
    alarm: str = ""
    manual_closes_on_unsafe: bool = True

    @property
    def unsafe_reasons(self) -> tuple[str, ...]:
        return self.hazards + self.sky


@dataclass(frozen=True)
class Decision:
    state: State
    roof: RoofGoal
    reason: str


@dataclass(frozen=True)
class Rule:
    state: State
    roof: RoofGoal
    applies: Callable[[Conditions], bool]
    reason: Callable[[Conditions], str]
    description: str


def _sun_up(c: Conditions) -> bool:
    return c.sun_altitude is None or c.sun_altitude > 0


def _sun_above_limit(c: Conditions) -> bool:
    return c.sun_altitude is None or c.sun_altitude > c.sun_limit


def _waiting_for_safe(c: Conditions) -> bool:
    return c.safe_for is not None and c.safe_for < c.safe_delay


def _sun(c: Conditions) -> str:
    return "unknown" if c.sun_altitude is None else f"{c.sun_altitude:.1f}°"


#: First match wins. Each rule: the state, where the roof must be, when it applies.
RULES: tuple[Rule, ...] = (
    Rule(State.OFF, RoofGoal.ANY, lambda c: c.mode is Mode.OFF, lambda c: "mode off", "mode is off"),
    Rule(
        State.ALARM,
        RoofGoal.CLOSED,
        lambda c: bool(c.alarm),
        lambda c: c.alarm,
        "a device step failed (alarm): keep trying to close",
    ),
    Rule(
        State.MANUAL,
        RoofGoal.CLOSED,
        lambda c: c.mode is Mode.MANUAL and c.manual_closes_on_unsafe and bool(c.hazards),
        lambda c: "manual, closing: " + "; ".join(c.hazards),
        "manual mode, unsafe, and manual_closes_on_unsafe is set",
    ),
    Rule(
        State.MANUAL,
        RoofGoal.ANY,
        lambda c: c.mode is Mode.MANUAL,
        lambda c: "operator in control",
        "manual mode",
    ),
    Rule(
        State.CLOSED_UNSAFE,
        RoofGoal.CLOSED,
        lambda c: bool(c.hazards),
        lambda c: "; ".join(c.hazards),
        "a hazard: unsafe weather, a silent service, the broker lost",
    ),
    Rule(
        State.STARTING,
        RoofGoal.ANY,
        lambda c: bool(c.pending),
        lambda c: "waiting for " + ", ".join(c.pending),
        "start-up grace: inputs not seen yet (neither open nor close)",
    ),
    Rule(
        State.DAY,
        RoofGoal.CLOSED,
        _sun_up,
        lambda c: f"Sun at {_sun(c)}",
        "the Sun is above the horizon",
    ),
    Rule(
        State.WAITING_FOR_DARK,
        RoofGoal.CLOSED,
        _sun_above_limit,
        lambda c: f"Sun at {_sun(c)}, above the limit {c.sun_limit:g}°",
        "the Sun is above the configured limit",
    ),
    Rule(
        State.STANDBY,
        RoofGoal.CLOSED,
        lambda c: c.night_aborted,
        lambda c: c.night_end_reason or "night ended by the operator",
        "the night was ended: the operator closed the roof or aborted it, or the Ekos schedule finished",
    ),
    Rule(
        State.STANDBY,
        RoofGoal.CLOSED,
        lambda c: not c.has_plan,
        lambda c: c.plan_reason or "no plan for tonight",
        "no scheduler plan for tonight",
    ),
    Rule(
        State.CLOSED_UNSAFE,
        RoofGoal.CLOSED,
        lambda c: bool(c.sky),
        lambda c: "; ".join(c.sky),
        "the sky is not clear (or its state unknown)",
    ),
    Rule(
        State.WAITING_FOR_SAFE,
        RoofGoal.CLOSED,
        _waiting_for_safe,
        lambda c: f"safe for {c.safe_for or 0:.0f} s of the required {c.safe_delay:g} s",
        "conditions became safe recently (hysteresis)",
    ),
    Rule(
        State.OBSERVING,
        RoofGoal.OPEN,
        lambda c: True,
        lambda c: "dark, safe, plan for tonight",
        "everything is safe, dark, and there is a plan",
    ),
)


def decide(conditions: Conditions) -> Decision:
    """The state the observatory should be in, and where its roof must be."""
    for rule in RULES:
        if rule.applies(conditions):
            return Decision(rule.state, rule.roof, rule.reason(conditions))
    raise AssertionError("the last rule always applies")  # pragma: no cover


# --- transitions ---------------------------------------------------------------------

#: States the controller rests in (chosen by :data:`RULES`); OPENING/CLOSING are sequences.
RESTING = frozenset(rule.state for rule in RULES)
#: Resting states that need the roof closed (reached through CLOSING when it is not).
CLOSED_RESTING = frozenset(
    {State.DAY, State.WAITING_FOR_DARK, State.STANDBY, State.WAITING_FOR_SAFE, State.CLOSED_UNSAFE, State.ALARM}
)
#: Where a CLOSING sequence may end when the roof is confirmed closed.
AFTER_CLOSING = CLOSED_RESTING | {State.MANUAL, State.OFF}
#: Where an OPENING sequence may end when the roof is confirmed open.
AFTER_OPENING = frozenset({State.OBSERVING, State.MANUAL, State.OFF})


@dataclass(frozen=True)
class Transition:
    sources: frozenset[State]
    targets: frozenset[State]
    trigger: str


_OPENING = frozenset({State.OPENING})
_CLOSING = frozenset({State.CLOSING})
_MOVING = _OPENING | _CLOSING

TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        RESTING, RESTING - {State.STARTING}, "conditions changed and the roof is already where the new state needs it"
    ),
    Transition(RESTING, _CLOSING, "the new state needs the roof closed, or a CLOSE command"),
    Transition(
        RESTING - {State.OBSERVING},
        _OPENING,
        "auto: safe, dark, plan, safe long enough; manual: OPEN command while safe",
    ),
    Transition(_OPENING, AFTER_OPENING, "roof confirmed open"),
    Transition(_OPENING, _CLOSING, "a hazard, CLOSE, or the night ended while opening"),
    Transition(_CLOSING, AFTER_CLOSING, "roof confirmed closed"),
    Transition(
        _OPENING, CLOSED_RESTING, "an opening cut short before the roof left closed (or someone else closed it)"
    ),
    Transition(_MOVING, frozenset({State.ALARM}), "a device step failed after retries"),
    Transition(_MOVING, frozenset({State.MANUAL}), "STOP: roof halted where it is"),
    Transition(_MOVING, frozenset({State.OFF}), "mode set to off during a sequence"),
)


def transition_allowed(source: State, target: State) -> bool:
    return any(source in t.sources and target in t.targets for t in TRANSITIONS)


def next_state(  # noqa: PLR0911 - one answer per case, in the order of the docstring
    state: State, roof: RoofPosition, decision: Decision, *, alarm_retry_due: bool = True
) -> State | None:
    """The controller's first move from ``state`` with the roof read back at ``roof``.

    OPENING or CLOSING starts that sequence; another state is a move to that resting state
    (the roof is already where it needs to be); None: stay, act on a later evaluation.
    Every roof reading in every state has an answer here, and every answer is in
    :data:`TRANSITIONS` (tests/unit/mcp/test_mcp_statemachine.py drives them all):

    - roof unknown (no report): stay; the MCP never acts blind.
    - observing, roof not open: someone else closed or stopped it (Ekos, a hand controller,
      the driver's own safety): close, never reopen (the controller ends the night first).
    - the rules want it closed and it is not: close (an alarm retries on its interval).
    - a closing is never followed by an opening before it has rested closed.
    - the rules want it open and it is not: open, unless alarming, or the roof is closing
      right now by someone else's hand (never open against that).
    - the inputs are still pending (start-up grace) after the MCP already left ``starting``: stay.
    """
    if roof is RoofPosition.UNKNOWN:
        return None
    if state is State.OBSERVING and roof is not RoofPosition.OPEN:
        return State.CLOSING
    if decision.roof is RoofGoal.CLOSED and roof is not RoofPosition.CLOSED:
        return None if state is State.ALARM and not alarm_retry_due else State.CLOSING
    if state is State.CLOSING and decision.roof is RoofGoal.OPEN:
        return State.CLOSING  # a closing is finished before anything opens again (it then rests closed)
    if decision.roof is RoofGoal.OPEN and roof is not RoofPosition.OPEN:
        return None if state is State.ALARM or roof is RoofPosition.CLOSING else State.OPENING
    if decision.state is State.STARTING and state is not State.STARTING:
        return None
    return decision.state
