"""The allsky service's product hook, with the CCD simulator: frame thumbnails and log, the catch-up build."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import cv2
import pytest

from obsy.messages import AllskyProgress
from obsy_allsky.products import framelog
from obsy_allsky.products.jobs import existing_products, product_path
from obsy_allsky.products.thumbnails import thumbnail_path
from obsy_allsky.storage import FrameStore, encode_jpeg
from tests.integration.allsky.test_allsky_service import Running, frames, indiserver, watcher  # noqa: F401 (fixtures)
from tests.unit.allsky.test_allsky_products import star_frame

pytestmark = pytest.mark.integration

PROGRESS = "obsy/allsky/progress"


def test_the_service_keeps_frame_extras_and_catches_up_an_unfinished_night(tmp_path, mosquitto, indiserver, watcher):  # noqa: F811
    earlier = date(2026, 1, 10)
    running = Running(
        tmp_path,
        mosquitto,
        indiserver,
        products={"nightly": ["keogram", "timelapse", "summary"], "thumbnail_width": 64},
    )
    store = FrameStore(running.config.data_dir)
    for i in range(4):  # a night the service was not running at the end of
        store.save(
            earlier, datetime(2026, 1, 10, 21, tzinfo=UTC) + timedelta(minutes=i), encode_jpeg(star_frame(30 + i, 60))
        )
    with running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 2, timeout=60)

        def summary_done(_messages) -> bool:
            sent = [AllskyProgress.model_validate_json(m.payload) for m in watcher.on(PROGRESS)]
            return any(p.job == "summary" and p.night == "2026-01-10" and p.status == "done" for p in sent)

        watcher.wait_for(summary_done, timeout=60)
    assert set(existing_products(running.config.data_dir, earlier)) == {"keogram", "timelapse", "summary"}
    assert json.loads(product_path(running.config.data_dir, earlier, "summary").read_text())["frames"] == 4

    published = frames(watcher)
    night_dir = running.config.data_dir / "allsky" / published[0].night
    records = {r["frame_id"]: r for r in framelog.read(night_dir).records}
    for frame in published:
        assert records[frame.frame_id]["stars"] == frame.stars and records[frame.frame_id]["sqm"] == frame.sqm
        thumb = cv2.imread(str(thumbnail_path(night_dir, f"{frame.frame_id}.jpg")))
        assert thumb.shape[1] == 64
