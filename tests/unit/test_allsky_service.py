"""The allsky service: Home Assistant entities, what the overlay and the linear FITS are told, frame storage."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from astropy.io import fits

from obsy.homeassistant import Node, lint_entities
from obsy.messages import AllskyDarksCommand
from obsy.topics import Topics
from obsy_allsky.capture.camera import RawFrame
from obsy_allsky.capture.exposure import Sky
from obsy_allsky.pipeline.output import encode_fits
from obsy_allsky.pipeline.overlay import info_lines
from obsy_allsky.service import AllskyService, frame_info, linear_fits_header
from obsy_allsky.storage import FrameStore, StorageError

NIGHT = date(2026, 11, 21)


class _Bus:
    topics = Topics("obsy")


def test_home_assistant_entities_are_valid():
    service = AllskyService.__new__(AllskyService)
    service.topics = _Bus.topics
    entities = service.ha_entities()
    assert lint_entities(entities, Node("obsy", "allsky", "Test")) == []
    by_id = {e.object_id: e for e in entities}
    assert by_id["sky"].component == "image" and by_id["sky"].image_topic == "obsy/allsky/image"
    assert {"stars", "sqm", "exposure", "gain"} <= set(by_id)
    assert by_id["exposure"].unit_of_measurement == "s"
    assert set(by_id["mode"].options) == {"day", "twilight", "night", "moon"}
    darks = by_id["capture_darks"]
    assert darks.component == "button" and darks.command_topic == "obsy/allsky/darks/set"
    assert AllskyDarksCommand.model_validate_json(darks.payload_press).exposures == []  # a command the service reads


# --- what the overlay and the FITS header get; how a frame's files are stored ----------------

TAKEN = datetime(2026, 11, 21, 21, 15, 3, 250000, tzinfo=UTC)
SKY = Sky(sun_altitude=-35.123, moon_altitude=12.5, moon_illumination=0.42)


def raw(exposure_s: float) -> RawFrame:
    return RawFrame(
        data=np.zeros((4, 4), np.uint16),
        exposure_s=exposure_s,
        gain=120.0,
        binning=2,
        temperature_c=-4.5,
        received_at=0,
    )


def test_frame_info_is_the_local_time_and_the_brackets_longest_exposure():
    info = frame_info(TAKEN, ZoneInfo("Europe/Vienna"), SKY, [raw(8.0), raw(2.0), raw(0.5)])
    assert info.taken_at.utcoffset() == timedelta(hours=1) and info.taken_at == TAKEN
    assert (info.exposure_s, info.gain, info.bracket) == (8.0, 120.0, 3)
    assert (info.sun_altitude, info.moon_altitude, info.moon_illumination) == (-35.123, 12.5, 0.42)
    lines = info_lines(info, ["time", "exposure", "sun_moon"], "%H:%M:%S %Z", stars=None, sqm=None)
    assert lines == ["22:15:03 CET", "Exposure 8 s (HDR x3)  gain 120", "Sun -35.1 deg  Moon +12.5 deg (42 %)"]


def test_the_linear_fits_header_names_time_exposures_gain_and_sky():
    raws = [raw(8.0), raw(2.0)]
    info = frame_info(TAKEN, ZoneInfo("Europe/Vienna"), SKY, raws)
    linear = np.random.default_rng(1).random((6, 8, 3), dtype=np.float32)
    data = encode_fits(linear, linear_fits_header(info, raws, "CCD Simulator", 65535.0))
    with fits.open(io.BytesIO(data)) as hdus:
        header, cube = hdus[0].header, hdus[0].data
    assert cube.shape == (3, 6, 8) and np.array_equal(np.moveaxis(cube, 0, 2), linear)
    assert header["DATE-OBS"] == "2026-11-21T21:15:03.250"  # UTC, whatever the site's zone
    assert (header["EXPTIME"], header["EXPTIME1"], header["EXPTIME2"], header["NCOMBINE"]) == (8.0, 8.0, 2.0, 2)
    assert (header["GAIN"], header["CCD-TEMP"], header["XBINNING"]) == (120.0, -4.5, 2)
    assert (header["SUNALT"], header["MOONALT"], header["MOONILL"]) == (-35.123, 12.5, 0.42)
    assert header["INSTRUME"] == "CCD Simulator" and header["FULLSCAL"] == 65535.0


def test_header_leaves_out_what_is_not_known():
    unknown = RawFrame(
        data=np.zeros((2, 2), np.uint16), exposure_s=1.0, gain=None, binning=1, temperature_c=None, received_at=0
    )
    info = frame_info(TAKEN, ZoneInfo("UTC"), Sky(sun_altitude=5.0), [unknown])
    header = linear_fits_header(info, [unknown], "cam", 4095.0)
    assert "GAIN" not in header and "CCD-TEMP" not in header and "MOONALT" not in header
    assert header["SUNALT"][0] == 5.0


def test_a_png_frame_with_both_fits_is_stored_by_night(tmp_path):
    store = FrameStore(tmp_path)
    stored = store.save(NIGHT, TAKEN, b"png bytes", "png", fits_bytes=b"raw", linear_fits=b"linear")
    folder = tmp_path / "allsky" / "2026-11-21"
    assert stored.image_path == folder / "20261121T211503250Z.png" and stored.url.endswith(".png")
    assert stored.fits_path.read_bytes() == b"raw" and stored.linear_path.read_bytes() == b"linear"
    assert sorted(p.name for p in folder.iterdir()) == [
        "20261121T211503250Z.fits",
        "20261121T211503250Z.linear.fits",
        "20261121T211503250Z.png",
    ]


def test_a_frame_whose_last_file_cannot_be_written_is_not_stored_at_all(tmp_path):
    store = FrameStore(tmp_path)
    blocked = store.night_dir(NIGHT) / "20261121T211503250Z.linear.fits"
    blocked.mkdir(parents=True)  # a folder in the way: the rename onto it fails
    with pytest.raises(StorageError, match=r"20261121T211503250Z\.linear\.fits"):
        store.save(NIGHT, TAKEN, b"jpeg", fits_bytes=b"raw", linear_fits=b"linear")
    assert sorted(p.name for p in store.night_dir(NIGHT).iterdir()) == ["20261121T211503250Z.linear.fits"]
