"""Payload models: versioning, UTC timestamps, tolerance of additive changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from obsy.messages import Event, SafetyVerdict, ServiceHealth, WeatherState


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
