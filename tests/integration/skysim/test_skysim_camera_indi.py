"""The sky simulator's main camera beside INDI's telescope and filter wheel simulators under a real
indiserver: it follows the mount and the wheel by snooping (the frames name the wheel's filter), its
light frames hold the field's stars where the projection puts them, and its darks converge on the
known fixed pattern."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from obsy.indi import IndiClient
from obsy_allsky.capture.camera import IndiCamera
from obsy_skysim.config import MainCameraSettings
from obsy_skysim.field import FieldRenderer
from obsy_skysim.sensor import Sensor
from tests.support.indiserver import TELESCOPE, IndiServer, require_indi
from tests.support.skysim import SITE, centroids

pytestmark = pytest.mark.integration

pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(["indi_simulator_telescope"])
DRIVER = Path(sys.executable).parent / "indi_obsy_camera"
ALLSKY_DRIVER = Path(sys.executable).parent / "indi_obsy_allsky"
if not DRIVER.exists() or not ALLSKY_DRIVER.exists():
    pytest.skip("the sky simulator is not installed (pip install -e services/skysim)", allow_module_level=True)

DEVICE = "SkySim Camera"
WHEEL = "Filter Simulator"  # indi_simulator_wheel's device, the camera's default filter_device
HAS_WHEEL = shutil.which("indi_simulator_wheel") is not None
ALLSKY = "SkySim Allsky"
NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
SETTINGS = {
    "device": DEVICE,
    "site": dict(zip(("latitude", "longitude", "elevation"), SITE, strict=True)),
    "sensor": {
        "width": 800,
        "height": 600,
        "pixel_um": 3.76,
        "bayer": "MONO",
        "amp_glow_e_s": 2.0,
        "column_noise_adu": 3.0,
    },
    "telescope": {"limiting_magnitude": 14.0},
    "mount_device": TELESCOPE,
}


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> Iterator[IndiCamera]:
    workdir = tmp_path_factory.mktemp("skysim-camera")
    config = workdir / "skysim.yaml"
    settings = {**SETTINGS, "clock_offset_s": (NIGHT - datetime.now(UTC)).total_seconds()}
    allsky = {"device": ALLSKY, "sensor": {"width": 320, "height": 240}}
    config.write_text(yaml.safe_dump({"camera": settings, "allsky": allsky}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OBSY_SKYSIM_CONFIG", str(config))
        drivers = ["indi_simulator_telescope", *(["indi_simulator_wheel"] if HAS_WHEEL else []), str(ALLSKY_DRIVER)]
        server = IndiServer(workdir, [*drivers, str(DRIVER)])
        server.start()
    try:
        with IndiClient.from_config(server.config(), timeout=10.0, reconnect_interval=0.2) as client:
            client.connect_device(TELESCOPE)
            cam = IndiCamera(client, DEVICE, readout_margin_s=30.0)
            cam.prepare()
            yield cam
    finally:
        server.stop()


def test_the_camera_follows_the_mount(camera: IndiCamera) -> None:
    client = camera.client
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mount = client.get_number(TELESCOPE, "EQUATORIAL_EOD_COORD")
        seen = client.get_number(DEVICE, "SIM_POINTING")
        if abs(seen["RA"] - mount["RA"]) < 0.01 and abs(seen["DEC"] - mount["DEC"]) < 0.01:
            break
        time.sleep(0.2)
    assert seen["DEC"] == pytest.approx(mount["DEC"], abs=0.01)
    assert seen["RA"] == pytest.approx(mount["RA"], abs=0.01)


def test_a_light_frame_holds_the_fields_stars_where_they_belong(camera: IndiCamera) -> None:
    frame = camera.expose(10.0)
    header = frame.header
    assert frame.data.shape == (600, 800) and header["FRAME"] == "Light"
    when = datetime.fromisoformat(header["DATE-OBS"]).replace(tzinfo=UTC)
    settings = MainCameraSettings.model_validate(SETTINGS)
    truth = (
        FieldRenderer(settings.site.site(), settings.sensor.spec(), settings.telescope.optics())
        .render(when, (header["RA"], header["DEC"]), 10.0, 0.0, seed=0)
        .truth
    )
    assert truth is not None and header["SIMSTARS"] == len(truth.x)
    # The noise model's numbers, as photometry reads them: electrons per ADU at the frame's gain, read noise.
    spec = settings.sensor.spec()
    assert header["EGAIN"] == pytest.approx(1.0 / spec.adu_per_electron(header["GAIN"]), rel=1e-4)
    assert header["RDNOISE"] == spec.read_noise_e
    inside = (truth.x > 10) & (truth.x < 790) & (truth.y > 10) & (truth.y < 590) & (truth.stars.mag < 12.5)
    d = np.hypot(truth.x[:, None] - truth.x[None, :], truth.y[:, None] - truth.y[None, :])
    alone = inside & (np.sort(d, axis=1)[:, 1] > 12)
    mx, my = centroids(frame.data, truth.x[alone], truth.y[alone], half=5)
    error = np.hypot(mx - truth.x[alone], my - truth.y[alone])
    print(
        f"main camera through indiserver: {alone.sum()} stars, "
        f"median {np.median(error):.3f} px, max {np.max(error):.3f} px"
    )
    assert alone.sum() >= 5 and np.max(error) < 0.5


def test_darks_through_indi_converge_on_the_known_master(camera: IndiCamera) -> None:
    camera.set_frame_type("DARK")
    try:
        darks = [camera.expose(1.0).data.astype(np.float32) for _ in range(6)]
    finally:
        camera.set_frame_type("LIGHT")
    settings = MainCameraSettings.model_validate(SETTINGS)
    truth = Sensor(settings.sensor.spec()).master(1.0, 0.0)
    master = np.mean(darks, axis=0)
    assert np.abs(master - truth).mean() < 1.0
    assert np.corrcoef(master.mean(axis=0), truth.mean(axis=0))[0, 1] > 0.9  # the column pattern


def test_one_command_makes_it_cloudy_for_both_cameras(camera: IndiCamera) -> None:
    client = camera.client
    client.wait_property(ALLSKY, "SIM_CLOUDS")
    client.set_switch(ALLSKY, "SIM_CLOUDS", "OVERCAST")
    try:
        deadline = time.monotonic() + 10
        frame = camera.expose(1.0)
        while frame.header["SIMCLOUD"] != "overcast" and time.monotonic() < deadline:
            time.sleep(0.5)  # the snooped update travels through indiserver
            frame = camera.expose(1.0)
    finally:
        client.set_switch(ALLSKY, "SIM_CLOUDS", "CLEAR")
    assert frame.header["SIMCLOUD"] == "overcast"
    assert frame.header["SIMTRANS"] == pytest.approx(0.02)


def test_the_object_a_client_names_is_in_the_frames_header(camera: IndiCamera) -> None:
    """As INDI's CCD drivers do: Ekos names a job's target through FITS_HEADER, the frames carry OBJECT."""
    client = camera.client
    assert client.get_text(DEVICE, "FITS_HEADER")["FITS_OBJECT"] == "Unknown"
    assert "OBJECT" not in camera.expose(0.5).header  # INDI's default is left out
    client.set_text(DEVICE, "FITS_HEADER", {"FITS_OBJECT": "M 31", "FITS_OBSERVER": "Olivia"})
    header = camera.expose(0.5).header
    assert header["OBJECT"] == "M 31" and header["OBSERVER"] == "Olivia"
    client.set_text(DEVICE, "FITS_HEADER", {"FITS_OBJECT": "Unknown", "FITS_OBSERVER": "Unknown"})
    assert "OBJECT" not in camera.expose(0.5).header


@pytest.mark.skipif(not HAS_WHEEL, reason="INDI's filter wheel simulator (indi_simulator_wheel) is not installed")
def test_the_camera_follows_the_wheel_and_names_its_filter(camera: IndiCamera) -> None:
    """As INDI's CCD drivers do with their snooped wheel: the frame's FILTER is the wheel's name of its slot."""
    client = camera.client
    client.connect_device(WHEEL)
    client.wait_property(WHEEL, "FILTER_NAME", 10)
    names = client.get_text(WHEEL, "FILTER_NAME")
    third = names["FILTER_SLOT_NAME_3"]
    client.set_number(WHEEL, "FILTER_SLOT", {"FILTER_SLOT_VALUE": 3})
    deadline = time.monotonic() + 10
    while client.get_number(DEVICE, "SIM_FILTER")["SLOT"] != 3:
        assert time.monotonic() < deadline, "the camera did not follow the wheel to slot 3"
        time.sleep(0.2)
    header = camera.expose(0.5).header
    assert (header["SIMFILT"], header["FILTER"]) == (3, third)
