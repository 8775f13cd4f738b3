"""The dashboard's pages for a bridged site at the centre (``?site=<id>``): the API's picture URLs,
the pages' banner and links, local-only controls and routes, who may open them; and, in Chromium,
a bridged site's Weather and Allsky pages showing that site's rows and pictures, never this site's.

The bridged site's messages arrive on the central broker under its prefix (``sites/north/…``),
as its Mosquitto bridge delivers them; its pictures come by its uploader (``obsy.upload``).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from obsy.messages import AllskyFrame, AllskyStreak, Reading, WeatherState
from obsy.upload import UploadQueue
from tests.integration.fleet.test_fleet_uploads import site_token, uploader
from tests.integration.web.test_web_browser import CHROMIUM, log_in, playwright_api
from tests.integration.web.test_web_fleet_browser import browser  # noqa: F401 (the Chromium fixture)
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb, web_on

pytestmark = pytest.mark.integration
SITES = [{"prefix": "sites/north", "name": "North roof"}, {"prefix": "sites/south"}]
NIGHT = datetime.now(UTC).date().isoformat()
NORTH_FRAME, NORTH_WAITING, LOCAL_FRAME = "north-0001", "north-0002", "local-0001"


def jpeg(path: Path, grey: int) -> Path:
    """A small real JPEG (the browser must be able to draw it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("L", (64, 48), grey).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def frame(frame_id: str, url: str, minutes_ago: int) -> str:
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return AllskyFrame(frame_id=frame_id, night=NIGHT, exposure_s=10.0, url=url, timestamp=when).to_json()


def weather(quantity: str, value: float) -> str:
    now = datetime.now(UTC)
    return WeatherState(readings={quantity: Reading(value=value, unit="x", measured_at=now)}, timestamp=now).to_json()


def north_and_local_rows(web: RunningWeb, site_data: Path) -> Path:
    """North's picture of NORTH_FRAME sent by its uploader; frames and readings of north and of this site
    published as the bridge and this site's services do. Returns north's picture."""
    picture = jpeg(site_data / "allsky" / NIGHT / f"{NORTH_FRAME}.jpg", 200)
    queue = UploadQueue(site_data / "upload-queue")
    queue.put(picture, f"allsky/{NIGHT}/{picture.name}")
    sender = uploader(web, queue, site_token(web)).start()
    try:
        web.wait_until(lambda: len(sender.queue) == 0, timeout=30)
    finally:
        sender.stop()
    local_picture = jpeg(web.data_dir / "allsky" / NIGHT / f"{LOCAL_FRAME}.jpg", 40)
    # North's streak names a crop on north's disk at a path that is also a file of this site.
    crop = local_picture.resolve().as_uri()
    streak = AllskyStreak(
        frame_id=NORTH_FRAME,
        night=NIGHT,
        kind="meteor",
        start=(1, 1),
        end=(9, 9),
        length_px=11.3,
        snr=9,
        steadiness=0.1,
        fade=0.5,
        exposure_s=10.0,
        crop_url=crop,
    )
    local = web.config.broker.prefix
    publisher = Watcher(web.broker.port, [f"{local}/#"])
    try:
        publisher.publish("sites/north/allsky/frames", frame(NORTH_FRAME, picture.resolve().as_uri(), 2))
        publisher.publish("sites/north/allsky/frames", frame(NORTH_WAITING, f"file:///x/{NORTH_WAITING}.jpg", 1))
        publisher.publish("sites/north/allsky/streaks", streak.to_json())
        publisher.publish("sites/north/weather/state", weather("north_humidity", 71.5))
        publisher.publish(f"{local}/allsky/frames", frame(LOCAL_FRAME, local_picture.resolve().as_uri(), 3))
        publisher.publish(f"{local}/weather/state", weather("local_temperature", 3.5))
        for prefix, who in (("sites/north", "north"), (local, "local")):
            publisher.publish(f"{prefix}/imaging/state", json.dumps({"state": "idle", "said_by": who}), retain=True)
    finally:
        publisher.close()
    return picture


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_api_gives_picture_urls_that_work_for_the_site_shown(tmp_path, database):
    (tmp_path / "centre").mkdir()
    with web_on(database, tmp_path / "centre", {"vera": "viewer"}, sites=SITES) as web:
        picture = north_and_local_rows(web, tmp_path / "north")
        vera = web.login("vera")
        north = web.wait_until(
            lambda: (page := vera.get("/api/v1/allsky/images", params={"site": "north"}).json())["total"] == 2 and page,
            timeout=30,
        )
        files = {item["frame_id"]: item["file"] for item in north["items"]}
        # The arrived picture's URL names the site and serves its bytes; the other has not arrived: no URL.
        assert files == {NORTH_FRAME: f"/api/v1/allsky/images/{NORTH_FRAME}/file?site=north", NORTH_WAITING: None}
        assert vera.get(files[NORTH_FRAME]).content == picture.read_bytes()
        latest = vera.get("/api/v1/allsky/images/latest", params={"site": "north"}).json()
        assert latest["frame_id"] == NORTH_WAITING and latest["file"] is None
        # This site's frames: their own URL, without a site, serving this site's file.
        here = web.wait_until(lambda: vera.get("/api/v1/allsky/images").json()["items"], timeout=30)
        local_file = f"/api/v1/allsky/images/{LOCAL_FRAME}/file"
        assert [(i["frame_id"], i["file"]) for i in here] == [(LOCAL_FRAME, local_file)]
        assert vera.get(local_file).content == (web.data_dir / "allsky" / NIGHT / f"{LOCAL_FRAME}.jpg").read_bytes()
        # North's crop path is a file here too, but it is north's disk it names: no crop URL.
        streaks = web.wait_until(
            lambda: vera.get(f"/api/v1/allsky/nights/{NIGHT}/streaks", params={"site": "north"}).json(), timeout=30
        )
        assert [(s["frame_id"], s["crop"]) for s in streaks] == [(NORTH_FRAME, None)]
        # What each site's imaging service said last (its retained state), by the site asked for.
        said = web.wait_until(
            lambda: vera.get("/api/v1/imaging/state", params={"site": "north"}).json()["imaging"], timeout=30
        )
        assert said["said_by"] == "north"
        assert vera.get("/api/v1/imaging/state").json()["imaging"]["said_by"] == "local"
        # A route that shows this site only refuses another site rather than answering with this site's data.
        refused = vera.get("/api/v1/targets", params={"site": "north"})
        assert refused.status_code == 422
        assert "site=" in refused.json()["detail"] and "north" in refused.json()["detail"]
        assert vera.get("/api/v1/plan/tonight/files.zip", params={"site": "north"}).status_code == 422
        assert vera.get("/api/v1/targets", params={"site": web.config.site_id()}).status_code == 200


def test_pages_show_the_chosen_site_and_hide_this_sites_controls(tmp_path):
    with web_on("sqlite", tmp_path, {"otto": "operator"}, sites=SITES) as web:
        web.add_user("northop", "operator", sites=["north"])
        with web.login("otto") as otto:
            for path in ("/", "/weather", "/allsky", "/imaging", "/plan", "/events", "/imaging/targets/M31"):
                page = otto.get(path, params={"site": "north"})
                assert page.status_code == 200, path
                assert 'id="site-banner"' in page.text and "North roof" in page.text, path
                assert '<meta name="obsy-site" content="north">' in page.text, path
                assert 'href="/weather?site=north"' in page.text and 'href="/targets"' in page.text, path
            overview = otto.get("/", params={"site": "north"}).text
            assert 'id="commands"' not in overview and 'href="/sites/north"' in overview
            assert 'id="commands"' in otto.get("/").text  # this site: its commands
            assert 'id="build-masters"' not in otto.get("/imaging", params={"site": "north"}).text
            assert 'id="build-masters"' in otto.get("/imaging").text
            assert 'id="site-banner"' not in otto.get("/", params={"site": web.config.site_id()}).text
            assert 'id="site-banner"' not in otto.get("/targets", params={"site": "north"}).text
            missing = otto.get("/weather", params={"site": "nowhere"})
            assert missing.status_code == 404 and "north" in missing.json()["detail"]
            site_page = otto.get("/sites/north").text
            assert 'href="/allsky?site=north"' in site_page and 'href="/weather?site=north"' in site_page
        with web.login("northop") as northop:
            assert northop.get("/allsky", params={"site": "north"}).status_code == 200
            refused = northop.get("/allsky", params={"site": "south"})
            assert refused.status_code == 403 and "north" in refused.json()["detail"]
            assert northop.get("/allsky").status_code == 403  # this site is not one of its sites


@pytest.mark.slow
@pytest.mark.long(seconds=60)
def test_a_bridged_sites_weather_and_allsky_pages_in_a_browser(browser, tmp_path):  # noqa: F811
    assert CHROMIUM is not None
    expect = playwright_api.expect
    (tmp_path / "centre").mkdir()
    with web_on("sqlite", tmp_path / "centre", {"vera": "viewer"}, sites=SITES) as web:
        north_and_local_rows(web, tmp_path / "north")
        with web.login("vera") as vera:
            web.wait_until(lambda: vera.get("/api/v1/allsky/images", params={"site": "north"}).json()["total"] == 2, 30)
            web.wait_until(lambda: vera.get("/api/v1/weather/quantities").json(), 30)
        page = log_in(browser, web, "vera")
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{web.url}/fleet")
        page.locator('tr[data-site="north"] a.site-page', has_text="weather").click()
        page.wait_for_url(f"{web.url}/weather?site=north")
        expect(page.locator("#site-banner")).to_contain_text("North roof")
        expect(page.locator("#charts")).to_contain_text("north humidity", timeout=15_000)
        expect(page.locator("#charts")).not_to_contain_text("local temperature")

        page.locator("nav a", has_text="Allsky").click()
        page.wait_for_url(f"{web.url}/allsky?site=north")
        arrived = page.locator(f'#gallery figure[data-frame="{NORTH_FRAME}"] img')
        expect(arrived).to_have_attribute("src", f"/api/v1/allsky/images/{NORTH_FRAME}/file?site=north", timeout=15_000)
        page.wait_for_function("(img) => img.complete && img.naturalWidth === 64", arg=arrived.element_handle())
        expect(page.locator(f'#gallery figure[data-frame="{NORTH_WAITING}"]')).to_contain_text("not arrived yet")
        expect(page.locator(f'#gallery figure[data-frame="{LOCAL_FRAME}"]')).to_have_count(0)
        expect(page.locator("#streaks")).to_contain_text("meteor")
        page.screenshot(path=tmp_path / "north-allsky.png", full_page=True)

        # North's overview: its newest picture and link state, none of this site's commands.
        page.locator("nav a", has_text="Overview").click()
        page.wait_for_url(f"{web.url}/?site=north")
        expect(page.locator("#live-status")).to_contain_text("site north", timeout=15_000)
        expect(page.locator("#allsky-latest")).to_have_attribute(
            "src", f"/api/v1/allsky/images/{NORTH_WAITING}/file?site=north"
        )
        expect(page.locator("#commands")).to_have_count(0)
        # North's imaging state, as its imaging service said it.
        page.locator("nav a", has_text="Imaging").click()
        page.wait_for_url(f"{web.url}/imaging?site=north")
        expect(page.locator("#site-banner")).to_contain_text("North roof")
        assert errors == []

        # Back to this site (the same page), then its Allsky page: its own frame, no banner.
        page.locator("#site-back").click()
        page.wait_for_url(f"{web.url}/imaging")
        expect(page.locator("#site-banner")).to_have_count(0)
        page.locator("nav a", has_text="Allsky").click()
        page.wait_for_url(f"{web.url}/allsky")
        expect(page.locator(f'#gallery figure[data-frame="{LOCAL_FRAME}"]')).to_have_count(1, timeout=15_000)
        expect(page.locator(f'#gallery figure[data-frame="{NORTH_FRAME}"]')).to_have_count(0)
        expect(page.locator("#site-banner")).to_have_count(0)
