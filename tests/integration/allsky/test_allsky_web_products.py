"""The web service lists and serves the night products the allsky commands write."""

from __future__ import annotations

import shutil

import pytest

from obsy_allsky.service import main
from tests.support.mosquitto import MosquittoBroker
from tests.support.web_server import RunningWeb
from tests.unit.allsky.test_allsky_products import star_frame, store_night

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"),
]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web-products")
    broker = MosquittoBroker(workdir)
    broker.start()
    server = RunningWeb(workdir, broker, f"sqlite:///{workdir / 'obsy.sqlite3'}").start()
    server.add_user("vera", "viewer")
    try:
        yield server
    finally:
        server.stop()
        broker.stop()


def test_every_product_of_a_night_is_listed_with_its_thumbnail_and_served(web):
    store_night(web.data_dir, [star_frame(20 + 3 * i, 60) for i in range(6)])
    assert main(["products", "2026-11-21", "--config", str(web.config_path)]) == 0
    legacy = web.data_dir / "allsky" / "2026-11-21" / "star-trails.jpg"  # where an older version left it
    shutil.copy(web.data_dir / "allsky" / "2026-11-21" / "products" / "startrails.jpg", legacy)
    with web.login("vera") as viewer:
        products = viewer.get("/api/v1/allsky/nights/2026-11-21/products").json()
        assert sorted((p["kind"], p["name"]) for p in products) == [
            ("keogram", "keogram.jpg"),
            ("panorama", "panorama.jpg"),
            ("startrails", "star-trails.jpg"),
            ("startrails", "startrails.jpg"),
            ("summary", "summary.jpg"),
            ("timelapse", "timelapse.mp4"),
        ]
        for product in products:
            reply = viewer.get(product["url"])
            assert reply.status_code == 200 and len(reply.content) > 100, product
            if product["name"] == "star-trails.jpg":
                assert product["thumbnail"] is None
            else:
                thumb = viewer.get(product["thumbnail"])
                assert thumb.status_code == 200 and thumb.content.startswith(b"\xff\xd8"), product
        video = next(p for p in products if p["kind"] == "timelapse")
        assert viewer.get(video["url"]).headers["content-type"] == "video/mp4"
        summary = viewer.get("/api/v1/allsky/nights/2026-11-21/summary").json()
        assert summary["frames"] == 6 and set(summary["products"]) == {"keogram", "startrails", "timelapse", "panorama"}
        missing = viewer.get("/api/v1/allsky/nights/2026-11-22/summary")
        assert missing.status_code == 404 and "no summary for the night 2026-11-22" in missing.json()["detail"]
        assert viewer.get("/api/v1/allsky/nights/2026-11-22/products").json() == []
        (web.data_dir / "allsky" / "2026-11-22" / "products").mkdir(parents=True)
        (web.data_dir / "allsky" / "2026-11-22" / "products" / "summary.json").write_text("{cut short")
        damaged = viewer.get("/api/v1/allsky/nights/2026-11-22/summary")
        assert damaged.status_code == 500 and "cannot be read" in damaged.json()["detail"]
