"""Clouds close the roof, end to end, with the clear-sky gate on (``mcp.require_clear_sky: true``).

Every service the gate needs runs as its own process from its console script: weather (on
INDI's weather simulator), allsky (on the sky simulator's allsky camera, ``indi_obsy_allsky``,
which renders the real sky for the site and the time), clouddetect and the MCP, with the
roll-off roof and the telescope simulator, on a real Mosquitto and one indiserver. No KStars
(the whole-night test has it), no scheduler, no web: the test is about the sky alone.

1. clear sky → clouddetect judges the rendered frames clear → the MCP opens, never before;
2. ``obsy-weather simulate clouds --kind overcast`` on a dry night → clouddetect says cloudy →
   the MCP aborts and parks the mount, then closes the roof, with the sky as the reason
   (every step and the order in its events; the drivers' own reports confirm the order);
3. ``simulate clouds --kind clear`` → clouddetect says clear → the roof stays closed for the
   MCP's safe delay, then opens again.

The allsky frames carry an overlay (text, compass points): clouddetect judges the picture
without it (``clean_url``). Durations are printed, never asserted.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from obsy.topics import Topics
from tests.support.configs import evening_site, write_config
from tests.support.e2e_observatory import (
    ALLSKY_CAMERA,
    ALLSKY_EXPOSURE_S,
    ALLSKY_PIPELINE,
    HEARTBEAT_S,
    SKYSIM_ALLSKY,
    PhaseClock,
    ServiceProcesses,
    logs_named_on_failure,
    skysim_available,
    write_skysim_settings,
)
from tests.support.indiserver import (
    ROOF,
    TELESCOPE,
    WEATHER,
    IndiServer,
    devices_at_start,
    pyindi_available,
    require_indi,
)
from tests.support.mcp_harness import IndiRecorder, events, prepare_devices, states
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

DRIVERS = ["indi_simulator_telescope", "indi_rolloff_dome", "indi_simulator_weather"]
SERVICES = ("weather", "allsky", "clouddetect", "mcp")
#: Seconds every input must stay safe before the MCP reopens (the delay under test here).
MCP_SAFE_DELAY_S = 15.0

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.long(seconds=150),
    pytest.mark.timeout(600),
    pytest.mark.skipif(not pyindi_available(), reason="pyindi-client is not installed"),
    pytest.mark.skipif(
        not skysim_available(), reason="the sky simulator is not installed (pip install -e services/skysim)"
    ),
]

TOPICS = Topics()


def gate_config(workdir: Path, broker: MosquittoBroker, *, site: dict[str, Any], indi_port: int) -> Path:
    beat = {"heartbeat_interval": HEARTBEAT_S, "log_level": "INFO"}
    (workdir / "run").mkdir(parents=True, exist_ok=True)
    return write_config(
        workdir,
        broker,
        site=site,
        indi={"host": "127.0.0.1", "port": indi_port, "connect_timeout": 10},
        run_dir=str(workdir / "run"),
        log_format="text",
        weather={
            **beat,
            "safe_delay": 5,
            "publish_interval": 2,
            "sources": [{"type": "indi", "name": "simulator", "device": WEATHER, "poll_interval": 1, "max_age": 30}],
        },
        allsky={
            **beat,
            "camera": {"device": ALLSKY_CAMERA, "interval_s": 4, "readout_margin_s": 20},
            # One exposure all night, as in the demo: clouddetect's learnt zero point fits it.
            "exposure": {"auto": False, "fixed_exposure_s": ALLSKY_EXPOSURE_S},
            "pipeline": ALLSKY_PIPELINE,
            "image_width": 320,
        },
        clouddetect={**beat, "debounce_frames": 1, "max_frame_age": 120},  # a verdict per frame: no wait
        mcp={
            **beat,
            "required_services": ["weather", "clouddetect"],
            "require_clear_sky": True,
            "require_plan": False,  # no scheduler here: the sky alone decides
            "startup_grace": 10,
            "safe_delay": MCP_SAFE_DELAY_S,
            "evaluate_interval": 0.5,
            "devices": {"roof": ROOF, "mount": TELESCOPE, "retries": 1, "retry_delay": 1, "roof_timeout": 60},
            "ekos": {"enabled": False},
            "supervision": {"enabled": False},
        },
    )


def payloads(watcher: Watcher, topic: str) -> list[tuple[float, dict[str, Any]]]:
    return [(m.at, json.loads(m.payload)) for m in watcher.on(topic) if m.payload]


def wait_verdict(watcher: Watcher, clear: bool, after: float, timeout: float) -> tuple[float, dict[str, Any]]:
    """The first clouddetect verdict with ``clear`` published after ``after`` (monotonic)."""

    def found() -> list[tuple[float, dict[str, Any]]]:
        return [(at, s) for at, s in payloads(watcher, TOPICS.clouddetect_state) if at > after and s["clear"] is clear]

    watcher.wait_for(lambda _: bool(found()), timeout)
    return found()[0]


def wait_mcp(watcher: Watcher, predicate, after: int, timeout: float) -> dict[str, Any]:
    """The first MCP state after the first ``after`` ones that matches."""

    def found() -> list[dict[str, Any]]:
        return [s for s in states(watcher, TOPICS)[after:] if predicate(s)]

    watcher.wait_for(lambda _: bool(found()), timeout)
    return found()[0]


def step_times(watcher: Watcher, after: float) -> dict[str, float]:
    """When each MCP device step was first reported after ``after`` (monotonic)."""
    seen: dict[str, float] = {}
    for m in watcher.on(TOPICS.events("mcp")):
        event = json.loads(m.payload)
        if m.at > after and event["kind"] == "device_action":
            seen.setdefault(event["data"]["step"], m.at)
    return seen


def describe(verdict: dict[str, Any]) -> str:
    return f"{verdict['label']}, cover {verdict.get('cloud_cover')} % ({verdict.get('reason') or 'judged'})"


def test_clouds_close_the_roof_and_a_clear_sky_reopens_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_indi(DRIVERS)
    site = evening_site(latitude=35.0, local_hour=0)  # local midnight: dark at any season
    log_dir = tmp_path / "logs"
    clock = PhaseClock()
    with contextlib.ExitStack() as stack:
        (tmp_path / "mosquitto").mkdir()
        broker = MosquittoBroker(tmp_path / "mosquitto")
        broker.start()
        stack.callback(broker.stop)
        settings = write_skysim_settings(tmp_path / "skysim.yaml", site)
        indi = IndiServer(
            tmp_path / "indi",
            [*DRIVERS, str(SKYSIM_ALLSKY)],
            env={"OBSY_SKYSIM_CONFIG": str(settings)},
            parked=devices_at_start(roof_open=False, mount_parked=True),
        )
        indi.start()
        stack.callback(indi.stop)
        stack.enter_context(logs_named_on_failure(log_dir, indiserver=indi.log_path, mosquitto=broker.log_path))
        prepare_devices(indi.config(), roof_open=False, mount_parked=True)
        config = gate_config(tmp_path / "observatory", broker, site=site, indi_port=indi.port)
        services = ServiceProcesses(config, log_dir)
        decided = services.run_command("mcp", "decision", "--mode", "auto", "--night", "start")
        assert decided.returncode == 0, decided.stderr
        watcher = Watcher(broker.port, ["obsy/#"])
        stack.callback(watcher.close)
        recorder = IndiRecorder(indi.config())
        stack.callback(recorder.close)
        site_seen = recorder.client.wait_property(ALLSKY_CAMERA, "SIM_SITE").values
        assert abs(site_seen["LAT"] - site["latitude"]) < 1e-6, "the simulator did not read its settings file"
        started = time.monotonic()
        services.start(*SERVICES)
        stack.callback(services.stop)
        for name in SERVICES:
            watcher.wait_payload(TOPICS.availability(name), b"online", timeout=90)
        services.check_running()
        print(f"start-up: {clock.done('start-up'):.1f} s")

        # ------------------------------------------------------------ 1. clear sky: the gate opens
        clear_at, clear = wait_verdict(watcher, True, started, timeout=180)
        print(f"clouddetect on the rendered clear sky: {describe(clear)}")
        assert clear["label"] == "Clear", clear
        assert "transmission" in clear.get("methods", ["transmission"]), clear
        frame = next(f for _, f in payloads(watcher, TOPICS.allsky_frames) if f["frame_id"] == clear["frame_id"])
        assert frame.get("clean_url"), f"the frame has an overlay but no picture without it: {frame}"
        observing = wait_mcp(watcher, lambda s: s["state"] == "observing" and s["roof"] == "open", 0, timeout=120)
        assert observing["mount_parked"] is True  # no Ekos here to unpark it
        opening = step_times(watcher, started)
        assert clear_at < opening["open_roof"], "the roof opened before clouddetect called the sky clear"
        assert opening["confirm_parked"] < opening["open_roof"], opening
        services.check_running()
        print(f"1 clear sky, open: {clock.done('1 clear sky, open'):.1f} s")

        # The telescope goes to work, as Ekos would make it: unparked.
        recorder.client.set_switch(TELESCOPE, "TELESCOPE_PARK", "UNPARK")
        recorder.wait(
            lambda r: r.device == TELESCOPE and r.name == "TELESCOPE_PARK" and r.state == "Ok" and r.values["UNPARK"],
            30,
        )

        # ------------------------------------------------------------ 2. clouds on a dry night: close
        recorder.clear()
        mark_states = len(states(watcher, TOPICS))
        cloudy_cmd_at = time.monotonic()
        result = services.run_command("weather", "simulate", "clouds", "--kind", "overcast")
        assert result.returncode == 0, result.stdout + result.stderr
        cloudy_at, cloudy = wait_verdict(watcher, False, cloudy_cmd_at, timeout=90)
        print(f"clouddetect on the rendered overcast sky: {describe(cloudy)} after {cloudy_at - cloudy_cmd_at:.1f} s")
        assert cloudy["label"] in ("Overcast", "Cloudy", "Thin Cloud"), cloudy
        closed = wait_mcp(
            watcher,
            lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed",
            mark_states,
            timeout=120,
        )
        reasons = " ".join(closed["unsafe_reasons"])
        assert "sky not clear" in reasons, closed
        assert "rain" not in reasons, closed
        assert closed["mount_parked"] is True
        # A dry night all along: the weather never said unsafe.
        assert all(v["safe"] for at, v in payloads(watcher, TOPICS.weather_safety) if at > cloudy_cmd_at)
        closing = step_times(watcher, cloudy_cmd_at)
        order = ["abort_mount", "park_mount", "close_roof"]
        assert [closing[s] for s in order] == sorted(closing[s] for s in order), closing
        transition = [
            e
            for e in events(watcher, TOPICS)
            if e["kind"] == "transition" and e["data"].get("to") == "closing" and "sky not clear" in e["data"]["reason"]
        ]
        assert transition, "no closing transition with the sky as its reason"
        parked = recorder.first(
            lambda r: r.device == TELESCOPE and r.name == "TELESCOPE_PARK" and r.state == "Ok" and r.values["PARK"]
        )
        roof_moves = recorder.first(lambda r: r.device == ROOF and r.name == "DOME_PARK" and r.state == "Busy")
        assert 0 <= parked < roof_moves, recorder.records
        print(f"closing reason: {transition[-1]['data']['reason']}")
        print(f"2 clouds, close: {clock.done('2 clouds, close'):.1f} s")

        # ------------------------------------------------------------ 3. clear again: reopen after the delay
        recorder.clear()
        mark_states = len(states(watcher, TOPICS))
        clear_cmd_at = time.monotonic()
        result = services.run_command("weather", "simulate", "clouds", "--kind", "clear")
        assert result.returncode == 0, result.stdout + result.stderr
        clear_again_at, clear_again = wait_verdict(watcher, True, clear_cmd_at, timeout=120)
        print(f"clouddetect after the clouds: {describe(clear_again)} after {clear_again_at - clear_cmd_at:.1f} s")
        opened = recorder.wait(
            lambda r: r.device == ROOF and r.name == "DOME_PARK" and r.values.get("UNPARK"), MCP_SAFE_DELAY_S + 60
        )
        roof_moved_at = recorder.records[opened].at
        assert roof_moved_at - clear_again_at >= MCP_SAFE_DELAY_S * 0.9, (
            f"the roof moved {roof_moved_at - clear_again_at:.1f} s after the clear verdict "
            f"(safe delay {MCP_SAFE_DELAY_S:.0f} s)"
        )
        wait_mcp(watcher, lambda s: s["state"] == "observing" and s["roof"] == "open", mark_states, timeout=60)
        print(
            f"clear verdict to the roof moving: {roof_moved_at - clear_again_at:.1f} s (delay {MCP_SAFE_DELAY_S:.0f} s)"
        )
        print(f"3 clear, safe delay, reopen: {clock.done('3 clear, safe delay, reopen'):.1f} s")

        services.check_running()
        codes = services.stop()
        assert codes == dict.fromkeys(SERVICES, 0), codes
        with capsys.disabled():
            print(f"\n{clock.report()}")
