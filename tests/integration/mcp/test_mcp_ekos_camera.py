"""The MCP chooses Ekos' capture camera before it starts a night (the real KStars 3.6, headless).

One indiserver runs the sky simulator's allsky camera and its main camera, as an observatory's
single INDI server would, and the profile's optical trains hold one each ("Primary" the allsky
camera). KStars 3.6 captures with the capture module's train, whatever camera a sequence file
names. When the allsky camera registers first, Ekos took the night's frames with
it, and the sky was judged on those: the roof closed on a clear night (CI found it). So the MCP
puts the capture module on the train whose camera is the scheduler's (``scheduler.ekos.camera``)
before it loads a schedule, and names the camera when no train has it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from obsy.config import McpEkosConfig
from obsy.kstars.paths import CAPTURE, CAPTURE_PATH
from obsy_mcp.ekos import Ekos, EkosError
from tests.support.e2e_observatory import (
    ALLSKY_CAMERA,
    SKYSIM_ALLSKY,
    skysim_available,
    wait_until,
    write_skysim_settings,
)
from tests.support.e2e_site import dark_site
from tests.support.indiserver import IndiServer
from tests.support.kstars import PROFILE, KStars, ekos_running, requires_kstars

pytestmark = [
    pytest.mark.integration,
    requires_kstars,
    pytest.mark.skipif(
        not (skysim_available() and Path(sys.executable).with_name("indi_obsy_camera").exists()),
        reason="the sky simulator is not installed (pip install -e services/skysim)",
    ),
]

MAIN_CAMERA = "SkySim Camera"
#: The profile's optical trains, the allsky camera's first (the case the MCP must choose away from). Left to
#: itself, KStars makes trains once, from the cameras it knows at that moment: under load the allsky camera
#: registered a moment too late and no train ever held it (twice in the suite).
TRAINS = {"Primary": {"camera": ALLSKY_CAMERA}, "Secondary": {"camera": MAIN_CAMERA}}


@pytest.fixture(scope="module")
def kstars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KStars]:
    work = tmp_path_factory.mktemp("two-cameras")
    site = dark_site().site_config()
    settings = write_skysim_settings(work / "skysim.yaml", site)
    both = yaml.safe_load(settings.read_text())
    both["camera"] = {"device": MAIN_CAMERA, "site": both["allsky"]["site"]}
    settings.write_text(yaml.safe_dump(both))
    drivers = [str(SKYSIM_ALLSKY), str(Path(sys.executable).with_name("indi_obsy_camera"))]
    with (
        IndiServer(work / "indi", drivers, env={"OBSY_SKYSIM_CONFIG": str(settings)}) as indi,
        ekos_running(work / "kstars", ("CCD Simulator",), indi=indi, city=None, trains=TRAINS) as ks,
    ):
        # Wait until Ekos has connected both cameras (slow under load), so that the test is of choosing
        # the train, not of how fast a loaded machine connects.
        for device in (ALLSKY_CAMERA, MAIN_CAMERA):
            wait_until(
                lambda device=device: indi.getprop(f"{device}.CONNECTION.CONNECT").get("CONNECT") == "On",
                120,
                f"Ekos connecting {device}",
            )
        # Connected is not yet selectable: wait (generously) until each camera's train takes it; the tests
        # then choose at the MCP's own timeout.
        ekos = ekos_for(ks, MAIN_CAMERA)
        try:
            for device in (ALLSKY_CAMERA, MAIN_CAMERA):
                ekos.select_capture_camera(device, timeout=240)
        finally:
            ekos.close()
        yield ks


def ekos_for(kstars: KStars, camera: str) -> Ekos:
    config = McpEkosConfig(enabled=True, bus_address=kstars.bus_file.read_text().strip(), profile=PROFILE)
    return Ekos(config, capture_camera=camera)


def test_the_scheduler_camera_is_selected_in_ekos_capture_module(kstars: KStars) -> None:
    ekos = ekos_for(kstars, MAIN_CAMERA)
    try:
        ekos.select_capture_camera(MAIN_CAMERA)
        assert kstars.get_property(CAPTURE_PATH, CAPTURE, "camera") == MAIN_CAMERA
        ekos.select_capture_camera(ALLSKY_CAMERA)  # and back: the choice is Ekos' own, not a default
        assert kstars.get_property(CAPTURE_PATH, CAPTURE, "camera") == ALLSKY_CAMERA
        ekos.select_capture_camera(MAIN_CAMERA)
        assert kstars.get_property(CAPTURE_PATH, CAPTURE, "camera") == MAIN_CAMERA
    finally:
        ekos.close()


def test_a_camera_ekos_never_registers_is_named_in_the_error(kstars: KStars) -> None:
    ekos = ekos_for(kstars, "Main Camera That Is Not There")
    try:
        with pytest.raises(EkosError, match=r"no optical train with the camera 'Main Camera That Is Not There'"):
            ekos.select_capture_camera("Main Camera That Is Not There", timeout=3)
        assert kstars.get_property(CAPTURE_PATH, CAPTURE, "camera") != "Main Camera That Is Not There"
    finally:
        ekos.close()
