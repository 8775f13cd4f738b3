"""The demo configuration: the user's file (if any) with what the demo must change.

Written to ``<data_dir>/demo/obsy-demo.yaml`` and given to every service, so that one can
read exactly what the demo runs with. What is forced, and why:

- its own INDI server with the simulators (a free port if the configured one is taken):
  the demo's MCP must never move a real roof or mount;
- its own topic prefix (``<prefix>-demo``), no Home Assistant discovery: a real
  observatory on the same broker never sees the demo's weather or verdicts;
- its own SQLite database and data under ``<data_dir>/demo`` (the database is new on every
  start; images stay);
- the weather simulator as the only weather source, ``weather.allow_simulation`` on;
- ``demo.safe_delay`` as the weather's and the MCP's safe delay;
- the allsky camera: the sky simulator's (``indi_obsy_allsky``, "SkySim Allsky"), which renders
  the real sky for the demo's site with clouds on command (``obsy-weather simulate clouds``),
  so the MCP requires a clear sky (``mcp.require_clear_sky``) as at a real observatory;
- the main camera: the sky simulator's too (``indi_obsy_camera``, "SkySim Camera"), which
  follows the mount and renders its field with stars; INDI's filter wheel simulator
  (``indi_simulator_wheel``, "Filter Simulator", whose slot the camera snoops: each filter its own
  dust on the flat), its names given to the scheduler (``scheduler.ekos.filters``); and a shutter
  (``scheduler.ekos.calibration.camera_shutter``, which KStars is told as well), so Ekos
  takes darks and bias without asking anyone;
- the site: where it is astronomical night now, unless ``demo.site`` is ``config``;
- a night of science (:mod:`obsy_local.demo.science`): the sky simulator's science night written
  for that site and the demo's start (``<data_dir>/demo/science``), a variable star and a transit
  soon, with the scheduler's ephemeris, the imaging service's photometry target, transit fit and
  index, set in ``scheduler.transits`` and ``imaging``.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from obsy import astro
from obsy.config import DemoConfig, ObsyConfig, find_config_path, load_config, merge_settings, read_yaml
from obsy_local.demo.kstars import PROFILE, bus_address, kstars_available
from obsy_local.demo.science import SCIENCE_DIR, DemoScience, write_demo_science
from obsy_local.demo.site import night_site
from obsy_local.network import free_port, port_open

#: The sky simulator's allsky camera (services/skysim; its default device name).
ALLSKY_DRIVER = "indi_obsy_allsky"
ALLSKY_DEVICE = "SkySim Allsky"
#: The sky simulator's main camera (its default device name).
CAMERA_DRIVER = "indi_obsy_camera"
CAMERA_DEVICE = "SkySim Camera"
WEATHER_DEVICE = "Weather Simulator"
#: INDI's filter wheel simulator and its own names, in slot order (the scheduler plans with them).
WHEEL_DRIVER = "indi_simulator_wheel"
WHEEL_DEVICE = "Filter Simulator"
WHEEL_FILTERS = ["Red", "Green", "Blue", "H_Alpha", "SII", "OIII", "LPR", "Luminance"]
#: The demo allsky camera's fixed exposure (seconds): stars to magnitude 6 on the simulator.
DEMO_ALLSKY_EXPOSURE_S = 15.0
DEMO_DRIVERS: list[Any] = [
    "indi_simulator_telescope",
    CAMERA_DRIVER,
    WHEEL_DRIVER,
    "indi_rolloff_dome",
    "indi_simulator_weather",
    ALLSKY_DRIVER,
]
DEMO_CONFIG_NAME = "obsy-demo.yaml"
#: Where the demo's site sits when the user's file has none (only the latitude is used).
DEFAULT_LATITUDE = 45.0


@dataclass
class DemoPlan:
    """What the demo was set up with, for the launcher and the printed script."""

    config: ObsyConfig
    config_path: Path
    username: str
    password: str
    sun_altitude: float | None
    notes: list[str]
    #: KStars/Ekos runs with the demo (installed, and demo.kstars on).
    kstars: bool = False
    #: The night of science (obsy_local.demo.science.DemoScience), None when it could not be written.
    science: DemoScience | None = None


def demo_overrides(user: ObsyConfig | None, raw: dict[str, Any], settings: DemoConfig, now: datetime) -> dict:
    """The sections the demo sets over the user's (plain data, merged over ``raw``)."""
    base_dir = Path(raw.get("data_dir", "var/data"))
    data_dir = base_dir / "demo"
    prefix = (user.broker.prefix if user else "obsy").removesuffix("-demo") + "-demo"
    indi_port = user.indi.port if user else 7624
    if port_open("127.0.0.1", indi_port):
        indi_port = free_port()
    web_port = user.web.port if user else 8080
    if port_open("127.0.0.1", web_port):
        web_port = free_port()
    overrides: dict[str, Any] = {
        "data_dir": str(data_dir),
        "run_dir": str(data_dir / "run"),
        "database": {"url": None},
        "broker": {"prefix": prefix},
        "homeassistant": {"enabled": False},
        "indi": {"host": "127.0.0.1", "port": indi_port, "local_drivers": copy.deepcopy(DEMO_DRIVERS)},
        "weather": {
            "enabled": True,
            "safe_delay": settings.safe_delay,
            "publish_interval": 10,
            "allow_simulation": True,
            "sources": [
                {"type": "indi", "name": "simulator", "device": WEATHER_DEVICE, "poll_interval": 2, "max_age": 30}
            ],
        },
        "allsky": {
            "camera": {"device": ALLSKY_DEVICE, "interval_s": settings.allsky_interval},
            # One exposure all night: clouddetect judges the processed frame, whose stretch does
            # not follow the exposure, so a zero point learnt while auto-exposure settles would
            # make every later clear frame read as thin cloud.
            "exposure": {"auto": False, "fixed_exposure_s": DEMO_ALLSKY_EXPOSURE_S},
        },
        "mcp": {
            "safe_delay": settings.safe_delay,
            # The sky simulator renders the real sky: clouddetect judges it, and clouds close the roof.
            "require_clear_sky": True,
            "devices": {"roof": "RollOff Simulator", "mount": "Telescope Simulator"},
            "supervision": {"enabled": False},
            "ekos": {"enabled": False},
        },
        # Ekos captures with the simulator's main camera behind the wheel simulator, a shutter for darks and bias.
        "scheduler": {
            "ekos": {
                "camera": CAMERA_DEVICE,
                "filter_wheel": WHEEL_DEVICE,
                "filters": list(WHEEL_FILTERS),
                "calibration": {"camera_shutter": True},
            }
        },
        "web": {"port": web_port},
    }
    if settings.kstars and kstars_available() is None:
        run_dir = Path(overrides["run_dir"]).resolve()
        overrides["mcp"]["ekos"] = {"enabled": True, "bus_address": bus_address(run_dir), "profile": PROFILE}
        overrides["scheduler"]["ekos"]["profile"] = PROFILE
    if settings.site == "night" or user is None:
        latitude = user.site.latitude if user else DEFAULT_LATITUDE
        site = night_site(latitude, now)
        overrides["site"] = {
            "name": "OBSY demo (simulators)",
            "latitude": site.latitude,
            "longitude": site.longitude,
            "elevation": 0,
            "timezone": site.timezone,
        }
    return overrides


def prepare_demo(config_path: str | None, *, now: datetime | None = None) -> DemoPlan:
    """Build, write and load the demo configuration from the user's file (or none)."""
    now = now or datetime.now(UTC)
    path = find_config_path(config_path)
    raw = read_yaml(path) if path is not None else {}
    user = load_config(path) if path is not None else None
    settings = user.demo if user else DemoConfig.model_validate(raw.get("demo") or {})
    merged = merge_settings(raw, demo_overrides(user, raw, settings, now))
    data_dir = Path(merged["data_dir"])
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "obsy.sqlite3").unlink(missing_ok=True)  # a new demo, a new database
    demo_path = data_dir / DEMO_CONFIG_NAME
    header = "# Written by obsy-local --demo on every start; edit the demo: section of your config instead.\n"
    demo_path.write_text(header + yaml.safe_dump(merged, sort_keys=False))
    config = load_config(demo_path)
    notes = []
    science = None
    try:  # the night of science at the demo's site, from now
        wheel = bool(config.scheduler.ekos.filter_wheel)
        science = write_demo_science(config, data_dir / SCIENCE_DIR, now, wheel=wheel)
    except (ImportError, ValueError, OSError) as error:
        notes.append(f"no night of science: {error}")
    if science is not None:
        notes.extend(science.notes)
        merged = merge_settings(merged, science.overrides)
        demo_path.write_text(header + yaml.safe_dump(merged, sort_keys=False))
        config = load_config(demo_path)
    unavailable = kstars_available()
    if settings.kstars and unavailable:
        notes.append(f"KStars/Ekos is not started: {unavailable}; the MCP runs without Ekos")
    if user is not None and merged["indi"]["port"] != user.indi.port:
        notes.append(f"INDI port {user.indi.port} is in use; the demo's simulators listen on {config.indi.port}")
    if user is not None and merged["web"]["port"] != user.web.port:
        notes.append(f"web port {user.web.port} is in use; the demo's dashboard is on {config.web.port}")
    sun = float(astro.sun_altaz(config.site, now).alt)
    password = secrets.token_urlsafe(12)
    return DemoPlan(
        config, demo_path, settings.username, password, round(sun, 1), notes, config.mcp.ekos.enabled, science
    )
