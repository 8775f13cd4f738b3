"""The sky simulator's allsky camera under a real indiserver, through OBSY's own INDI camera code:
the stars of its frames stand where the catalogue and the lens put them, and clouds come on command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from obsy.indi import IndiClient, IndiError
from obsy_allsky.capture.camera import IndiCamera
from obsy_skysim.field import isolated
from tests.support.indiserver import IndiServer, require_indi
from tests.support.skysim import LENS, SITE, centroids, expected_positions

pytestmark = pytest.mark.integration

pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi()
DRIVER = Path(sys.executable).parent / "indi_obsy_allsky"
if not DRIVER.exists():
    pytest.skip("the sky simulator is not installed (pip install -e services/skysim)", allow_module_level=True)

DEVICE = "SkySim Allsky"
NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> Iterator[IndiCamera]:
    workdir = tmp_path_factory.mktemp("skysim")
    settings = {
        "allsky": {
            "device": DEVICE,
            "site": dict(zip(("latitude", "longitude", "elevation"), SITE, strict=True)),
            "sensor": {"width": 1280, "height": 960, "bayer": "MONO"},
            "lens": {k: v for k, v in LENS.to_dict().items()},
            "clock_offset_s": (NIGHT - datetime.now(UTC)).total_seconds(),
        }
    }
    config = workdir / "skysim.yaml"
    config.write_text(yaml.safe_dump(settings))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OBSY_SKYSIM_CONFIG", str(config))  # indiserver hands its environment to its drivers
        server = IndiServer(workdir, [str(DRIVER)])
        server.start()
    try:
        with IndiClient.from_config(server.config(), timeout=10.0, reconnect_interval=0.2) as client:
            cam = IndiCamera(client, DEVICE, readout_margin_s=20.0)
            cam.prepare()
            yield cam
    finally:
        server.stop()


def frame_time(header: dict) -> datetime:
    return datetime.fromisoformat(header["DATE-OBS"]).replace(tzinfo=UTC)


def test_a_frame_through_obsys_camera_code_shows_the_stars_where_they_are(camera: IndiCamera) -> None:
    camera.set_gain(0)
    frame = camera.expose(5.0)
    assert frame.data.shape == (960, 1280) and frame.exposure_s == 5.0 and frame.gain == 0
    when = frame_time(frame.header)
    assert abs((when - NIGHT).total_seconds()) < 120  # the simulated clock
    x, y, mag = expected_positions(LENS, when, mag_range=(1.5, 4.0))
    everyone = expected_positions(LENS, when, mag_range=(-2.0, 6.5), min_altitude=0.0)
    alone = isolated(x, y, mag, others=everyone, radius=9.0)
    mx, my = centroids(frame.data, x[alone], y[alone], half=4)
    error = np.hypot(mx - x[alone], my - y[alone])
    print(f"through indiserver: {alone.sum()} stars, median {np.median(error):.3f} px, max {np.max(error):.3f} px")
    assert alone.sum() >= 20
    assert np.max(error) < 0.5


def test_clouds_on_command_hide_the_stars_and_report_their_cover(camera: IndiCamera) -> None:
    client = camera.client
    client.set_switch(DEVICE, "SIM_CLOUDS", "OVERCAST")
    assert client.get_number(DEVICE, "SIM_CLOUD_TRUTH")["COVER"] == 100.0
    try:
        frame = camera.expose(5.0)
    finally:
        client.set_switch(DEVICE, "SIM_CLOUDS", "CLEAR")
    assert frame.header["SIMCLOUD"] == "overcast" and frame.header["SIMCOVER"] == 100.0
    x, y, _ = expected_positions(LENS, frame_time(frame.header), mag_range=(-1.5, 2.5))
    image = frame.data.astype(float)
    peaks = np.array(
        [image[round(b) - 1 : round(b) + 2, round(a) - 1 : round(a) + 2].max() for a, b in zip(x, y, strict=True)]
    )
    sky = np.median(image[300:660, 400:880])
    assert np.median(peaks - sky) < 10 * np.std(image[300:340, 400:440])


def test_a_wrong_value_is_refused_and_the_camera_still_exposes(camera: IndiCamera) -> None:
    with pytest.raises(IndiError, match=r"outside the range 0\.\.400"):  # refused by the client, as declared
        camera.client.set_number(DEVICE, "CCD_GAIN", {"GAIN": 9999})
    with pytest.raises(IndiError, match="answered Alert"):  # and by the driver itself
        camera.client.set_number(DEVICE, "CCD_GAIN", {"GAIN": 9999}, check_limits=False)
    assert camera.client.get_number(DEVICE, "CCD_GAIN")["GAIN"] != 9999
    assert camera.expose(0.1).data.shape == (960, 1280)
