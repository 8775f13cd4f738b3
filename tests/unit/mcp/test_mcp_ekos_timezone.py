"""The MCP starts a night only when KStars' location keeps the site's time zone (the .esl times carry its offset)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from obsy.config import McpEkosConfig
from obsy_mcp.ekos import Ekos, EkosError

WINTER = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
SUMMER = datetime(2026, 7, 6, 20, 0, tzinfo=UTC)


def ekos_at(location: dict | str, site: str | None = "Europe/Vienna") -> Ekos:
    ekos = Ekos(McpEkosConfig(enabled=True, bus_address="unix:path=/nonexistent"), site_timezone=site)
    answer = location if isinstance(location, str) else json.dumps(location)
    ekos.call = lambda path, interface, method, *args: answer  # type: ignore[method-assign]
    return ekos


def kstars_location(name: str, tz0: float, tz: float) -> dict:
    return {"name": name, "province": "", "country": "X", "latitude": 48.2, "longitude": 16.4, "tz0": tz0, "tz": tz}


def test_the_same_time_zone_passes_in_winter_and_summer():
    assert ekos_at(kstars_location("Vienna", 1, 1)).time_zone_mismatch(WINTER) is None
    assert ekos_at(kstars_location("Vienna", 1, 2)).time_zone_mismatch(SUMMER) is None


def test_another_time_zone_is_named_with_both_offsets():
    reason = ekos_at(kstars_location("Tokyo", 9, 9)).time_zone_mismatch(WINTER)
    assert reason is not None
    assert "KStars' location (Tokyo, X) has UTC+9" in reason and "Europe/Vienna has UTC+1" in reason
    assert "wrong time" in reason


def test_a_location_without_daylight_saving_fails_in_summer_only():
    """Same standard offset, no DST rule in KStars: right in winter, an hour off in summer."""
    location = kstars_location("Somewhere", 1, 1)
    assert ekos_at(location).time_zone_mismatch(WINTER) is None
    assert "has UTC+1 (standard UTC+1)" in ekos_at(location).time_zone_mismatch(SUMMER)


def test_half_hour_zones_and_no_site_zone():
    assert ekos_at(kstars_location("Adelaide", 9.5, 10.5), site="Australia/Adelaide").time_zone_mismatch(WINTER) is None
    assert ekos_at(kstars_location("Tokyo", 9, 9), site=None).time_zone_mismatch(WINTER) is None


def test_an_answer_that_is_not_a_location_is_an_ekos_error():
    with pytest.raises(EkosError, match="not understood"):
        ekos_at("nonsense").time_zone_mismatch(WINTER)


def test_start_night_refuses_with_the_reason_before_loading_anything():
    ekos = ekos_at(kstars_location("Tokyo", 9, 9))
    calls = []
    ekos.start_ekos = lambda: calls.append("start_ekos")  # type: ignore[method-assign]
    ekos.fresh_schedule = lambda schedule: calls.append("fresh") or schedule
    with pytest.raises(EkosError, match="Tokyo"):
        ekos.start_night("/x.esl")
    assert calls == ["start_ekos"]  # no plan asked for, nothing loaded
