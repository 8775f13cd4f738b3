"""The clouddetect service's parts: frame loading, debounce, cloud map picture, collector, HA entities."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from astropy.io import fits

from obsy.config import ObsyConfig
from obsy.homeassistant import Node
from obsy.homeassistant.lint import lint_entities
from obsy.messages import AllskyFrame
from obsy.topics import Topics
from obsy_clouddetect import ha
from obsy_clouddetect.classifier.runtime import Classification
from obsy_clouddetect.cloudmap import render_cloud_map
from obsy_clouddetect.collect import Collector
from obsy_clouddetect.frames import FrameError, load_frame, resolve_path
from obsy_clouddetect.judge import FrameJudge, Judgement
from obsy_clouddetect.transmission.analyser import CloudMap, TransmissionResult
from obsy_clouddetect.verdict import Debouncer


@pytest.fixture
def data_dir(tmp_path) -> Path:
    image = np.arange(40 * 30, dtype=np.uint16).reshape(30, 40)
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "a.png"), image)
    return tmp_path


def test_frames_from_file_urls_and_paths_under_data_dir(data_dir):
    by_url = load_frame((data_dir / "frames" / "a.png").as_uri(), data_dir)
    by_path = load_frame("frames/a.png", data_dir)
    assert by_url.dtype == np.uint16 and by_url.shape == (30, 40)
    assert np.array_equal(by_url, by_path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("../outside.png", "outside data_dir"),
        ("frames/../../x.png", "outside data_dir"),
        ("ftp://example/a.png", "unsupported scheme 'ftp'"),
        ("file://otherhost/a.png", "names another host"),
        ("frames/missing.png", "cannot read frame"),
    ],
)
def test_bad_frame_urls_are_named(data_dir, url, message):
    with pytest.raises(FrameError, match=message):
        load_frame(url, data_dir)


def test_broken_and_empty_files_are_named(data_dir):
    (data_dir / "frames" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (data_dir / "frames" / "empty.png").write_bytes(b"")
    (data_dir / "frames" / "bad.fits").write_bytes(b"SIMPLE  = T" + b" " * 100)
    with pytest.raises(FrameError, match="not an image OpenCV can read"):
        load_frame("frames/bad.jpg", data_dir)
    with pytest.raises(FrameError, match="is empty"):
        load_frame("frames/empty.png", data_dir)
    with pytest.raises(FrameError, match=r"FITS frame .* (cannot be read|holds no image)"):
        load_frame("frames/bad.fits", data_dir)


def test_fits_frames_grey_and_colour(data_dir):
    grey = np.arange(12, dtype=np.int16).reshape(3, 4)
    fits.PrimaryHDU(grey).writeto(data_dir / "frames" / "g.fits")
    colour = np.stack([np.full((3, 4), v, np.uint16) for v in (10, 20, 30)])  # R, G, B planes
    fits.PrimaryHDU(colour).writeto(data_dir / "frames" / "c.fit")
    assert np.array_equal(load_frame("frames/g.fits", data_dir), grey.astype(np.float32))
    bgr = load_frame("frames/c.fit", data_dir)
    assert bgr.shape == (3, 4, 3) and list(bgr[0, 0]) == [30, 20, 10]


def test_frames_over_http_from_a_local_server(data_dir):
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(data_dir), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert resolve_path(f"{base}/frames/a.png", data_dir) is None
        assert load_frame(f"{base}/frames/a.png", data_dir).shape == (30, 40)
        with pytest.raises(FrameError, match="cannot fetch frame"):
            load_frame(f"{base}/frames/nothing.png", data_dir, timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def test_debounce_needs_agreeing_frames_and_unknown_is_never_clear():
    d = Debouncer(3)
    assert d.update(True) is None and d.update(True) is None
    assert d.update(True) is True
    assert d.update(False) is True and d.update(True) is True  # a lone cloudy frame changes nothing
    assert [d.update(False) for _ in range(3)] == [True, True, False]
    assert d.update(None) is None  # unknown at once
    assert d.update(False) is False  # leaving unknown for cloudy is immediate
    assert d.update(None) is None
    assert [d.update(True) for _ in range(3)] == [None, None, True]


def test_cloud_map_picture_shows_clear_green_and_cloud_red():
    alt, az = np.meshgrid(np.arange(21.5, 90, 3.0), np.arange(0, 360, 3.0))
    transmission = np.where(az < 180, 1.0, 0.0)  # east half clear, west half cloudy
    transmission[:, -1] = np.nan
    picture = render_cloud_map(CloudMap(alt, az, transmission), size=200)
    east = picture[100, 40]  # east is left, seen from below
    west = picture[100, 160]
    assert east[1] > 200 and east[2] < 100
    assert west[2] > 200 and west[1] < 100
    assert tuple(picture[0, 0]) == (0, 0, 0)  # below the lowest altitude judged


def test_collector_files_every_nth_frame_by_label(tmp_path):
    collector = Collector(tmp_path, every=3)
    frames = [
        AllskyFrame(frame_id=f"f/{i}", night="2026-01-15", exposure_s=1, url=f"file:///x/{i}.jpg") for i in range(7)
    ]
    saved = [collector.offer(f, "Partly Cloudy" if i < 4 else "Clear", lambda: b"jpeg") for i, f in enumerate(frames)]
    assert [p is not None for p in saved] == [True, False, False, True, False, False, True]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg")) == [
        "Clear/f_6.jpg",
        "Partly_Cloudy/f_0.jpg",
        "Partly_Cloudy/f_3.jpg",
    ]

    def broken() -> bytes:
        raise OSError("gone")

    assert Collector(tmp_path, every=1).offer(frames[0], "Clear", broken) is None


def test_home_assistant_entities_pass_the_linter():
    entities = ha.entities(Topics("obsy"))
    assert {(e.component, e.object_id) for e in entities} == {
        ("sensor", "cloud_cover"),
        ("binary_sensor", "clear_sky"),
        ("sensor", "sky_label"),
    }
    assert lint_entities(entities, Node("obsy", "clouddetect", "Test")) == []
    clear_sky = next(e for e in entities if e.object_id == "clear_sky")
    assert "None" in clear_sky.value_template  # unknown stays unknown in Home Assistant


def test_config_rejects_bad_clouddetect_keys():
    base = {"site": {"latitude": 1, "longitude": 2}}
    ObsyConfig(**base, clouddetect={"transmission": {"sky_model": {"zenith_x": 1, "zenith_y": 2, "scale": 3}}})
    with pytest.raises(ValueError, match="projection"):
        ObsyConfig(
            **base,
            clouddetect={
                "transmission": {"sky_model": {"zenith_x": 1, "zenith_y": 2, "scale": 3, "projection": "fisheye"}}
            },
        )
    with pytest.raises(ValueError, match="debounce"):
        ObsyConfig(**base, clouddetect={"debounce": 3})


def _judge(**classifier) -> FrameJudge:
    config = ObsyConfig(site={"latitude": 48.2, "longitude": 16.4}, clouddetect={"classifier": classifier})
    return FrameJudge(config)


def _stars(label: str, cover: float | None) -> TransmissionResult:
    reason = "no sky model yet" if cover is None else ""
    return TransmissionResult(cover, 0.9, label, 0.9, None, None, 100, 80, 70, 11.0, None, reason=reason)


@pytest.mark.parametrize(
    ("stars", "classified", "label", "clear"),
    [
        (_stars("Clear", 3.0), None, "Clear", True),
        (_stars("Clear", 3.0), Classification("Clear", 0.9, {}), "Clear", True),
        (_stars("Clear", 3.0), Classification("Overcast", 0.9, {}), "Clear", False),  # either seeing cloud
        (_stars("Clear", 3.0), Classification("Overcast", 0.3, {}), "Clear", True),  # an unsure classifier
        (_stars("Overcast", 100.0), Classification("Clear", 0.99, {}), "Overcast", False),
        (_stars("unknown", None), Classification("Cloudy", 0.8, {}), "Cloudy", False),
        (_stars("unknown", None), Classification("Clear", 0.8, {}), "Clear", True),
        (_stars("unknown", None), Classification("Clear", 0.4, {}), "unknown", None),
        (_stars("unknown", None), None, "unknown", None),
        (None, None, "unknown", None),
    ],
)
def test_methods_combine_cautiously(stars, classified, label, clear):
    judgement = Judgement(transmission=stars, classification=classified)
    judgement.methods = [m for m, x in (("classifier", classified), ("transmission", stars)) if x is not None]
    result = _judge()._combine(judgement)
    assert (result.label, result.clear) == (label, clear)
    if clear is None:
        assert result.reason
