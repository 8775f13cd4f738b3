"""Issue 23's night that ends in results, as two nights side by side: the science night and the weather night.

Issue 23's scenario is one night: calibration frames become masters, an LRGB target is calibrated and stacked
live per filter, a transit and a variable star are observed at their fixed times, clouds and rain close the
roof, and by dawn there are stacks of record, an AAVSO report and a transit fit, each checked against the
simulator's truth. Observed on one roof it takes 14 minutes, most of it waiting for the transit, whose time
the sky fixes; the rest cannot run meanwhile. So it is two observatories, each with its own broker,
indiserver, Postgres database, KStars and services (two tests, which pytest-xdist runs side by side). The
science night is then the suite's longest test: its sky's timeline (calibration, the transit at 4.75 min,
the variable's visits to 10 min), its start-up and its checks take about 10 minutes, 11 in the full suite on 2 cores:

* **the science night** (:func:`test_the_science_night_observes_the_transit_and_the_variable_against_the_truth`):
  a transit of the science night's planet (a target named as the planet in the scheduler's ephemeris file,
  planned at its window) observed whole, baseline either side, and the variable's two visits right after
  egress (a time series: two visits 1.5 minutes apart), the frames calibrated with masters of the night's
  own bias, darks and flats (taken first, three of each, with a light that brings the mount to the field).
  The science night is written before the observatory starts (the sky simulator's camera reads its scenario
  then) and moved once every service is online, so that the transit comes as soon as it safely can whatever
  the start-up took (1 to 2 minutes when every worker of the suite starts at once): the camera and the
  services read the scenario and the ephemeris again when they change. Then the science against the truth:
  the variable's magnitudes in the imaging service's AAVSO Extended report (its visits and the transit's
  frames, which hold it too) within their errors, the transit's fitted mid-time within its error, its
  ``#TYPE=EXOPLANET`` report valid;
* **the weather night** (:func:`test_the_weather_night_ends_in_masters_stacks_per_filter_and_its_summary`):
  a field near the zenith (the "nebula", in L, R, G and B) whose plan asks, in Ekos' order, for bias,
  darks and flats in every filter (from the light panel), then a few lights per filter:

  1. the MCP opens under a clear sky and starts Ekos; the imaging service builds the masters (bias, dark,
     flat) in its library: the bias and the dark match the simulator's fixed pattern to within what the
     frames' noise leaves;
  2. the lights are ingested, graded, calibrated with those masters, and folded into the target's live
     stack, which grows on the bus and in the web service's tables;
  3. clouds roll in (no rain): clouddetect says cloudy, the MCP stops Ekos, parks and closes; the lights
     taken under the clouds (the simulator's truth in each frame's header) are graded and rejected; the
     sky clears and the roof opens again, lights are accepted again, and the nebula has a live stack in
     each filter, every light's FILTER (what the wheel held) that of its plan;
  4. rain: the MCP stops Ekos, parks the mount and closes the roof, in that order (its own steps and the
     drivers' reports);
  5. dawn, played by the operator's ABORT (the night must end while the test runs): the web service sends
     the end-of-night summary (through Apprise to a receiver on loopback) with the lights accepted, their
     integration, the stack, the lights rejected and the clouds and rain that closed the roof; the
     imaging service stacks the night again with rejection (the stack of record) from each filter's live
     stack;
  6. each of the nebula's Light plans counts its accepted lights only (not those taken under the clouds).

Each observatory: every service as its own process from its console script, one config file, the real
Mosquitto, Postgres, one indiserver with the roll-off roof, telescope, weather, light-panel and filter-wheel
simulators and the sky simulator's two cameras (the allsky camera judged by clouddetect, the main camera
rendering the real stars where the mount points, through the wheel's filter, and in the science night its
variable and transit: :mod:`obsy_skysim.science`), and headless KStars/Ekos. KStars' lead time and the
planner's ``switch_gap_s`` are 30 s and its grid 30 s, the science night's 15 s (visits a minute apart need them).

Where Playwright and Chromium are installed the dashboard is photographed along the way (the weather
night's overview, live stacks and the nebula's page; the science night's light curve and transit on their
pages); with ``OBSY_E2E_SCREENSHOTS=docs/walkthrough`` small copies go there for
docs/walkthrough-results.md. Phase durations are printed, never asserted. Every log ends up in one folder
a failure names.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import astropy.units as u
import httpx
import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.time import Time

from obsy.config import SERVICE_NAMES
from obsy.filters import same_filter
from obsy.messages import ImagingPhotometry, ImagingTransit
from obsy.topics import Topics
from obsy_imaging.photometry.aavso import validate_report as validate_aavso
from obsy_imaging.transits.report import parse_report, results_of
from obsy_imaging.transits.report import validate_report as validate_exoplanet
from obsy_skysim.allsky import Site
from obsy_skysim.config import MainCameraSettings, _main_sensor
from obsy_skysim.science import ScienceNight, ScienceNightSettings, move_transit, write_science_night
from obsy_skysim.sensor import Sensor
from tests.support.e2e_dashboard import DashboardCamera, browser_available, images_loaded
from tests.support.e2e_observatory import (
    ALLSKY_CAMERA,
    MAIN_TELESCOPE,
    SKYSIM_ALLSKY,
    Database,
    PhaseClock,
    ServiceProcesses,
    folder,
    logs_named_on_failure,
    night_config,
    skysim_available,
    wait_new_state,
    wait_until,
    write_main_camera_settings,
    write_skysim_settings,
)
from tests.support.e2e_site import DarkSite, dark_site
from tests.support.indiserver import CCD, TELESCOPE, IndiServer, devices_at_start, pyindi_available, require_indi
from tests.support.kstars import PROFILE, SCHEDULER, SCHEDULER_PATH, KStars, kstars_available, written_frames
from tests.support.mcp_harness import events, prepare_devices, states, wait_state
from tests.support.mosquitto import MosquittoBroker
from tests.support.notify_receiver import Receiver
from tests.support.pgcluster import fresh_database
from tests.support.ports import free_port
from tests.support.watcher import Watcher

CAMERA_DRIVER = Path(sys.executable).with_name("indi_obsy_camera")
CAMERA = "SkySim Camera"
PANEL = "Light Panel Simulator"
#: INDI's filter wheel simulator, whose slot the sky simulator's camera follows (and writes as FILTER).
WHEEL = "Filter Simulator"
DRIVERS = [
    "indi_simulator_telescope",
    "indi_rolloff_dome",
    "indi_simulator_weather",
    "indi_simulator_lightpanel",
    "indi_simulator_wheel",
]
#: The simulator's main-camera sensor cut small, so that Ekos' frames are quick to send, save and stack.
SENSOR = {**_main_sensor().model_dump(), "width": 800, "height": 600}
NEBULA = "Zenith field"
LIGHT_S, DARK_S, FLAT_S, BIAS_S = 4.0, 4.0, 1.0, 0.01
#: Frames per calibration group, and the imaging service's ``min_frames``: three make a master (the masters'
#: check expects the noise of that many frames).
CALIBRATION_FRAMES = 3
#: The nebula's lights in L, R, G and B, a few each (Ekos takes them in this order, each through the wheel's
#: synonym: Luminance, Red, ...; three make a night stack), one more than three where the grading may reject one
#: after the clouds (the first light after reopening came out 1.31 times the night's median FWHM once, over its
#: 1.3); the last has more than the night needs: the operator ends the night.
LIGHTS = {"L": 4, "R": 4, "G": 4, "B": 8}
#: The science night's transit, minutes after the night is moved (once every service is online): its block (T1
#: less the baseline and one sigma of the ephemeris, less the slew) opens 2 min before mid-transit. Before it the
#: roof opens and the MCP asks for the plan Ekos runs (8-16 s after the move), and the calibration frames and a
#: light must fit between the plan's first step and the lead time before the transit's block, each end on the
#: science night's grid (:data:`SCIENCE_GRID_STEP_S`: up to 15 s lost at each), in the planner's 69 s with the
#: slew: they fit whenever the plan is made within 36 s of the move. (With 4.5 min and a 30 s grid they did not
#: fit once in the full suite, planned 16 s after the move: the calibration came after the visits and the science
#: waited a minute more for its masters.) Then the variable in its field, visited twice right after egress (its
#: window opens there), every 1.5 min (a visit of 42 s and the lead time fit in a cadence): two frames of the
#: lights' exposure. Its window holds two visits wherever the grid falls, never three: the first starts
#: 1.75-2.0 min after mid-transit (the block's end and the lead time, on the grid), the second ends by 4.2 min
#: after it, within the window (5.2 min after mid-transit), and a third would end after 5.45 min.
TRANSIT_MID_MIN = 4.75
SCIENCE = ScienceNightSettings(
    exposure_s=LIGHT_S,
    transit_mid_min=TRANSIT_MID_MIN,
    transit_duration_min=1.2,
    baseline_min=0.6,
    cadence_min=1.5,
    frames_per_visit=2,
    series_start_min=TRANSIT_MID_MIN + 0.6 + 0.6,
    series_window_min=4.0,
    # Wider than the default (9.5-12.5): some skies hold a single such star in both fields at the small sensor.
    comparison_mags=(9.0, 13.5),
)
#: The science night's calibration target, where the transit is (the slew done before the transit's).
CALIBRATION = "Calibration"
#: The ephemeris' window around the transit, in its sigmas: the simulator's own ephemeris does not drift.
TIMING_SIGMAS = 1.0
#: The planner's night grid: 30 s, so that the visits follow the transit and one another without a minute's rounding.
GRID_STEP_S = 30
#: The science night's grid: its fixed times (the transit's block, the visits) leave the calibration less to lose.
SCIENCE_GRID_STEP_S = 15
#: Ekos' minimum time between jobs (KStars' LeadTime, 5 min by default) and the planner's switch_gap_s:
#: visits 1.5 min apart need it short.
LEAD_TIME_S = 30.0
OBSERVER_CODE = "OBSYE2E"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(not kstars_available(), reason="KStars (Debian package kstars) is not installed"),
    pytest.mark.skipif(not pyindi_available(), reason="pyindi-client is not installed"),
    pytest.mark.skipif(
        not (skysim_available() and CAMERA_DRIVER.exists()),
        reason="the sky simulator is not installed (pip install -e services/skysim)",
    ),
]

TOPICS = Topics()
OPERATOR, PASSWORD = "olivia", "a night under the stars"


def plan_of(filter_name: str | None) -> str | None:
    """The nebula's Light plan (its filter) that a frame's FILTER belongs to: the wheel's Luminance is L."""
    return next((plan for plan in LIGHTS if same_filter(filter_name, plan)), None)


def target(site: DarkSite) -> dict[str, Any]:
    """A field crossing the meridian near the zenith in a few minutes, in LRGB, with its calibration first
    (bias, darks, and flats in every filter)."""
    sidereal = Time(datetime.now(UTC) + timedelta(minutes=5)).sidereal_time(
        "apparent", longitude=site.longitude * u.deg
    )
    return {
        "name": NEBULA,
        "ra_deg": round(float(sidereal.to(u.deg).value) % 360, 4),
        "dec_deg": round(min(site.latitude, 85.0), 4),
        "priority": 8,
        "exposure_plans": [
            {"frame_type": "Bias", "exposure_s": BIAS_S, "count": CALIBRATION_FRAMES},
            {"frame_type": "Dark", "exposure_s": DARK_S, "count": CALIBRATION_FRAMES},
            *({"frame_type": "Flat", "filter": f, "exposure_s": FLAT_S, "count": CALIBRATION_FRAMES} for f in LIGHTS),
            *({"frame_type": "Light", "filter": f, "exposure_s": LIGHT_S, "count": n} for f, n in LIGHTS.items()),
        ],
    }


def science_calibration(science: ScienceNight) -> dict[str, Any]:
    """The science night's calibration frames: bias, darks and flats (from the panel) in the filter its lights
    take (the wheel's Luminance, where the flats leave it), and one light at the transit's field: Ekos unparks
    and goes there first, so the transit's goto starts from a tracking mount (the telescope simulator's first
    goto from the park position left the field 0.1° off, the check star outside the transit's frames). An
    ordinary target: the planner puts it before the transit where it fits, else after the visits."""
    ra, dec = science.transit_field
    return {
        "name": CALIBRATION,
        "ra_deg": ra,
        "dec_deg": dec,
        "priority": 5,
        "exposure_plans": [
            {"frame_type": "Bias", "exposure_s": BIAS_S, "count": CALIBRATION_FRAMES},
            {"frame_type": "Dark", "exposure_s": DARK_S, "count": CALIBRATION_FRAMES},
            {"frame_type": "Flat", "filter": "L", "exposure_s": FLAT_S, "count": CALIBRATION_FRAMES},
            {"frame_type": "Light", "filter": "L", "exposure_s": LIGHT_S, "count": 1},
        ],
    }


def results_config(path: Path, receiver: Receiver, *, scheduler: dict[str, Any], imaging: dict[str, Any]) -> None:
    """The night's config with the main camera, its calibration, the imaging service's quick settings and
    a night's own ``scheduler`` and ``imaging`` settings (the science's)."""
    config = yaml.safe_load(path.read_text())
    config["scheduler"].update(
        {
            "grid_step_s": GRID_STEP_S,
            "switch_gap_s": LEAD_TIME_S,
            "exposure_overhead_s": 2,  # the small sensor's frames: about 0.3 s here, a transit ends At its end anyway
            "switch_overhead_s": 30,  # the slew and settle before the first frame (24-35 s), Ekos' estimate for Track
            **scheduler,
        }
    )
    ekos = config["scheduler"]["ekos"]
    ekos.update(
        camera=CAMERA,
        filter_wheel=WHEEL,
        calibration={"camera_shutter": True, "flat_source": "panel"},
        # Frames land where the imaging service watches (the scheduler's FITS folder, its default).
    )
    config["imaging"] = {
        "heartbeat_interval": 2.0,
        "log_level": "INFO",
        # Masters as soon as a group is complete: Ekos takes each group in one run.
        "calibration": {"min_frames": CALIBRATION_FRAMES, "quiet_time": 5, "quiet_exposures": 1},
        "live_stack": {"preview_width": 400},
        **imaging,
    }
    # Two cloudy allsky frames before "cloudy" (one in the whole night's config): the lights taken
    # meanwhile are the ones the grading must reject, so the night keeps taking some under the clouds.
    config["clouddetect"]["debounce_frames"] = 2
    config["web"]["notifications"] = {
        "urls": [receiver.url],
        "kinds": [],
        "min_level": "critical",
        "night_summary_delay": 2,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def main_camera() -> MainCameraSettings:
    return MainCameraSettings.model_validate({"device": CAMERA, "sensor": SENSOR, "telescope": MAIN_TELESCOPE})


def science_night(folder: Path, site: DarkSite, start: datetime) -> ScienceNight:
    """The science night from ``start``: its scenario, ephemeris, comparison stars and index."""
    return write_science_night(
        folder, Site(site.latitude, site.longitude, site.elevation), start, main_camera(), settings=SCIENCE
    )


def science_config(science: ScienceNight) -> dict[str, Any]:
    """The imaging service's photometry of the variable and fit of the transit, with the camera's noise."""
    spec = main_camera().sensor.spec()
    camera = {"gain_e_per_adu": 1.0 / spec.adu_per_electron(0.0), "read_noise_e": spec.read_noise_e}
    imaging = science.config["imaging"]
    return {
        "photometry": {
            **imaging["photometry"],
            "enabled": True,
            "observer_code": OBSERVER_CODE,
            "solve_timeout": 120,  # a loaded machine is slow to solve
            **camera,
        },
        "transits": {
            **imaging["transits"],
            "enabled": True,
            "observer_code": OBSERVER_CODE,
            "camera": CAMERA,
            "quiet_time": 5,
            **camera,
        },
    }


def against_fixed_pattern(path: Path, exposure_s: float, *, dark: bool) -> tuple[float, float, float]:
    """A master bias or dark against the simulator's noise-free frame of that exposure: the mean absolute
    difference (ADU), the correlation of the column pattern, and the difference noise alone would leave."""
    master = fits.getdata(path).astype(np.float32)
    sensor = Sensor(MainCameraSettings.model_validate({"device": CAMERA, "sensor": SENSOR}).sensor.spec())
    truth = sensor.master(exposure_s, 0.0, dark=dark)
    spec = sensor.spec
    noise_adu = spec.read_noise_e * spec.adu_per_electron(0.0) / np.sqrt(CALIBRATION_FRAMES)
    expected = float(np.sqrt(2 / np.pi) * noise_adu)  # the mean |x| of a normal of that sigma
    correlation = float(np.corrcoef(master.mean(axis=0), truth.mean(axis=0))[0, 1])
    return float(np.abs(master - truth).mean()), correlation, expected


def all_lights_graded(watcher: Watcher, directory: Path) -> list[dict[str, Any]] | None:
    """The imaging service's graded lights (``imaging/frames``), once every light Ekos wrote is among them."""
    written = sum(1 for path, _header in written_frames(directory) if "Light" in path.parts)
    frames = [json.loads(m.payload) for m in watcher.on(TOPICS.imaging_frames) if m.payload]
    lights = [f for f in frames if f["frame_type"] == "light" and f["accepted"] is not None]
    return lights if len(lights) >= written else None


def sky_of(frame: dict[str, Any]) -> str:
    """The clouds the simulator rendered into a frame (its ``SIMCLOUD``): the truth of its sky."""
    return str(fits.getheader(frame["source"]).get("SIMCLOUD", "clear"))


def frame_types(directory: Path) -> dict[str, int]:
    """IMAGETYP of every frame Ekos has written, counted."""
    counts: dict[str, int] = {}
    for _path, header in written_frames(directory):
        kind = str(header.get("IMAGETYP", "?"))
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def transit_answers(watcher: Watcher) -> list[tuple[str, str | None]]:
    """What the imaging service said of the transits so far: (status, reason)."""
    found = [ImagingTransit.model_validate_json(m.payload) for m in watcher.on(TOPICS.imaging_transits)]
    return [(m.status, m.reason) for m in found]


def jd_to_utc(jd: float) -> datetime:
    return Time(jd, format="jd", scale="utc").to_datetime(timezone=UTC)


def how_ekos_stands(kstars: KStars, watcher: Watcher, directory: Path) -> str:
    """What Ekos has written, what the MCP said of the roof and Ekos, what Ekos' scheduler and KStars logged:
    for a wait that ran out."""
    told = ("ekos", "transition", "roof_", "step_failed", "alarm", "command_")
    mcp_events = [e.get("message") for e in events(watcher, TOPICS) if str(e.get("kind", "")).startswith(told)]
    try:
        scheduler_log = kstars.module_log(SCHEDULER_PATH, SCHEDULER)[:15]
    except Exception as error:  # a diagnostic must not hide the failure it explains
        scheduler_log = [f"(not readable: {error})"]
    return (
        f"Ekos wrote {frame_types(directory)}; the MCP said: {mcp_events[-15:]}; "
        f"the Ekos scheduler's log, newest first: {scheduler_log}; KStars' log:\n{kstars.log_tail(60)}"
    )


#: The cards photographed, by the element each holds (the Imaging page's) or its id (a target page's).
LIVE_STACKS_CARD = "section:has(#stacks)"
LIGHT_CURVE_CARD = "#target-light-curve"
TRANSIT_CARD = "#target-transits"


@dataclass
class Observatory:
    """One observatory of :func:`observatory`, started and every service online, the operator logged in."""

    tmp_path: Path
    stack: contextlib.ExitStack
    clock: PhaseClock
    services: ServiceProcesses
    watcher: Watcher
    web: httpx.Client
    db: Database
    kstars: KStars
    receiver: Receiver
    frames_dir: Path
    repository: Path
    _camera: DashboardCamera | None = field(default=None, init=False)

    def post(self, *targets: dict[str, Any]) -> None:
        for body in targets:
            created = self.web.post("/api/v1/targets", json=body)
            assert created.status_code == 201, created.text

    def wait_observing(self) -> None:
        """The MCP observing (the roof open, Ekos started) once a plan exists under a clear sky."""
        try:
            observing = wait_state(self.watcher, TOPICS, lambda s: s["state"] == "observing", timeout=180)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n\n{self.stands()}") from None
        assert observing["roof"] == "open"

    def camera(self) -> DashboardCamera | None:
        """The dashboard's screenshots (a browser logged in), where Playwright and Chromium are installed."""
        if self._camera is None and browser_available():
            self._camera = DashboardCamera(str(self.web.base_url), OPERATOR, PASSWORD, self.tmp_path / "screenshots")
            self.stack.callback(self._camera.close)
        return self._camera

    def stands(self) -> str:
        return how_ekos_stands(self.kstars, self.watcher, self.frames_dir)

    def stop(self) -> None:
        """Every service still running, then stopped with exit code 0; the phases printed."""
        self.services.check_running()
        codes = self.services.stop()
        assert codes == dict.fromkeys(SERVICE_NAMES, 0), codes
        print(f"\n{self.clock.report()}")


@contextlib.contextmanager
def observatory(
    tmp_path: Path,
    clock: PhaseClock,
    site: DarkSite,
    *,
    science: ScienceNight | None = None,
    imaging: dict[str, Any] | None = None,
) -> Iterator[Observatory]:
    """An observatory of its own (broker, indiserver, database, KStars/Ekos, every service) under a clear sky,
    the MCP in auto mode and the night started; the main camera renders ``science``'s scenario, the scheduler
    plans its transit. Everything is stopped on leaving, and every log named on a failure."""
    log_dir = tmp_path / "logs"
    with contextlib.ExitStack() as stack:
        receiver = Receiver()
        stack.callback(receiver.close)
        broker = MosquittoBroker(folder(tmp_path / "mosquitto"))
        broker.start()
        stack.callback(broker.stop)
        skysim = folder(tmp_path / "skysim") / "skysim.yaml"
        write_skysim_settings(skysim, site.site_config())
        scenario = {"scenario": str(science.scenario)} if science else {}
        write_main_camera_settings(skysim, site.site_config(), SENSOR, mount=TELESCOPE, device=CAMERA, **scenario)
        indi = IndiServer(
            tmp_path / "indi",
            [*DRIVERS, str(SKYSIM_ALLSKY), str(CAMERA_DRIVER)],
            env={"OBSY_SKYSIM_CONFIG": str(skysim)},
            parked=devices_at_start(roof_open=False, mount_parked=True),
        )
        indi.start()
        stack.callback(indi.stop)
        database_url = stack.enter_context(fresh_database("obsy_e2e"))
        kstars = KStars(folder(tmp_path / "kstars"))
        kstars.write_config("DarkLibrary", "shutterfulCCDs", CAMERA)  # Ekos would ask before the first dark
        kstars.write_config("Scheduler", "LeadTime", str(LEAD_TIME_S / 60))  # the planner's switch_gap_s
        stack.callback(kstars.stop)
        server_logs = {"indiserver": indi.log_path, "kstars": kstars.log_path, "mosquitto": broker.log_path}
        stack.enter_context(logs_named_on_failure(log_dir, **server_logs))

        prepare_devices(indi.config(), roof_open=False, mount_parked=True)
        kstars.start()
        kstars.set_location(site.city, site.province, site.country)
        indi.wait_devices((TELESCOPE, CAMERA, ALLSKY_CAMERA, PANEL, WHEEL))  # Ekos' trains need them all
        kstars.start_ekos(drivers=(TELESCOPE, CCD, PANEL, WHEEL), indi_server=(indi.host, indi.port))
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
        )
        transits = {**science.config["scheduler"]["transits"], "timing_sigmas": TIMING_SIGMAS} if science else None
        science_scheduler = {"transits": transits, "grid_step_s": SCIENCE_GRID_STEP_S} if transits else {}
        results_config(config, receiver, scheduler=science_scheduler, imaging=imaging or {})
        services = ServiceProcesses(config, log_dir)
        created = services.run_command(
            "web", "create-user", OPERATOR, "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert created.returncode == 0, created.stderr
        decided = services.run_command("mcp", "decision", "--mode", "auto", "--night", "start")
        assert decided.returncode == 0, decided.stderr
        watcher = Watcher(broker.port, ["obsy/#"])
        stack.callback(watcher.close)
        services.start()
        stack.callback(services.stop)
        for name in SERVICE_NAMES:
            watcher.wait_payload(TOPICS.availability(name), b"online", timeout=120)
        services.check_running()
        db = Database(database_url)
        stack.callback(db.close)
        web = httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=30)
        stack.callback(web.close)
        login = web.post("/api/v1/auth/login", json={"username": OPERATOR, "password": PASSWORD})
        assert login.status_code == 200, login.text
        web.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        print(f"start-up: {clock.done('start-up'):.1f} s")
        data = config.parent / "data"
        yield Observatory(
            tmp_path,
            stack,
            clock,
            services,
            watcher,
            web,
            db,
            kstars,
            receiver,
            data / "frames",
            data / "imaging" / "repository",
        )


def night_begins() -> tuple[DarkSite, PhaseClock]:
    """Either night's start: the drivers checked, a site where it is dark now (printed), the phase clock."""
    require_indi(DRIVERS)
    site = dark_site()
    print(
        f"site: {site.city}, {site.country} ({site.latitude:.2f}, {site.longitude:.2f}), sun {site.sun_altitude:.0f}°"
    )
    return site, PhaseClock()


def photograph_the_night(camera: DashboardCamera) -> None:
    """The overview while observing (tonight's plan, the latest allsky frame) and the Imaging page's live stacks."""
    camera.expect_text("#mcp-state", "observing")
    camera.expect_text("#plan-blocks", NEBULA)
    camera.shoot("results-1-observing", ready=images_loaded("#allsky-latest"))
    camera.shoot("results-2-live-stacks", "/imaging", ready=images_loaded("#stacks img"), part=LIVE_STACKS_CARD)


def photograph_the_nebula(camera: DashboardCamera) -> None:
    """At dawn, the nebula's page: its stack, the plan's progress, the stack of record."""
    camera.shoot("results-3-nebula", f"/imaging/targets/{quote(NEBULA)}", ready=images_loaded("#stacks img"))


def photograph_the_science(camera: DashboardCamera, science: ScienceNight) -> None:
    """The variable's light curve on its page and the transit's fit on its host star's page."""
    chart = "document.querySelector('#target-light-curve #lightcurve svg') !== null"
    variable_page = f"/imaging/targets/{quote(science.variable.name)}"
    camera.shoot("results-4-light-curve", variable_page, ready=chart, part=LIGHT_CURVE_CARD)
    transit_page = f"/imaging/targets/{quote(science.targets[0]['name'])}"
    plot = images_loaded("#target-transits img.transit-plot")
    camera.shoot("results-5-transit", transit_page, ready=plot, part=TRANSIT_CARD)


@pytest.mark.long(seconds=640)
def test_the_science_night_observes_the_transit_and_the_variable_against_the_truth(tmp_path: Path) -> None:
    site, clock = night_begins()
    science = science_night(tmp_path / "science", site, datetime.now(UTC))
    with observatory(tmp_path, clock, site, science=science, imaging=science_config(science)) as night:
        # The science's times counted from now, whatever the start-up took (the camera and the services read
        # the scenario and the ephemeris again).
        science = move_transit(science, datetime.now(UTC) - science.start)
        truth, watcher, frames_dir, repository = science.transit, night.watcher, night.frames_dir, night.repository
        print(
            f"science: transit of {truth.planet} {truth.ingress_utc:%H:%M:%S}-{truth.egress_utc:%H:%M:%S} UTC, "
            f"{len(science.comparisons)} comparison stars of {science.variable.name}"
        )
        night.post(science_calibration(science), *science.targets[:2])  # the calibration, the transit, the variable
        night.wait_observing()
        print(f"observing at {datetime.now(UTC):%H:%M:%S}: {clock.done('the roof open, Ekos started'):.1f} s")

        # ------------------------------------------------------------ 1. the transit and the variable's visits
        science_end = datetime.fromisoformat(science.targets[1]["time_series"]["window_end"])

        def fitted() -> list[ImagingTransit]:
            found = [ImagingTransit.model_validate_json(m.payload) for m in watcher.on(TOPICS.imaging_transits)]
            return [m for m in found if m.status == "fitted" and m.planet == truth.planet]

        def visits_taken() -> list[Path]:
            """The variable's frames Ekos wrote for its visits (each visit in a folder of its own)."""
            return [
                path for path, header in written_frames(frames_dir) if header.get("OBJECT") == science.variable.name
            ]

        wait_until(
            lambda: fitted() and len(visits_taken()) >= 2 * SCIENCE.frames_per_visit,
            max((science_end - datetime.now(UTC)).total_seconds(), 0) + 300,
            lambda: (
                f"the transit fitted ({transit_answers(watcher)}) and two visits of the "
                f"variable ({len(visits_taken())} frames; {night.stands()})"
            ),
        )
        masters = night.db.rows("SELECT kind, data->>'created' FROM calibration_masters")
        transit_frames = [p for p, h in written_frames(frames_dir) if h.get("OBJECT") == truth.planet]
        begun = sorted(datetime.fromisoformat(str(fits.getheader(p)["DATE-OBS"])).replace(tzinfo=UTC)
                       for p in transit_frames)  # fmt: skip
        print(
            f"masters: {masters}; the transit: {len(transit_frames)} frames {begun[0]:%H:%M:%S}-{begun[-1]:%H:%M:%S} "
            f"(T1 {truth.ingress_utc:%H:%M:%S}, T4 {truth.egress_utc:%H:%M:%S}); the variable: "
            f"{len({p.parent.parent.parent for p in visits_taken()})} visits, {len(visits_taken())} frames"
        )
        assert begun[0] <= truth.ingress_utc and begun[-1] + timedelta(seconds=LIGHT_S) >= truth.egress_utc
        print(f"1 the transit fitted, the visits: {clock.done('1 the transit fitted, the visits'):.1f} s")

        # ------------------------------------------------------------ 2. the night's science against the truth
        variable = science.variable

        def measured() -> list[ImagingPhotometry]:
            """The newest measurement of each light of the variable (a light calibrated again is measured again)."""
            found = [ImagingPhotometry.model_validate_json(m.payload) for m in watcher.on(TOPICS.imaging_photometry)]
            return list({m.frame_id: m for m in found if m.target == variable.name}.values())

        def report_complete() -> list[list[str]] | None:
            """The variable's AAVSO report once it holds every light measured with a magnitude."""
            latest = [m for m in measured() if m.magnitude is not None and m.report]
            if len(latest) < 2 * SCIENCE.frames_per_visit:
                return None
            newest = max(latest, key=lambda m: m.jd or 0)
            rows = [
                line.split(",")
                for line in (repository / newest.report).read_text().splitlines()
                if line and not line.startswith("#")
            ]
            return rows if len(rows) >= len(latest) else None

        rows = wait_until(
            report_complete, 240, lambda: f"the variable's report with every light measured ({len(measured())} so far)"
        )
        failed = [(m.path, m.reasons) for m in measured() if m.magnitude is None]
        report = (repository / max(measured(), key=lambda m: m.jd or 0).report).read_text()
        assert validate_aavso(report) == [], report
        assert all(row[0] == variable.name for row in rows), rows[:3]
        dates, mags, errors = (np.array([float(row[i]) for row in rows]) for i in (1, 2, 3))
        expected = np.array([variable.magnitude(jd_to_utc(jd)) for jd in dates])
        z = (mags - expected) / errors
        print(
            f"the variable's AAVSO report: {len(rows)} magnitudes of {len(measured())} lights ({len(failed)} without "
            f"one), residual RMS "
            f"{np.sqrt(np.mean((mags - expected) ** 2)):.4f} mag, median error {np.median(errors):.4f}; within 1σ "
            f"{np.mean(np.abs(z) <= 1):.0%}, 2σ {np.mean(np.abs(z) <= 2):.0%}, largest {np.abs(z).max():.2f}σ"
        )
        assert np.all(np.abs(z) <= 3.5) and np.mean(np.abs(z) <= 1.0) >= 0.5, z

        transit = fitted()[-1]
        z_tc = (transit.tc - truth.mid_bjd_tdb) / transit.tc_err
        print(
            f"the transit: Tc − truth {(transit.tc - truth.mid_bjd_tdb) * 86400:+.0f} s, σ {transit.tc_err * 86400:.0f}"
            f" s ({z_tc:+.2f}σ); depth {100 * transit.depth:.2f} ± {100 * (transit.depth_err or 0):.2f} % (truth "
            f"{100 * truth.depth:.2f} %); {transit.points_used} points used, {transit.points_rejected} rejected"
        )
        assert abs(z_tc) < 3.0, z_tc
        exoplanet = (repository / transit.report).read_text()
        assert exoplanet.startswith("#TYPE=EXOPLANET") and validate_exoplanet(exoplanet) == [], exoplanet
        assert results_of(parse_report(exoplanet))["Tc"][0] == pytest.approx(transit.tc, abs=1e-4)
        if (camera := night.camera()) is not None:
            photograph_the_science(camera, science)
        print(f"2 science against the truth: {clock.done('2 science against the truth'):.1f} s")
        night.stop()


@pytest.mark.long(seconds=340)
def test_the_weather_night_ends_in_masters_stacks_per_filter_and_its_summary(tmp_path: Path) -> None:
    site, clock = night_begins()
    with observatory(tmp_path, clock, site) as night:
        watcher, frames_dir, repository, db, services = (
            night.watcher, night.frames_dir, night.repository, night.db, night.services
        )  # fmt: skip
        # ------------------------------------------------------------ 1. calibration frames, masters
        night.post(target(site))
        night.wait_observing()
        masters = wait_until(
            lambda: (
                (kinds := {row[0] for row in db.rows("SELECT kind FROM calibration_masters")})
                >= {
                    "bias",
                    "dark",
                    "flat",
                }
                and kinds
            ),
            420,
            lambda: f"masters of bias, darks and flats ({night.stands()})",
        )
        print(f"masters: {sorted(masters)}; Ekos frames so far: {frame_types(frames_dir)}")
        for kind, exposure in (("bias", BIAS_S), ("dark", DARK_S)):
            (path,) = db.rows("SELECT data->>'path' FROM calibration_masters WHERE kind = %s LIMIT 1", kind)[0]
            error, correlation, expected = against_fixed_pattern(repository / path, exposure, dark=kind == "dark")
            print(
                f"master {kind}: mean |master - truth| {error:.2f} ADU (noise alone: {expected:.2f}), "
                f"column pattern r = {correlation:.3f}"
            )
            assert error < 1.5 * expected and correlation > 0.9, (kind, error, expected, correlation)
        print(f"1 calibration, masters: {clock.done('1 calibration, masters'):.1f} s")

        # ------------------------------------------------------------ 2. lights: graded, calibrated, stacked
        stacked = wait_until(
            lambda: db.rows(
                "SELECT frames, integration_s FROM live_stack_states WHERE target = %s AND frames >= 3 "
                "ORDER BY frames DESC LIMIT 1",
                NEBULA,
            ),
            420,
            lambda: f"a live stack of three lights of the target ({night.stands()})",
        )[0]
        calibrated = db.rows("SELECT count(*) FROM calibrated_lights WHERE target = %s", NEBULA)[0][0]
        assert calibrated >= stacked[0], (calibrated, stacked)
        live = [json.loads(m.payload) for m in watcher.on(TOPICS.imaging_live_stack_state) if m.payload]
        assert live and live[-1]["frames"] >= 3, live[-1:]
        print(f"live stack: {stacked[0]} lights, {stacked[1]:.0f} s; calibrated lights: {calibrated}")
        if (camera := night.camera()) is not None:
            photograph_the_night(camera)
        print(f"2 lights calibrated and stacked: {clock.done('2 lights calibrated and stacked'):.1f} s")

        # ------------------------------------------------------------ 3. clouds roll in, and go
        mark = len(states(watcher, TOPICS))
        clouded = services.run_command("weather", "simulate", "clouds", "--kind", "overcast")
        assert clouded.returncode == 0, clouded.stderr
        closed = wait_new_state(
            watcher, mark, lambda s: s["roof"] == "closed" and s["state"] != "observing" and s["mount_parked"], 240
        )
        assert any("sky not clear" in reason for reason in closed["unsafe_reasons"]), closed["unsafe_reasons"]
        graded = wait_until(lambda: all_lights_graded(watcher, frames_dir), 120, "every light Ekos wrote, graded")
        under_cloud = [m for m in graded if sky_of(m) == "overcast"]
        assert under_cloud, "no light was taken under the clouds before Ekos stopped"
        assert all(m["accepted"] is False for m in under_cloud), [
            (m["path"], m["rejected_because"]) for m in under_cloud
        ]
        print(f"under the clouds: {len(under_cloud)} lights, rejected: {under_cloud[0]['rejected_because']}")
        mark = len(states(watcher, TOPICS))
        cleared = services.run_command("weather", "simulate", "clouds", "--kind", "clear")
        assert cleared.returncode == 0, cleared.stderr
        wait_new_state(watcher, mark, lambda s: s["state"] == "observing" and s["roof"] == "open", 240)
        clear_again = wait_until(
            lambda: [
                m
                for m in all_lights_graded(watcher, frames_dir) or []
                if m["accepted"] and sky_of(m) == "clear" and m["path"] not in {g["path"] for g in graded}
            ],
            180,
            "a light accepted under the clear sky again",
        )
        print(f"clear again: {len(clear_again)} lights accepted after reopening")
        print(f"3 clouds roll in, and go: {clock.done('3 clouds roll in, and go'):.1f} s")

        # ------------------------------------------------------------ 3b. LRGB: a live stack per filter
        def live_stacks() -> dict[str, int]:
            """The nebula's live stacks by the plan of their filter (the frames' FILTER), the lights in the newest
            state of each."""
            states_now = [json.loads(m.payload) for m in watcher.on(TOPICS.imaging_live_stack_state) if m.payload]
            return {plan_of(m["filter"]): m["frames"] for m in states_now if m["target"] == NEBULA}

        def every_filter_stacked() -> dict[str, int] | None:
            found = live_stacks()
            return found if set(found) == set(LIGHTS) and min(found.values()) >= 3 else None

        every_filter = wait_until(
            every_filter_stacked,
            240,
            lambda: f"a live stack of three lights in every filter (so far {live_stacks()})",
        )
        written = written_frames(frames_dir)
        nebula_lights = [(p, h) for p, h in written if h.get("OBJECT") == NEBULA and "Light" in p.parts]
        # Ekos files a frame under the filter its sequence asked for; the camera writes what the wheel holds.
        assert all(h.get("FILTER") == p.parent.name for p, h in nebula_lights), [
            (p.parent.name, h.get("FILTER")) for p, h in nebula_lights
        ]
        assert {plan_of(h.get("FILTER")) for _, h in nebula_lights} == set(LIGHTS), nebula_lights
        print(f"live stacks by filter: {every_filter}; {len(nebula_lights)} lights, each FILTER that of its plan")
        print(f"3b a live stack per filter: {clock.done('3b a live stack per filter'):.1f} s")

        # ------------------------------------------------------------ 4. rain: closed in order
        mark, event_mark = len(states(watcher, TOPICS)), len(events(watcher, TOPICS))
        rained = services.run_command("weather", "simulate", "rain")
        assert rained.returncode == 0, rained.stderr
        closed = wait_new_state(
            watcher,
            mark,
            lambda s: s["roof"] == "closed" and s["mount_parked"] and "rain" in " ".join(s["unsafe_reasons"]),
            240,
        )
        assert closed["state"] == "closed_unsafe", closed
        closing = [e["data"]["step"] for e in events(watcher, TOPICS)[event_mark:] if e["kind"] == "device_action"]
        order = ["stop_ekos_scheduler", "park_mount", "close_roof"]
        assert all(step in closing for step in order), closing
        assert [closing.index(step) for step in order] == sorted(closing.index(step) for step in order), closing
        print(f"4 rain, closed in order: {clock.done('4 rain, closed in order'):.1f} s")

        # ------------------------------------------------------------ 5. dawn (the operator's ABORT): results
        ended = night.web.post("/api/v1/commands/night", json={"action": "ABORT"})
        assert ended.status_code in (200, 202), ended.text
        summaries = night.receiver.wait(1, timeout=120)
        text = json.dumps(summaries)
        assert NEBULA in text, summaries
        watcher.wait_for(lambda got: any(m.topic == TOPICS.web_night_summary and m.payload for m in got), 60)
        summary = json.loads(watcher.on(TOPICS.web_night_summary)[-1].payload)
        accepted = [m for m in all_lights_graded(watcher, frames_dir) or graded if m["accepted"]]
        assert summary["lights_accepted"] >= len(accepted) - 1, (summary, len(accepted))  # the last may be late
        assert summary["lights_rejected"] >= len(under_cloud), summary
        assert summary["integration_s"] >= stacked[0] * LIGHT_S, summary
        assert summary["stacks"] >= 1, summary
        assert "clouds" in summary["closed_for"] and "rain" in summary["closed_for"], summary["closed_for"]
        print(
            f"summary: {summary['lights_accepted']} lights accepted, {summary['lights_rejected']} rejected, "
            f"{summary['integration_s']:.0f} s; closed for {summary['closed_for']}"
        )

        def stacked_again() -> dict[str, dict[str, Any]] | None:
            """The newest night stack of each filter, once each holds every light of its newest live stack (a
            late light grows the live stack, and the night is stacked again)."""
            found = [json.loads(m.payload) for m in watcher.on(TOPICS.imaging_night_stacks) if m.payload]
            newest = {plan_of(m["filter"]): m for m in found if m["target"] == NEBULA}
            live = live_stacks()
            complete = set(newest) == set(live) and all(newest[f]["frames"] == n for f, n in live.items())
            return newest if complete else None

        night_stacks = wait_until(stacked_again, 180, "the night stacked again with rejection once the night ended")
        assert set(night_stacks) == set(LIGHTS), night_stacks
        for night_stack in night_stacks.values():
            assert night_stack["rejection"] == "winsorized 3/3" and night_stack["missing"] == 0, night_stack
            with fits.open(repository / night_stack["path"]) as of_record:
                assert of_record[0].header["NCOMBINE"] == night_stack["frames"]
                assert plan_of(of_record[0].header["FILTER"]) == plan_of(night_stack["filter"])
                assert of_record["REJECTED"].data.shape == of_record[0].data.shape
        print(
            "night stacks: "
            + ", ".join(
                f"{f} {m['frames']} lights ({100 * m['rejected_fraction']:.2f} % of values rejected)"
                for f, m in night_stacks.items()
            )
            + f"; {next(iter(night_stacks.values()))['rejection']}"
        )
        print(f"5 dawn, results: {clock.done('5 dawn, results'):.1f} s")

        # ------------------------------------------------------------ 6. the plans count accepted lights only
        # The scheduler's counts: the nebula's accepted lights only (those under the clouds are not counted).
        graded_now = all_lights_graded(watcher, frames_dir) or []
        ours = [m for m in graded_now if m["target"] == NEBULA]
        accepted_here = sum(1 for m in ours if m["accepted"])

        accepted_by_filter = {f: sum(1 for m in ours if m["accepted"] and plan_of(m["filter"]) == f) for f in LIGHTS}

        def light_acquired() -> dict[str, int] | None:
            published = [json.loads(m.payload) for m in watcher.on(TOPICS.web_targets) if m.payload]
            plans = next(t for t in published[-1]["targets"] if t["name"] == NEBULA)["exposure_plans"]
            acquired = {p["filter"]: p["acquired"] for p in plans if p["frame_type"] == "Light"}
            return acquired if acquired == accepted_by_filter else None

        acquired = wait_until(
            light_acquired, 60, f"the nebula's Light plans counting their accepted lights {accepted_by_filter}"
        )
        print(f"acquired: {acquired} of the nebula's {len(ours)} lights ({len(ours) - accepted_here} rejected)")
        assert sum(acquired.values()) == accepted_here < len(ours)
        if camera is not None:
            photograph_the_nebula(camera)
        phase = "6 the plans' counts"
        print(f"{phase}: {clock.done(phase):.1f} s")
        night.stop()
