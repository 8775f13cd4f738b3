"""The imaging routes per site: with bridged sites (``web.sites``) each route shows this site's rows, or
those of the site ``site=`` names; another site's files (previews, reports, plots) are not served from
this site's repository, even where a path would match a file here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from obsy.messages import ImagingLiveStack, ImagingMaster, ImagingTransit
from obsy.upload import Uploader, UploadQueue
from tests.integration.fleet.test_fleet_uploads import site_token
from tests.support.watcher import Watcher
from tests.support.web_server import web_on

pytestmark = pytest.mark.integration
WHEN = datetime(2026, 10, 16, 3, 0, tzinfo=UTC)
REPORT = "reports/exoplanet/2026-10-15/WASP-12_b.txt"


def master(master_id: str) -> ImagingMaster:
    return ImagingMaster(
        timestamp=WHEN,
        master_id=master_id,
        kind="dark",
        path=f"masters/{master_id}.fits",
        exposure_s=300,
        frames=10,
        method="sigma_clip",
    )


def stack(target: str) -> ImagingLiveStack:
    return ImagingLiveStack(
        timestamp=WHEN,
        stack_id=7,  # the same id at both sites: each imaging service counts its own
        night="2026-10-15",
        target=target,
        filter="L",
        frames=3,
        integration_s=360.0,
        left_out=0,
        reference="lights/first.fits",
        path="stacks/7/stack.fits",
        preview="stacks/7/preview.jpg",
        frame_id=103,
        weight=1.0,
        shift_px=(0.5, -0.5),
        rotation_deg=0.0,
        fold_s=0.4,
    )


def transit(target: str) -> ImagingTransit:
    return ImagingTransit(
        timestamp=WHEN + timedelta(minutes=1),
        fit_id=1,
        night="2026-10-15",
        planet="WASP-12 b",
        target=target,
        status="fitted",
        tc=2461329.4055,
        tc_err=0.0007,
        report=REPORT,
    )


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_imaging_routes_show_one_site_and_only_this_sites_files(tmp_path, database):
    with web_on(database, tmp_path, {"vera": "viewer"}, sites=[{"prefix": "sites/north"}]) as web:
        repository = web.data_dir / "imaging" / "repository"
        (repository / REPORT).parent.mkdir(parents=True)
        (repository / REPORT).write_text("#TYPE=EXOPLANET\n#OBSCODE=TST01\n")
        (repository / "stacks" / "7").mkdir(parents=True)
        (repository / "stacks" / "7" / "preview.jpg").write_bytes(b"\xff\xd8\xff\xe0 this site's preview \xff\xd9")
        bus = Watcher(web.broker.port, ["obsy/#"])
        try:
            for prefix, name in (("obsy", "here"), ("sites/north", "north")):
                bus.publish(f"{prefix}/imaging/masters", master(f"dark-{name}").to_json())
                bus.publish(f"{prefix}/imaging/livestack/state", stack(f"M 31 {name}").to_json(), retain=True)
                bus.publish(f"{prefix}/imaging/transits", transit(f"WASP-12 {name}").to_json())
        finally:
            bus.close()
        client = web.login("vera")

        def masters(**params) -> list[str]:
            return [m["master_id"] for m in client.get("/api/v1/imaging/masters", params=params).json()["items"]]

        web.wait_until(lambda: masters(site="north") and masters() and client.get("/api/v1/transits").json(), 20)
        assert masters() == ["dark-here"] and masters(site="north") == ["dark-north"]
        stacks = client.get("/api/v1/imaging/stacks").json()
        assert [s["target"] for s in stacks] == ["M 31 here"]
        north_stacks = client.get("/api/v1/imaging/stacks", params={"site": "north"}).json()
        assert [s["target"] for s in north_stacks] == ["M 31 north"]
        assert client.get("/api/v1/imaging/stacks/7/preview").content.startswith(b"\xff\xd8")
        assert client.get("/api/v1/imaging/stacks/7/preview", params={"site": "north"}).status_code == 404
        # Once north's uploader (obsy.upload) has sent its preview, the centre serves north's, and this site's still.
        sent = tmp_path / "north-site" / "imaging" / "repository" / "stacks" / "7" / "preview.jpg"
        sent.parent.mkdir(parents=True)
        sent.write_bytes(b"\xff\xd8\xff\xe0 north's preview \xff\xd9")
        queue = UploadQueue(tmp_path / "north-site" / "upload-queue")
        queue.put(sent, "imaging/repository/stacks/7/preview.jpg")
        assert Uploader(queue, web.url, "north", site_token(web)).send(queue.peek(timeout=0))
        north_preview = client.get("/api/v1/imaging/stacks/7/preview", params={"site": "north"})
        assert north_preview.status_code == 200 and north_preview.content == sent.read_bytes()
        assert b"this site's preview" in client.get("/api/v1/imaging/stacks/7/preview").content

        here = client.get("/api/v1/transits").json()
        north = client.get("/api/v1/transits", params={"site": "north"}).json()
        assert [t["target"] for t in here] == ["WASP-12 here"] and here[0]["report"]
        assert [t["target"] for t in north] == ["WASP-12 north"] and north[0]["report"] is None
        report = "/api/v1/transits/WASP-12 b/report"
        assert client.get(report, params={"night": "2026-10-15"}).text.startswith("#TYPE=EXOPLANET")
        assert client.get(report, params={"night": "2026-10-15", "site": "north"}).status_code == 404
        unknown = client.get("/api/v1/imaging/masters", params={"site": "south"})
        assert unknown.status_code == 404 and "north" in unknown.json()["detail"]
