"""The demo's choices: a site where it is night now, targets high in its sky, named INDI drivers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from obsy import astro
from obsy.config import ConfigError, load_config
from obsy_local.demo.site import _Position, night_site, timezone_for
from obsy_local.demo.targets import MIN_ALTITUDE_DEG, high_targets

MOMENTS = [datetime(2026, 6, 21, 12, 0, tzinfo=UTC) + timedelta(hours=h, days=d) for d in (0, 91, 182) for h in (0, 7)]


@pytest.mark.parametrize("when", MOMENTS, ids=lambda w: w.strftime("%m-%d %H"))
@pytest.mark.parametrize("latitude", [48.2, 69.0, -33.9, 0.0])
def test_the_demo_site_is_in_astronomical_night_with_targets_high_up(latitude, when) -> None:
    site = night_site(latitude, when)
    assert site.sun_altitude < -18
    assert float(astro.sun_altaz(_Position(site.latitude, site.longitude), when).alt) == pytest.approx(
        site.sun_altitude, abs=0.1
    )
    if latitude in (0.0, -33.9) or (latitude == 48.2 and when.month == 12):
        assert site.latitude == latitude  # deep night there: the latitude is kept
    if latitude == 69.0 and when.month == 6:
        assert site.latitude < 0  # midnight Sun: moved to where the Sun is at the nadir
    targets = high_targets(site.latitude, site.longitude, when)
    assert len(targets) == 3 and all(t.altitude >= MIN_ALTITUDE_DEG for t in targets)


def test_the_time_zone_follows_the_longitude() -> None:
    assert timezone_for(16.4) == "Etc/GMT-1"  # UTC+1 (POSIX signs)
    assert timezone_for(-75.0) == "Etc/GMT+5"
    assert timezone_for(3.0) == "UTC"
    assert timezone_for(179.9) == "Etc/GMT-12"


def test_local_drivers_take_names_and_wrong_entries_are_named(tmp_path) -> None:
    path = tmp_path / "obsy.yaml"
    path.write_text(
        "site: {latitude: 48, longitude: 16}\n"
        "indi:\n  local_drivers: [indi_simulator_ccd, {driver: indi_simulator_ccd, name: Allsky Simulator}]\n"
    )
    drivers = load_config(path).indi.local_drivers
    assert [(d.driver, d.name) for d in drivers] == [
        ("indi_simulator_ccd", None),
        ("indi_simulator_ccd", "Allsky Simulator"),
    ]
    for entries, message in (
        ("[indi_simulator_ccd, {driver: indi_simulator_ccd, nme: x}]", "unknown key 'indi.local_drivers.1.nme'"),
        ("[indi_simulator_ccd, indi_simulator_ccd]", "indi_simulator_ccd listed more than once"),
        ("[5]", "entry 0 (5) must be a driver name"),
        ("[{driver: 'rm -rf'}]", "'rm -rf' is not a driver executable name"),
        ("[{driver: x, name: 'a\"b'}]", "without double quotes"),
    ):
        path.write_text(f"site: {{latitude: 48, longitude: 16}}\nindi:\n  local_drivers: {entries}\n")
        with pytest.raises(ConfigError) as error:
            load_config(path)
        assert message in str(error.value), str(error.value)


def test_the_script_says_when_the_configured_site_is_not_dark(tmp_path) -> None:
    from obsy_local.demo.script import demo_script
    from obsy_local.demo.setup import DemoPlan

    config = load_config(Path(__file__).resolve().parents[3] / "config" / "obsy.example.yaml")
    day = DemoPlan(config, tmp_path / "demo.yaml", "demo", "secret-password", 5.0, [])
    night = DemoPlan(config, tmp_path / "demo.yaml", "demo", "secret-password", -40.0, [])
    assert "NOT night there now" in demo_script(day, "http://127.0.0.1:8080/", "obsy-weather simulate", ["M31"])
    text = demo_script(night, "http://127.0.0.1:8080/", "obsy-weather simulate", ["M31"])
    assert "astronomical night now, the Sun 40° below the horizon" in text
    assert "secret-password" in text and "obsy-weather simulate rain" in text and "Make it rain" in text
    assert "obsy-weather simulate clouds --kind overcast" in text and "Make it cloudy" in text


def test_the_demo_runs_the_sky_simulator_as_its_cameras_and_requires_a_clear_sky(tmp_path) -> None:
    from obsy_local.demo.setup import prepare_demo
    from obsy_local.launcher import skysim_settings
    from obsy_skysim.config import SkySimConfig

    path = tmp_path / "obsy.yaml"
    path.write_text(f"site: {{latitude: 48, longitude: 16}}\ndata_dir: {tmp_path / 'data'}\ndemo: {{kstars: false}}\n")
    plan = prepare_demo(str(path), now=datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    config = plan.config
    drivers = [d.driver for d in config.indi.local_drivers]
    assert "indi_obsy_allsky" in drivers and "indi_obsy_camera" in drivers
    assert "indi_simulator_ccd" not in drivers  # it renders no stars here
    assert config.allsky.camera.device == "SkySim Allsky"
    assert config.mcp.require_clear_sky is True
    # Ekos captures with the simulator's main camera behind INDI's wheel simulator, a shutter for darks and bias.
    ekos = config.scheduler.ekos
    assert (ekos.camera, ekos.filter_wheel) == ("SkySim Camera", "Filter Simulator")
    assert ekos.calibration.camera_shutter is True
    assert "indi_simulator_wheel" in drivers and {"Luminance", "Red", "Green", "Blue"} <= set(ekos.filters or ())
    # The simulator renders the demo's sky: the launcher hands it the demo's (night) site.
    settings = skysim_settings(config)
    assert settings is not None and "device" not in settings["allsky"]  # its default name, "SkySim Allsky"
    assert settings["allsky"]["site"] == {
        "latitude": config.site.latitude,
        "longitude": config.site.longitude,
        "elevation": config.site.elevation,
    }
    simulator = SkySimConfig.model_validate(settings)
    assert simulator.camera.device == ekos.camera and simulator.camera.site == simulator.allsky.site
    assert simulator.camera.filter_device == ekos.filter_wheel  # the camera follows the wheel's slot
    # A cut of the cooled sensor: small frames for Ekos, the sensor's own noise and temperature kept.
    sensor = simulator.camera.sensor
    assert (sensor.width, sensor.height, sensor.bayer, sensor.temperature_c) == (1600, 1200, "MONO", -10.0)


def test_kstars_is_told_the_demo_camera_has_a_shutter_and_keeps_its_location(tmp_path) -> None:
    import configparser

    from obsy.config import SiteConfig
    from obsy_local.demo import kstars

    kstars.write_shutterful_camera(tmp_path, "SkySim Camera")
    kstars.write_location(tmp_path, SiteConfig(name="Demo", latitude=-31.5, longitude=149.0, timezone="UTC"))
    rc = configparser.ConfigParser(interpolation=None)
    rc.optionxform = str
    rc.read(Path(kstars.kstars_env(tmp_path)["XDG_CONFIG_HOME"]) / "kstarsrc")
    assert rc.get("DarkLibrary", "shutterfulCCDs") == "SkySim Camera"
    assert (rc.get("Location", "CityName"), rc.getfloat("Location", "Latitude")) == ("Demo", -31.5)


def test_the_launcher_finds_the_sky_simulator_and_names_its_devices(tmp_path, monkeypatch) -> None:
    import sys

    from obsy_local.launcher import indi_driver_path, skysim_settings

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert indi_driver_path().split(":")[0] == str(Path(sys.executable).parent)
    path = tmp_path / "obsy.yaml"
    path.write_text(
        "site: {latitude: 48, longitude: 16}\nindi:\n  local_drivers: [indi_simulator_ccd, indi_simulator_weather]\n"
    )
    assert skysim_settings(load_config(path)) is None  # no simulator: no settings file
    path.write_text(
        "site: {latitude: 48, longitude: 16, elevation: 300}\n"
        "indi:\n  local_drivers: [{driver: indi_obsy_allsky, name: Roof Cam}, indi_obsy_camera]\n"
    )
    settings = skysim_settings(load_config(path))
    assert settings["allsky"]["device"] == "Roof Cam" and settings["allsky"]["site"]["elevation"] == 300
    assert settings["camera"]["clouds_from"] == "Roof Cam"  # the main camera follows that camera's clouds
    from obsy_skysim.config import SkySimConfig

    SkySimConfig.model_validate(settings)  # the simulator accepts what the launcher writes


def test_the_demo_sets_up_a_night_of_science_at_its_site_from_its_start(tmp_path) -> None:
    """The sky simulator's science night at the demo's start: the camera renders its scenario, the
    scheduler predicts its transit tonight, the imaging service measures and fits it, three targets."""
    import shutil

    from astropy.time import Time

    from obsy.transits.ephemeris import read_archive_csv
    from obsy.transits.predict import transits_between
    from obsy_imaging.config import ImagingConfig
    from obsy_local.demo.science import TIMELINE_MIN, target_bodies
    from obsy_local.demo.script import demo_script
    from obsy_local.demo.setup import prepare_demo
    from obsy_local.demo.site import altitude_deg, local_sidereal_deg
    from obsy_local.demo.targets import CANDIDATES, NEBULAE
    from obsy_local.launcher import skysim_settings
    from obsy_scheduler.transits import site_location
    from obsy_skysim.config import SkySimConfig
    from obsy_skysim.scenario import load_scenario
    from obsy_web.targets import TargetInput

    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    path = tmp_path / "obsy.yaml"
    path.write_text(f"site: {{latitude: 48, longitude: 16}}\ndata_dir: {tmp_path / 'data'}\ndemo: {{kstars: false}}\n")
    plan = prepare_demo(str(path), now=now)
    assert plan.science is not None, plan.notes
    night, config = plan.science.night, plan.config
    # The main camera renders the night's scenario, at the demo's site.
    camera = SkySimConfig.model_validate(skysim_settings(config, plan)).camera
    assert load_scenario(camera.scenario).variables[1].mid == night.transit.mid_utc
    assert night.transit.mid_utc == now + timedelta(minutes=TIMELINE_MIN["transit_mid"])
    assert (night.site.latitude, night.site.longitude) == (config.site.latitude, config.site.longitude)
    # The scheduler plans the transit from the night's ephemeris: one, whole, within the demo's first hour.
    assert config.scheduler.transits.ephemeris_file == night.ephemeris
    ephemeris = read_archive_csv(config.scheduler.transits.ephemeris_file)["SIM-T1 b"]
    (window,) = transits_between(
        ephemeris,
        Time(now),
        Time(now + timedelta(hours=1)),
        site_location(config.site),
        baseline_days=TIMELINE_MIN["baseline"] / 1440,
    )
    assert window.complete and abs((window.tc_utc.to_datetime(UTC) - night.transit.mid_utc).total_seconds()) < 1
    # The imaging service measures the variable and fits the transit, plate-solving with the night's index.
    imaging = ImagingConfig.model_validate(config.imaging.model_dump())
    assert imaging.photometry.enabled and imaging.transits.enabled
    assert [t.name for t in imaging.photometry.targets] == ["SIM-V1"]
    assert imaging.photometry.targets[0].fields == ["SIM-T1 b"] and len(imaging.photometry.targets[0].comparisons) == 7
    assert not imaging.calibration.require_flat and imaging.calibration.require_dark  # no flats in the demo
    if shutil.which("build-astrometry-index"):
        assert imaging.photometry.index_dirs == imaging.transits.index_dirs == [night.index_dir]
        assert list(night.index_dir.glob("index-*.fits"))
    # The three targets: the transit named as the planet, the time series, a nebula high up in L, R, G, B.
    bodies = [TargetInput.model_validate(body) for body in target_bodies(plan.science)]
    assert [b.name for b in bodies[:2]] == ["SIM-T1 b", "SIM-V1"] and bodies[1].time_series is not None
    assert bodies[1].time_series.window_start > night.transit.egress_utc  # after the transit
    nebula = bodies[2]
    assert nebula.catalogue_name in NEBULAE and [p.filter for p in nebula.exposure_plans[2:]] == ["L", "R", "G", "B"]
    # It takes the bias and the darks of the science frames' exposure first: their lights are calibrated with them.
    bias, dark = nebula.exposure_plans[:2]
    assert (bias.frame_type, dark.frame_type) == ("Bias", "Dark")
    assert dark.exposure_s == bodies[0].exposure_plans[0].exposure_s
    lights = [p.exposure_s for body in bodies for p in body.exposure_plans if p.frame_type == "Light"]
    assert max(lights) <= dark.exposure_s  # every light has its dark: a master dark is only scaled down
    assert nebula.constraints["min_time_on_target_min"] < 15  # it fits before the transit
    lst = local_sidereal_deg(config.site.longitude, now)
    assert altitude_deg(config.site.latitude, lst, *CANDIDATES[nebula.catalogue_name]) >= 45
    # The script says when the transit is and where the results will be.
    script = demo_script(plan, "http://127.0.0.1:8080/", "obsy-weather simulate", ["SIM-T1 b", "SIM-V1", "M1"])
    assert f"mid-transit {night.transit.mid_utc:%H:%M:%S} UTC" in script and "every 24 min" in script
    night_date = "2026-01-14"  # the demo's site is where it is local midnight: the night began the day before
    assert f"http://127.0.0.1:8080/api/v1/photometry/SIM-V1/report?night={night_date}" in script
    assert f"http://127.0.0.1:8080/api/v1/transits/SIM-T1%20b?night={night_date}" in script
    assert "http://127.0.0.1:8080/imaging/targets/SIM-T1%20b" in script
