"""Payload models: versioning, UTC timestamps, tolerance of additive changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from obsy.messages import (
    Command,
    Event,
    InvalidCommandError,
    OriginKind,
    SafetyVerdict,
    ServiceHealth,
    TargetConstraints,
    WeatherState,
    excerpt,
    validation_problems,
)


def test_round_trip_keeps_values():
    verdict = SafetyVerdict(safe=False, reasons=[{"quantity": "rain", "message": "rain detected", "value": True}])
    again = SafetyVerdict.model_validate_json(verdict.to_json())
    assert again == verdict
    assert json.loads(verdict.to_json())["schema_version"] == 1


def test_naive_timestamp_is_rejected():
    with pytest.raises(ValidationError, match="time zone"):
        Event.model_validate({"service": "mcp", "kind": "x", "timestamp": "2026-01-01T00:00:00"})


def test_timestamps_are_normalised_to_utc():
    local = datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=2)))
    event = Event(service="mcp", kind="x", timestamp=local)
    assert event.timestamp == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)


def test_newer_schema_version_is_rejected():
    with pytest.raises(ValidationError, match="schema_version 2 is not supported"):
        ServiceHealth.model_validate({"service": "x", "heartbeat_interval_s": 1, "schema_version": 2})


def test_unknown_fields_from_newer_producers_are_ignored():
    state = WeatherState.model_validate({"readings": {}, "new_field": 1})
    assert not hasattr(state, "new_field")


def test_nan_is_serialised_as_null():
    state = WeatherState(readings={"humidity": {"value": float("nan"), "unit": "%"}})
    assert json.loads(state.to_json())["readings"]["humidity"]["value"] is None


def test_an_excerpt_is_short_escaped_and_says_how_much_was_cut():
    shown = excerpt("OPEN\n\x00<b>" + "A" * 10_000)
    assert shown.startswith('"OPEN\\n\\x00<b>AAA') and shown.endswith('"... (10009 bytes)')
    assert "\n" not in shown and len(shown) < 80
    assert excerpt(b"\xffCLOSE") == '"\\\\xffCLOSE"'
    assert excerpt("CLOSE") == '"CLOSE"'


def test_a_command_is_plain_or_json_with_its_origin():
    plain = Command.parse(" CLOSE\n")
    assert (plain.value, plain.origin.kind) == ("CLOSE", OriginKind.UNKNOWN)
    web = Command.parse('{"value": "OPEN", "origin": {"kind": "web", "user": "otto", "role": "operator"}}')
    assert (web.value, web.origin.describe()) == ("OPEN", "web user otto, role operator")
    # An origin that does not validate never blocks the command (CLOSE must get through).
    odd = Command.parse('{"value": "CLOSE", "origin": {"kind": "martian", "user": "' + "x" * 500 + '"}}')
    assert (odd.value, odd.origin.kind) == ("CLOSE", OriginKind.UNKNOWN)


@pytest.mark.parametrize(
    "payload", ['{"value": "OP', "X" * 100, '{"value": 5}', "", '{"value": "OPEN", "schema_version": 9}']
)
def test_a_payload_that_is_no_command_is_refused_naming_the_problem_with_an_excerpt(payload: str):
    with pytest.raises(InvalidCommandError) as error:
        Command.parse(payload)
    assert str(error.value).startswith("not a command (") and len(str(error.value)) < 300


def test_validation_problems_never_echo_a_long_key_from_the_input():
    with pytest.raises(ValidationError) as error:
        TargetConstraints.model_validate({"k" * 10_000: 1})
    problems = validation_problems(error.value)
    assert "Extra inputs are not permitted" in problems and len(problems) < 200
