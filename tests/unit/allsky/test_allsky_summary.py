"""Night summary, thumbnails, the frame log and the product commands."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import cv2
import numpy as np
import pytest

from obsy.messages import AllskyFrame, CloudState
from obsy_allsky.products import framelog
from obsy_allsky.products.jobs import existing_products, product_path
from obsy_allsky.products.night import night_frames
from obsy_allsky.products.summary import frame_time
from obsy_allsky.products.thumbnails import thumbnail_path
from obsy_allsky.service import main
from tests.unit.allsky.test_allsky_products import star_frame, store_night, write_minimal_config

NIGHT = "2026-11-21"


def log_frames(night_dir, stars: list[int], sqm: list[float], clear: list[bool | None]) -> None:
    start = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    for i, (n, q, c) in enumerate(zip(stars, sqm, clear, strict=True)):
        taken = start + timedelta(minutes=i)
        frame = AllskyFrame(
            frame_id=taken.strftime("%Y%m%dT%H%M%S000Z"),
            night=NIGHT,
            exposure_s=30,
            stars=n,
            sqm=q,
            url="file:///x.jpg",
            timestamp=taken,
        )
        cloud = None if c is None else CloudState(clear=c, label="clear" if c else "cloudy")
        framelog.append(night_dir, framelog.frame_record(frame, cloud))


def test_summary_of_a_night_with_its_figures_sun_moon_and_products(tmp_path, capsys):
    night = store_night(tmp_path, [star_frame(20 + 3 * i, 60) for i in range(6)])
    log_frames(
        night,
        [100, 300, 200, 400, 0, 250],
        [20.1, 20.9, 20.5, 21.3, 18.0, 20.7],
        [True, True, None, False, False, True],
    )
    with open(night / framelog.FRAME_LOG, "a") as log:
        log.write('{"frame_id": "20261121T2006')  # cut short by a crash
    config = write_minimal_config(tmp_path)
    assert main(["keogram", NIGHT, "--config", str(config), "--no-bus"]) == 0
    assert main(["summary", NIGHT, "--config", str(config), "--no-bus"]) == 0
    assert "summary [" in capsys.readouterr().err
    summary = json.loads(product_path(tmp_path, NIGHT, "summary").read_text())
    assert summary["frames"] == 6 and summary["measured_frames"] == 6 and summary["frame_log_bad_lines"] == 1
    assert (
        summary["first_frame"] == "2026-11-21T20:00:00+00:00" and summary["last_frame"] == "2026-11-21T20:05:00+00:00"
    )
    assert summary["stars"] == {"min": 0, "median": 225.0, "max": 400, "mean": 208.3}
    assert summary["sqm"]["max"] == 21.3 and summary["sqm"]["median"] == 20.6
    assert summary["clear_fraction"] == 0.6 and summary["cloud_judged_frames"] == 5
    sunset, sunrise = (datetime.fromisoformat(summary["sun"][k]) for k in ("sunset", "sunrise"))
    assert datetime(2026, 11, 21, 14, 50, tzinfo=UTC) < sunset < datetime(2026, 11, 21, 15, 30, tzinfo=UTC)
    assert datetime(2026, 11, 22, 5, 50, tzinfo=UTC) < sunrise < datetime(2026, 11, 22, 6, 30, tzinfo=UTC)
    assert summary["moon"]["phase"] == "waxing gibbous" and 0.8 < summary["moon"]["illumination"] < 0.97
    assert summary["products"] == {"keogram": f"allsky/{NIGHT}/products/keogram.jpg"}
    assert summary["series"]["stars"] == [100, 300, 200, 400, 0, 250]
    card = cv2.imread(str(product_path(tmp_path, NIGHT, "summary").with_suffix(".jpg")))
    assert card.shape == (360, 640, 3) and card.std() > 5  # text and plot on the dark card
    products = product_path(tmp_path, NIGHT, "summary").parent
    assert cv2.imread(str(thumbnail_path(products, "summary.jpg"))).shape[1] == 320
    assert cv2.imread(str(thumbnail_path(products, "keogram.jpg"))) is not None


def test_summary_without_a_frame_log_says_unknown(tmp_path):
    store_night(tmp_path, [star_frame(20, 60)] * 3)
    config = write_minimal_config(tmp_path)
    assert main(["summary", NIGHT, "--config", str(config), "--no-bus"]) == 0
    summary = json.loads(product_path(tmp_path, NIGHT, "summary").read_text())
    assert summary["frames"] == 3 and summary["measured_frames"] == 0
    assert summary["stars"] is None and summary["sqm"] is None and summary["clear_fraction"] is None


def test_every_product_of_a_night_from_one_command(tmp_path, capsys):
    night = store_night(tmp_path, [star_frame(20 + 3 * i, 60) for i in range(5)])
    log_frames(night, [5, 9, 7, 1, 2], [20.0] * 5, [True] * 5)
    config = write_minimal_config(tmp_path)
    assert main(["products", NIGHT, "--config", str(config), "--no-bus"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 5 and "from 20261121T200100000Z.jpg" in out  # the panorama of the starriest frame
    written = existing_products(tmp_path, NIGHT)
    assert set(written) == {"keogram", "startrails", "timelapse", "panorama", "summary"}
    summary = json.loads(product_path(tmp_path, NIGHT, "summary").read_text())
    assert set(summary["products"]) == {"keogram", "startrails", "timelapse", "panorama"}  # made before it
    thumbs = {p.name for p in (product_path(tmp_path, NIGHT, "summary").parent / "thumbs").iterdir()}
    assert thumbs == {"keogram.jpg", "startrails.jpg", "timelapse.jpg", "panorama.jpg", "summary.jpg"}
    panorama = cv2.imread(str(product_path(tmp_path, NIGHT, "panorama")))
    assert panorama.shape == (512, 2048, 3)


def test_thumbnails_of_the_frames_that_have_none(tmp_path, capsys):
    night = store_night(tmp_path, [np.full((240, 640, 3), 90, np.uint8)] * 4)
    frames = night_frames(night)
    (night / "thumbs").mkdir()
    (night / "thumbs" / frames[0].name).write_bytes(b"made earlier")
    config = write_minimal_config(tmp_path)
    assert main(["thumbnails", NIGHT, "--config", str(config), "--no-bus"]) == 0
    assert "3 written; skipped: 1 already there" in capsys.readouterr().out
    for frame in frames[1:]:
        assert cv2.imread(str(thumbnail_path(night, frame.name))).shape == (120, 320, 3)
    assert night_frames(night) == frames  # thumbnails are not taken for frames


def test_product_commands_name_what_is_wrong(tmp_path, capsys):
    config = write_minimal_config(tmp_path)
    assert main(["timelapse", "2026-11-30", "--config", str(config), "--no-bus"]) == 1
    assert "no frames in" in capsys.readouterr().err
    store_night(tmp_path, [star_frame(20, 60)])
    assert main(["panorama", NIGHT, "--frame", "nope", "--config", str(config), "--no-bus"]) == 1
    assert "no frame 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["keogram", "21.11.2026", "--config", str(config), "--no-bus"])
    assert "is not a date YYYY-MM-DD" in capsys.readouterr().err


def test_frame_log_keeps_the_cloud_verdict_and_skips_damaged_lines(tmp_path):
    frame = AllskyFrame(frame_id="f1", night=NIGHT, exposure_s=1, stars=3, url="file:///f1.jpg")
    framelog.append(tmp_path, framelog.frame_record(frame, CloudState(clear=False, cloud_cover=80)))
    framelog.append(tmp_path, framelog.frame_record(frame, None))
    (tmp_path / framelog.FRAME_LOG).open("a").write("[1, 2]\nnot json\n")
    log = framelog.read(tmp_path)
    assert [(r["clear"], r["cloud_cover"]) for r in log.records] == [(False, 80), (None, None)]
    assert log.bad_lines == 2
    assert framelog.read(tmp_path / "nowhere").records == []
    assert frame_time("20261121T200102345Z") == datetime(2026, 11, 21, 20, 1, 2, 345000, tzinfo=UTC)
    assert frame_time("keogram") is None and date.fromisoformat(NIGHT)
