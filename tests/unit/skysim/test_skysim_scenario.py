"""Scenario files: variable stars and transits vary with the simulated time, on the frame as in the file."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from obsy.transits.ephemeris import transit_duration
from obsy_skysim.allsky import Site
from obsy_skysim.camera_device import Exposure
from obsy_skysim.clouds import make_clouds
from obsy_skysim.config import MainCameraSettings
from obsy_skysim.driver import MainCamera
from obsy_skysim.field import FieldRenderer, TelescopeOptics
from obsy_skysim.indi_xml import Reader, Writer
from obsy_skysim.scenario import Scenario, ScenarioError, load_scenario
from obsy_skysim.sensor import SensorSpec
from tests.support.skysim import SITE

MID = datetime(2026, 1, 15, 22, 30, tzinfo=UTC)
FIELD = (120.0, 30.0)  # no catalogue star near: the host is alone
SCENARIO = f"""
variables:
  - name: Host b
    ra: {FIELD[0]}
    dec: {FIELD[1]}
    kind: transit
    mag: 9.0
    depth: 0.05
    mid: 2026-01-15T22:30:00Z
    duration_h: 2.0
    ingress_h: 0.25
  - name: Pulsator
    ra: {FIELD[0] + 0.02}
    dec: {FIELD[1] + 0.02}
    kind: sine
    mag: 10.0
    amplitude: 0.5
    period_h: 4.0
    epoch: 2026-01-15T20:00:00Z
"""


@pytest.fixture
def scenario(tmp_path) -> Scenario:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO)
    return load_scenario(path)


def test_a_transit_dims_its_star_by_the_depth_between_contacts(scenario: Scenario) -> None:
    host = scenario.variables[0]
    assert host.flux_fraction(MID) == pytest.approx(0.95)
    assert host.flux_fraction(MID + timedelta(hours=0.7)) == pytest.approx(0.95)  # inside, past ingress
    assert host.flux_fraction(MID + timedelta(hours=0.875)) == pytest.approx(0.975)  # half-way through egress
    assert host.flux_fraction(MID + timedelta(hours=1.01)) == 1.0
    assert host.magnitude(MID) == pytest.approx(9.0 - 2.5 * np.log10(0.95))


PHYSICAL = """
variables:
  - {name: Hot Jupiter, ra: 120.0, dec: 30.0, kind: transit, mag: 10.0, mid: 2026-01-15T22:30:00Z,
     period_h: 72.0, rp_rs: 0.11, a_rs: 9.0, inc: 87.5, u1: 0.52, u2: 0.08}
"""


def test_a_physical_transit_follows_the_limb_darkened_disc_model(tmp_path) -> None:
    path = tmp_path / "physical.yaml"
    path.write_text(PHYSICAL)
    host = load_scenario(path).variables[0]
    hours = np.linspace(-2.0, 2.0, 17)
    flux = np.array([host.flux_fraction(MID + timedelta(hours=h)) for h in hours])
    # batman, the transit fit's model (an independent code), on the same planet
    from obsy_imaging.transits.model import TransitModel

    batman = TransitModel(hours / 24.0, 3.0, (0.52, 0.08)).flux(0.0, 0.11, 9.0, 87.5)
    assert np.max(np.abs(flux - batman)) < 1e-4
    t14 = 24.0 * transit_duration(3.0, 0.11, 9.0, 87.5)
    assert host.flux_fraction(MID + timedelta(hours=t14 / 2 + 0.01)) == 1.0
    assert host.flux_fraction(MID + timedelta(hours=72.0)) == pytest.approx(flux[8])  # the next transit
    assert 1 - flux[8] > 0.11**2  # limb darkening: deeper than k² at the centre


def test_a_transit_is_either_physical_or_a_trapezoid(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    start = "variables:\n  - {name: T, ra: 1, dec: 0, kind: transit, mag: 9, mid: 2026-01-01T00:00:00Z, "
    path.write_text(start + "rp_rs: 0.1, a_rs: 9, inc: 88}\n")
    with pytest.raises(ScenarioError, match=r"variable 1 \(T\).*needs period_h too"):
        load_scenario(path)
    path.write_text(start + "rp_rs: 0.1, a_rs: 9, inc: 88, period_h: 72, depth: 0.01, duration_h: 2}\n")
    with pytest.raises(ScenarioError, match="not both"):
        load_scenario(path)
    path.write_text(start + "period_h: 72}\n")
    with pytest.raises(ScenarioError, match="needs depth, duration_h"):
        load_scenario(path)


def test_a_sine_variable_swings_by_its_amplitude(scenario: Scenario) -> None:
    star = scenario.variables[1]
    epoch = datetime(2026, 1, 15, 20, 0, tzinfo=UTC)
    assert star.magnitude(epoch) == pytest.approx(10.0)
    assert star.magnitude(epoch + timedelta(hours=1)) == pytest.approx(10.5)
    assert star.magnitude(epoch + timedelta(hours=3)) == pytest.approx(9.5)


def test_the_frame_shows_the_transit_depth(scenario: Scenario) -> None:
    renderer = FieldRenderer(
        Site(*SITE),
        SensorSpec(width=400, height=300, pixel_um=3.76, bayer=None),
        TelescopeOptics(limiting_magnitude=12.0, seeing_fwhm_arcsec=4.0),
    )
    # 3 s: the mag 9 host stays below full well (a saturated star shows no transit).
    inside = renderer.render(MID, FIELD, 3.0, 0.0, scenario=scenario, seed=1)
    # The same moment (the same airmass) with the transit moved a day away: the star out of transit.
    later = Scenario(variables=[scenario.variables[0].model_copy(update={"mid": MID + timedelta(days=1)})])
    outside = renderer.render(MID, FIELD, 3.0, 0.0, scenario=later, seed=2)
    a, b = inside.truth.variables["Host b"], outside.truth.variables["Host b"]
    assert a.electrons / b.electrons == pytest.approx(0.95)

    def aperture(frame, v) -> float:
        x, y = round(v.x), round(v.y)
        box = frame.image[y - 8 : y + 9, x - 8 : x + 9].astype(float)
        sky = np.median(frame.image[y - 20 : y + 21, x - 20 : x + 21])
        return float((box - sky).sum())

    measured = aperture(inside, a) / aperture(outside, b)
    print(f"transit on the frame: depth {1 - measured:.4f} measured for {1 - a.electrons / b.electrons:.4f} true")
    spec = renderer.sensor.spec
    assert inside.image.max() < spec.full_well_e * spec.adu_per_electron(0.0)  # not saturated
    assert measured == pytest.approx(a.electrons / b.electrons, abs=0.012)


def test_scenario_errors_name_the_star_and_the_field(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "variables:\n  - {name: Oops, ra: 400, dec: 0, kind: sine, mag: 9, amplitude: 1, period_h: 2,\n"
        "     epoch: 2026-01-01T00:00:00Z}\n"
    )
    with pytest.raises(ScenarioError, match=r"variable 1 \(Oops\): ra: Input should be less than 360"):
        load_scenario(path)
    path.write_text("variables:\n  - {name: X, ra: 1, dec: 0, kind: flare, mag: 9}\n")
    with pytest.raises(ScenarioError, match="variable 1 \\(X\\)"):
        load_scenario(path)
    path.write_text(
        "variables:\n  - {name: T, ra: 1, dec: 0, kind: transit, mag: 9, depth: 0.01,\n"
        "     mid: 2026-01-01T00:00:00Z, duration_h: 1, ingress_h: 0.8}\n"
    )
    with pytest.raises(ScenarioError, match=r"ingress_h 0\.8 is more than half"):
        load_scenario(path)
    path.write_text("variables: [1, 2\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(path)


def test_a_bad_scenario_leaves_the_camera_running_and_says_why(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("variables:\n  - {name: Oops, ra: 1}\n")
    settings = MainCameraSettings.model_validate({"sensor": {"width": 64, "height": 48}, "scenario": str(path)})
    out = Writer(io.BytesIO())
    camera = MainCamera(settings, out)
    camera.start()
    camera.handle(ET.fromstring('<getProperties version="1.7"/>'))
    config = next(e for e in Reader().feed(out.stream.getvalue()) if e.get("name") == "SIM_CONFIG")
    assert config.get("state") == "Alert" and "variable 1 (Oops)" in config.get("message", "")
    assert camera.scenario is None


def test_the_main_camera_follows_the_allsky_simulators_clouds() -> None:
    settings = MainCameraSettings.model_validate({"sensor": {"width": 64, "height": 48}})
    out = Writer(io.BytesIO())
    camera = MainCamera(settings, out)
    camera.start()
    asked = [e for e in Reader().feed(out.stream.getvalue()) if e.tag == "getProperties"]
    assert {(e.get("device"), e.get("name")) for e in asked} >= {
        ("SkySim Allsky", "SIM_CLOUDS"),
        ("SkySim Allsky", "SIM_CLOUD_SETTINGS"),
    }
    camera.handle(
        ET.fromstring(
            '<setNumberVector device="SkySim Allsky" name="SIM_CLOUD_SETTINGS"><oneNumber name="COVER">55</oneNumber>'
            '<oneNumber name="SEED">4</oneNumber></setNumberVector>'
        )
    )
    camera.handle(
        ET.fromstring(
            '<setSwitchVector device="SkySim Allsky" name="SIM_CLOUDS"><oneSwitch name="CLEAR">Off</oneSwitch>'
            '<oneSwitch name="SCATTERED">On</oneSwitch></setSwitchVector>'
        )
    )
    assert camera.clouds.kind == "scattered" and camera.cloud_settings.cover == 55 and camera.cloud_settings.seed == 4
    assert camera.clouds.cover() == pytest.approx(55, abs=1)
    camera.handle(
        ET.fromstring(
            '<setSwitchVector device="Someone Else" name="SIM_CLOUDS">'
            '<oneSwitch name="OVERCAST">On</oneSwitch></setSwitchVector>'
        )
    )
    assert camera.clouds.kind == "scattered"


def test_clouds_over_the_field_dim_its_stars(scenario: Scenario) -> None:
    renderer = FieldRenderer(Site(*SITE), SensorSpec(width=200, height=150, pixel_um=3.76, bayer=None))
    clear = renderer.render(MID, FIELD, 3.0, 0.0, scenario=scenario, seed=1).truth
    overcast = renderer.render(MID, FIELD, 3.0, 0.0, scenario=scenario, clouds=make_clouds("overcast"), seed=1).truth
    assert overcast.transmission == pytest.approx(0.02) and clear.transmission == 1.0
    assert overcast.variables["Host b"].electrons == pytest.approx(0.02 * clear.variables["Host b"].electrons)


def test_the_field_drifts_while_tracking_and_a_move_restarts_the_drift() -> None:
    settings = MainCameraSettings.model_validate(
        {"sensor": {"width": 64, "height": 48}, "drift_arcsec_per_min": [0.0, 6.0], "clouds_from": None}
    )
    camera = MainCamera(settings, Writer(io.BytesIO()))
    camera.start()
    camera.handle(ET.fromstring('<getProperties version="1.7"/>'))

    def pointing_after(seconds: float) -> float:
        camera.moved_at -= timedelta(seconds=seconds)  # as if it had tracked that long (a clock jump is no tracking)
        scene = camera.scene()
        exposure = Exposure(0.0, camera.now(), 0.0, 0.0, "light", 1, (0, 0, 64, 48), scene)
        return camera.render(exposure).simulator["DEC"][0]

    camera.handle(request_number("SIM_POINTING", RA=8.0, DEC=30.0))
    start = pointing_after(0.0)
    assert pointing_after(600.0) - start == pytest.approx(60.0 / 3600.0, abs=2e-4)  # 6"/min for 10 min
    camera.handle(request_number("SIM_POINTING", RA=8.0, DEC=31.0))  # a slew
    assert pointing_after(0.0) - start == pytest.approx(1.0, abs=2e-4)


def request_number(prop: str, **values: float) -> ET.Element:
    inner = "".join(f'<oneNumber name="{k}">{v}</oneNumber>' for k, v in values.items())
    return ET.fromstring(f'<newNumberVector device="SkySim Camera" name="{prop}">{inner}</newNumberVector>')
