"""The allsky service as one site of a fleet: its pictures reach the centre's web by HTTP, byte-identical.

The site: the allsky service on the CCD simulator with its own broker, ``upload`` pointed at the
centre. The centre: the web service with the site bridged as ``north`` (no bridge here: the
metadata is published on the centre's broker by the test, as the bridge would). And the same
service sending to an S3 bucket (``upload.target: s3``, moto's S3 server) instead.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from obsy.messages import ServiceHealth
from tests.integration.allsky.test_allsky_service import FRAMES, HEALTH, Running, frames, indiserver  # noqa: F401 (fixture)
from tests.integration.fleet.test_fleet_s3_uploads import BUCKET, CREDENTIALS, s3_server  # noqa: F401 (fixture)
from tests.integration.fleet.test_fleet_s3_uploads import client as s3_client
from tests.integration.fleet.test_fleet_uploads import centre, site_token
from tests.support.watcher import Watcher
from tests.support.web_server import web_on

pytestmark = pytest.mark.integration


def uploads(watcher: Watcher) -> dict | None:
    """The ``uploads`` of the allsky service's newest health message."""
    found = watcher.on(HEALTH)
    return ServiceHealth.model_validate_json(found[-1].payload).details.get("uploads") if found else None


@pytest.mark.long(seconds=45)
def test_the_allsky_services_pictures_arrive_at_the_centre(tmp_path, mosquitto, indiserver):  # noqa: F811
    with web_on("sqlite", centre(tmp_path), {"viewer": "viewer"}, sites=[{"prefix": "sites/north"}]) as web:
        upload = {"url": web.url, "site": "north", "token": site_token(web), "chunk_bytes": 64 * 1024}
        site = tmp_path / "site"
        site.mkdir()
        watcher = Watcher(mosquitto.port, [FRAMES, HEALTH])
        try:
            with Running(site, mosquitto, indiserver, sections={"upload": upload}) as running:
                watcher.wait_for(lambda _: len(frames(watcher)) >= 2, timeout=60)
                sent = frames(watcher)[:2]
                data_dir = running.config.data_dir.resolve()
                arrived = [
                    web.data_dir / "sites" / "north" / Path(urlparse(f.url).path).relative_to(data_dir) for f in sent
                ]
                web.wait_until(lambda: all(path.is_file() for path in arrived), timeout=60)
                # The service's health says what went (and that nothing waits or failed).
                watcher.wait_for(lambda _: (uploads(watcher) or {}).get("sent", 0) >= 2, timeout=30)
                assert uploads(watcher)["failures"] == 0 and uploads(watcher)["dropped"] == 0
        finally:
            watcher.close()
        for frame, path in zip(sent, arrived, strict=True):
            assert path.read_bytes() == Path(urlparse(frame.url).path).read_bytes()
        # With the metadata the bridge would bring, the centre serves the site's picture.
        publisher = Watcher(web.broker.port, ["sites/north/allsky/frames"])
        try:
            publisher.publish("sites/north/allsky/frames", sent[0].to_json())
        finally:
            publisher.close()
        viewer = web.login("viewer")
        route = f"/api/v1/allsky/images/{sent[0].frame_id}/file"
        web.wait_until(lambda: viewer.get(route, params={"site": "north"}).status_code == 200, timeout=30)
        assert viewer.get(route, params={"site": "north"}).content == arrived[0].read_bytes()


@pytest.mark.long(seconds=45)
def test_the_allsky_services_pictures_go_to_an_s3_bucket_named_on_the_bus(
    tmp_path,
    mosquitto,
    indiserver,  # noqa: F811
    s3_server,  # noqa: F811
    monkeypatch,
):
    """``upload.target: s3``: each frame's message names its picture's object (``object_url``), and the
    object is the picture, byte for byte (moto's S3 server; credentials from secret files)."""
    from urllib.parse import unquote

    for name, value in CREDENTIALS.items():
        (tmp_path / name).write_text(value)
        monkeypatch.setenv(f"OBSY_UPLOAD__S3__{name.upper()}_FILE", str(tmp_path / name))
    upload = {
        "target": "s3",
        "site": "north",
        "s3": {"endpoint_url": s3_server, "bucket": BUCKET, "region": "us-east-1"},
    }
    site = tmp_path / "site"
    site.mkdir()
    watcher = Watcher(mosquitto.port, [FRAMES, HEALTH])
    try:
        with Running(site, mosquitto, indiserver, sections={"upload": upload}) as running:
            watcher.wait_for(lambda _: len(frames(watcher)) >= 2, timeout=60)
            sent = frames(watcher)[:2]
            data_dir = running.config.data_dir.resolve()
            watcher.wait_for(lambda _: (uploads(watcher) or {}).get("sent", 0) >= 2, timeout=60)
            assert uploads(watcher)["failures"] == 0 and uploads(watcher)["dropped"] == 0
    finally:
        watcher.close()
    bucket = s3_client(s3_server)
    for frame in sent:
        picture = Path(urlparse(frame.url).path)
        key = f"sites/north/{picture.relative_to(data_dir).as_posix()}"
        assert frame.object_url == f"s3://{BUCKET}/{key}"
        named = urlparse(frame.object_url)
        stored = bucket.get_object(Bucket=named.netloc, Key=unquote(named.path.lstrip("/")))
        assert stored["Body"].read() == picture.read_bytes()
