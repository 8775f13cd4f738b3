"""The MCP's command table: each command's checks and answer, the one queue to the controller, and OPEN's what-if.

The controller here has no indiserver (nothing is moved: its roof reads back unknown); the
commands' effects on the devices are tested with the real simulators in
tests/integration/mcp/test_mcp_sequences.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from obsy import astro
from obsy.config import McpConfig, ObsyConfig
from obsy.indi import IndiClient
from obsy.messages import CloudState, Mode, PlannedBlock, SafetyVerdict, SchedulerPlan, ServiceHealth
from obsy_mcp import operator_state
from obsy_mcp.commands import COMMANDS, VALUES, Request, decide_if_night_resumed
from obsy_mcp.controller import Controller
from obsy_mcp.inputs import Inputs
from obsy_mcp.operator_state import OperatorState
from obsy_mcp.statemachine import RoofGoal, State, decide
from tests.support.mcp_harness import Recorded

SITE = {"latitude": 48.2, "longitude": 16.4, "timezone": "Europe/Vienna"}


def decided_controller(tmp_path: Path, mode: Mode = Mode.AUTO) -> tuple[Controller, Recorded]:
    """A controller that has taken up the operator's decision ``mode``, tonight going on."""
    config = ObsyConfig.model_validate({"site": SITE, "data_dir": str(tmp_path)})
    operator_state.save(operator_state.state_path(config), OperatorState(mode))
    outbox = Recorded()
    controller = Controller(config, IndiClient.from_config(config.indi), outbox, sun_altitude=lambda: -30.0)
    controller.restore_operator_state()
    return controller, outbox


def test_every_value_of_every_command_topic_has_an_entry_in_the_table() -> None:
    listed = {(thing, member.value) for thing, (kind, _normalise, _words) in VALUES.items() for member in kind}
    assert listed == set(COMMANDS)


@pytest.mark.parametrize(
    ("thing", "value", "expected"),
    [
        ("roof", "OPNE", "unknown roof command 'OPNE' (expected OPEN, CLOSE or STOP)"),
        ("mode", "automatic", "unknown mode 'automatic' (expected auto, manual or off)"),
        ("night", "", "unknown night command '' (expected START or ABORT)"),
        ("dome", "OPEN", "unknown command topic 'dome'"),
    ],
)
def test_an_unknown_command_is_rejected_naming_what_is_expected_and_changes_nothing(
    tmp_path: Path, thing: str, value: str, expected: str
) -> None:
    controller, outbox = decided_controller(tmp_path)
    answer = controller.command(thing, value)
    assert not answer.accepted and answer.reasons == [expected]
    assert not controller.pending.waiting() and controller.inputs.mode is Mode.AUTO
    (event,) = outbox.of_kind("command_rejected")
    assert expected in event.message


def test_values_are_normalised_before_they_are_answered(tmp_path: Path) -> None:
    controller, _outbox = decided_controller(tmp_path)
    assert controller.command("mode", " MANUAL ").value == "manual"
    assert controller.inputs.mode is Mode.MANUAL
    assert controller.command("roof", "close").value == "CLOSE"


@pytest.mark.parametrize("mode", list(Mode))
def test_close_is_accepted_in_every_mode_and_ends_the_night_only_in_auto(tmp_path: Path, mode: Mode) -> None:
    controller, _outbox = decided_controller(tmp_path, mode)
    answer = controller.command("roof", "CLOSE")
    assert answer.accepted and not answer.deferred
    assert controller.pending.close_requested()  # an opening running now would be cut short
    assert controller.inputs.night_aborted is (mode is Mode.AUTO)


@pytest.mark.parametrize("mode", list(Mode))
def test_abort_closes_and_ends_the_night_in_every_mode_as_its_answer_says(tmp_path: Path, mode: Mode) -> None:
    controller, _outbox = decided_controller(tmp_path, mode)
    answer = controller.command("night", "ABORT")
    assert answer.accepted and answer.note == "closing for the night"
    assert controller.pending.close_requested() and controller.inputs.night_aborted


def test_open_and_start_are_refused_with_their_reasons_and_change_nothing(tmp_path: Path) -> None:
    controller, _outbox = decided_controller(tmp_path, Mode.OFF)
    assert controller.command("roof", "OPEN").reasons == ["mode is off"]
    assert controller.command("night", "START").reasons == ["mode is off: switch to auto first"]
    controller.command("mode", "auto")
    controller.command("night", "ABORT")
    controller.pending.take()
    refused = controller.command("roof", "OPEN")  # no indiserver: the roof is unknown, nothing is known yet
    assert not refused.accepted and "roof state unknown" in refused.reasons
    assert "not yet known: no weather verdict" in refused.reasons
    assert controller.inputs.night_aborted  # the night stays ended: a refused OPEN resumes nothing
    assert not controller.pending.waiting()


def test_during_a_closing_every_command_but_open_and_stop_waits_until_it_has_finished(tmp_path: Path) -> None:
    controller, outbox = decided_controller(tmp_path)
    controller.pending.closing_started()
    close = controller.command("roof", "CLOSE")
    mode = controller.command("mode", "off")
    start = controller.command("night", "START")
    assert all(a.accepted and a.deferred for a in (close, mode, start))
    assert close.note == "a closing is already running: it is not started again"
    assert mode.note == "a closing is running: this takes effect when it has finished"
    assert controller.inputs.mode is Mode.AUTO and not controller.pending.waiting()  # nothing applied yet
    opening = controller.command("roof", "OPEN")
    assert not opening.deferred and not opening.accepted  # judged now (the roof is unknown here)

    controller.commands.apply_deferred()
    assert controller.inputs.mode is Mode.OFF
    applied = [e for e in outbox.events if e.kind in ("deferred_command_applied", "deferred_command_rejected")]
    assert [e.data["command"] for e in applied] == [
        {"thing": "roof", "value": "CLOSE"},
        {"thing": "mode", "value": "off"},
        {"thing": "night", "value": "START"},
    ]
    assert controller.pending.close_requested()  # the roof is not known closed: CLOSE tries again
    assert outbox.of_kind("deferred_command_rejected")[0].data["reasons"] == ["mode is off: switch to auto first"]


def test_stop_during_a_closing_hands_over_and_drops_what_waited_for_it(tmp_path: Path) -> None:
    controller, outbox = decided_controller(tmp_path)
    controller.pending.closing_started()
    controller.command("mode", "off")
    controller.command("night", "START")
    stop = controller.command("roof", "STOP")
    assert stop.accepted and not stop.deferred and stop.note == "roof halted; mode manual"
    assert controller.inputs.mode is Mode.MANUAL and controller.pending.stop_requested()
    (dropped,) = outbox.of_kind("deferred_commands_dropped")
    assert dropped.data["commands"] == [{"thing": "mode", "value": "off"}, {"thing": "night", "value": "START"}]
    assert controller.pending.closing_finished() == []  # nothing is applied after the closing
    assert controller.inputs.mode is Mode.MANUAL


def test_a_closing_carries_out_the_closes_waiting_so_a_stop_during_it_is_the_last_word(tmp_path: Path) -> None:
    controller, _outbox = decided_controller(tmp_path)
    pending = controller.pending
    controller.command("roof", "CLOSE")  # queued; then the rules start a closing (the night has ended) ...
    pending.closing_started()
    assert not pending.close_requested()  # ... which does what it asked
    pending.push(Request.ABORT)  # answered just before the closing started, queued just after: the same
    assert not pending.close_requested()
    controller.command("roof", "STOP")
    assert pending.closing_finished() == []
    assert pending.take() is Request.STOP and pending.take() is None  # nothing closes again after the STOP


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def safe_dark_night_with_a_plan() -> tuple[Inputs, str]:
    """Inputs where everything is safe and tonight has a plan: in auto mode the rules open the roof."""
    clock = Clock()
    inputs = Inputs(McpConfig(startup_grace=5.0, safe_delay=0.0, required_services=["weather"]), clock)
    tonight = astro.night_of(ObsyConfig.model_validate({"site": SITE}).site, datetime.now(UTC)).isoformat()
    now = datetime.now(UTC)
    inputs.set_verdict(SafetyVerdict(safe=True))
    inputs.set_cloud(CloudState(clear=True, label="clear"))
    inputs.set_availability("weather", "online")
    inputs.set_health("weather", ServiceHealth(service="weather", heartbeat_interval_s=60.0))
    block = PlannedBlock(target_id="m31", target_name="M 31", start=now, end=now + timedelta(hours=2))
    inputs.set_plan(SchedulerPlan(night=tonight, blocks=[block]))
    clock.now += 10.0  # past the start-up grace
    return inputs, tonight


def test_opens_what_if_decides_as_if_the_night_went_on_and_changes_no_input() -> None:
    inputs, tonight = safe_dark_night_with_a_plan()
    inputs.end_night("night ended by the operator", date.fromisoformat(tonight))
    before = {name: value for name, value in vars(inputs).items() if name != "lock"}
    conditions = inputs.conditions(sun_altitude=-30.0, tonight=tonight)

    assert decide(conditions).state is State.STANDBY  # the night was ended: closed
    what_if = decide_if_night_resumed(conditions)
    assert what_if.state is State.OBSERVING and what_if.roof is RoofGoal.OPEN
    assert conditions.night_aborted and inputs.night_aborted
    after = {name: value for name, value in vars(inputs).items() if name != "lock"}
    assert after == before
    # ... and the rules still see the night ended.
    assert decide(inputs.conditions(sun_altitude=-30.0, tonight=tonight)).state is State.STANDBY


def test_opens_what_if_still_refuses_what_the_night_does_not_cover() -> None:
    inputs, tonight = safe_dark_night_with_a_plan()
    inputs.set_cloud(CloudState(clear=False, label="Overcast"))
    inputs.end_night("night ended by the operator", date.fromisoformat(tonight))
    what_if = decide_if_night_resumed(inputs.conditions(sun_altitude=-30.0, tonight=tonight))
    assert what_if.roof is RoofGoal.CLOSED and "sky not clear (Overcast)" in what_if.reason
