"""The MCP's rules, transition table and input assessment, without bus or devices (injected clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from obsy.config import McpConfig
from obsy.indi import PropertySnapshot
from obsy.messages import CloudState, Mode, PlannedBlock, SafetyReason, SafetyVerdict, SchedulerPlan, ServiceHealth
from obsy_mcp.devices import RoofPosition, roof_position
from obsy_mcp.inputs import Inputs
from obsy_mcp.statemachine import (
    RESTING,
    RULES,
    Conditions,
    RoofGoal,
    State,
    decide,
    next_state,
    transition_allowed,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


NIGHT = dict(mode=Mode.AUTO, sun_altitude=-25.0, has_plan=True)


def test_a_safe_dark_night_with_a_plan_opens() -> None:
    decision = decide(Conditions(**NIGHT))
    assert (decision.state, decision.roof) == (State.OBSERVING, RoofGoal.OPEN)


@pytest.mark.parametrize(
    ("changes", "state", "roof"),
    [
        ({"hazards": ("weather unsafe: rain",)}, State.CLOSED_UNSAFE, RoofGoal.CLOSED),
        ({"sky": ("sky not clear (cloudy)",)}, State.CLOSED_UNSAFE, RoofGoal.CLOSED),
        ({"sun_altitude": 5.0}, State.DAY, RoofGoal.CLOSED),
        ({"sun_altitude": None}, State.DAY, RoofGoal.CLOSED),  # unknown Sun: not dark
        ({"sun_altitude": -8.0}, State.WAITING_FOR_DARK, RoofGoal.CLOSED),
        ({"has_plan": False}, State.STANDBY, RoofGoal.CLOSED),
        ({"night_aborted": True}, State.STANDBY, RoofGoal.CLOSED),
        ({"safe_for": 10.0, "safe_delay": 600.0}, State.WAITING_FOR_SAFE, RoofGoal.CLOSED),
        ({"pending": ("no weather verdict",)}, State.STARTING, RoofGoal.ANY),
        ({"alarm": "park failed"}, State.ALARM, RoofGoal.CLOSED),
        ({"mode": Mode.OFF, "hazards": ("rain",)}, State.OFF, RoofGoal.ANY),
        ({"mode": Mode.MANUAL}, State.MANUAL, RoofGoal.ANY),
        ({"mode": Mode.MANUAL, "hazards": ("rain",)}, State.MANUAL, RoofGoal.CLOSED),
        ({"mode": Mode.MANUAL, "hazards": ("rain",), "manual_closes_on_unsafe": False}, State.MANUAL, RoofGoal.ANY),
        ({"mode": Mode.MANUAL, "sky": ("cloudy",)}, State.MANUAL, RoofGoal.ANY),  # clouds do not hurt the roof
    ],
)
def test_rules(changes: dict, state: State, roof: RoofGoal) -> None:
    decision = decide(Conditions(**{**NIGHT, **changes}))
    assert (decision.state, decision.roof) == (state, roof)
    assert decision.reason


@pytest.mark.parametrize(
    ("ended", "reason"), [("", "night ended by the operator"), ("schedule finished", "schedule finished")]
)
def test_an_ended_night_rests_in_standby_with_its_reason(ended: str, reason: str) -> None:
    decision = decide(Conditions(**{**NIGHT, "night_aborted": True, "night_end_reason": ended}))
    assert (decision.state, decision.roof, decision.reason) == (State.STANDBY, RoofGoal.CLOSED, reason)


def test_ending_and_resuming_the_night_in_the_inputs() -> None:
    inputs = Inputs(McpConfig(startup_grace=0), lambda: 0.0)
    inputs.end_night("schedule finished", date(2026, 12, 5))
    conditions = inputs.conditions(sun_altitude=-30.0, tonight=None)
    assert conditions.night_aborted and conditions.night_end_reason == "schedule finished"
    assert inputs.night_ended_for == date(2026, 12, 5)
    inputs.resume_night()
    conditions = inputs.conditions(sun_altitude=-30.0, tonight=None)
    assert not conditions.night_aborted and conditions.night_end_reason == ""
    assert inputs.night_ended_for is None


def test_a_mode_lifts_only_the_hold_of_a_missing_decision_not_an_operators_abort() -> None:
    inputs = Inputs(McpConfig(startup_grace=0), lambda: 0.0)
    inputs.end_night("night ended by the operator", date(2026, 12, 5))
    inputs.operator_decided()
    assert inputs.night_aborted  # ABORT holds until START, OPEN or the next night
    inputs.end_night("no saved operator decision", date(2026, 12, 5), awaiting_operator=True)
    inputs.operator_decided()
    assert not inputs.night_aborted and not inputs.awaiting_operator


def test_a_hazard_outranks_everything_but_off_and_alarm() -> None:
    for changes in ({"sun_altitude": 10.0}, {"has_plan": False}, {"pending": ("x",)}, {"night_aborted": True}):
        decision = decide(Conditions(**{**NIGHT, **changes, "hazards": ("rain",)}))
        assert decision.state is State.CLOSED_UNSAFE


def test_transition_table() -> None:
    assert transition_allowed(State.OBSERVING, State.CLOSING)
    assert transition_allowed(State.CLOSING, State.CLOSED_UNSAFE)
    assert transition_allowed(State.OPENING, State.CLOSING)
    assert transition_allowed(State.CLOSING, State.ALARM)
    assert transition_allowed(State.STARTING, State.OBSERVING)  # read back: the roof was open already
    assert not transition_allowed(State.OBSERVING, State.OPENING)
    assert not transition_allowed(State.CLOSING, State.OBSERVING)  # never from closing straight to observing
    assert not transition_allowed(State.DAY, State.STARTING)
    assert not transition_allowed(State.CLOSING, State.OPENING)
    # every state a rule picks can be reached by closing and left again
    for rule in RULES:
        assert rule.state in RESTING
        assert transition_allowed(rule.state, State.CLOSING)


def healthy(inputs: Inputs) -> None:
    inputs.set_verdict(SafetyVerdict(safe=True))
    inputs.set_cloud(CloudState(clear=True, label="clear"))
    inputs.set_availability("weather", "online")
    inputs.set_health("weather", ServiceHealth(service="weather", heartbeat_interval_s=10))
    start = datetime.now(UTC)
    block = PlannedBlock(target_id="a", target_name="A", start=start, end=start + timedelta(hours=1))
    inputs.set_plan(SchedulerPlan(night="2026-11-21", blocks=[block]))


def test_inputs_unknown_is_pending_then_unsafe() -> None:
    clock = Clock()
    inputs = Inputs(McpConfig(startup_grace=10), clock)
    first = inputs.conditions(sun_altitude=-20, tonight="2026-11-21")
    assert "no weather verdict" in first.pending
    assert not first.hazards
    assert decide(first).state is State.STARTING
    clock.advance(11)
    later = inputs.conditions(sun_altitude=-20, tonight="2026-11-21")
    assert "no weather verdict" in later.hazards
    assert "no availability from weather" in later.hazards
    assert "no cloud verdict" in later.sky
    assert decide(later).state is State.CLOSED_UNSAFE


def test_inputs_heartbeat_age_broker_grace_and_hysteresis() -> None:
    clock = Clock()
    inputs = Inputs(McpConfig(startup_grace=0, broker_grace=60, safe_delay=300), clock)
    healthy(inputs)
    ok = inputs.conditions(sun_altitude=-20, tonight="2026-11-21")
    assert ok.unsafe_reasons == ()
    assert decide(ok).state is State.OBSERVING

    clock.advance(31)  # 3 x 10 s heartbeat interval
    silent = inputs.conditions(sun_altitude=-20, tonight="2026-11-21")
    assert silent.hazards == ("weather silent for 31 s (limit 30 s)",)
    inputs.set_health("weather", ServiceHealth(service="weather", heartbeat_interval_s=10))
    # safe again, but only for 0 s of the 300 s required
    assert decide(inputs.conditions(sun_altitude=-20, tonight="2026-11-21")).state is State.WAITING_FOR_SAFE
    clock.advance(301)
    inputs.set_health("weather", ServiceHealth(service="weather", heartbeat_interval_s=10))
    assert decide(inputs.conditions(sun_altitude=-20, tonight="2026-11-21")).state is State.OBSERVING

    inputs.set_broker(False)
    clock.advance(59)
    assert inputs.conditions(sun_altitude=-20, tonight="2026-11-21").hazards == ()
    clock.advance(2)
    assert inputs.conditions(sun_altitude=-20, tonight="2026-11-21").hazards == ("broker lost for 61 s",)
    inputs.set_broker(True)


def test_inputs_an_old_retained_heartbeat_counts_as_old() -> None:
    clock = Clock()
    inputs = Inputs(McpConfig(startup_grace=0), clock)
    healthy(inputs)
    old = ServiceHealth(service="weather", heartbeat_interval_s=10, timestamp=datetime.now(UTC) - timedelta(hours=1))
    inputs.set_health("weather", old)
    assert any("weather silent" in h for h in inputs.conditions(sun_altitude=-20, tonight=None).hazards)


def test_inputs_weather_reasons_and_plan_for_another_night() -> None:
    clock = Clock()
    inputs = Inputs(McpConfig(startup_grace=0), clock)
    healthy(inputs)
    reasons = [SafetyReason(quantity="rain", message="rain detected"), SafetyReason(quantity="wind", message="")]
    inputs.set_verdict(SafetyVerdict(safe=False, reasons=reasons))
    conditions = inputs.conditions(sun_altitude=-20, tonight="2026-11-22")
    assert conditions.hazards == ("weather unsafe: rain detected, wind",)
    assert not conditions.has_plan
    assert "not tonight" in conditions.plan_reason


def snapshot(state: str, park: bool, unpark: bool) -> PropertySnapshot:
    return PropertySnapshot("Roof", "DOME_PARK", "switch", state, {"PARK": park, "UNPARK": unpark})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "park", "unpark", "position"),
    [
        ("Ok", True, False, RoofPosition.CLOSED),
        ("Ok", False, True, RoofPosition.OPEN),
        ("Busy", True, False, RoofPosition.CLOSING),
        ("Busy", False, True, RoofPosition.OPENING),
        ("Alert", False, True, RoofPosition.STOPPED),  # indi_rolloff_dome after an abort half-way
        ("Ok", False, False, RoofPosition.UNKNOWN),  # while the driver loads its park data
        ("Idle", False, False, RoofPosition.STOPPED),  # indi_rolloff_dome after a second abort
    ],
)
def test_roof_position_from_dome_park(state: str, park: bool, unpark: bool, position: RoofPosition) -> None:
    assert roof_position(snapshot(state, park, unpark)) is position
    assert roof_position(None) is RoofPosition.UNKNOWN


# Conditions that lead to every rule's state (and both roof goals of manual mode).
EVERY_DECISION = [
    decide(Conditions(**{**NIGHT, **changes}))
    for changes in (
        {},
        {"hazards": ("weather unsafe: rain",)},
        {"sky": ("cloudy",)},
        {"sun_altitude": 5.0},
        {"sun_altitude": -8.0},
        {"has_plan": False},
        {"night_aborted": True, "night_end_reason": "roof closed outside OBSY"},
        {"safe_for": 10.0, "safe_delay": 600.0},
        {"pending": ("no weather verdict",)},
        {"alarm": "park failed"},
        {"mode": Mode.OFF},
        {"mode": Mode.MANUAL},
        {"mode": Mode.MANUAL, "hazards": ("rain",)},
    )
]
ROOF_OPEN_STATES = {State.OBSERVING}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("roof", list(RoofPosition))
@pytest.mark.parametrize("retry_due", [True, False])
def test_every_state_with_every_roof_reading_has_an_allowed_safe_move(
    state: State, roof: RoofPosition, retry_due: bool
) -> None:
    """Open, closed, moving either way, stopped or Alert, unknown: in any state, whatever the rules say."""
    assert {d.state for d in EVERY_DECISION} == RESTING  # every rule's state is reached
    for decision in EVERY_DECISION:
        target = next_state(state, roof, decision, alarm_retry_due=retry_due)
        context = (state, roof, decision)
        if target is None or target is state:
            if roof not in (RoofPosition.UNKNOWN, RoofPosition.OPEN) and state is State.OBSERVING:
                raise AssertionError(f"observing goes on with the roof {roof}: {context}")
            continue
        assert transition_allowed(state, target), f"{state} -> {target} missing from the table: {context}"
        # ... and the move is safe:
        assert roof is not RoofPosition.UNKNOWN, f"acted blind: {context}"
        if target is State.OPENING:
            assert decision.roof is RoofGoal.OPEN and decision.state in (State.OBSERVING, State.MANUAL), context
            assert roof is not RoofPosition.CLOSING, f"opened against a roof closing by another hand: {context}"
            assert state is not State.CLOSING, context
        elif target is not State.CLOSING:
            if target in ROOF_OPEN_STATES:
                assert roof is RoofPosition.OPEN, f"rests in {target} with the roof {roof}: {context}"
            if decision.roof is RoofGoal.CLOSED:
                assert roof is RoofPosition.CLOSED, f"rests in {target} with the roof {roof}: {context}"


@pytest.mark.parametrize("roof", [RoofPosition.CLOSED, RoofPosition.CLOSING, RoofPosition.STOPPED])
def test_a_roof_closed_by_someone_else_while_observing_is_never_reopened(roof: RoofPosition) -> None:
    night = decide(Conditions(**NIGHT))  # still dark, safe and planned: the rules alone would open it
    assert night.roof is RoofGoal.OPEN
    assert next_state(State.OBSERVING, roof, night) is State.CLOSING
    ended = decide(Conditions(**NIGHT, night_aborted=True, night_end_reason="roof closed outside OBSY"))
    assert (ended.state, ended.reason) == (State.STANDBY, "roof closed outside OBSY")
    assert next_state(State.STANDBY, RoofPosition.CLOSED, ended) is State.STANDBY  # rests, does not reopen


def test_a_roof_opened_by_someone_else_while_it_must_be_closed_is_closed() -> None:
    for unsafe in ({"hazards": ("weather unknown",)}, {"sun_altitude": 5.0}):
        decision = decide(Conditions(**{**NIGHT, **unsafe}))
        for roof in (RoofPosition.OPENING, RoofPosition.OPEN, RoofPosition.STOPPED):
            assert next_state(decision.state, roof, decision) is State.CLOSING
    manual = decide(Conditions(**{**NIGHT, "mode": Mode.MANUAL}))
    assert next_state(State.MANUAL, RoofPosition.OPEN, manual) is State.MANUAL  # the operator's roof: reported only
