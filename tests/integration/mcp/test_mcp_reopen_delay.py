"""After rain: the weather's and the MCP's safe delays overlap, and the roof reopens after the longer one.

Real Mosquitto, one indiserver with the roll-off roof, the telescope and the weather simulator,
the real weather service reading that simulator, and the MCP. The figures it measures (rain stop
to a safe verdict, to the opening order, to an open roof) are printed, not asserted; what is
asserted is the order and that nothing opened before the delay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.config import load_config
from obsy.indi import IndiClient
from obsy.runner import ServiceRunner
from obsy.topics import Topics
from obsy_weather.service import WeatherService
from tests.support.configs import write_config
from tests.support.indiserver import ROOF, TELESCOPE, WEATHER, IndiServer, devices_at_start, require_indi
from tests.support.mcp_harness import Inputs, McpProcess, Sky, operator_decides, prepare_devices, states, wait_state
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher
from tests.support.weather import verdicts, wait_verdict

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DRIVERS = ["indi_rolloff_dome", "indi_simulator_telescope", "indi_simulator_weather"]
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)

TOPICS = Topics()
SAFE_DELAY = 8.0  # the weather's and the MCP's, as in the demo (there 30 s)


def state_after(watcher: Watcher, index: int, predicate, timeout: float) -> None:
    """Wait for an MCP state published after the first ``index`` ones that matches ``predicate``."""
    watcher.wait_for(lambda _: any(predicate(s) for s in states(watcher, TOPICS)[index:]), timeout)


@pytest.fixture
def indi(tmp_path: Path) -> Iterator[IndiServer]:
    """The roof closed and the mount parked from the start (no travel)."""
    with IndiServer(tmp_path / "indi", DRIVERS, parked=devices_at_start(roof_open=False, mount_parked=True)) as server:
        yield server


@pytest.mark.long(seconds=75)
def test_the_roof_reopens_after_the_longer_safe_delay_not_after_both(
    tmp_path: Path, mosquitto: MosquittoBroker, indi: IndiServer, watcher: Watcher
) -> None:
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    source = {"type": "indi", "name": "simulator", "device": WEATHER, "host": indi.host, "port": indi.port,
              "poll_interval": 1, "max_age": 30}  # fmt: skip
    path = write_config(
        tmp_path,
        mosquitto,
        indi={"host": indi.host, "port": indi.port, "connect_timeout": 5},
        weather={"heartbeat_interval": 1, "sources": [source], "safe_delay": SAFE_DELAY},
        mcp={
            "startup_grace": 5.0,
            "safe_delay": SAFE_DELAY,
            "evaluate_interval": 0.2,
            "required_services": ["weather"],
            # A heartbeat late on a loaded machine is a hazard of its own, which (rightly) restarts
            # the MCP's delay: not what this test is about.
            "heartbeat_limit_factor": 15.0,
            "require_clear_sky": False,
            "devices": {"roof": ROOF, "mount": TELESCOPE, "retries": 1, "retry_delay": 0.5, "roof_timeout": 30},
        },
        run_dir=str(tmp_path),
    )
    config = load_config(path)
    operator_decides(config, "--mode", "auto", "--night", "start")  # the operator starts the night
    weather = ServiceRunner(WeatherService, config)
    weather_thread = threading.Thread(target=weather.run, daemon=True)
    weather_thread.start()
    Inputs(watcher, TOPICS, config).plan()
    mcp = McpProcess(config, Sky(-25.0)).start()
    simulator = IndiClient.from_config(indi.config(), timeout=10.0)
    simulator.connect()
    try:
        wait_state(watcher, TOPICS, lambda s: s["state"] == "observing" and s["roof"] == "open", timeout=90)

        simulator.connect_device(WEATHER)
        before_rain = len(states(watcher, TOPICS))
        simulator.set_number(WEATHER, "WEATHER_CONTROL", {"Precip": 10})
        state_after(watcher, before_rain, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed", 90)
        seen_before = len(states(watcher, TOPICS))

        stopped = time.monotonic()
        simulator.set_number(WEATHER, "WEATHER_CONTROL", {"Precip": 0})
        safe = wait_verdict(watcher, lambda v: v.safe, timeout=60)
        safe_at = time.monotonic()
        state_after(watcher, seen_before, lambda s: s["state"] == "opening", timeout=60)
        opening_at = time.monotonic()
        state_after(watcher, seen_before, lambda s: s["state"] == "observing" and s["roof"] == "open", timeout=90)
        open_at = time.monotonic()

        # The weather said since when it had been fine; the MCP's delay ran in that time already.
        assert safe.fine_since is not None
        assert (safe.timestamp - safe.fine_since).total_seconds() >= SAFE_DELAY
        after_rain = [(s["state"], s["reason"]) for s in states(watcher, TOPICS)[seen_before:]]
        assert "waiting_for_safe" not in [state for state, _ in after_rain], after_rain
        assert [state for state, _ in after_rain].index("opening") > 0  # closed (unsafe) first, for the delay
        waiting = [v for v in verdicts(watcher) if not v.safe and any(r.quantity == "safe_delay" for r in v.reasons)]
        assert waiting, "the weather's safe-delay countdown was never published"
        assert opening_at - stopped >= SAFE_DELAY  # never before the delay
        print(
            f"\nrain stopped -> weather safe {safe_at - stopped:.1f} s, opening {opening_at - stopped:.1f} s, "
            f"roof open and observing {open_at - stopped:.1f} s (both safe delays {SAFE_DELAY:g} s)"
        )
    finally:
        simulator.disconnect()
        mcp.stop()
        weather.request_stop()
        weather_thread.join(30)
