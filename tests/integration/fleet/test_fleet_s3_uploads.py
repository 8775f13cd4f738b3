"""A site's large files to a bucket with the S3 API (``upload.target: s3``), resumed after a cut.

The S3 server is moto's standalone server (``moto[server]``): a real HTTP server speaking the S3 API,
run in this process on loopback (MinIO is not packaged for Debian). The uploader talks to it through a
TCP proxy that counts the bytes it sends and that the test cuts in the middle of an upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.config import load_config
from obsy.upload import UploadQueue
from obsy.upload.s3 import S3Uploader
from obsy.upload.site import SiteUploads
from tests.support.indi_proxy import IndiProxy
from tests.support.ports import free_port

# boto3 and moto are imported by the tests that use them (a second of CPU for every collecting
# worker otherwise); the whole module is skipped where either is missing.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(importlib.util.find_spec(name) for name in ("boto3", "moto")), reason="needs boto3 and moto[server]"
    ),
]
BUCKET = "obsy-fleet"
MIB = 1 << 20
CREDENTIALS = {"access_key_id": "site-north", "secret_access_key": "not-a-real-secret"}


class CountingProxy(IndiProxy):
    """A TCP proxy that counts the bytes its clients send (what the S3 server receives)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        super().__init__(upstream_host, upstream_port)
        self.sent = 0

    def _pipe(self, source: socket.socket, sink: socket.socket, send_lock) -> None:
        if send_lock is not None:  # the server's answers: as they are
            return super()._pipe(source, sink, send_lock)
        try:
            while chunk := source.recv(1 << 16):
                with self._lock:
                    self.sent += len(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def s3_server() -> Iterator[str]:
    from moto import server as moto_server

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client(url).create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


def client(url: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    )


def uploader(queue: UploadQueue, url: str, **options) -> S3Uploader:
    return S3Uploader(
        queue,
        bucket=BUCKET,
        site="north",
        endpoint_url=url,
        region="us-east-1",
        part_bytes=5 * MIB,
        backoff_max=1.0,
        timeout=5,
        **CREDENTIALS,
        **options,
    )


def wait_until(check, timeout: float):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise TimeoutError("condition not met in time")


@pytest.mark.long(seconds=30)
def test_an_upload_cut_in_the_middle_resumes_without_sending_its_parts_again(tmp_path, s3_server, caplog):
    caplog.set_level(logging.INFO, logger="obsy.upload")  # on a failure, the uploader's reasons are shown
    site = tmp_path / "site"
    picture = site / "allsky" / "2026-08-10" / "north-0001.fits"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(os.urandom(3 * 5 * MIB + MIB + 7))  # four parts, the last short
    size = picture.stat().st_size
    remote = picture.relative_to(site).as_posix()
    key = f"sites/north/{remote}"
    queue = UploadQueue(site / "upload-queue")
    queue.put(picture, remote)
    direct = client(s3_server)
    host, port = s3_server.removeprefix("http://").split(":")

    def held() -> list[dict]:
        uploads = direct.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
        if not uploads:
            return []
        return direct.list_parts(Bucket=BUCKET, Key=key, UploadId=uploads[0]["UploadId"]).get("Parts", [])

    # A slow uplink (4 MiB/s): cut after two parts have arrived, with the third in flight.
    first_link = CountingProxy(host, int(port))
    first_link.start()
    first = uploader(queue, f"http://127.0.0.1:{first_link.port}", max_bytes_per_s=4 * MIB).start()
    try:
        wait_until(lambda: len(held()) >= 2, timeout=30)
        first_link.stop()  # the connection is cut
        first.stop()
    finally:
        first_link.stop()
        first.stop()
    parts_before = held()
    held_bytes = sum(part["Size"] for part in parts_before)
    assert 2 <= len(parts_before) < 4 and held_bytes < size
    assert len(queue) == 1  # still to send
    with pytest.raises(direct.exceptions.ClientError):
        direct.head_object(Bucket=BUCKET, Key=key)

    # A new uploader (the site restarted) on the same queue, on a new link: it sends only the rest.
    second_link = CountingProxy(host, int(port))
    second_link.start()
    second = uploader(queue, f"http://127.0.0.1:{second_link.port}").start()
    try:
        wait_until(lambda: len(queue) == 0, timeout=60)
    finally:
        second.stop()
        second_link.stop()
    stored = direct.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == picture.read_bytes()
    assert stored["Metadata"]["sha256"] == hashlib.sha256(picture.read_bytes()).hexdigest()
    assert second.stats.resumed == 1 and second.stats.files_sent == 1 and second.stats.failures == 0
    assert second.stats.bytes_sent == size - held_bytes  # not one byte of the parts held
    overhead = 64 * 1024  # the requests' lines and headers, the listings and the completion
    assert size - held_bytes <= second_link.sent < size - held_bytes + overhead
    assert direct.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []  # none left behind


@pytest.mark.long(seconds=20)
def test_a_file_changed_since_its_upload_began_is_sent_again_whole(tmp_path, s3_server, caplog):
    """A live stack's preview is rewritten at every fold: parts of its old bytes held by the server must not
    end up in the object, nor its old checksum."""
    caplog.set_level(logging.INFO, logger="obsy.upload")
    picture = tmp_path / "site" / "imaging" / "stack.jpg"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(os.urandom(2 * 5 * MIB + 100))
    key = "sites/north/imaging/stack.jpg"
    queue = UploadQueue(tmp_path / "queue")
    queue.put(picture, "imaging/stack.jpg")
    direct = client(s3_server)
    first = uploader(queue, s3_server, max_bytes_per_s=4 * MIB).start()
    try:
        wait_until(
            lambda: (
                (u := direct.list_multipart_uploads(Bucket=BUCKET).get("Uploads"))
                and direct.list_parts(Bucket=BUCKET, Key=key, UploadId=u[0]["UploadId"]).get("Parts")
            ),
            timeout=20,
        )
    finally:
        first.stop()
    assert len(queue) == 1
    picture.write_bytes(os.urandom(2 * 5 * MIB + 300))  # the next fold
    second = uploader(queue, s3_server).start()
    try:
        wait_until(lambda: len(queue) == 0, timeout=30)
    finally:
        second.stop()
    stored = direct.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == picture.read_bytes()
    assert stored["Metadata"]["sha256"] == hashlib.sha256(picture.read_bytes()).hexdigest()
    assert second.stats.resumed == 0 and second.stats.bytes_sent == picture.stat().st_size
    assert direct.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert "changed since its upload began (part 1 held with ETag" in caplog.text  # the log says which part


def test_the_config_sends_to_the_bucket_and_names_the_objects_for_the_bus(tmp_path, s3_server, monkeypatch):
    """``upload.target: s3`` from the configuration, credentials from secret files (never in the file in clear);
    the object's URL for the metadata a service publishes (``AllskyFrame.object_url``)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in CREDENTIALS.items():
        (secrets / name).write_text(value + "\n")
        monkeypatch.setenv(f"OBSY_UPLOAD__S3__{name.upper()}_FILE", str(secrets / name))
    data_dir = tmp_path / "data"
    path = tmp_path / "obsy.yaml"
    path.write_text(
        f"site: {{name: North, latitude: -31, longitude: -70.7, id: north}}\n"
        f"data_dir: {data_dir}\n"
        f"upload:\n  target: s3\n  s3: {{endpoint_url: '{s3_server}', bucket: {BUCKET}, region: us-east-1}}\n"
    )
    assert "secret" not in path.read_text()
    config = load_config(path)
    assert config.upload.s3.secret_access_key.get_secret_value() == CREDENTIALS["secret_access_key"]
    picture = data_dir / "allsky" / "2026-08-10" / "north-0002.jpg"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(os.urandom(200_000))
    uploads = SiteUploads.from_config(config)
    assert uploads is not None
    try:
        assert uploads.object_url(picture) == f"s3://{BUCKET}/sites/north/allsky/2026-08-10/north-0002.jpg"
        assert uploads.send(picture)
        wait_until(lambda: len(uploads.queue) == 0, timeout=30)
    finally:
        uploads.stop()
    body = client(s3_server).get_object(Bucket=BUCKET, Key="sites/north/allsky/2026-08-10/north-0002.jpg")["Body"]
    assert body.read() == picture.read_bytes()
    assert uploads.health()["sent"] == 1 and uploads.health()["failures"] == 0


def test_a_wrong_bucket_or_setup_is_refused_with_a_reason(tmp_path, s3_server):
    from obsy.config import ConfigError

    path = tmp_path / "obsy.yaml"
    path.write_text("site: {name: N, latitude: 1, longitude: 1}\nupload: {target: s3}\n")
    with pytest.raises(ConfigError, match="bucket"):
        load_config(path)
    picture = tmp_path / "x.jpg"
    picture.write_bytes(b"x" * 1000)
    queue = UploadQueue(tmp_path / "queue")
    queue.put(picture, "x.jpg")
    sender = uploader(queue, s3_server)
    sender.bucket = "no-such-bucket"
    sender.start()
    try:
        wait_until(lambda: sender.stats.last_error, timeout=20)
    finally:
        sender.stop()
    assert "no-such-bucket" in sender.stats.last_error and "NoSuchBucket" in sender.stats.last_error
    assert len(queue) == 1  # kept: nothing is dropped for a setup error


def test_the_files_path_under_the_data_directory_is_the_key(tmp_path: Path):
    """No S3 server needed: the key and URL are the prefix and the file's path (what the bus names)."""
    sender = S3Uploader(UploadQueue(tmp_path / "q"), bucket=BUCKET, site="south", prefix="fleet/{site}/")
    assert sender.key("allsky/n/a b.jpg") == "fleet/south/allsky/n/a b.jpg"
    assert sender.object_url("allsky/n/a b.jpg") == f"s3://{BUCKET}/fleet/south/allsky/n/a%20b.jpg"
