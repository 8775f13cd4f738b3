"""The allsky camera against indiserver running indi_simulator_ccd: images, settings, a camera that stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from obsy.indi import IndiClient
from obsy_allsky.capture.camera import CameraError, CorruptFrameError, IndiCamera
from obsy_allsky.capture.darks import DarkLibrary, capture_master
from obsy_allsky.capture.fits import FitsError, decode_fits
from obsy_allsky.service import main
from tests.support.indi_proxy import BlobDamagingProxy
from tests.support.indiserver import CCD, IndiServer, find_executable, require_indi

pytestmark = pytest.mark.integration

DRIVER = "indi_simulator_ccd"
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi([DRIVER])


@pytest.fixture
def server(tmp_path) -> Iterator[IndiServer]:
    indiserver = IndiServer(tmp_path, [DRIVER])
    indiserver.start()
    try:
        yield indiserver
    finally:
        indiserver.stop()


@pytest.fixture
def camera(server: IndiServer) -> Iterator[IndiCamera]:
    with IndiClient.from_config(server.config(), timeout=10.0, reconnect_interval=0.2) as client:
        cam = IndiCamera(client, CCD, readout_margin_s=4.0)
        cam.prepare()
        cam.set_binning(4)  # small frames, quick tests
        yield cam


def test_exposure_gain_and_binning_give_a_16_bit_frame(camera: IndiCamera) -> None:
    camera.set_gain(50)
    frame = camera.expose(0.2)
    assert frame.data.dtype == np.uint16 and frame.data.ndim == 2
    full = camera.client.get_number(CCD, "CCD_INFO")
    assert frame.data.shape == (int(full["CCD_MAX_Y"]) // 4, int(full["CCD_MAX_X"]) // 4)
    assert frame.exposure_s == pytest.approx(0.2)
    assert frame.gain == 50 and frame.binning == 4
    assert camera.client.get_number(CCD, "CCD_GAIN")["GAIN"] == 50
    assert frame.data.max() > frame.data.min()  # the simulator draws stars on noise
    assert camera.failures == 0


def test_a_camera_that_stops_mid_exposure_is_detected_reported_and_reconnected(
    server: IndiServer, camera: IndiCamera
) -> None:
    errors: list[BaseException] = []

    def expose() -> None:
        try:
            camera.expose(2.0)
        except CameraError as exc:
            errors.append(exc)

    started = time.monotonic()
    exposing = threading.Thread(target=expose)
    exposing.start()
    time.sleep(0.5)
    driver = find_executable(DRIVER)  # indiserver knows its drivers by the path it started
    server.stop_driver(driver)  # the camera vanishes mid-exposure
    exposing.join(15)
    assert not exposing.is_alive()
    assert errors, "the lost exposure was not reported"
    assert time.monotonic() - started < 2.0 + 4.0 + 3.0  # exposure + margin, then it gives up
    assert CCD in str(errors[0])
    assert camera.failures == 1 and camera.last_error

    assert camera.recover(timeout=1.0) is False  # still gone: reported, not raised
    assert "reconnect failed" in camera.last_error

    server.start_driver(driver)
    assert camera.recover(timeout=20.0) is True
    assert camera.recoveries == 1
    frame = camera.expose(0.1)
    assert frame.binning == 4  # settings restored after the reconnect
    assert frame.data.shape[1] == int(camera.client.get_number(CCD, "CCD_INFO")["CCD_MAX_X"]) // 4


def test_truncated_and_garbled_fits_from_the_camera_are_named(camera: IndiCamera) -> None:
    camera.client.clear_blobs()
    camera.client.set_number(CCD, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 0.1}, wait=False)
    data = camera.client.wait_blob(CCD, timeout=20).data
    assert decode_fits(data).data.ndim == 2
    with pytest.raises(FitsError, match=r"corrupt FITS|without image data"):
        decode_fits(data[: len(data) // 3], source="truncated")
    with pytest.raises(FitsError, match="not FITS"):
        decode_fits(b"\x00garbage" * 400)
    with pytest.raises(FitsError, match="empty"):
        decode_fits(b"")
    header_only = data[:2880]
    with pytest.raises(FitsError):
        decode_fits(header_only)


def test_master_dark_from_the_simulator_is_stored_and_found_again(camera: IndiCamera, tmp_path) -> None:
    light = camera.expose(0.5).data
    master, used = capture_master(camera, 0.5, count=3)
    assert used == 0.5
    assert master.shape == light.shape
    assert camera.client.get_switch(CCD, "CCD_FRAME_TYPE")["FRAME_LIGHT"] is True  # back to lights
    assert master.max() < light.max()  # no stars in a dark
    library = DarkLibrary(tmp_path / "darks")
    temperature = camera.temperature()
    library.save(master, gain=0, binning=4, temperature_c=temperature, exposure_s=0.5)
    found = library.dark_for(0.5, gain=0, binning=4, temperature_c=temperature, shape=light.shape)
    assert np.array_equal(found, master)


def test_darks_command_fills_the_library(server: IndiServer, tmp_path) -> None:
    config = tmp_path / "obsy.yaml"
    config.write_text(
        "site: {latitude: 48.2, longitude: 16.4}\n"
        f"data_dir: {tmp_path / 'data'}\n"
        f"indi: {{host: 127.0.0.1, port: {server.port}}}\n"
        "allsky: {camera: {binning: 4}}\n"
    )
    assert main(["darks", "--config", str(config), "--exposures", "0.0001", "0.3", "--count", "2", "--gain", "0"]) == 0
    library = DarkLibrary(tmp_path / "data" / "allsky" / "darks")
    # The simulator's shortest exposure is 0.01 s: the bias is taken at that.
    assert sorted(m.exposure_s for m in library.masters()) == [0.01, 0.3]
    (master,) = [m for m in library.masters() if m.exposure_s == 0.3]
    dark = library.dark_for(0.6, gain=0, binning=4, temperature_c=master.temperature_c, shape=master.load().shape)
    assert dark is not None  # scaled from the 0.3 s master with the bias


def test_a_corrupt_image_is_a_lost_frame_not_a_lost_camera(server: IndiServer) -> None:
    """The real simulator's images through a proxy that damages one: named, counted, the next exposure fine."""
    with (
        BlobDamagingProxy(server.host, server.port) as proxy,
        IndiClient.from_config(server.config(port=proxy.port), timeout=10.0) as client,
    ):
        camera = IndiCamera(client, CCD, readout_margin_s=4.0)
        camera.prepare()
        camera.set_binning(4)
        proxy.damage_next("truncate")
        with pytest.raises(CorruptFrameError, match="corrupt FITS"):
            camera.expose(0.1)
        assert camera.corrupt_frames == 1 and camera.failures == 0 and camera.last_error is None
        assert camera.expose(0.1).data.ndim == 2  # same connection, next exposure
        assert proxy.damaged == ["truncate"]
