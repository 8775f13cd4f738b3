"""The simulator's INDI side without indiserver: the XML stream, requests good and bad, settings, FITS."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.io import fits

from obsy_allsky.capture.fits import decode_fits
from obsy_skysim.camera_device import bin_image
from obsy_skysim.config import AllskyCameraSettings, ConfigError, load_config
from obsy_skysim.driver import AllskyCamera
from obsy_skysim.fitsfile import FrameDescription, fits_bytes
from obsy_skysim.indi_xml import Reader, Writer

DEVICE = "SkySim Allsky"


class Captured(Writer):
    """A writer whose output the test reads back as INDI elements."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO())

    def elements(self) -> list[ET.Element]:
        return list(Reader().feed(self.stream.getvalue()))

    def last(self, tag: str, name: str) -> ET.Element:
        found = [e for e in self.elements() if e.tag == tag and e.get("name") == name]
        assert found, f"no {tag} {name} sent"
        return found[-1]


def request(kind: str, prop: str, **values: str) -> ET.Element:
    one = {"Number": "oneNumber", "Switch": "oneSwitch", "Text": "oneText"}[kind]
    inner = "".join(f'<{one} name="{k}">{v}</{one}>' for k, v in values.items())
    return ET.fromstring(f'<new{kind}Vector device="{DEVICE}" name="{prop}">{inner}</new{kind}Vector>')


@pytest.fixture
def camera() -> tuple[AllskyCamera, Captured]:
    settings = AllskyCameraSettings.model_validate({"sensor": {"width": 320, "height": 240, "bayer": "MONO"}})
    out = Captured()
    cam = AllskyCamera(settings, out)
    cam.start()
    cam.handle(ET.fromstring('<getProperties version="1.7"/>'))
    cam.handle(request("Switch", "CONNECTION", CONNECT="On"))
    return cam, out


def test_the_reader_splits_a_stream_cut_anywhere() -> None:
    stream = (
        b'<getProperties version="1.7"/>\n<newNumberVector device="d" name="CCD_EXPOSURE">'
        b'<oneNumber name="CCD_EXPOSURE_VALUE">2.5</oneNumber></newNumberVector>'
    )
    reader = Reader()
    got = []
    for i in range(0, len(stream), 7):
        got += [(e.tag, e.get("name"), [c.text for c in e]) for e in reader.feed(stream[i : i + 7])]
    assert got == [("getProperties", None, []), ("newNumberVector", "CCD_EXPOSURE", ["2.5"])]


def test_properties_are_defined_on_request_and_the_camera_on_connecting(camera) -> None:
    cam, out = camera
    defined = {e.get("name") for e in out.elements() if e.tag.startswith("def")}
    assert {"CONNECTION", "DRIVER_INFO", "SIM_CLOUDS", "SIM_CLOUD_TRUTH", "SIM_CLOCK"} <= defined
    assert {"CCD_EXPOSURE", "CCD_GAIN", "CCD_INFO", "CCD_FRAME", "CCD_BINNING", "CCD1"} <= defined
    assert "CCD_CFA" not in defined  # a mono sensor
    gain = out.last("defNumberVector", "CCD_GAIN")[0]
    assert (gain.get("min"), gain.get("max")) == ("0", "400")
    cam.handle(request("Switch", "CONNECTION", DISCONNECT="On"))
    deleted = {e.get("name") for e in out.elements() if e.tag == "delProperty"}
    assert "CCD_EXPOSURE" in deleted and "SIM_CLOUDS" not in deleted


@pytest.mark.parametrize(
    ("kind", "prop", "values", "message"),
    [
        ("Number", "CCD_GAIN", {"GAIN": "loud"}, "CCD_GAIN.GAIN: 'loud' is not a number"),
        ("Number", "CCD_GAIN", {"GAIN": "1e9"}, "CCD_GAIN.GAIN: 1e+09 is outside 0 .. 400"),
        ("Number", "CCD_GAIN", {"VOLUME": "3"}, "CCD_GAIN has no element 'VOLUME'"),
        ("Number", "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": "nan"}, "is not a finite number"),
        ("Number", "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": "-1"}, "-1 is outside 0 .. 3600"),
        ("Number", "CCD_BINNING", {"HOR_BIN": "2", "VER_BIN": "3"}, "only equal whole binning"),
        ("Number", "CCD_FRAME", {"X": "300", "WIDTH": "100"}, "leaves the 320 x 240 sensor"),
        ("Switch", "SIM_CLOUDS", {"FOG": "On"}, "SIM_CLOUDS has no element 'FOG'"),
        ("Switch", "SIM_CLOUDS", {"CLEAR": "Maybe"}, "is neither On nor Off"),
        ("Number", "SIM_CLOUD_SETTINGS", {"COVER": "140"}, "COVER: 140 is outside 0 .. 100"),
        ("Number", "CCD_INFO", {"CCD_MAX_X": "10"}, "CCD_INFO is read-only"),
    ],
)
def test_a_wrong_value_is_refused_with_a_message_and_the_driver_goes_on(camera, kind, prop, values, message) -> None:
    cam, out = camera
    before = cam.vectors[prop].values()
    cam.handle(request(kind, prop, **values))
    answer = out.last(f"set{kind}Vector", prop)
    assert answer.get("state") == "Alert"
    assert message in answer.get("message", "")
    assert cam.vectors[prop].values() == before
    cam.handle(request("Number", "CCD_GAIN", GAIN="120"))  # and it still answers
    assert out.last("setNumberVector", "CCD_GAIN").get("state") == "Ok"


def test_clouds_on_command_report_their_true_cover(camera) -> None:
    cam, out = camera
    cam.handle(request("Switch", "SIM_CLOUDS", OVERCAST="On"))
    truth = out.last("setNumberVector", "SIM_CLOUD_TRUTH")
    assert float(truth[0].text) == 100.0
    cam.handle(request("Number", "SIM_CLOUD_SETTINGS", COVER="30"))
    cam.handle(request("Switch", "SIM_CLOUDS", SCATTERED="On"))
    assert float(out.last("setNumberVector", "SIM_CLOUD_TRUTH")[0].text) == pytest.approx(30.0, abs=1.0)
    assert cam.clouds.kind == "scattered"


def test_an_exposure_counts_down_and_sends_a_fits_image(camera) -> None:
    cam, out = camera
    cam.handle(request("Number", "SIM_CLOCK", OFFSET_S=str(_offset_to(datetime(2026, 1, 15, 22, 0, tzinfo=UTC)))))
    cam.handle(request("Number", "CCD_EXPOSURE", CCD_EXPOSURE_VALUE="0.2"))
    assert out.last("setNumberVector", "CCD_EXPOSURE").get("state") == "Busy"
    cam._exposure.join(30)
    assert out.last("setNumberVector", "CCD_EXPOSURE").get("state") == "Ok"
    blob = out.last("setBLOBVector", "CCD1")[0]
    assert blob.get("format") == ".fits"
    data = base64.b64decode(blob.text)
    assert int(blob.get("size")) == len(data)
    image = decode_fits(data)
    assert image.data.shape == (240, 320)
    assert image.header["EXPTIME"] == 0.2 and image.header["INSTRUME"] == DEVICE
    assert image.header["DATE-OBS"].startswith("2026-01-15T22:00")


def test_an_aborted_exposure_sends_no_image(camera) -> None:
    cam, out = camera
    cam.handle(request("Number", "CCD_EXPOSURE", CCD_EXPOSURE_VALUE="5"))
    time.sleep(0.2)
    cam.handle(request("Switch", "CCD_ABORT_EXPOSURE", ABORT="On"))
    cam._exposure.join(10)
    assert not [e for e in out.elements() if e.tag == "setBLOBVector"]
    assert out.last("setNumberVector", "CCD_EXPOSURE").get("state") == "Idle"


def test_fits_headers_are_those_indi_cameras_write() -> None:
    image = np.arange(48, dtype=np.uint16).reshape(6, 8)
    started = datetime(2026, 1, 15, 22, 0, 1, 250000, tzinfo=UTC)
    d = FrameDescription(
        "Cam", "dark", 30.0, 120.0, 64.0, 18.5, 2.9, 1, started, bayer="RGGB", latitude=48.2, longitude=16.4
    )
    header = fits.Header.fromstring(fits_bytes(image, d)[:2880].decode())
    assert header["FRAME"] == "Dark" and header["IMAGETYP"] == "Dark Frame"
    assert header["EXPTIME"] == 30.0 and header["GAIN"] == 120.0 and header["CCD-TEMP"] == 18.5
    assert header["BAYERPAT"] == "RGGB" and header["XBAYROFF"] == 0 and header["ROWORDER"] == "TOP-DOWN"
    assert header["DATE-OBS"] == "2026-01-15T22:00:01.250"
    assert np.array_equal(decode_fits(fits_bytes(image, d)).data, image)


def test_binning_averages_blocks() -> None:
    image = np.array([[0, 2, 4, 4], [2, 4, 4, 4]], dtype=np.uint16)
    assert bin_image(image, 2).tolist() == [[2, 4]]


def test_settings_errors_name_the_file_and_the_field(tmp_path) -> None:
    path = tmp_path / "skysim.yaml"
    path.write_text("allsky:\n  sensor: {width: 10}\n  lense: {}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    text = str(error.value)
    assert str(path) in text and "allsky.sensor.width" in text and "allsky.lense" in text
    path.write_text("allsky: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("allsky:\n  clouds: {kind: overcast}\n  lens: {rotation: 30, projection: equidistant}\n")
    config = load_config(path)
    assert config.allsky.clouds.clouds().cover() == 100.0
    assert config.allsky.lens.model(3856, 2180).rotation == 30


@pytest.mark.slow
def test_a_bad_settings_file_leaves_the_driver_running_on_defaults_and_says_why(tmp_path) -> None:
    path = tmp_path / "skysim.yaml"
    path.write_text("allsky:\n  sensor: {bayer: CMYK}\n")
    env = {"OBSY_SKYSIM_CONFIG": str(path)}
    code = "from obsy_skysim.driver import main_allsky; main_allsky()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=b'<getProperties version="1.7"/>',
        check=False,
        capture_output=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 0
    config = next(e for e in Reader().feed(done.stdout) if e.get("name") == "SIM_CONFIG")
    assert config.get("state") == "Alert"
    assert re.search(r"allsky\.sensor\.bayer", config.get("message", ""))
    assert b"allsky.sensor.bayer" in done.stderr


def _offset_to(when: datetime) -> float:
    return (when - datetime.now(UTC)).total_seconds()
