"""A site's pictures to the centre by HTTP: byte-identical, resumed after a cut, held back while the centre is busy.

The centre is the real web service (its own broker, SQLite or Postgres) with one bridged site,
``north``; the site is the uploader of ``obsy.upload`` with its queue on disk, as the allsky
service runs it, authorised by an API token of an operator account limited to ``north``.
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pytest

from obsy.messages import AllskyFrame
from obsy.upload import Uploader, UploadQueue
from obsy.upload.protocol import CHECKSUM_HEADER, OFFSET_HEADER, checksum_header
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb, web_on

pytestmark = pytest.mark.integration
NIGHT = "2026-12-05"
FRAME_ID = "20261205T221500000Z"


def centre(tmp_path: Path) -> Path:
    """The centre's working folder (its broker, its data directory)."""
    folder = tmp_path / "centre"
    folder.mkdir()
    return folder


def site_token(web: RunningWeb, username: str = "northup", sites: list[str] | None = None) -> str:
    web.add_user(username, "operator", sites=sites or ["north"])
    with web.token_client(username) as client:
        return client.headers["Authorization"].removeprefix("Bearer ")


def picture(site_data: Path, name: str, size: int) -> Path:
    path = site_data / "allsky" / NIGHT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def uploader(web: RunningWeb, queue: UploadQueue, token: str, **options) -> Uploader:
    return Uploader(queue, web.url, "north", token, backoff_max=2.0, timeout=10, **options)


@pytest.mark.long(seconds=40)
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_picture_cut_in_the_middle_resumes_and_arrives_byte_identical(tmp_path, database):
    with web_on(database, centre(tmp_path), {"viewer": "viewer"}, sites=[{"prefix": "sites/north"}]) as web:
        token = site_token(web)
        site_data = tmp_path / "site"
        source = picture(site_data, f"{FRAME_ID}.jpg", 3 * 1024 * 1024 + 123)
        remote = f"allsky/{NIGHT}/{FRAME_ID}.jpg"
        queue = UploadQueue(site_data / "upload-queue")
        queue.put(source, remote)

        # A slow uplink; the service stops (a restart) in the middle of the file.
        first = uploader(web, queue, token, chunk_bytes=128 * 1024, max_bytes_per_s=1024 * 1024).start()
        store = web.wait_until(lambda: web.service.context.uploads, timeout=30)
        web.wait_until(lambda: store.received[("north", remote)] >= 1024 * 1024, timeout=30)
        first.stop()
        held = int(web.token_client("northup").head(f"/api/v1/sites/north/uploads/{remote}").headers[OFFSET_HEADER])
        assert 1024 * 1024 <= held < source.stat().st_size
        assert not (web.data_dir / "sites" / "north" / remote).exists()
        assert len(UploadQueue(site_data / "upload-queue")) == 1  # still queued, on disk

        # After the restart: a new queue object on the same folder, the rest of the file only.
        second = uploader(web, UploadQueue(site_data / "upload-queue"), token, chunk_bytes=512 * 1024).start()
        try:
            web.wait_until(lambda: len(second.queue) == 0, timeout=30)
        finally:
            second.stop()
        arrived = web.data_dir / "sites" / "north" / remote
        assert arrived.read_bytes() == source.read_bytes()
        assert second.stats.resumed == 1 and second.stats.bytes_sent == source.stat().st_size - held
        assert store.received[("north", remote)] == source.stat().st_size  # no byte sent twice

        # Only the metadata crosses the bus; the centre serves the picture for the site's frame.
        frame = AllskyFrame(
            frame_id=FRAME_ID,
            night=NIGHT,
            exposure_s=10.0,
            url=source.resolve().as_uri(),  # the site's own path: the centre maps it to what arrived
            timestamp=datetime.now(UTC),
        )
        publisher = Watcher(web.broker.port, ["sites/north/allsky/frames"])
        try:
            publisher.publish("sites/north/allsky/frames", frame.to_json())
        finally:
            publisher.close()
        viewer = web.login("viewer")
        web.wait_until(
            lambda: viewer.get("/api/v1/allsky/images/latest", params={"site": "north"}).status_code == 200, 30
        )
        served = viewer.get(f"/api/v1/allsky/images/{FRAME_ID}/file", params={"site": "north"})
        assert served.status_code == 200 and served.content == source.read_bytes()
        north = web.wait_until(
            lambda: next(s for s in viewer.get("/api/v1/fleet").json()["items"] if s["id"] == "north")[
                "allsky_picture"
            ],
            timeout=30,
        )
        assert viewer.get(north).content == source.read_bytes()
        # The centre's own site never serves a bridged site's file by its path.
        assert viewer.get(f"/api/v1/allsky/images/{FRAME_ID}/file").status_code == 404


def test_a_busy_centre_makes_the_site_back_off_and_the_queue_keeps_its_files(tmp_path):
    uploads = {"max_concurrent": 1, "retry_after": 1}
    with web_on("sqlite", centre(tmp_path), {}, sites=[{"prefix": "sites/north"}], uploads=uploads) as web:
        token = site_token(web)
        site_data = tmp_path / "site"
        # Another upload holds the one slot: its body comes slowly (half of it, then nothing).
        blocker = socket.create_connection(("127.0.0.1", urlparse(web.url).port))
        size = 1024 * 1024
        head = (
            f"PUT /api/v1/sites/north/uploads/allsky/{NIGHT}/slow.jpg HTTP/1.1\r\nHost: centre\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {size}\r\nContent-Range: bytes 0-{size - 1}/{size}\r\n"
            f"{CHECKSUM_HEADER}: {checksum_header('0' * 64)}\r\n\r\n"
        )
        blocker.sendall(head.encode() + b"x" * (size // 2))
        store = web.wait_until(lambda: web.service.context.uploads, timeout=30)
        web.wait_until(lambda: store.active == 1, timeout=30)

        sources = [picture(site_data, f"frame-{number}.jpg", 200_000 + number) for number in range(3)]
        queue = UploadQueue(site_data / "upload-queue")
        for source in sources:
            queue.put(source, f"allsky/{NIGHT}/{source.name}")
        sender = uploader(web, queue, token).start()
        try:
            web.wait_until(lambda: sender.stats.busy_answers >= 2, timeout=30)
            assert len(queue) == 3 and sender.stats.files_sent == 0
            assert not (web.data_dir / "sites" / "north" / "allsky" / NIGHT / "frame-0.jpg").exists()
            blocker.close()  # the slot comes free: the site goes on by itself
            web.wait_until(lambda: len(queue) == 0, timeout=30)
        finally:
            sender.stop()
        for source in sources:
            arrived = web.data_dir / "sites" / "north" / "allsky" / NIGHT / source.name
            assert hashlib.sha256(arrived.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
        # What the cut-off upload had sent is held for it to resume.
        with web.token_client("northup") as client:
            held = client.head(f"/api/v1/sites/north/uploads/allsky/{NIGHT}/slow.jpg").headers[OFFSET_HEADER]
        assert int(held) == size // 2


def test_bad_uploads_are_refused_with_a_reason(tmp_path):
    with web_on("sqlite", centre(tmp_path), {"otto": "operator"}, sites=[{"prefix": "sites/north"}]) as web:
        token = site_token(web)
        other = site_token(web, "southup", ["south"])
        route = f"/api/v1/sites/north/uploads/allsky/{NIGHT}/a.jpg"
        body = b"0123456789"
        good = {
            "Content-Range": f"bytes 0-9/{len(body)}",
            CHECKSUM_HEADER: checksum_header(hashlib.sha256(body).hexdigest()),
        }
        with web.client() as client:
            client.headers["Authorization"] = f"Bearer {token}"
            bad_range = client.put(route, content=body, headers={**good, "Content-Range": "bytes 0-9"})
            assert bad_range.status_code == 422 and "Content-Range" in bad_range.json()["detail"]
            bad_sum = client.put(route, content=body, headers={**good, CHECKSUM_HEADER: "md5=abc"})
            assert bad_sum.status_code == 422 and CHECKSUM_HEADER in bad_sum.json()["detail"]
            wrong = client.put(route, content=body, headers={**good, CHECKSUM_HEADER: checksum_header("0" * 64)})
            assert wrong.status_code == 422 and "checksum" in wrong.json()["detail"]
            assert not (web.data_dir / "sites" / "north" / "allsky" / NIGHT / "a.jpg").exists()
            late = client.put(route, content=body[5:], headers={**good, "Content-Range": "bytes 5-9/10"})
            assert late.status_code == 409 and late.headers[OFFSET_HEADER] == "0"
            hidden = client.put(f"/api/v1/sites/north/uploads/allsky/{NIGHT}/.a.jpg", content=body, headers=good)
            assert hidden.status_code == 422
            script = client.put(f"/api/v1/sites/north/uploads/allsky/{NIGHT}/a.sh", content=body, headers=good)
            assert script.status_code == 422 and ".sh" in script.json()["detail"]
            local = client.put(f"/api/v1/sites/obsy/uploads/allsky/{NIGHT}/a.jpg", content=body, headers=good)
            assert local.status_code == 403  # this account is north's only
            assert client.put(route, content=body, headers=good).status_code == 201
            # A body longer than its Content-Range: only the declared bytes are taken.
            other_route = route.replace("a.jpg", "b.jpg")
            half = client.put(other_route, content=body, headers={**good, "Content-Range": "bytes 0-4/10"})
            assert half.status_code == 204 and half.headers[OFFSET_HEADER] == "5"
            rest = client.put(other_route, content=body[5:], headers={**good, "Content-Range": "bytes 5-9/10"})
            assert rest.status_code == 201
            assert (web.data_dir / "sites" / "north" / "allsky" / NIGHT / "b.jpg").read_bytes() == body
            assert (web.data_dir / "sites" / "north" / "allsky" / NIGHT / "a.jpg").read_bytes() == body
        with web.client() as client:
            client.headers["Authorization"] = f"Bearer {other}"
            refused = client.put(route, content=body, headers=good)
            assert refused.status_code == 403 and "south" in refused.json()["detail"]
        with web.login("otto") as session:  # a login, not the site's token
            assert session.put(route, content=body, headers=good).status_code == 403
        with web.token_client("otto") as everywhere:  # a token, but of an account not limited to the site
            refused = everywhere.put(route, content=body, headers=good)
            assert refused.status_code == 403 and "limited to site north" in refused.json()["detail"]
