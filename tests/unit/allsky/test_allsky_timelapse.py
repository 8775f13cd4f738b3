"""The timelapse video, encoded by the real ffmpeg and checked with ffprobe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from obsy.config import AllskyTimelapseConfig
from obsy_allsky.products.night import night_frames, read_frame
from obsy_allsky.products.timelapse import (
    HARDWARE_ENCODERS,
    SOFTWARE_ENCODER,
    choose_encoder,
    decode_reduction,
    make_timelapse,
    probe_video,
    try_encoder,
    video_size,
)
from obsy_allsky.service import main
from tests.unit.allsky.test_allsky_products import star_frame, store_night, write_minimal_config

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def test_video_has_one_frame_per_usable_image_and_the_duration_of_its_fps(tmp_path):
    frames = [star_frame(20 + 3 * i, 60) for i in range(24)]
    frames.insert(7, np.zeros((60, 80, 3), np.uint8))  # a frame of another size (camera changed)
    night = store_night(tmp_path, frames)
    (night / "20261121T235959000Z.jpg").write_bytes(b"\xff\xd8 not really")  # a damaged file
    seen = []
    out = tmp_path / "products" / "timelapse.mp4"
    settings = AllskyTimelapseConfig(fps=12, encoder="libx264")
    video = make_timelapse(night_frames(night), out, settings, progress=lambda d, t: seen.append((d, t)))
    assert video.path == out and video.used == 24
    assert video.skipped == {"other size": 1, "unreadable": 1}
    assert seen[-1] == (26, 26) and len(seen) == 26
    info = probe_video(out)
    assert info["frames"] == 24 and info["codec"] == "h264"
    assert info["duration_s"] == pytest.approx(24 / 12, abs=0.01)
    assert (info["width"], info["height"]) == (160, 120)
    assert [p.name for p in out.parent.iterdir()] == ["timelapse.mp4"]  # no temporary file left


def test_the_video_shows_the_frames_in_time_order(tmp_path):
    frames = [np.full((64, 64, 3), 10 + 20 * i, np.uint8) for i in range(10)]  # the sky brightening
    night = store_night(tmp_path, frames)
    out = tmp_path / "t.mp4"
    make_timelapse(night_frames(night), out, AllskyTimelapseConfig(fps=5, encoder="libx264"))
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    means = np.frombuffer(decoded, np.uint8).reshape(-1, 64 * 64).mean(axis=1)
    assert len(means) == 10
    assert np.all(np.diff(means) > 10)


def test_wide_frames_are_scaled_to_the_configured_even_width(tmp_path):
    night = store_night(tmp_path, [np.full((101, 301, 3), 60, np.uint8) for _ in range(3)])
    video = make_timelapse(night_frames(night), tmp_path / "t.mp4", AllskyTimelapseConfig(width=151, encoder="libx264"))
    info = probe_video(video.path)
    assert (info["width"], info["height"]) == video.size == (150, 50)
    assert video_size(4144, 2822, 1920) == (1920, 1306) and video_size(641, 481, 0) == (640, 480)


def test_auto_takes_the_first_hardware_encoder_that_works_here_else_libx264():
    settings = AllskyTimelapseConfig()
    chosen, passed_over = choose_encoder(settings)
    assert chosen in (*HARDWARE_ENCODERS, SOFTWARE_ENCODER)
    assert try_encoder(chosen, settings) is None  # it really encodes on this machine
    order = HARDWARE_ENCODERS if chosen == SOFTWARE_ENCODER else HARDWARE_ENCODERS[: HARDWARE_ENCODERS.index(chosen)]
    assert list(passed_over) == list(order)  # every encoder before it was tried, with the reason it failed
    assert all(reason for reason in passed_over.values())


def test_a_hardware_encoder_that_fails_falls_back_to_libx264(tmp_path):
    settings = AllskyTimelapseConfig(encoder="h264_nvenc")
    if try_encoder("h264_nvenc", settings) is None:
        pytest.skip("NVENC works on this machine, so it cannot be seen failing")
    night = store_night(tmp_path, [star_frame(20 + 3 * i, 60) for i in range(5)])
    video = make_timelapse(night_frames(night), tmp_path / "t.mp4", settings)
    assert video.encoder == SOFTWARE_ENCODER and "h264_nvenc" in video.tried
    assert probe_video(video.path)["frames"] == 5


def test_no_usable_frame_writes_no_video(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"broken")
    video = make_timelapse([tmp_path / "a.jpg"], tmp_path / "t.mp4", AllskyTimelapseConfig(encoder="libx264"))
    assert video.path is None and video.skipped == {"unreadable": 1}
    assert not (tmp_path / "t.mp4").exists()


MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from obsy.config import AllskyTimelapseConfig
    from obsy_allsky.products.timelapse import make_timelapse, probe_video

    frames = sorted(Path(sys.argv[1]).glob("*.jpg"))
    settings = AllskyTimelapseConfig(fps=25, width=640, encoder="libx264")
    video = make_timelapse(frames, Path(sys.argv[2]), settings)
    # VmHWM: this process's own peak (ru_maxrss would include the parent's size at the fork).
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({
        "used": video.used,
        "self_kib": hwm,
        # An upper bound for ffmpeg: it also counts this process's size when ffmpeg was started.
        "ffmpeg_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }))
    """
)


def _peak_memory(folder, count: int, out) -> dict:
    """Make a timelapse of the first ``count`` frames in a fresh process; its figures."""
    subset = folder.parent / f"first-{count}"
    subset.mkdir()
    for frame in sorted(folder.glob("*.jpg"))[:count]:
        os.link(frame, subset / frame.name)
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(subset), str(out)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_stays_bounded_for_many_12_megapixel_frames(tmp_path):
    """120 frames of 4144x2822 (3.9 GiB decoded): the peak is under 500 MiB and the same as for 20 frames."""
    count, width, height = 120, 4144, 2822
    frames = tmp_path / "frames"
    frames.mkdir()
    sky = np.zeros((height, width, 3), np.uint8)
    cv2.circle(sky, (width // 2, height // 2), height // 2, (30, 25, 20), -1)
    rng = np.random.default_rng(1)
    for x, y in rng.integers((0, 0), (width, height), size=(300, 2)):
        cv2.circle(sky, (int(x), int(y)), 2, (255, 255, 255), -1)
    first = frames / "frame-0000.jpg"
    cv2.imwrite(str(first), sky, [cv2.IMWRITE_JPEG_QUALITY, 85])
    for i in range(1, count):
        os.link(first, frames / f"frame-{i:04d}.jpg")  # the same bytes, decoded anew each time
    few = _peak_memory(frames, 20, tmp_path / "few.mp4")
    many = _peak_memory(frames, count, tmp_path / "many.mp4")
    decoded_total_mib = count * width * height * 3 / 2**20
    assert (few["used"], many["used"]) == (20, count)
    assert many["self_kib"] / 1024 < 500 < decoded_total_mib / 8
    # Six times the frames, the same peak: nothing is kept per frame (100 kept frames even at the
    # 1/4-size decoding, 1036x706, would add 210 MiB).
    assert (many["self_kib"] - few["self_kib"]) / 1024 < 40
    assert many["ffmpeg_kib"] / 1024 < 500
    assert probe_video(tmp_path / "many.mp4")["frames"] == count


def test_jpegs_are_decoded_reduced_when_the_video_is_much_smaller(tmp_path):
    sky = np.zeros((2822, 4144, 3), np.uint8)
    cv2.circle(sky, (2072, 1411), 1400, (60, 50, 40), -1)
    for x in range(100, 4000, 300):
        cv2.circle(sky, (x, 1411), 6, (255, 255, 255), -1)
    path = tmp_path / "frame.jpg"
    cv2.imwrite(str(path), sky)
    assert [decode_reduction([path], w) for w in (0, 4144, 1920, 640, 500)] == [1, 1, 2, 4, 8]
    assert decode_reduction([tmp_path / "missing.jpg"], 640) == 1
    # What the video gets: the reduced decoding shrunk the rest of the way looks like the full one shrunk.
    reduced = cv2.resize(read_frame(path, reduce=4), (640, 436), interpolation=cv2.INTER_AREA)
    full = cv2.resize(read_frame(path), (640, 436), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - full).mean() < 1.5


def test_without_ffmpeg_the_timelapse_fails_with_the_reason(tmp_path, monkeypatch, capsys):
    store_night(tmp_path, [star_frame(20, 60)] * 3)
    config = write_minimal_config(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on it
    assert main(["timelapse", "2026-11-21", "--config", str(config), "--no-bus"]) == 1
    assert "ffmpeg is not installed (Debian package 'ffmpeg')" in capsys.readouterr().err
    assert not list((tmp_path / "allsky" / "2026-11-21" / "products").glob("*"))
