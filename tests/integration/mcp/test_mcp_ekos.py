"""The MCP's Ekos control against the real KStars 3.6 (headless, private D-Bus, INDI simulators)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from obsy.config import McpEkosConfig
from obsy.kstars.dbus import DBusCallError, KStarsBus
from obsy.kstars.paths import SCHEDULER_PATH
from obsy.messages import ExposurePlan, Target
from obsy.topics import Topics
from obsy_mcp.ekos import STOPPED, Ekos, EkosError, SchedulerStatus
from obsy_scheduler.ekos import write_plan
from tests.support.ekos_plans import VIENNA, one_block_plan, run_now_settings, zenith_ra
from tests.support.indiserver import IndiServer, module_server
from tests.support.kstars import PROFILE, VIENNA_CITY, KStars, ekos_running, requires_kstars
from tests.support.mcp_harness import (
    Heartbeats,
    Inputs,
    McpProcess,
    Sky,
    events,
    mcp_config,
    prepare_devices,
    wait_state,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

pytestmark = [
    pytest.mark.integration,
    requires_kstars,
]

TOPICS = Topics()
DRIVERS = ("indi_simulator_telescope", "indi_simulator_ccd", "indi_rolloff_dome")

#: Our indiserver on a free port: Ekos and the MCP drive the same devices on it.
#: (Ekos' own local server would take port 7624, which other tests on the machine may use.)
indi = module_server(DRIVERS)


@pytest.fixture(scope="module")
def kstars(tmp_path_factory: pytest.TempPathFactory, indi: IndiServer) -> Iterator[KStars]:
    devices = ("Telescope Simulator", "CCD Simulator", "RollOff Simulator")
    with ekos_running(tmp_path_factory.mktemp("kstars"), devices, indi=indi) as ks:
        yield ks


@pytest.fixture
def ekos(kstars: KStars) -> Iterator[Ekos]:
    client = Ekos(McpEkosConfig(enabled=True, bus_address=kstars.bus_file.read_text().strip(), profile=PROFILE))
    try:
        yield client
    finally:
        client.close()


def long_schedule(tmp_path: Path, startup: tuple[str, ...] = ()) -> Path:
    """One job near the zenith with long exposures, starting at once: the scheduler keeps running."""
    now = datetime.now(UTC)
    target = Target(
        id="zenith",
        name="Zenith Field",
        ra_deg=zenith_ra(now),
        dec_deg=VIENNA.latitude,
        exposure_plans=[ExposurePlan(filter="Red", exposure_s=60, count=30)],
    )
    plan = one_block_plan(target, [(target.exposure_plans[0], 30)], now, now + timedelta(hours=1))
    settings = run_now_settings(startup_procedure=list(startup))
    return write_plan(plan, settings, tmp_path / "ekos", tmp_path / "frames", VIENNA.timezone).schedule


def test_start_the_night_then_stop_the_scheduler(kstars: KStars, ekos: Ekos, tmp_path: Path) -> None:
    assert ekos.scheduler_status() in STOPPED
    ekos.start_ekos()  # already started with its devices: nothing to do, no error
    ekos.start_night(str(long_schedule(tmp_path)))
    assert ekos.scheduler_status() in (SchedulerStatus.STARTUP, SchedulerStatus.RUNNING)
    time.sleep(2)
    assert ekos.scheduler_status() not in STOPPED
    ekos.stop_scheduler()
    assert ekos.scheduler_status() in STOPPED
    ekos.stop_scheduler()  # stopping a stopped scheduler is harmless


def test_the_schedule_started_is_the_one_asked_for_once_ekos_is_up(kstars: KStars, tmp_path: Path) -> None:
    """Before loading, start_night asks for files written now (the MCP's plan request) and loads those."""
    fresh = long_schedule(tmp_path)
    asked: list[str] = []

    def fresh_schedule(latest: str) -> str:
        asked.append(latest)
        return str(fresh)

    bus_address = kstars.bus_file.read_text().strip()
    client = Ekos(McpEkosConfig(enabled=True, bus_address=bus_address, profile=PROFILE), fresh_schedule)
    try:
        mark = len(kstars.log_text())
        client.start_night("/plans/written-at-noon.esl")
        assert asked == ["/plans/written-at-noon.esl"]
        kstars.wait_for_log(r"Job 'Zenith_Field' at row #1 was saved", timeout=30, after=mark)
        assert "written-at-noon" not in kstars.log_text()[mark:]
        client.stop_scheduler()
    finally:
        client.close()


def test_a_night_is_not_started_while_kstars_is_in_another_time_zone(kstars: KStars, tmp_path: Path) -> None:
    """The .esl's times carry the site's UTC offset; KStars reads them in its own location's zone."""
    bus_address = kstars.bus_file.read_text().strip()
    client = Ekos(McpEkosConfig(enabled=True, bus_address=bus_address, profile=PROFILE), site_timezone="Europe/Vienna")
    try:
        assert client.time_zone_mismatch() is None  # KStars in Vienna
        kstars.set_location("Tokyo", "", "Japan")
        assert kstars.location()["tz"] == 9
        reason = client.time_zone_mismatch()
        assert reason is not None and "Tokyo" in reason and "UTC+9" in reason and "Europe/Vienna" in reason
        mark = len(kstars.log_text())
        with pytest.raises(EkosError, match="KStars' location \\(Tokyo, Japan\\) has UTC\\+9"):
            client.start_night(str(long_schedule(tmp_path)))
        assert "was saved" not in kstars.log_text()[mark:]  # nothing loaded
        assert client.scheduler_status() in STOPPED
    finally:
        kstars.set_location(*VIENNA_CITY)
        client.close()
    assert client.time_zone_mismatch() is None


def test_the_shared_client_names_a_missing_object_of_the_real_kstars(kstars: KStars) -> None:
    with KStarsBus(kstars.bus_file.read_text().strip(), timeout=10) as bus:
        assert bus.has_object(SCHEDULER_PATH) and not bus.has_object("/KStars/Ekos/NoSuchModule")
        with pytest.raises(DBusCallError, match=r"NoSuchModule\.start on /KStars/Ekos/NoSuchModule .*no object") as e:
            bus.call("/KStars/Ekos/NoSuchModule", "org.kde.kstars.Ekos.NoSuchModule", "start")
        assert e.value.name == "org.freedesktop.DBus.Error.UnknownObject"


def test_a_bus_without_kstars_is_an_ekos_error(tmp_path: Path) -> None:
    gone = Ekos(McpEkosConfig(enabled=True, bus_address=f"unix:path={tmp_path / 'no-bus'}", call_timeout=2))
    with pytest.raises(EkosError, match=r"D-Bus call .*failed"):
        gone.scheduler_status()


def observing_with_kstars(
    kstars: KStars, indi: IndiServer, mosquitto: MosquittoBroker, tmp_path: Path, **ekos: Any
) -> tuple[McpProcess, Heartbeats, Watcher, Inputs]:
    """Roof closed, mount parked, dark and safe with a plan: the MCP opens and starts tonight's schedule."""
    pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
    prepare_devices(indi.config(), roof_open=False, mount_parked=True)
    ekos_settings = {"enabled": True, "bus_address": kstars.bus_file.read_text().strip(), "profile": PROFILE, **ekos}
    config = mcp_config(tmp_path, mosquitto, indi.config(), ekos=ekos_settings)
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    inputs = Inputs(watcher, TOPICS, config)
    inputs.all_safe(schedule=str(long_schedule(tmp_path, startup=("UnparkMount",))))
    process = McpProcess(config, Sky(-25.0)).start()
    beats = Heartbeats(inputs).start()
    observing = wait_state(watcher, TOPICS, lambda s: s["state"] == "observing", timeout=90)
    assert observing["roof"] == "open"
    assert observing["ekos_scheduler"] in ("startup", "running")
    assert kstars.scheduler_status() not in STOPPED
    return process, beats, watcher, inputs


def test_the_mcp_opens_starts_ekos_and_stops_it_first_when_it_rains(
    kstars: KStars, indi: IndiServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    process, beats, watcher, inputs = observing_with_kstars(kstars, indi, mosquitto, tmp_path)
    try:
        opening = [e["data"]["step"] for e in events(watcher, TOPICS) if e["kind"] == "device_action"]
        assert opening.index("confirm_parked") < opening.index("open_roof") < opening.index("start_ekos_schedule")

        mark = len(events(watcher, TOPICS))
        inputs.weather(False, "rain detected")
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "closed_unsafe" and s["roof"] == "closed", 120)
        assert closed["mount_parked"] is True
        assert SchedulerStatus(kstars.scheduler_status()) in STOPPED
        steps = [e["data"]["step"] for e in events(watcher, TOPICS)[mark:] if e["kind"] == "device_action"]
        order = ["stop_ekos_scheduler", "abort_mount", "park_mount", "close_roof"]
        assert [steps.index(s) for s in order] == sorted(steps.index(s) for s in order), steps
    finally:
        beats.stop()
        process.stop()
        watcher.close()


def test_the_mcp_closes_for_the_night_when_the_ekos_scheduler_stops_running(
    kstars: KStars, indi: IndiServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    process, beats, watcher, _inputs = observing_with_kstars(kstars, indi, mosquitto, tmp_path, poll_interval=1)
    try:
        wait_state(watcher, TOPICS, lambda s: s["ekos_scheduler"] == "running", timeout=60)
        kstars.stop_scheduler()  # the schedule ends while the MCP observes: idle after running
        closed = wait_state(watcher, TOPICS, lambda s: s["state"] == "standby", 120)
        assert closed["reason"] == "schedule finished"
        assert closed["roof"] == "closed"
        assert closed["mount_parked"] is True
        finished = [e for e in events(watcher, TOPICS) if e["kind"] == "ekos_schedule_finished"]
        assert len(finished) == 1 and "idle" in finished[0]["message"]
    finally:
        beats.stop()
        process.stop()
        watcher.close()
