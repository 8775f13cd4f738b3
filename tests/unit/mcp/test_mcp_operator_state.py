"""The MCP's state file: atomic writes, unusable files named and set aside, and what a restart restores."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from obsy import astro
from obsy.config import ObsyConfig
from obsy.indi import IndiClient
from obsy.messages import Mode
from obsy_mcp import operator_state
from obsy_mcp.controller import Controller
from obsy_mcp.operator_state import OperatorState, StateFileError
from obsy_mcp.service import main as mcp_main
from tests.support.mcp_harness import Recorded

NIGHT = date(2026, 12, 5)


def saved_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_a_saved_state_reads_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "mcp" / "state.json"  # the folder is made
    state = OperatorState(Mode.MANUAL, NIGHT, "night ended by the operator", "the roof did not close", False)
    operator_state.save(path, state)
    assert operator_state.load(path) == state
    assert saved_json(path)["schema_version"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary file left behind


def test_a_save_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    operator_state.save(path, OperatorState(Mode.AUTO))
    before = path.stat().st_ino
    operator_state.save(path, OperatorState(Mode.OFF))
    assert path.stat().st_ino != before  # a new file renamed over the old one, never rewritten in place
    assert operator_state.load(path).mode is Mode.OFF


def test_a_save_that_cannot_be_done_raises_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(OSError):
        operator_state.save(blocker / "state.json", OperatorState())


def test_a_missing_file_is_said_to_be_missing(tmp_path: Path) -> None:
    with pytest.raises(StateFileError) as error:
        operator_state.load(tmp_path / "state.json")
    assert error.value.missing
    assert "no saved operator decision" in str(error.value)


def write_valid(path: Path, **changes: object) -> None:
    operator_state.save(path, OperatorState())
    content = saved_json(path)
    content.update(changes)
    path.write_text(json.dumps(content))


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "not a valid MCP state file"),
    ],
)
def test_a_file_that_is_not_a_state_file_is_named_as_such(tmp_path: Path, content: str, named: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateFileError) as error:
        operator_state.load(path)
    assert named in str(error.value) and str(path) in str(error.value)
    assert not error.value.missing


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"mode": "banana"}, "mode"),
        ({"night_ended_for": "yesterday"}, "night_ended_for"),
        ({"awaiting_operator": "perhaps"}, "awaiting_operator"),
        ({"schema_version": 7}, "schema_version"),
        ({"opened_by": "someone"}, "opened_by"),  # a key the MCP does not know: never guessed at
        ({"alarm": "x" * 10_000}, "alarm"),
    ],
)
def test_a_wrong_value_or_an_unknown_key_is_named(tmp_path: Path, changes: dict, named: str) -> None:
    path = tmp_path / "state.json"
    write_valid(path, **changes)
    with pytest.raises(StateFileError) as error:
        operator_state.load(path)
    assert named in error.value.problem


def test_an_unusable_file_is_set_aside_never_over_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    asides = []
    for content in ("first", "second"):
        path.write_text(content)
        asides.append(operator_state.set_aside(path))
    assert not path.exists()
    assert [a.read_text() for a in asides] == ["first", "second"]
    assert all(a.name.startswith("state.json.corrupt-") for a in asides)


def test_a_night_ended_holds_for_that_night_only() -> None:
    ended = OperatorState(night_ended_for=NIGHT, night_end_reason="night ended by the operator")
    assert ended.night_ended(NIGHT)
    assert not ended.night_ended(date(2026, 12, 6))  # the next observing night (from local noon)
    assert not OperatorState().night_ended(NIGHT)


def test_an_operator_decision_lifts_the_hold_and_start_the_night() -> None:
    hold = operator_state.conservative(NIGHT, "no saved operator decision")
    assert hold.awaiting_operator and hold.night_ended(NIGHT) and hold.mode is Mode.AUTO
    manual = hold.decided(mode=Mode.MANUAL)
    assert manual.mode is Mode.MANUAL and not manual.awaiting_operator
    started = hold.decided(start_night=True)
    assert not started.night_ended(NIGHT) and not started.awaiting_operator


# ---------------------------------------------------------------------- the controller's restore


def config_in(tmp_path: Path) -> ObsyConfig:
    return ObsyConfig.model_validate(
        {"site": {"latitude": 48.2, "longitude": 16.4, "timezone": "Europe/Vienna"}, "data_dir": str(tmp_path)}
    )


def restored(config: ObsyConfig) -> tuple[Controller, Recorded]:
    """A controller that has taken up the state file (indiserver is not needed for that)."""
    outbox = Recorded()
    controller = Controller(config, IndiClient.from_config(config.indi), outbox, sun_altitude=lambda: -30.0)
    controller.restore_operator_state()
    controller.publish_state()
    return controller, outbox


def tonight(config: ObsyConfig) -> date:
    return astro.night_of(config.site, datetime.now(UTC))


def test_without_a_state_file_the_mcp_waits_for_an_operator_and_says_why(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    _controller, outbox = restored(config)
    state = outbox.states[-1]
    assert state.mode is Mode.AUTO and state.night_aborted
    (event,) = outbox.of_kind("state_file_unusable")
    assert event.level == "warning" and event.data["missing"] is True
    assert "no saved operator decision" in event.message and "until an operator decides" in event.message
    # The hold is written down: a second restart comes back to it.
    saved = operator_state.load(operator_state.state_path(config))
    assert saved.awaiting_operator and saved.night_ended_for == tonight(config)


def test_a_corrupt_state_file_is_reported_kept_aside_and_restores_the_hold(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    path = operator_state.state_path(config)
    path.parent.mkdir(parents=True)
    path.write_text('{"mode": "manual", "night_ended_fo')  # cut short, as by a full disk
    controller, outbox = restored(config)
    (event,) = outbox.of_kind("state_file_unusable")
    assert event.level == "error" and "not valid JSON" in event.message
    aside = Path(event.data["set_aside"])
    assert aside.read_text() == '{"mode": "manual", "night_ended_fo'  # kept as it was for people to look at
    assert outbox.states[-1].night_aborted and controller.inputs.awaiting_operator
    assert operator_state.load(path).awaiting_operator  # the new file holds the hold


def test_a_mode_command_lifts_the_hold_and_is_saved_before_the_answer(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    controller, _outbox = restored(config)
    answer = controller.command("mode", "manual")
    assert answer.accepted
    saved = operator_state.load(operator_state.state_path(config))
    assert saved.mode is Mode.MANUAL and not saved.awaiting_operator and saved.night_ended_for is None


def test_the_saved_decision_is_restored(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    path = operator_state.state_path(config)
    operator_state.save(path, OperatorState(Mode.AUTO, tonight(config), "night ended by the operator", "", False))
    _controller, outbox = restored(config)
    assert outbox.states[-1].night_aborted and outbox.states[-1].mode is Mode.AUTO
    assert outbox.of_kind("state_restored") and not outbox.of_kind("state_file_unusable")
    operator_state.save(path, OperatorState(Mode.OFF, None, "", "the roof did not close (stopped)", False))
    _controller, outbox = restored(config)
    assert outbox.states[-1].mode is Mode.OFF
    assert outbox.states[-1].alarm and outbox.states[-1].alarm_reason == "the roof did not close (stopped)"
    assert outbox.of_kind("state_restored")[0].level == "warning"


def test_a_night_ended_for_an_earlier_night_is_not_restored(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    path = operator_state.state_path(config)
    earlier = date.fromordinal(tonight(config).toordinal() - 1)
    operator_state.save(path, OperatorState(Mode.AUTO, earlier, "night ended by the operator", "", False))
    _controller, outbox = restored(config)
    assert not outbox.states[-1].night_aborted
    assert "is over" in outbox.of_kind("state_restored")[0].message


def test_a_state_file_that_cannot_be_written_is_reported_once(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    config = config_in(tmp_path).model_copy(
        update={"mcp": config_in(tmp_path).mcp.model_copy(update={"state_file": blocker / "state.json"})}
    )
    controller, outbox = restored(config)
    controller.command("mode", "manual")
    controller.command("mode", "off")
    (failed,) = outbox.of_kind("state_file_failed")
    assert failed.level == "error" and str(blocker) in failed.message
    controller.publish_state()
    assert outbox.states[-1].mode is Mode.OFF  # the MCP goes on; it only cannot remember


# ---------------------------------------------------------------------- obsy-mcp decision


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "obsy.yaml"
    path.write_text(f"site: {{latitude: 48.2, longitude: 16.4, timezone: Europe/Vienna}}\ndata_dir: {tmp_path}\n")
    return path


def test_obsy_mcp_decision_writes_and_shows_the_decision(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path)
    assert mcp_main(["decision", "--config", str(config)]) == 1  # nothing saved yet: said so
    assert "no saved operator decision" in capsys.readouterr().out
    assert mcp_main(["decision", "--mode", "auto", "--night", "start", "--config", str(config)]) == 0
    saved = operator_state.load(tmp_path / "mcp" / "state.json")
    assert saved == OperatorState(Mode.AUTO)
    assert mcp_main(["decision", "--night", "end", "--config", str(config)]) == 0
    saved = operator_state.load(tmp_path / "mcp" / "state.json")
    assert saved.night_ended_for is not None and saved.mode is Mode.AUTO
    capsys.readouterr()
    assert mcp_main(["decision", "--config", str(config)]) == 0
    assert "mode: auto" in capsys.readouterr().out


def test_obsy_mcp_decision_reports_and_keeps_a_corrupt_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path)
    path = tmp_path / "mcp" / "state.json"
    path.parent.mkdir()
    path.write_text("garbage")
    assert mcp_main(["decision", "--mode", "manual", "--config", str(config)]) == 0
    assert "not valid JSON" in capsys.readouterr().err
    assert [p.read_text() for p in path.parent.glob("state.json.corrupt-*")] == ["garbage"]
    assert operator_state.load(path).mode is Mode.MANUAL
