"""The target page's API on real Postgres and on the SQLite default: a night of one target published on
a real Mosquitto as the imaging service publishes it (graded lights, calibrations, a live stack, a
night stack; FITS files in the repository), against its plan kept here.

Checked against the night's truth (tests/support/target_page.py): the counts and integration per
filter against the plan, the frame grid's grades, the stacks' FITS served byte for byte, and the
lights' previews drawn from their FITS: the star where it is, the sky where the screen transfer
function puts it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.support.target_page import PLANS, SHAPE, publish_target_night
from tests.support.watcher import Watcher
from tests.support.web_databases import database_url, migrated_engine  # noqa: F401 (fixtures)
from tests.support.web_server import web_on

pytestmark = pytest.mark.integration

BASE = "/api/v1/imaging/targets"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def web(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"web-targets-{request.param}")
    with web_on(request.param, workdir, {"vera": "viewer", "otto": "operator"}) as server:
        yield server


@pytest.fixture(scope="module")
def night(web):
    """The night published (twice: a repeated delivery is stored once) and the plan of its target."""
    watcher = Watcher(web.broker.port, ["obsy/imaging/#"])
    repository = web.data_dir / "imaging" / "repository"
    try:
        truth = publish_target_night(lambda topic, payload: watcher.publish(f"obsy/{topic}", payload), repository)
        publish_target_night(lambda topic, payload: watcher.publish(f"obsy/{topic}", payload), repository)
        watcher.publish("obsy/imaging/nightstacks", json.dumps({"stack_id": "not a number"}))  # dropped
    finally:
        watcher.close()
    with web.login("otto") as operator:
        created = operator.post(
            "/api/v1/targets", json={"name": "NGC7000", "ra_deg": 314.7, "dec_deg": 44.3, "exposure_plans": PLANS}
        )
        assert created.status_code == 201, created.text
    with web.login("vera") as viewer:
        web.wait_until(lambda: viewer.get(f"{BASE}/NGC 7000").json().get("night_stacks"), timeout=20)
    truth.planned_id = created.json()["id"]
    return truth


def test_the_target_with_its_plan_progress_and_stacks(web, night):
    with web.login("vera") as viewer:
        listed = viewer.get(BASE).json()
        assert [(t["target"], t["lights"], t["accepted"], t["accepted_s"]) for t in listed] == [
            ("NGC 7000", 6, 5, 1500.0)
        ]
        assert listed[0]["page"] == "/imaging/targets/NGC%207000"
        # Any spelling of the name finds it; the OBJECT spelling is what the page shows.
        page = viewer.get(f"{BASE}/ngc7000").json()
        assert page["target"] == "NGC 7000" and page["planned_target_id"] == night.planned_id
        assert page["nights"] == [night.night] and page["night"] == night.night
        progress = {row["filter"]: row for row in page["filters"]}
        assert set(progress) == {"Ha", "OIII", "SII"}
        for name, planned in (("Ha", 10), ("OIII", 5), ("SII", 5)):
            lights = [light for light in night.lights if light.filter == name]
            accepted = [light for light in lights if light.accepted]
            row = progress[name]
            assert (row["planned"], row["planned_s"]) == (planned, planned * 300.0)
            assert (row["accepted"], row["accepted_s"]) == (len(accepted), 300.0 * len(accepted))
            assert row["rejected"] == len(lights) - len(accepted)
            assert (row["night_accepted"], row["night_accepted_s"]) == (len(accepted), 300.0 * len(accepted))
        assert progress["Ha"]["rejected"] == 1

        [live] = page["live_stacks"]
        assert (live["stack_id"], live["frames"], live["filter"]) == (night.live_stack.stack_id, 3, "Ha")
        repository = web.data_dir / "imaging" / "repository"
        served = viewer.get(live["fits"])
        assert served.status_code == 200 and served.content == (repository / night.live_stack.path).read_bytes()
        assert viewer.get(live["preview"]).content == (repository / night.live_stack.preview).read_bytes()
        [stacked] = page["night_stacks"]
        assert (stacked["stack_id"], stacked["frames"], stacked["rejection"]) == (41, 3, "winsorized 3/3")
        served = viewer.get(stacked["fits"])
        assert served.content == (repository / night.night_stack.path).read_bytes()
        assert "night.fits" in served.headers["content-disposition"]
        sample = Image.open(io.BytesIO(viewer.get(stacked["preview"], params={"width": 4096}).content))
        assert sample.size == (SHAPE[1], SHAPE[0])  # a sample is never enlarged
        assert_star_at(sample, (450.0, 120.0), 1)

        # A night without lights of it: the plan is there, nothing done that night.
        other = viewer.get(f"{BASE}/NGC 7000", params={"night": "2026-08-20"}).json()
        assert other["live_stacks"] == [] and {r["night_accepted"] for r in other["filters"]} == {0}
        # A target planned but never observed has its page; an unknown name has none.
        with web.login("otto") as operator:
            operator.post("/api/v1/targets", json={"name": "IC 1396", "ra_deg": 324.7, "dec_deg": 57.5})
        empty = viewer.get(f"{BASE}/IC1396").json()
        assert empty["nights"] == [] and empty["filters"] == [] and empty["night_stacks"] == []
        missing = viewer.get(f"{BASE}/M 999")
        assert missing.status_code == 404 and "M 999" in missing.json()["detail"]
        assert viewer.get(f"{BASE}/NGC 7000", params={"night": "14 August"}).status_code == 422


def assert_star_at(image: Image.Image, star_xy: tuple[float, float], factor: int) -> None:
    """The brightest pixel of a preview is the star (shrunk ``factor`` times); the sky is where the
    screen transfer function puts it (0.25 of white, ``obsy.stretch``'s target background)."""
    pixels = np.asarray(image, dtype=float)
    y, x = np.nonzero(pixels >= pixels.max() - 10)  # the stretch saturates the star's core: its centre
    assert np.ptp(x) < 12 and np.ptp(y) < 12, "one bright spot, not several"
    assert abs(x.mean() - star_xy[0] / factor) <= 1.0 and abs(y.mean() - star_xy[1] / factor) <= 1.0
    assert np.median(pixels) == pytest.approx(0.25 * 255, abs=8)


def test_the_frame_grid_with_grades_and_previews_drawn_from_the_fits(web, night):
    with web.login("vera") as viewer:
        page = viewer.get(f"{BASE}/NGC 7000/frames").json()
        assert page["total"] == len(night.lights)  # the repeated delivery is stored once
        items = page["items"]
        assert [i["frame_id"] for i in items] == [light.frame_id for light in night.lights]  # in the order taken
        for item, light in zip(items, night.lights, strict=True):
            assert (item["accepted"], item["rejected_because"]) == (light.accepted, light.rejected_because)
            assert (item["fwhm_px"], item["background"], item["filter"]) == (
                light.fwhm_px,
                light.background,
                light.filter,
            )
            assert item["date_obs"].startswith(light.date_obs.strftime("%Y-%m-%dT%H:%M:%S"))
        assert items[2]["rejected_because"] == ["FWHM 6.50 px above the limit of 5.00 px"]
        assert items[0]["snr"] == 40.0 and items[0]["stars"] == 150

        for item, light in zip(items, night.lights, strict=True):
            reply = viewer.get(item["thumbnail"])
            assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
            thumbnail = Image.open(io.BytesIO(reply.content))
            assert thumbnail.size == (200, 133)  # 600x400 averaged over 3x3 blocks (the first 399 rows)
            assert_star_at(thumbnail, light.star_xy, 3)
        again = viewer.get(items[0]["thumbnail"])  # drawn once, then from the cache
        assert again.content == viewer.get(items[0]["thumbnail"]).content
        assert len(list((web.data_dir / "web" / "previews").glob("*.jpg"))) >= len(items)
        only = viewer.get(f"{BASE}/NGC 7000/frames", params={"limit": 2, "offset": 4}).json()
        assert [i["frame_id"] for i in only["items"]] == [night.lights[4].frame_id, night.lights[5].frame_id]


def test_bad_requests_and_files_that_cannot_be_drawn(web, night):
    repository = web.data_dir / "imaging" / "repository"
    with web.login("vera") as viewer:
        assert viewer.get("/api/v1/imaging/frames/999999/preview").status_code == 404
        assert viewer.get(f"/api/v1/imaging/frames/{night.lights[0].frame_id}/preview?width=20").status_code == 422
        assert viewer.get("/api/v1/imaging/nightstacks/12345/fits").status_code == 404
        assert viewer.get("/api/v1/imaging/stacks/12345/fits").status_code == 404
        # A light's calibrated file replaced by something that is not FITS: a 404 that says so, the
        # service goes on, and the other lights are still drawn.
        broken = repository / night.lights[1].calibrated
        kept = broken.read_bytes()
        try:
            broken.write_bytes(b"SIMPLE  = nonsense")
            reply = viewer.get(f"/api/v1/imaging/frames/{night.lights[1].frame_id}/preview", params={"width": 128})
            assert reply.status_code == 404 and "not a readable FITS file" in reply.json()["detail"]
            assert viewer.get(f"/api/v1/imaging/frames/{night.lights[3].frame_id}/preview").status_code == 200
        finally:
            broken.write_bytes(kept)
    assert web.service.ingestor.health()["invalid"] >= 1


def test_project_stacks_and_the_progress_of_one_on_the_targets_page(web, night):
    """Project stacks as the imaging service publishes them (one built twice: the newest shown), and its
    retained progress, which the page shows only for its own target."""
    from datetime import UTC, datetime, timedelta

    from obsy.messages import ImagingProjectStack, ImagingProjectStackState
    from tests.support.target_page import star_image, write_fits

    repository = web.data_dir / "imaging" / "repository"
    write_fits(repository / "stacks/project/NGC_7000/Ha/stack.fits", star_image((300.0, 200.0), seed=7))
    when = datetime(2026, 8, 15, 6, 0, tzinfo=UTC)

    def built(stack_id: int, filter_name: str, frames: int, minutes: int) -> ImagingProjectStack:
        return ImagingProjectStack(
            timestamp=when + timedelta(minutes=minutes), stack_id=stack_id, target="NGC 7000", filter=filter_name,
            nights=[night.night], frames=frames, left_out=1, integration_s=300.0 * frames,
            rejection="winsorized 3/3", rejected_fraction=0.01,
            path=f"stacks/project/NGC_7000/{filter_name}/stack.fits",
            sample="s.jpg", thumbnail="t.jpg", seconds=12.5,
        )  # fmt: skip

    watcher = Watcher(web.broker.port, ["obsy/imaging/#"])
    try:
        for message in (built(7, "Ha", 2, 0), built(8, "Ha", 3, 10), built(9, "OIII", 2, 5)):
            watcher.publish("obsy/imaging/projectstacks", message.to_json())
        stacking = ImagingProjectStackState(status="stacking", target="NGC 7000", filter="OIII", done=120, total=400)
        watcher.publish("obsy/imaging/projectstack/state", stacking.to_json(), retain=True)
        with web.login("vera") as viewer:
            web.wait_until(lambda: len(viewer.get(f"{BASE}/NGC 7000").json()["project_stacks"]) == 2)
            web.wait_until(lambda: viewer.get(f"{BASE}/NGC 7000").json()["project_progress"] is not None)
            page = viewer.get(f"{BASE}/ngc7000").json()
            ha, oiii = page["project_stacks"]
            assert (ha["stack_id"], ha["filter"], ha["frames"], ha["left_out"]) == (8, "Ha", 3, 1)
            assert ha["nights"] == [night.night] and ha["rejection"] == "winsorized 3/3" and ha["seconds"] == 12.5
            assert ha["fits"] == "/api/v1/imaging/projectstacks/8/fits"
            assert viewer.get(ha["fits"]).content == (repository / "stacks/project/NGC_7000/Ha/stack.fits").read_bytes()
            assert viewer.get(ha["preview"]).headers["content-type"] == "image/jpeg"
            assert (oiii["stack_id"], oiii["fits"], oiii["preview"]) == (9, None, None)  # its FITS is not here
            assert viewer.get("/api/v1/imaging/projectstacks/9/fits").status_code == 404
            assert viewer.get("/api/v1/imaging/projectstacks/12345/fits").status_code == 404
            progress = page["project_progress"]
            assert (progress["status"], progress["filter"], progress["done"], progress["total"]) == (
                "stacking", "OIII", 120, 400,
            )  # fmt: skip
            other = ImagingProjectStackState(status="registering", target="M 31", done=1, total=9)
            watcher.publish("obsy/imaging/projectstack/state", other.to_json(), retain=True)
            web.wait_until(lambda: viewer.get(f"{BASE}/NGC 7000").json()["project_progress"] is None)
    finally:
        watcher.publish("obsy/imaging/projectstack/state", b"", retain=True)
        watcher.close()
