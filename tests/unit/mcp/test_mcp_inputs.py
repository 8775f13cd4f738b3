"""The MCP's inputs: how long conditions have been safe, and whose waiting counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from obsy.config import McpConfig
from obsy.messages import CloudState, SafetyReason, SafetyVerdict
from obsy_mcp.inputs import Inputs


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def inputs(*, require_clear_sky: bool = False) -> tuple[Inputs, FakeClock]:
    clock = FakeClock()
    config = McpConfig(
        safe_delay=30.0,
        startup_grace=0.0,
        required_services=[],
        require_plan=False,
        require_clear_sky=require_clear_sky,
    )
    return Inputs(config, clock), clock


def rain() -> SafetyVerdict:
    return SafetyVerdict(safe=False, reasons=[SafetyReason(quantity="rain", message="rain")])


def safe(fine_for: float | None) -> SafetyVerdict:
    """A safe verdict whose conditions have been fine for ``fine_for`` seconds (None: an older weather service)."""
    fine_since = None if fine_for is None else datetime.now(UTC) - timedelta(seconds=fine_for)
    return SafetyVerdict(safe=True, fine_since=fine_since)


def safe_for(state: Inputs) -> float | None:
    return state.conditions(sun_altitude=-30, tonight=None).safe_for


def test_the_weathers_own_wait_counts_so_the_delays_overlap_instead_of_adding_up() -> None:
    state, clock = inputs()
    state.set_verdict(rain())
    assert safe_for(state) == 0
    clock.now += 40  # the weather service waits its own 30 s safe delay: unsafe meanwhile
    assert safe_for(state) == 0
    state.set_verdict(safe(fine_for=30))  # fine for 30 s, so the MCP's 30 s are over too
    assert safe_for(state) >= 30


def test_an_older_weather_service_without_fine_since_waits_both_delays() -> None:
    state, clock = inputs()
    state.set_verdict(rain())
    safe_for(state)
    clock.now += 40
    state.set_verdict(safe(fine_for=None))
    assert safe_for(state) == 40  # counted from the last evaluation that saw it unsafe
    clock.now += 5
    assert safe_for(state) == 45


def test_another_hazard_that_ended_later_still_counts_from_its_own_end() -> None:
    state, clock = inputs(require_clear_sky=True)
    state.set_verdict(rain())
    state.set_cloud(CloudState(clear=False, label="cloudy"))
    safe_for(state)
    clock.now += 40
    safe_for(state)  # still cloudy
    state.set_cloud(CloudState(clear=True, label="clear"))
    clock.now += 1
    safe_for(state)  # clouds gone, the weather still waiting
    clock.now += 2
    state.set_verdict(safe(fine_for=30))
    assert safe_for(state) == 3  # the clouds were last seen 3 s ago: the weather's wait does not cover them


def test_a_weather_clock_behind_the_mcps_costs_no_more_than_the_mcps_own_delay() -> None:
    state, clock = inputs()
    state.set_verdict(rain())
    safe_for(state)
    clock.now += 5
    state.set_verdict(safe(fine_for=-120))  # "fine since" two minutes in the MCP's future
    assert safe_for(state) == 5  # counted from the last unsafe evaluation, as without the credit
