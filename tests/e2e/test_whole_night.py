"""A whole night, end to end: the six services as their own processes against the simulators.

Real Mosquitto (private), Postgres (a fresh database), one indiserver with the roll-off
roof, telescope, main camera and weather simulators and the sky simulator's allsky camera
(``indi_obsy_allsky``, the real sky for the site: the MCP requires clouddetect's clear
verdict, ``mcp.require_clear_sky: true``), and headless KStars/Ekos connected to that same
indiserver. The site is a KStars city where it is astronomical night now
(tests/support/e2e_site.py), so the services run on the real clock. Phases (durations
printed, never asserted):

1. targets through the web API → the scheduler plans, clouddetect says clear → the MCP
   confirms the mount parked, opens the roof, starts tonight's Ekos schedule → frames
   arrive in the sequence directory;
2. allsky frames → clouddetect verdicts → everything stored by the web service;
3. rain on the weather simulator → Ekos stopped, mount parked, roof closed, in that order,
   every step and the unsafe reasons in the events table;
4. rain stops → the roof stays closed for the weather safe delay, then opens again;
5. every service's Home Assistant entities announced, valid and available.

Every service's log, and indiserver's, KStars' and Mosquitto's, end up in one folder that
a failure names. With OBSY_E2E_SCREENSHOTS=docs/walkthrough the dashboard screenshots of
each phase are written there for docs/walkthrough.md.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import astropy.units as u
import httpx
import pytest
from astropy.time import Time

from obsy.config import SERVICE_NAMES
from obsy.homeassistant.lint import lint_discovery
from obsy.topics import Topics
from obsy_mcp.ekos import STOPPED, SchedulerStatus
from tests.support.e2e_dashboard import DashboardCamera, browser_available
from tests.support.e2e_observatory import (
    ALLSKY_CAMERA,
    SKYSIM_ALLSKY,
    WEATHER_SAFE_DELAY_S,
    Database,
    PhaseClock,
    ServiceProcesses,
    folder,
    logs_named_on_failure,
    night_config,
    skysim_available,
    wait_new_state,
    wait_until,
    write_skysim_settings,
)
from tests.support.e2e_site import DarkSite, dark_site
from tests.support.indiserver import (
    CCD,
    ROOF,
    TELESCOPE,
    WEATHER,
    IndiServer,
    devices_at_start,
    pyindi_available,
    require_indi,
)
from tests.support.kstars import PROFILE, KStars, requires_kstars
from tests.support.mcp_harness import IndiRecorder, events, prepare_devices, states, wait_state
from tests.support.mosquitto import MosquittoBroker
from tests.support.pgcluster import fresh_database
from tests.support.ports import free_port
from tests.support.watcher import Watcher

DRIVERS = ["indi_simulator_telescope", "indi_simulator_ccd", "indi_rolloff_dome", "indi_simulator_weather"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.long(seconds=300),
    pytest.mark.timeout(900),
    requires_kstars,
    pytest.mark.skipif(not pyindi_available(), reason="pyindi-client is not installed"),
    pytest.mark.skipif(
        not skysim_available(), reason="the sky simulator is not installed (pip install -e services/skysim)"
    ),
    pytest.mark.skipif(not browser_available(), reason="Playwright or Chromium (Debian package chromium) is missing"),
]

TOPICS = Topics()
OPERATOR, PASSWORD = "olivia", "a night under the stars"
DONE_STEPS = {"stop_ekos_scheduler", "abort_mount", "park_mount", "close_roof"}


def zenith_target(site: DarkSite) -> dict[str, Any]:
    """A target crossing the meridian near the zenith in a few minutes: the best of the night."""
    sidereal = Time(datetime.now(UTC) + timedelta(minutes=5)).sidereal_time(
        "apparent", longitude=site.longitude * u.deg
    )
    return {
        "name": "Zenith field",
        "ra_deg": round(float(sidereal.to(u.deg).value) % 360, 4),
        "dec_deg": round(min(site.latitude, 85.0), 4),
        "priority": 8,
        "exposure_plans": [{"filter": "Red", "exposure_s": 2, "count": 100}],
    }


def plans(watcher: Watcher) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in watcher.on(TOPICS.scheduler_plan) if m.payload]


def payloads(watcher: Watcher, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in watcher.on(topic) if m.payload]


def step_order(mcp_events: list[dict[str, Any]]) -> list[str]:
    """The MCP's device steps in the order they were reported (``.index`` finds the first)."""
    return [e["data"]["step"] for e in mcp_events if e["kind"] == "device_action"]


def test_a_whole_night_with_every_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_indi(DRIVERS)
    site = dark_site()
    print(
        f"site: {site.city}, {site.country} ({site.latitude:.2f}, {site.longitude:.2f}), sun {site.sun_altitude:.0f}°"
    )
    log_dir = tmp_path / "logs"
    clock = PhaseClock()
    with contextlib.ExitStack() as stack:
        broker = MosquittoBroker(folder(tmp_path / "mosquitto"))
        broker.start()
        stack.callback(broker.stop)
        skysim = write_skysim_settings(folder(tmp_path / "skysim") / "skysim.yaml", site.site_config())
        indi = IndiServer(
            tmp_path / "indi",
            [*DRIVERS, str(SKYSIM_ALLSKY)],
            env={"OBSY_SKYSIM_CONFIG": str(skysim)},
            parked=devices_at_start(roof_open=False, mount_parked=True),
        )
        indi.start()
        stack.callback(indi.stop)
        database_url = stack.enter_context(fresh_database("obsy_e2e"))
        kstars = KStars(folder(tmp_path / "kstars"))
        stack.callback(kstars.stop)
        server_logs = {"indiserver": indi.log_path, "kstars": kstars.log_path, "mosquitto": broker.log_path}
        stack.enter_context(logs_named_on_failure(log_dir, **server_logs))

        # ------------------------------------------------------------ the observatory wakes up
        prepare_devices(indi.config(), roof_open=False, mount_parked=True)
        kstars.start()
        kstars.set_location(site.city, site.province, site.country)
        indi.wait_devices((TELESCOPE, CCD, ALLSKY_CAMERA))  # Ekos' trains need both cameras
        kstars.start_ekos(drivers=(TELESCOPE, CCD), indi_server=(indi.host, indi.port))
        web_port = free_port()
        config = night_config(
            folder(tmp_path / "observatory"),
            broker,
            site=site.site_config(),
            indi_port=indi.port,
            database_url=database_url,
            web_port=web_port,
            kstars_bus=kstars.bus_file.read_text().strip(),
            ekos_profile=PROFILE,
            # The clear-sky gate opens on the first frame; later frames only need to keep coming.
            allsky_interval_s=15,
        )
        data_dir = config.parent / "data"
        services = ServiceProcesses(config, log_dir)
        created = services.run_command(
            "web", "create-user", OPERATOR, "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert created.returncode == 0, created.stderr
        # The operator lets the MCP run tonight: without a saved decision it opens nothing by itself.
        decided = services.run_command("mcp", "decision", "--mode", "auto", "--night", "start")
        assert decided.returncode == 0, decided.stderr
        watcher = Watcher(broker.port, ["obsy/#", "homeassistant/#"])
        stack.callback(watcher.close)
        recorder = IndiRecorder(indi.config())
        stack.callback(recorder.close)
        recorder.client.wait_property(ALLSKY_CAMERA, "SIM_SITE")
        services.start()
        stack.callback(services.stop)
        for name in SERVICE_NAMES:
            watcher.wait_payload(TOPICS.availability(name), b"online", timeout=90)
        services.check_running()
        web = f"http://127.0.0.1:{web_port}"
        camera = DashboardCamera(web, OPERATOR, PASSWORD, tmp_path / "screenshots")
        stack.callback(camera.close)
        camera.shoot("0-services-online")
        print(f"start-up: {clock.done('start-up'):.1f} s")

        # ------------------------------------------------------------ 1. plan, open, observe
        with httpx.Client(base_url=web, timeout=30) as api:
            login = api.post("/api/v1/auth/login", json={"username": OPERATOR, "password": PASSWORD})
            assert login.status_code == 200, login.text
            api.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            created_target = api.post("/api/v1/targets", json=zenith_target(site))
            assert created_target.status_code == 201, created_target.text
        plan = wait_until(
            lambda: next((p for p in reversed(plans(watcher)) if p["blocks"] and p.get("ekos_schedule_path")), None),
            60,
            "the scheduler's plan with the new target",
        )
        assert plan["blocks"][0]["target_name"] == "Zenith field"
        assert Path(plan["ekos_schedule_path"]).is_file()
        observing = wait_state(watcher, TOPICS, lambda s: s["state"] == "observing", timeout=120)
        assert observing["roof"] == "open" and observing["ekos_scheduler"] in ("startup", "running")
        sky = payloads(watcher, TOPICS.clouddetect_state)  # the clear-sky gate: open only under a clear sky
        assert sky and sky[-1]["clear"] is True, sky[-1:]
        opening = step_order(events(watcher, TOPICS))
        assert opening.index("confirm_parked") < opening.index("open_roof") < opening.index("start_ekos_schedule")
        frames = wait_until(
            lambda: sorted((data_dir / "frames").rglob("*.fits")), 180, "Ekos frames in the sequence directory"
        )
        print(f"first Ekos frame: {frames[0].relative_to(data_dir)}")
        camera.expect_text("#mcp-state", "observing")
        camera.expect_text("#plan-blocks", "Zenith field")
        camera.shoot("1-observing")
        print(f"1 plan, open, observe: {clock.done('1 plan, open, observe'):.1f} s")

        # ------------------------------------------------------------ 2. allsky, clouds, storage
        frame_ids = wait_until(
            lambda: [f["frame_id"] for f in payloads(watcher, TOPICS.allsky_frames)][:2] or None,
            120,
            "allsky frames on the bus",
        )
        judged = wait_until(
            lambda: [s for s in payloads(watcher, TOPICS.clouddetect_state) if s.get("frame_id") in frame_ids],
            60,
            "a clouddetect verdict on an allsky frame",
        )
        print(f"clouddetect on {judged[0]['frame_id']}: {judged[0]['label']} ({judged[0].get('reason') or 'judged'})")
        db = Database(database_url)
        stack.callback(db.close)
        wait_until(lambda: db.rows("SELECT 1 FROM allsky_frames WHERE frame_id = %s", frame_ids[0]), 90, "frame stored")
        wait_until(lambda: db.rows("SELECT 1 FROM cloud_results WHERE frame_id = %s", frame_ids[0]), 30, "cloud stored")
        for table in ("weather_readings", "safety_verdicts", "mcp_states", "scheduler_plans", "events"):
            assert db.count(table) > 0, f"nothing stored in {table}"
        assert db.rows("SELECT 1 FROM weather_readings WHERE quantity = 'rain' AND value = 0")
        with httpx.Client(base_url=web, timeout=30) as api:
            api.post("/api/v1/auth/login", json={"username": OPERATOR, "password": PASSWORD}).raise_for_status()
            jpeg = api.get(f"/api/v1/allsky/images/{frame_ids[0]}/file")
            assert jpeg.status_code == 200 and jpeg.content.startswith(b"\xff\xd8"), jpeg.text[:200]
        camera.wait_image_loaded("allsky-latest")
        camera.shoot("2-allsky-and-weather")
        print(f"2 allsky, clouds, storage: {clock.done('2 allsky, clouds, storage'):.1f} s")

        # ------------------------------------------------------------ 3. rain
        mark = len(events(watcher, TOPICS))
        recorder.clear()
        recorder.client.set_number(WEATHER, "WEATHER_CONTROL", {"Precip": 10})
        recorder.client.set_switch(WEATHER, "WEATHER_REFRESH", "REFRESH")
        closed = wait_state(
            watcher,
            TOPICS,
            lambda s: (
                s["state"] == "closed_unsafe" and s["roof"] == "closed" and "rain" in " ".join(s["unsafe_reasons"])
            ),
            timeout=150,
        )
        assert closed["mount_parked"] is True
        assert closed["ekos_scheduler"] not in ("startup", "running")
        assert SchedulerStatus(kstars.scheduler_status()) in STOPPED  # asked of Ekos itself
        closing = step_order(events(watcher, TOPICS)[mark:])
        order = ["stop_ekos_scheduler", "abort_mount", "park_mount", "close_roof"]
        assert [closing.index(s) for s in order] == sorted(closing.index(s) for s in order), closing
        # The drivers' own reports: the mount parked before the roof started to move.
        parked = recorder.first(
            lambda r: r.device == TELESCOPE and r.name == "TELESCOPE_PARK" and r.state == "Ok" and r.values["PARK"]
        )
        roof_moves = recorder.first(lambda r: r.device == ROOF and r.name == "DOME_PARK" and r.state == "Busy")
        roof_closed = recorder.wait(  # this client hears the driver a moment after the MCP's
            lambda r: r.device == ROOF and r.name == "DOME_PARK" and r.state == "Ok" and r.values["PARK"], 60
        )
        assert 0 <= parked < roof_moves < roof_closed, recorder.records
        stored_steps = wait_until(
            lambda: (steps := {row[0] for row in db.rows(_DONE_STEPS_SQL)}) >= DONE_STEPS and steps,
            30,
            "every closing step in the events table",
        )
        unsafe = db.rows(
            "SELECT message FROM events WHERE service = 'mcp' AND kind = 'transition' AND data->>'to' = 'closing' "
            "AND data->>'reason' ILIKE %s",
            "%rain%",
        )
        assert unsafe, "the closing transition with the rain reason is not in the events table"
        rain_reason = "%rain%"
        wait_until(
            lambda: db.rows(
                "SELECT 1 FROM mcp_states WHERE state = 'closed_unsafe' AND unsafe_reasons::text ILIKE %s", rain_reason
            ),
            30,
            "the MCP's closed state with the rain among its unsafe reasons",
        )
        assert db.rows("SELECT 1 FROM safety_verdicts WHERE NOT safe AND reasons::text ILIKE %s", rain_reason)
        print(f"closing steps stored: {sorted(stored_steps)}; reason: {unsafe[-1][0]}")
        camera.expect_text("#mcp-state", "closed_unsafe")
        camera.expect_text("#safety-reasons", "rain")
        camera.shoot("3-rain-closed")
        camera.shoot("3-events", path="/events")
        print(f"3 rain, close: {clock.done('3 rain, close'):.1f} s")

        # ------------------------------------------------------------ 4. dry again
        recorder.clear()
        states_before = len(states(watcher, TOPICS))
        dry_at = time.monotonic()
        recorder.client.set_number(WEATHER, "WEATHER_CONTROL", {"Precip": 0})
        recorder.client.set_switch(WEATHER, "WEATHER_REFRESH", "REFRESH")
        watcher.wait_for(
            lambda msgs: any(
                m.topic == TOPICS.weather_safety and m.at > dry_at and json.loads(m.payload)["safe"] for m in msgs
            ),
            WEATHER_SAFE_DELAY_S + 60,
        )
        safe_at = next(
            m.at for m in watcher.on(TOPICS.weather_safety) if m.at > dry_at and json.loads(m.payload)["safe"]
        )
        opened = recorder.wait(lambda r: r.device == ROOF and r.name == "DOME_PARK" and r.values.get("UNPARK"), 60)
        assert recorder.records[opened].at >= safe_at, "the roof moved before the weather's safe delay had passed"
        assert safe_at - dry_at >= WEATHER_SAFE_DELAY_S * 0.9
        reopened = wait_new_state(
            watcher, states_before, lambda s: s["state"] == "observing" and s["roof"] == "open", 120
        )
        assert reopened["ekos_scheduler"] in ("startup", "running")
        frames_before = len(list((data_dir / "frames").rglob("*.fits")))
        wait_until(
            lambda: len(list((data_dir / "frames").rglob("*.fits"))) > frames_before, 120, "Ekos frames after reopening"
        )
        print(f"dry to safe: {safe_at - dry_at:.1f} s (safe delay {WEATHER_SAFE_DELAY_S:.0f} s)")
        camera.expect_text("#mcp-state", "observing")
        camera.shoot("4-observing-again")
        print(f"4 dry, safe delay, reopen: {clock.done('4 dry, safe delay, reopen'):.1f} s")

        # ------------------------------------------------------------ 5. Home Assistant
        configs = {
            m.topic: json.loads(m.payload)
            for m in watcher.messages
            if m.topic.startswith("homeassistant/") and m.topic.endswith("/config") and m.payload
        }
        announced: dict[str, int] = {}
        for topic, payload in configs.items():
            component = topic.split("/")[1]
            assert lint_discovery(component, payload) == [], (topic, lint_discovery(component, payload))
            for entry in payload.get("availability", []):
                service = entry["topic"].split("/")[1]
                announced[service] = announced.get(service, 0) + 1
                latest = watcher.on(entry["topic"])[-1].payload.decode()
                assert latest == entry["payload_available"], (topic, entry["topic"], latest)
        assert set(announced) >= set(SERVICE_NAMES), announced
        print(f"Home Assistant entities per service: {dict(sorted(announced.items()))}")
        print(f"5 Home Assistant: {clock.done('5 Home Assistant'):.1f} s")

        services.check_running()
        codes = services.stop()
        assert codes == dict.fromkeys(SERVICE_NAMES, 0), codes
        for name in SERVICE_NAMES:
            watcher.wait_payload(TOPICS.availability(name), b"stopped", timeout=5)
        with capsys.disabled():  # shown in every run, not only with -s or on failure
            print(f"\n{clock.report()}")


_DONE_STEPS_SQL = (
    "SELECT data->>'step' FROM events WHERE service = 'mcp' AND kind = 'device_action' AND message LIKE '%%: done'"
)
