"""A bridged site's plan and nights at the centre, through the API (SQLite and Postgres).

The site's messages arrive on the central broker under its prefix (``sites/north/…``), as its bridge
delivers them; its night products by its uploader (``obsy.upload``). The centre draws its plan's
altitude curves from where the site is (its plan names it; else ``web.sites``), sums up its nights
from its rows stored here (the night turning at its own local noon), and lists and serves its night
products once they have arrived, never this site's.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from obsy.messages import AllskyFrame, Event, PlannedBlock, PlanSite, SchedulerPlan, Target, TargetList
from obsy.upload import UploadQueue
from tests.integration.fleet.test_fleet_uploads import site_token, uploader
from tests.support.watcher import Watcher
from tests.support.web_server import web_on

pytestmark = pytest.mark.integration

NIGHT = "2026-08-10"
#: NGC 7000 (dec +44.5): culminates at 90 - |latitude - 44.5| degrees.
NGC7000 = Target(id="ngc7000", name="North America Nebula", ra_deg=314.75, dec_deg=44.5)
SITES = [
    {"prefix": "sites/north"},  # its plan names where it is: Chile (latitude -31), America/Santiago
    {"prefix": "sites/south", "latitude": 60.0, "longitude": 10.0},  # its plan names nothing: web.sites does
    {"prefix": "sites/east"},  # nothing names where it is
]


def plan(site: PlanSite | None) -> str:
    start = datetime(2026, 8, 10, 20, 0, tzinfo=UTC)
    block = PlannedBlock(target_id=NGC7000.id, target_name=NGC7000.name, start=start, end=start + timedelta(hours=2))
    return SchedulerPlan(
        night=NIGHT, site=site, dark_start=start, dark_end=start + timedelta(hours=16), blocks=[block]
    ).to_json()


def event(kind: str, when: datetime, **data) -> str:
    return Event(service="mcp", kind=kind, message=kind, data=data, timestamp=when).to_json()


def jpeg(grey: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (32, 24), grey).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.long(seconds=30)
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_bridged_sites_plan_nights_and_products_are_shown_for_it(tmp_path, database):
    (tmp_path / "centre").mkdir()
    with web_on(database, tmp_path / "centre", {"vera": "viewer"}, sites=SITES) as web:
        local = web.config.broker.prefix
        bus = Watcher(web.broker.port, [f"{local}/#"])
        try:
            targets = TargetList(targets=[NGC7000]).to_json()
            chile = PlanSite(latitude=-31.0, longitude=-70.7, elevation=2200, timezone="America/Santiago")
            for prefix, where in (("sites/north", chile), ("sites/south", None), ("sites/east", None)):
                bus.publish(f"{prefix}/web/targets", targets, retain=True)
                bus.publish(f"{prefix}/scheduler/plan", plan(where), retain=True)
            # North's night, in Santiago (UTC-4): the roof opened at 06:00 and closed for rain at 10:00 local,
            # before its local noon, but after noon UTC (a night turning at noon UTC would still have it open).
            opened, closed = datetime(2026, 8, 11, 10, 0, tzinfo=UTC), datetime(2026, 8, 11, 14, 0, tzinfo=UTC)
            bus.publish("sites/north/mcp/events", event("roof_opened", opened))
            bus.publish("sites/north/mcp/events", event("roof_closed", closed, reason="rain sensor wet"))
            for n in range(3):
                frame = AllskyFrame(
                    frame_id=f"north-{n}", night=NIGHT, exposure_s=10, url=f"file:///x/{n}.jpg", timestamp=opened
                )
                bus.publish("sites/north/allsky/frames", frame.to_json())
            # This site's own night: one frame, no roof.
            frame = AllskyFrame(frame_id="local-0", night=NIGHT, exposure_s=10, url="file:///y/0.jpg", timestamp=opened)
            bus.publish(f"{local}/allsky/frames", frame.to_json())
        finally:
            bus.close()

        vera = web.login("vera")
        # --- the plan's altitudes, seen from each site ---------------------------------------------
        north = web.wait_until(
            lambda: (
                (r := vera.get("/api/v1/plan/tonight/altitudes", params={"site": "north"})).status_code == 200
                and r.json()
            ),
            timeout=30,
        )
        (curve,) = north["targets"]
        assert curve["id"] == NGC7000.id and curve["name"] == NGC7000.name
        assert 13.5 < max(curve["altitudes"]) <= 14.6  # from latitude -31: 14.5 degrees at most
        south = web.wait_until(
            lambda: (
                (r := vera.get("/api/v1/plan/tonight/altitudes", params={"site": "south"})).status_code == 200
                and r.json()
            ),
            timeout=30,
        )
        assert 73.5 < max(south["targets"][0]["altitudes"]) <= 74.6  # web.sites' latitude 60
        east = web.wait_until(
            lambda: (r := vera.get("/api/v1/plan/tonight/altitudes", params={"site": "east"})).status_code != 404 and r,
            timeout=30,
        )
        assert east.status_code == 422 and "east" in east.json()["detail"] and "position" in east.json()["detail"]
        assert vera.get("/api/v1/plan/tonight/altitudes", params={"site": "nowhere"}).status_code == 404

        # --- the night summary from north's rows, its night turning at its own noon ------------------
        summary = web.wait_until(
            lambda: (
                (s := vera.get(f"/api/v1/nights/{NIGHT}/summary", params={"site": "north"}).json())["allsky"]["frames"]
                == 3
                and s["roof"]["spans"]
                and s["roof"]["spans"][-1]["closed"]
                and s
            ),
            timeout=30,
        )
        assert summary["site"] == "north"
        assert summary["roof"]["open_s"] == 4 * 3600 and not summary["roof"]["still_open"]
        assert summary["roof"]["spans"][0]["cause"] == "rain"
        assert summary["sent_at"] is None
        mine = vera.get(f"/api/v1/nights/{NIGHT}/summary").json()
        assert mine["roof"]["spans"] == [] and mine["allsky"]["frames"] == 1

        # --- night products: none until north's uploader sends them; then listed and served ----------
        assert vera.get(f"/api/v1/allsky/nights/{NIGHT}/products", params={"site": "north"}).json() == []
        site_data = tmp_path / "north"
        products = site_data / "allsky" / NIGHT / "products"
        (products / "thumbs").mkdir(parents=True)
        (products / "keogram.jpg").write_bytes(jpeg(200))
        (products / "thumbs" / "keogram.jpg").write_bytes(jpeg(100))
        local_keogram = web.data_dir / "allsky" / NIGHT / "products" / "keogram.jpg"
        local_keogram.parent.mkdir(parents=True)
        local_keogram.write_bytes(jpeg(30))
        queue = UploadQueue(site_data / "upload-queue")
        for path in (products / "keogram.jpg", products / "thumbs" / "keogram.jpg"):
            queue.put(path, path.relative_to(site_data).as_posix())
        token = site_token(web)
        sender = uploader(web, queue, token).start()
        try:
            web.wait_until(lambda: len(sender.queue) == 0, timeout=30)
        finally:
            sender.stop()
        (product,) = vera.get(f"/api/v1/allsky/nights/{NIGHT}/products", params={"site": "north"}).json()
        assert product["kind"] == "keogram"
        assert product["url"] == f"/api/v1/allsky/nights/{NIGHT}/products/products/keogram.jpg?site=north"
        assert vera.get(product["url"]).content == (products / "keogram.jpg").read_bytes()
        assert vera.get(product["thumbnail"]).content == (products / "thumbs" / "keogram.jpg").read_bytes()
        (here,) = vera.get(f"/api/v1/allsky/nights/{NIGHT}/products").json()  # this site's own keogram
        assert vera.get(here["url"]).content == local_keogram.read_bytes()
        for bad in ("../../../obsy.sqlite3", ".uploads/x.jpg", "products/none.jpg"):
            url = f"/api/v1/allsky/nights/{NIGHT}/products/{bad}"
            assert vera.get(url, params={"site": "north"}).status_code == 404, bad
        # The allsky summary card's figures: not found until north sends its summary.json, then north's.
        summary_url = f"/api/v1/allsky/nights/{NIGHT}/summary"
        assert vera.get(summary_url, params={"site": "north"}).status_code == 404
        figures = {"night": NIGHT, "frames": 412, "clear_fraction": 0.63}
        (products / "summary.json").write_text(json.dumps(figures))
        (web.data_dir / "allsky" / NIGHT / "products" / "summary.json").write_text(json.dumps({"frames": 7}))
        queue.put(products / "summary.json", f"allsky/{NIGHT}/products/summary.json")
        sender = uploader(web, queue, token).start()
        try:
            web.wait_until(lambda: len(sender.queue) == 0, timeout=30)
        finally:
            sender.stop()
        assert vera.get(summary_url, params={"site": "north"}).json() == figures
        assert vera.get(summary_url).json() == {"frames": 7}  # this site's own, untouched
        listed = vera.get(f"/api/v1/allsky/nights/{NIGHT}/products", params={"site": "north"}).json()
        assert [p["kind"] for p in listed] == ["keogram"]  # the summary is a document, not a product picture
        # No other document is taken: the upload route refuses it, naming what it takes.
        with web.client() as site_client:
            refused = site_client.head(
                f"/api/v1/sites/north/uploads/allsky/{NIGHT}/notes.json", headers={"Authorization": f"Bearer {token}"}
            )
        assert refused.status_code == 422
