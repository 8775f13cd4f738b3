"""The imaging half of the dashboard's API, on real Postgres and on the SQLite default: live
stacks, calibration masters, light curves and "build masters now", from messages published on a
real Mosquitto as the imaging service publishes them.

One service per database kind serves every test of this module (fresh broker, fresh database,
schema made by the migrations from empty).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from obsy.messages import (
    ImagingCalibrated,
    ImagingLiveStack,
    ImagingMaster,
    ImagingMastersState,
    ImagingPhotometry,
    ImagingState,
    ImagingTransit,
)
from obsy.topics import Topics
from obsy_imaging.transiter import NightPoint, points_csv
from obsy_web.db import models
from obsy_web.ingest.ingestor import Ingestor
from tests.support.pretend_imaging import PretendImaging
from tests.support.web_databases import database_url, migrated_engine  # noqa: F401 (fixtures)
from tests.support.web_server import web_on

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0 a preview \xff\xd9"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def web(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"web-imaging-{request.param}")
    with web_on(request.param, workdir, {"vera": "viewer", "otto": "operator"}, command_timeout=1.5) as server:
        yield server


def live_stack(stack_id: int, frames: int, when: datetime, **changes) -> ImagingLiveStack:
    values = {
        "timestamp": when,
        "stack_id": stack_id,
        "night": "2026-02-03",
        "target": "M 51",
        "filter": "L",
        "frames": frames,
        "integration_s": 120.0 * frames,
        "left_out": 1,
        "reference": "lights/2026-02-03/M_51/L/first.fits",
        "path": f"stacks/2026-02-03/{stack_id}/stack.fits",
        "preview": f"stacks/2026-02-03/{stack_id}/preview.jpg",
        "frame_id": 100 + frames,
        "weight": 0.9,
        "shift_px": (1.5, -2.0),
        "rotation_deg": 0.1,
        "fold_s": 0.8,
    }
    values.update(changes)
    return ImagingLiveStack(**values)


def test_live_stacks_latest_fold_each_with_its_preview(web, bus):
    """One row per fold; the list shows each stack's last fold; previews come from the repository
    or, for the stack updated last, from the retained JPEG on the bus."""
    repository = web.data_dir / "imaging" / "repository"
    folder = repository / "stacks" / "2026-02-03" / "7"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preview.jpg").write_bytes(JPEG)
    start = datetime(2026, 2, 3, 21, 0, tzinfo=UTC)
    first, second = live_stack(7, 1, start), live_stack(7, 2, start + timedelta(minutes=2))
    other = live_stack(8, 5, start + timedelta(minutes=3), filter="Ha", preview="../../outside.jpg")
    invalid = json.dumps({"stack_id": "x"})  # dropped, and the service goes on
    for message in (first.to_json(), second.to_json(), invalid, second.to_json(), other.to_json()):
        bus.publish("obsy/imaging/livestack/state", message, retain=True)  # a repeated delivery is stored once
    bus.publish("obsy/imaging/livestack/image", JPEG + b"from the bus", retain=True)
    with web.login("vera") as viewer:
        web.wait_until(lambda: len(viewer.get("/api/v1/imaging/stacks").json()) == 2)
        listed = viewer.get("/api/v1/imaging/stacks").json()
        assert [(s["stack_id"], s["frames"], s["filter"]) for s in listed] == [(8, 5, "Ha"), (7, 2, "L")]
        seven = listed[1]
        assert seven["integration_s"] == 240.0 and seven["left_out"] == 1 and seven["shift_px"] == [1.5, -2.0]
        assert seven["last_fold"].startswith("2026-02-03T21:02:00")
        assert seven["preview"] == "/api/v1/imaging/stacks/7/preview?frames=2"
        served = viewer.get(seven["preview"])
        assert served.status_code == 200 and served.content == JPEG
        assert served.headers["content-type"] == "image/jpeg"
        # Stack 8's preview path leaves the repository: not served from there; it is the stack
        # the retained JPEG belongs to (its state came last), so that one stands in.
        assert viewer.get("/api/v1/imaging/stacks/8/preview").content == JPEG + b"from the bus"
        assert viewer.get("/api/v1/imaging/stacks/9/preview").status_code == 404
        assert viewer.get("/api/v1/imaging/stacks?night=2026-02-04").json() == []
        assert viewer.get("/api/v1/imaging/stacks?night=yesterday").status_code == 422
    health = web.service.ingestor.health()
    assert health["invalid"] >= 1


def test_masters_built_and_lights_waiting(web, bus):
    built = datetime(2026, 2, 3, 18, 0, tzinfo=UTC)
    common = {
        "camera": "ZWO ASI2600MM",
        "binning": "1x1",
        "gain": 100.0,
        "temperature_c": -10.0,
        "method": "sigma_clip",
    }
    dark = ImagingMaster(
        timestamp=built,
        master_id="dark-aaa",
        kind="dark",
        path="masters/dark-aaa.fits",
        exposure_s=300,
        frames=10,
        **common,
    )
    bigger = ImagingMaster(
        timestamp=built + timedelta(hours=1),
        master_id="dark-bbb",
        kind="dark",
        path="masters/dark-bbb.fits",
        exposure_s=300,
        frames=20,
        replaces="dark-aaa",
        **common,
    )
    flat = ImagingMaster(
        timestamp=built + timedelta(hours=2),
        master_id="flat-ccc",
        kind="flat",
        path="masters/flat-ccc.fits",
        exposure_s=2.5,
        frames=25,
        filter="Ha",
        **common,
    )
    for message in (dark, bigger, bigger, flat):
        bus.publish("obsy/imaging/masters", message.to_json())
    bus.publish("obsy/imaging/masters", b"{not json")  # invalid: dropped
    state = ImagingState(
        night="2026-02-03",
        calibration_queue=4,
        calibrated_tonight=12,
        masters_total=3,
        waiting_for=["4 lights of M 51 (Ha, 300 s) wait for a flat in Ha"],
    )
    bus.publish("obsy/imaging/state", state.to_json(), retain=True)
    answer = ImagingMastersState(status="done", action="pin", pinned=["dark-aaa"], request_id="p1")
    bus.publish("obsy/imaging/masters/state", answer.to_json(), retain=True)
    with web.login("vera") as viewer:
        web.wait_until(lambda: viewer.get("/api/v1/imaging/masters").json()["total"] == 3)
        web.wait_until(lambda: viewer.get("/api/v1/imaging/masters").json()["items"][2]["pinned"])
        items = viewer.get("/api/v1/imaging/masters").json()["items"]
        assert [m["master_id"] for m in items] == ["flat-ccc", "dark-bbb", "dark-aaa"]
        assert items[1]["replaces"] == "dark-aaa" and items[1]["frames"] == 20 and items[1]["binning"] == "1x1"
        assert items[0]["filter"] == "Ha" and items[0]["temperature_c"] == -10.0 and items[0]["gain"] == 100.0
        darks = viewer.get("/api/v1/imaging/masters?kind=dark").json()
        assert darks["total"] == 2
        assert [m["pinned"] for m in darks["items"]] == [False, True]  # the older one, pinned over the newer
        web.wait_until(
            lambda: (viewer.get("/api/v1/imaging/state").json()["imaging"] or {}).get("night") == "2026-02-03"
        )
        imaging = viewer.get("/api/v1/imaging/state").json()["imaging"]
        assert imaging["calibration_queue"] == 4 and "wait for a flat" in imaging["waiting_for"][0]


def test_build_masters_now_is_for_operators_and_carries_the_origin(web, bus):
    with web.login("vera") as viewer:
        assert viewer.post("/api/v1/commands/imaging/masters", json={}).status_code == 403
    with web.login("otto") as operator:
        reply = operator.post("/api/v1/commands/imaging/masters", json={})
        assert reply.status_code == 504 and "imaging service did not answer" in reply.json()["detail"]
        assert operator.post("/api/v1/commands/imaging/masters", json={"min_frames": 0}).status_code == 422
        imaging = PretendImaging(web.broker.port)
        seen = imaging.commands
        try:
            reply = operator.post("/api/v1/commands/imaging/masters", json={"min_frames": 5})
            assert reply.status_code == 200, reply.text
            answer = reply.json()
            assert answer["status"] == "running" and answer["request_id"] == seen[-1].request_id
            pinned = operator.post("/api/v1/commands/imaging/masters", json={"action": "pin", "master_id": "dark-aaa"})
            assert pinned.status_code == 200 and pinned.json()["request_id"] == seen[-1].request_id
            refused = operator.post("/api/v1/commands/imaging/masters", json={"action": "unpin"})
            assert refused.status_code == 422 and "unpin needs master_id" in refused.text
            busy = operator.post("/api/v1/commands/imaging/masters", json={"min_frames": 999})
            assert busy.status_code == 409 and "too many masters commands waiting" in busy.json()["detail"]
        finally:
            imaging.close()
    command = seen[-3]
    assert seen[-2].action == "pin" and seen[-2].master_id == "dark-aaa"
    assert (
        command.action == "build"
        and command.min_frames == 5
        and (command.origin.kind, command.origin.user, command.origin.role)
        == (
            "web",
            "otto",
            "operator",
        )
    )
    audit = bus.wait_for(
        lambda msgs: any(b"imaging masters" in m.payload for m in msgs if m.topic == "obsy/web/events")
    )
    assert any(b"web user otto, role operator sent imaging masters build" in m.payload for m in audit)
    bus.wait_for(
        lambda msgs: any(
            b"sent imaging masters pin dark-aaa" in m.payload for m in msgs if m.topic == "obsy/web/events"
        )
    )


def test_light_curves_with_the_check_star_csv_and_the_aavso_report(web, bus):
    repository = web.data_dir / "imaging" / "repository"
    report = repository / "reports" / "aavso" / "2026-02-03" / "SS_Cyg.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("#TYPE=Extended\n#OBSCODE=XYZ\nSS CYG|2461075.40000|11.902|0.012|V|NO|STD|...\n")
    start = datetime(2026, 2, 3, 20, 0, tzinfo=UTC)

    def point(n: int, night: str = "2026-02-03", **changes) -> ImagingPhotometry:
        values = {
            "timestamp": start + timedelta(minutes=n),
            "frame_id": 500 + n,
            "path": f"calibrated/{n}.fits",
            "night": night,
            "target": "SS Cyg",
            "filter": "V",
            "band": "V",
            "jd": 2461075.4 + n / 1440,
            "magnitude": 11.9 + n / 100,
            "error": 0.012,
            "check": "118",
            "check_magnitude": 11.83,
            "check_residual": 0.01 * n,
            "airmass": 1.2,
            "report": "reports/aavso/2026-02-03/SS_Cyg.txt" if night == "2026-02-03" else None,
        }
        values.update(changes)
        return ImagingPhotometry(**values)

    messages = [point(1), point(2), point(2), point(3, magnitude=None, error=None, reasons=["no WCS"])]
    messages.append(point(1, night="2026-02-04", jd=2461076.4, filter="B", band="B"))
    for message in messages:
        bus.publish("obsy/imaging/photometry", message.to_json())
    bus.publish("obsy/imaging/photometry", json.dumps({"target": "SS Cyg", "magnitude": "bright"}))  # dropped
    with web.login("vera") as viewer:
        web.wait_until(lambda: len(viewer.get("/api/v1/photometry/SS%20Cyg").json()["points"]) == 4)
        assert viewer.get("/api/v1/photometry").json() == [
            {"target": "SS Cyg", "nights": ["2026-02-04", "2026-02-03"], "points": 3}
        ]
        curve = viewer.get("/api/v1/photometry/SS%20Cyg?night=2026-02-03").json()
        points = curve["points"]
        assert [p["frame_id"] for p in points] == [501, 502, 503]
        assert points[0]["magnitude"] == pytest.approx(11.91) and points[0]["error"] == 0.012
        assert points[1]["check_residual"] == pytest.approx(0.02) and points[0]["filter"] == "V"
        assert points[2]["magnitude"] is None and points[2]["reasons"] == ["no WCS"]
        assert curve["reports"] == {"2026-02-03": "/api/v1/photometry/SS%20Cyg/report?night=2026-02-03"}
        served = viewer.get(curve["reports"]["2026-02-03"])
        assert served.status_code == 200 and served.text == report.read_text()
        assert viewer.get("/api/v1/photometry/SS%20Cyg/report?night=2026-02-04").status_code == 404
        exported = viewer.get("/api/v1/photometry/SS%20Cyg?night=2026-02-03&format=csv")
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [float(r["magnitude"]) for r in rows] == pytest.approx([11.91, 11.92])  # without a magnitude: left out
        assert rows[0]["check_residual"] == "0.01" and rows[0]["filter"] == "V"
        b_only = viewer.get("/api/v1/photometry/SS%20Cyg?filter=B").json()["points"]
        assert [(p["night"], p["filter"], p["jd"]) for p in b_only] == [("2026-02-04", "B", 2461076.4)]
        assert viewer.get("/api/v1/photometry/Nobody").json()["points"] == []
        assert viewer.get("/api/v1/photometry/SS%20Cyg?format=xml").status_code == 422


def test_transit_nights_with_their_numbers_points_plot_and_report(web, bus):
    """The newest result of each night and planet; the points from the CSV the imaging service wrote
    (as JSON and as the file), the report and the plot from the repository; a failed night with its reason."""
    repository = web.data_dir / "imaging" / "repository"
    folder = repository / "reports" / "exoplanet" / "2026-10-15"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "WASP-12_b.txt").write_text("#TYPE=EXOPLANET\n#OBSCODE=TST01\n")
    (folder / "WASP-12_b.png").write_bytes(b"\x89PNG\r\n\x1a\n a plot")
    points = [
        NightPoint(frame_id=7, bjd_tdb=2461329.40, flux=1.002, error=0.002, airmass=1.3, model=1.001),
        NightPoint(frame_id=8, reason="the host is not found (clouds?)"),
        NightPoint(frame_id=9, bjd_tdb=2461329.41, flux=0.989, error=0.002, airmass=1.28, model=0.990),
    ]
    (folder / "WASP-12_b.csv").write_text(points_csv(points))
    start = datetime(2026, 10, 16, 3, 0, tzinfo=UTC)

    def fit(n: int, **changes) -> ImagingTransit:
        values = {
            "timestamp": start + timedelta(minutes=n),
            "fit_id": 3,
            "night": "2026-10-15",
            "planet": "WASP-12 b",
            "target": "WASP-12",
            "status": "fitted",
            "filter": "R",
            "epoch": 2100,
            "tc": 2461329.4055 + n / 1440,
            "tc_err": 0.0007,
            "o_minus_c_min": 1.5,
            "o_minus_c_err_min": 1.1,
            "depth": 0.0141,
            "depth_err": 0.0004,
            "duration_h": 3.0,
            "partial": False,
            "points_used": 2,
            "points_rejected": 1,
            "ensemble_size": 6,
            "report": "reports/exoplanet/2026-10-15/WASP-12_b.txt",
            "plot": "reports/exoplanet/2026-10-15/WASP-12_b.png",
            "points": "reports/exoplanet/2026-10-15/WASP-12_b.csv",
        }
        values.update(changes)
        return ImagingTransit(**values)

    failed = fit(0, fit_id=4, night="2026-10-18", status="failed", reason="12 usable light(s)", tc=None)
    failed = failed.model_copy(update={"report": None, "plot": None, "points": None})
    for message in (fit(0), fit(5), failed):  # the fit of a night again (new lights): the newest counts
        bus.publish("obsy/imaging/transits", message.to_json())
    bus.publish("obsy/imaging/transits", json.dumps({"planet": "WASP-12 b", "status": "great"}))  # dropped
    with web.login("vera") as viewer:
        web.wait_until(lambda: len(viewer.get("/api/v1/transits").json()) == 2)
        newest, fitted = viewer.get("/api/v1/transits?planet=WASP-12%20b").json()
        assert (
            newest["night"] == "2026-10-18"
            and newest["status"] == "failed"
            and newest["reason"] == "12 usable light(s)"
        )
        assert newest["report"] is None and newest["plot"] is None
        assert fitted["tc"] == pytest.approx(2461329.4055 + 5 / 1440) and fitted["o_minus_c_min"] == 1.5
        base = "/api/v1/transits/WASP-12%20b"
        assert (
            fitted["report"] == f"{base}/report?night=2026-10-15" and fitted["plot"] == f"{base}/plot?night=2026-10-15"
        )
        assert fitted["csv"] == f"{base}?night=2026-10-15&format=csv"
        night = viewer.get(f"{base}?night=2026-10-15").json()
        assert night["depth"] == 0.0141 and night["points_rejected"] == 1 and night["ensemble_size"] == 6
        assert [(p["frame_id"], p["used"]) for p in night["points"]] == [(7, True), (9, True), (8, False)]
        assert night["points"][0]["residual"] == pytest.approx(0.001) and night["points"][0]["model"] == 1.001
        assert night["points"][2]["reason"] == "the host is not found (clouds?)" and night["points"][2]["flux"] is None
        exported = viewer.get(fitted["csv"])
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert exported.text == (folder / "WASP-12_b.csv").read_text()
        report = viewer.get(fitted["report"])
        assert report.status_code == 200 and report.text.startswith("#TYPE=EXOPLANET")
        plot = viewer.get(fitted["plot"])
        assert (
            plot.status_code == 200
            and plot.headers["content-type"] == "image/png"
            and plot.content.startswith(b"\x89PNG")
        )
        assert viewer.get(f"{base}/report?night=2026-10-18").status_code == 404  # failed: no report
        assert viewer.get(f"{base}?night=2026-10-16").status_code == 404
        assert viewer.get(f"{base}?night=yesterday").status_code == 422
        assert viewer.get("/imaging").status_code == 200
    assert web.client().get("/api/v1/transits").status_code == 401


def test_malformed_imaging_messages_are_counted_and_dropped(migrated_engine):  # noqa: F811
    """Straight into the ingestor on both databases: bad imaging payloads never stop the rest."""
    topics = Topics("obsy")
    ingestor = Ingestor(migrated_engine, topics, batch_size=50, max_payload=64 * 1024)
    ingestor.start()
    good = live_stack(1, 1, datetime(2026, 2, 3, 22, 0, tzinfo=UTC), target="T" * 500)
    ingestor.submit(topics.imaging_live_stack_state, good.to_json())
    bad_stack = json.loads(good.to_json()) | {"frames": -1}
    ingestor.submit(topics.imaging_live_stack_state, json.dumps(bad_stack).encode())
    ingestor.submit(topics.imaging_masters, json.dumps({"master_id": "x", "kind": "dark", "frames": 0}).encode())
    ingestor.submit(topics.imaging_photometry, b"[1, 2, 3]")
    ingestor.submit(topics.imaging_photometry, b'{"target": "' + b"x" * 70_000 + b'"}')  # oversize
    ingestor.submit(topics.imaging_live_stack_image, b"\xff\xd8 not stored")  # a JPEG: not a stored topic
    nul = ImagingPhotometry(frame_id=1, path="p.fits", night="2026-02-03", target="bad\x00name", magnitude=10.0)
    ingestor.submit(topics.imaging_photometry, nul.to_json())  # Postgres refuses the NUL: dropped alone
    fine = ImagingPhotometry(frame_id=2, path="q.fits", night="2026-02-03", target="Z UMa", magnitude=9.0, jd=2461075.5)
    ingestor.submit(topics.imaging_photometry, fine.to_json())
    assert ingestor.wait_idle(20)
    ingestor.stop()
    assert ingestor.invalid == 4 and ingestor.oversize == 1
    with migrated_engine.connect() as connection:
        stacks = connection.execute(select(models.LiveStackState.target)).scalars().all()
        targets = set(connection.execute(select(models.PhotometryPoint.target)).scalars().all())
    assert stacks == ["T" * 200]  # cut to the column's length
    assert "Z UMa" in targets
    assert migrated_engine.dialect.name != "postgresql" or targets == {"Z UMa"}


def test_calibrated_lights_with_their_masters_and_why(web, bus):
    def calibrated(n: int, night: str = "2026-02-05", **changes) -> ImagingCalibrated:
        values = {
            "timestamp": datetime(2026, 2, 5, 20, n, tzinfo=UTC),
            "frame_id": 700 + n,
            "light": f"lights/2026-02-05/M_51/Ha/light_{n}.fits",
            "path": f"calibrated/2026-02-05/light_{n}.fits",
            "night": night,
            "target": "M 51",
            "filter": "Ha",
            "dark": "dark-bbb",
            "flat": "flat-ccc",
            "dark_scale": 0.5,
            "explanation": ["dark: 600 s scaled to 300 s (no 300 s dark)", "flat: Ha, 2 h before"],
            "waited_s": 3600.0 if n == 2 else None,
        }
        values.update(changes)
        return ImagingCalibrated(**values)

    again = calibrated(3, frame_id=701, dark="dark-ddd", recalibrated=True, replaces={"dark": "dark-bbb"})
    for message in (calibrated(1), calibrated(2), calibrated(2), calibrated(1, night="2026-02-04"), again):
        bus.publish("obsy/imaging/calibrated", message.to_json())
    bus.publish("obsy/imaging/calibrated", json.dumps({"frame_id": "seven"}))  # invalid: dropped
    with web.login("vera") as viewer:
        web.wait_until(lambda: any(c["recalibrated"] for c in viewer.get("/api/v1/imaging/calibrated").json()["items"]))
        page = viewer.get("/api/v1/imaging/calibrated").json()
        items = page["items"]
        assert page["total"] == 2 and [c["frame_id"] for c in items] == [701, 702]  # 701 calibrated again: latest only
        assert items[0]["dark"] == "dark-ddd" and items[0]["replaces"] == {"dark": "dark-bbb"}
        items = items[::-1]
        assert items[0]["dark"] == "dark-bbb" and items[0]["dark_scale"] == 0.5 and items[0]["waited_s"] == 3600.0
        assert items[0]["explanation"][0].startswith("dark: 600 s scaled") and items[0]["bias"] is None
        older = viewer.get("/api/v1/imaging/calibrated?night=2026-02-04").json()
        assert older["total"] == 1 and older["items"][0]["light"].endswith("light_1.fits")
