"""Keogram and star trails from a night of stored frames; progress of product jobs."""

from __future__ import annotations

import io
import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from obsy_allsky.pipeline.output import encode_png
from obsy_allsky.products.jobs import product_path
from obsy_allsky.products.night import keogram, night_frames, star_trails
from obsy_allsky.products.progress import JobCancelledError, JobProgress, terminal_bar
from obsy_allsky.service import main
from obsy_allsky.storage import FrameStore, encode_jpeg

NIGHT = date(2026, 11, 21)


def store_night(tmp_path, frames: list[np.ndarray]):
    store = FrameStore(tmp_path)
    start = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    for i, image in enumerate(frames):
        store.save(NIGHT, start + timedelta(minutes=i), encode_jpeg(image, quality=95))
    return store.night_dir(NIGHT)


def star_frame(x: int, y: int, sky: int = 10) -> np.ndarray:
    image = np.full((120, 160, 3), sky, np.uint8)
    cv2.circle(image, (x, y), 2, (255, 255, 255), -1)
    return image


def test_star_trails_draw_the_path_and_leave_out_bright_frames(tmp_path):
    frames = [star_frame(20 + 3 * i, 60) for i in range(37)]  # a star moving 3 px a frame
    frames.insert(5, np.full((120, 160, 3), 230, np.uint8))  # dawn, or the lights of a car
    night = store_night(tmp_path, frames)
    product = star_trails(night_frames(night))
    assert product.used == 37 and product.skipped == {"too bright": 1}
    row = product.image[60, :, 1]
    assert (row[20:129] > 150).all()  # one unbroken line from the first position to the last
    assert product.image[20, 80].max() < 40  # the sky stays dark


def test_keogram_has_one_column_per_frame_in_time_order(tmp_path):
    frames = [np.full((120, 160, 3), 20 * i, np.uint8) for i in range(10)]  # the night brightening
    night = store_night(tmp_path, frames)
    (night / "20261121T230000000Z.jpg").write_bytes(b"broken")  # a damaged file among them
    seen = []
    product = keogram(night_frames(night), progress=lambda done, total: seen.append((done, total)))
    assert product.image.shape == (120, 10, 3)
    assert product.used == 10 and product.skipped == {"unreadable": 1}
    assert np.all(np.diff(product.image[60, :, 0].astype(int)) > 10)
    assert seen[0] == (1, 11) and seen[-1] == (11, 11)  # after each file, used or skipped


def test_png_frames_count_and_the_fits_beside_them_do_not(tmp_path):
    """A night stored as PNG (``pipeline.output.format: png``, 8 or 16 bits) with FITS files beside the frames."""
    store = FrameStore(tmp_path)
    start = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    levels = [20 * i for i in range(6)]
    for i, level in enumerate(levels):
        image = np.full((120, 160, 3), level, np.uint8)
        data = encode_png(image) if i % 2 else encode_png(image.astype(np.uint16) * 257)  # 16-bit every other
        store.save(NIGHT, start + timedelta(minutes=i), data, "png", fits_bytes=b"raw", linear_fits=b"linear")
    frames = night_frames(store.night_dir(NIGHT))
    assert [p.suffix for p in frames] == [".png"] * 6
    product = keogram(frames)
    assert product.used == 6 and product.skipped == {}
    assert product.image[60, :, 0].tolist() == levels  # 16-bit frames read at 8 bits, in time order


def test_products_of_an_empty_night_are_empty(tmp_path):
    assert keogram([]).image is None and star_trails([]).image is None


def write_minimal_config(tmp_path) -> Path:
    path = tmp_path / "obsy.yaml"
    path.write_text(f"site:\n  latitude: 48.2\n  longitude: 16.4\ndata_dir: {tmp_path}\n")
    return path


def test_cli_builds_products_with_a_progress_bar(tmp_path, capsys):
    store_night(tmp_path, [star_frame(20 + 3 * i, 60) for i in range(8)])
    config = write_minimal_config(tmp_path)
    assert main(["star-trails", "2026-11-21", "--config", str(config), "--no-bus"]) == 0
    assert main(["keogram", "2026-11-21", "--config", str(config), "--no-bus"]) == 0
    captured = capsys.readouterr()
    assert "startrails [" in captured.err and "8/8 100%" in captured.err
    keogram_image = cv2.imread(str(product_path(tmp_path, "2026-11-21", "keogram")))
    assert keogram_image.shape == (120, 8, 3)
    assert cv2.imread(str(product_path(tmp_path, "2026-11-21", "startrails"))) is not None
    # Products are not taken for frames the next time round.
    assert len(night_frames(tmp_path / "allsky" / "2026-11-21")) == 8
    assert main(["keogram", "2026-11-22", "--config", str(config), "--no-bus"]) == 1
    assert "no frames in" in capsys.readouterr().err
    # Every frame brighter than a threshold this low: no star trails, and the reason.
    assert main(["star-trails", "2026-11-21", "--max-brightness", "0.001", "--config", str(config), "--no-bus"]) == 1
    err = capsys.readouterr().err
    assert "no usable frame" in err and "8 too bright" in err


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_job_progress_reports_percent_and_time_left_throttled(caplog):
    clock, sent, drawn = FakeClock(), [], []
    progress = JobProgress(
        "timelapse",
        "2026-11-21",
        publish=sent.append,
        draw=lambda d, t, eta: drawn.append((d, t, eta)),
        log_interval_s=10,
        publish_interval_s=1,
        clock=clock,
    )
    with caplog.at_level(logging.INFO, logger="obsy.allsky.products"):
        progress.start(100)
        for done in range(1, 101):
            clock.now += 0.25  # 4 frames a second
            progress(done, 100)
        progress.finish("allsky/2026-11-21/products/timelapse.mp4", "100 frames")
    assert len(drawn) == 100 and drawn[49] == (50, 100, pytest.approx(12.5))  # every frame drawn
    assert sent[0].status == "running" and sent[0].done == 0 and sent[0].total == 100 and sent[0].eta_s is None
    running = sent[1:-1]
    assert 20 <= len(running) <= 26  # about one a second over 25 s, not one per frame
    assert all(m.eta_s == pytest.approx(0.25 * (100 - m.done), abs=0.1) for m in running)
    assert [m.done for m in running] == sorted(m.done for m in running)
    assert sent[-1].status == "done" and sent[-1].percent == 100 and sent[-1].eta_s is None
    assert sent[-1].output == "allsky/2026-11-21/products/timelapse.mp4"
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "timelapse of 2026-11-21: 100 frames"
    assert "timelapse of 2026-11-21: 40/100 frames (40 %), about 0:15 left" in lines
    assert lines[-1].startswith("timelapse of 2026-11-21 done in 25.0 s")


def test_job_progress_stops_the_job_and_survives_a_failing_publisher():
    stop = threading.Event()

    def broken(_message):
        raise ConnectionError("broker gone")

    progress = JobProgress("keogram", "2026-11-21", publish=broken, stop=stop)
    progress.start(3)
    progress(1, 3)
    stop.set()
    with pytest.raises(JobCancelledError):
        progress(2, 3)
    progress.finish(None, "cancelled")
    assert progress.message("failed").status == "failed" and progress.note == "cancelled"


def test_terminal_bar_draws_percent_and_time_left():
    stream = io.StringIO()
    draw = terminal_bar("keogram", width=10, stream=stream)
    draw(3, 12, 75.0)
    draw(12, 12, 0.0)
    assert stream.getvalue() == "\rkeogram [##........] 3/12  25%  ETA 1:15  \rkeogram [##########] 12/12 100%  \n"
