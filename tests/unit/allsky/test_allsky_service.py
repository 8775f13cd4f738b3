"""The allsky service: Home Assistant entities, what the overlay and the linear FITS are told, frame storage."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from astropy.io import fits

from obsy.homeassistant import Node
from obsy.homeassistant.lint import lint_entities
from obsy.messages import AllskyDarksCommand
from obsy.topics import Topics
from obsy_allsky import ha
from obsy_allsky.capture.camera import RawFrame
from obsy_allsky.capture.exposure import Sky
from obsy_allsky.pipeline.output import encode_fits
from obsy_allsky.pipeline.overlay import info_lines
from obsy_allsky.service import AllskyService, frame_info, linear_fits_header
from obsy_allsky.storage import CLEAN_KEEP, FrameStore, StorageError

NIGHT = date(2026, 11, 21)


def test_home_assistant_entities_are_valid():
    entities = ha.entities(Topics("obsy"))
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


def test_only_the_newest_pictures_without_overlay_are_kept(tmp_path):
    """They are for clouddetect, which reads one within minutes: a rolling few, not an archive."""
    store = FrameStore(tmp_path)
    saved = [
        store.save(NIGHT, TAKEN + timedelta(minutes=n), b"jpeg", clean_jpeg=f"clean {n}".encode())
        for n in range(CLEAN_KEEP + 5)
    ]
    clean = store.night_dir(NIGHT) / "clean"
    assert sorted(clean.iterdir()) == [s.clean_path for s in saved[-CLEAN_KEEP:]]
    assert saved[-1].clean_path.read_bytes() == f"clean {CLEAN_KEEP + 4}".encode()
    assert saved[-1].clean_url.endswith(f"/clean/{saved[-1].frame_id}.jpg")
    assert all(s.image_path.is_file() for s in saved)  # the pictures themselves all stay
    assert store.save(NIGHT, TAKEN, b"jpeg").clean_url is None  # no overlay drawn: none


# --- meteors and satellites: the service's part ---------------------------------------------


class _RecordingBus:
    topics = Topics("obsy")

    def __init__(self) -> None:
        self.published: list[tuple[str, object]] = []

    def publish(self, topic, payload, qos=0, retain=False) -> None:
        self.published.append((topic, payload))

    def publish_event(self, event) -> None:
        self.published.append(("event", event))


def _streak_service(tmp_path) -> tuple[AllskyService, _RecordingBus]:
    from obsy.config import ObsyConfig
    from obsy_allsky.backend import NumpyBackend
    from obsy_allsky.streaks import StreakDetector

    bus = _RecordingBus()
    config = ObsyConfig(data_dir=tmp_path, site={"latitude": 48.2, "longitude": 16.4, "elevation": 180})
    service = AllskyService(config, bus)
    service.store = FrameStore(tmp_path)
    service._cpu = NumpyBackend()
    service._encode_errors, service.encode_failures = {}, 0
    service.streaks, service.streaks_found, service._streaks_failing = StreakDetector(), 0, False
    service.streak_lens, service._lens_for = None, None
    return service, bus


def test_a_streak_in_a_night_frame_is_published_with_its_crop(tmp_path):
    import cv2

    from obsy.messages import AllskyStreak
    from obsy_allsky.pipeline.chain import ProcessedFrame
    from obsy_allsky.pipeline.stars import StarField

    service, bus = _streak_service(tmp_path)
    rng = np.random.default_rng(3)
    frames = [rng.normal(1000, 10, (480, 640)).astype(np.uint16) for _ in range(3)]
    cv2.line(frames[1], (200, 150), (420, 260), 1200, 2)
    picture = np.zeros((480, 640, 3), np.uint8)

    def one(mode: str, image: np.ndarray, when: datetime) -> None:
        stored = service.store.save(NIGHT, when, b"jpeg", "jpg")
        stars = StarField(positions=np.zeros((0, 2)), peaks=np.zeros(0), background=0.0, noise=1.0)
        result = ProcessedFrame(image=picture, stars=stars, sqm=None)
        service._find_streaks(mode, raw=raw(10.0), image=image, result=result, stored=stored, now=when)

    one("night", frames[0], TAKEN)
    one("night", frames[1], TAKEN + timedelta(seconds=30))
    events = [payload for topic, payload in bus.published if topic == "obsy/allsky/streaks"]
    assert len(events) == 1
    event = AllskyStreak.model_validate_json(events[0].model_dump_json())
    assert event.kind == "satellite" and event.night == "2026-11-21" and event.start_altaz is None
    assert abs(event.length_px - 246) < 12
    crop = event.crop_url.removeprefix("file://")
    assert crop.endswith(f"/2026-11-21/streaks/{event.frame_id}-1-satellite.png")
    assert cv2.imread(crop) is not None
    # A day frame ends the sequence: the next night frame has no reference, so nothing is found.
    one("day", frames[2], TAKEN + timedelta(seconds=60))
    one("night", frames[1], TAKEN + timedelta(seconds=90))
    assert len([t for t, _ in bus.published if t == "obsy/allsky/streaks"]) == 1
    # The night's summary counts them and lists the crops.
    from obsy_allsky.products.summary import night_summary

    frames = sorted((tmp_path / "allsky" / "2026-11-21").glob("*.jpg"))
    summary = night_summary(NIGHT, frames, {}, service.config.site)
    assert summary["streaks"] == {
        "meteors": 0,
        "satellites": 1,
        "crops": [f"streaks/{event.frame_id}-1-satellite.png"],
    }


@pytest.mark.parametrize("picture_scale", [1, 2])
def test_a_streak_has_the_alt_az_of_clouddetects_fitted_model(tmp_path, picture_scale):
    """Without a configured streaks.sky_model the lens is the fitted model clouddetect keeps in its
    file (given in the finished picture's pixels, here the raw frame's or twice them)."""
    import json
    import logging

    import cv2

    from obsy.skymodel import SkyModel
    from obsy_allsky.pipeline.chain import ProcessedFrame
    from obsy_allsky.pipeline.stars import StarField
    from obsy_allsky.skysource import SkyModelSource

    service, bus = _streak_service(tmp_path)
    k = picture_scale
    fitted = SkyModel(331.0 * k, 236.0 * k, 150.0 * k, 12.0, False, "equisolid", 0.02)
    path = tmp_path / "clouddetect" / "sky_model.json"
    path.parent.mkdir()
    path.write_text(json.dumps(fitted.to_dict()))
    source = SkyModelSource(service.config, logging.getLogger("test.streaklens"), "the streaks' alt/az")
    rng = np.random.default_rng(3)
    frames = [rng.normal(1000, 10, (480, 640)).astype(np.uint16) for _ in range(2)]
    cv2.line(frames[1], (200, 150), (420, 260), 1200, 2)
    picture = np.zeros((480 * picture_scale, 640 * picture_scale, 3), np.uint8)
    for n, image in enumerate(frames):
        when = TAKEN + timedelta(seconds=30 * n)
        stored = service.store.save(NIGHT, when, b"jpeg", "jpg")
        stars = StarField(positions=np.zeros((0, 2)), peaks=np.zeros(0), background=0.0, noise=1.0)
        result = ProcessedFrame(image=picture, stars=stars, sqm=None)
        service._find_streaks(
            "night", raw=raw(10.0), image=image, result=result, stored=stored, now=when, sky_model=source.current()
        )
    assert source.source == "clouddetect's fitted model"
    (event,) = [payload for topic, payload in bus.published if topic == "obsy/allsky/streaks"]
    # The ends are in the raw frame's pixels; the fitted model's pixel of a raw pixel x is (x + 0.5) * scale - 0.5.
    ends = np.array([event.start, event.end], dtype=float)
    alt, az = fitted.pixel_to_altaz((ends[:, 0] + 0.5) * picture_scale - 0.5, (ends[:, 1] + 0.5) * picture_scale - 0.5)
    for (got_alt, got_az), want_alt, want_az in zip((event.start_altaz, event.end_altaz), alt, az, strict=True):
        assert abs(got_alt - want_alt) < 0.1 and abs((got_az - want_az + 180) % 360 - 180) < 0.1  # ends to 0.1 px
    assert event.length_deg is not None and event.length_deg > 10


def test_a_failing_detection_is_reported_once_and_costs_no_frame(tmp_path):
    from obsy_allsky.pipeline.chain import ProcessedFrame
    from obsy_allsky.pipeline.stars import StarField

    service, bus = _streak_service(tmp_path)

    def broken(*_args, **_kwargs):
        raise ValueError("broken on purpose")

    stars = StarField(positions=np.zeros((0, 2)), peaks=np.zeros(0), background=0.0, noise=1.0)
    result = ProcessedFrame(image=np.zeros((48, 64, 3), np.uint8), stars=stars, sqm=None)
    image = np.full((48, 64), 1000, np.uint16)
    for n, process in enumerate((broken, broken, service.streaks.process)):
        service.streaks.process = process
        when = TAKEN + timedelta(seconds=30 * n)
        stored = service.store.save(NIGHT, when, b"jpeg", "jpg")
        service._find_streaks("night", raw=raw(10.0), image=image, result=result, stored=stored, now=when)
    kinds = [payload.kind for topic, payload in bus.published if topic == "event"]
    assert kinds == ["streaks_failed", "streaks_recovered"]


def test_the_streak_event_entity_lints_clean():
    event = {e.object_id: e for e in ha.entities(Topics("obsy"))}["streak"]
    assert event.component == "event" and event.state_topic == "obsy/allsky/streaks"
    assert event.event_types == ("meteor", "satellite")
