"""Sends the queue's files to a bucket of any server with the S3 API, resumably (``upload.target: s3``).

The alternative to the centre's HTTP upload (:mod:`obsy.upload.sender`): the same queue, thread,
back-off and health figures, another ``send``. Each file is a **multipart upload** (boto3), whose
parts the server keeps until the upload is completed or aborted, so a restart, a cut link or a
stopped server costs at most the part in flight: before each file the sender lists the uploads in
progress for its key (``ListMultipartUploads``) and the parts held (``ListParts``); when every part
held is the file's bytes at its place (its ETag, the part's MD5) it sends the others (``UploadPart``
with ``Content-MD5``) and completes it; a file changed since (its parts differ) is started again. The
object carries the file's SHA-256 (``x-amz-meta-sha256``); a file whose object is already there with
that checksum is not sent again.

The key of a file is ``<prefix><its path under the site's data directory>`` (``prefix`` default
``sites/<site>/``); :meth:`S3Uploader.object_url` names it (``s3://<bucket>/<key>``) for the
metadata a service publishes on the bus, since only metadata crosses the bridge.

boto3 is imported when an S3 uploader is made: install ``obsy-core[s3]``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from obsy.upload.queue import UploadItem, UploadQueue
from obsy.upload.sender import Uploader, UploadRefusedError

log = logging.getLogger("obsy.upload")
#: S3 error codes that mean "busy, come back later" (the sender waits as for HTTP 503).
BUSY_CODES = frozenset({"SlowDown", "ServiceUnavailable", "RequestTimeout", "Throttling", "503"})
#: S3 error codes that mean the bucket or credentials are wrong: the sender waits and says so (nothing is dropped).
SETUP_CODES = frozenset({"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"})


class S3Uploader(Uploader):
    """A thread sending ``queue`` to ``bucket`` at ``endpoint_url`` (None: AWS) under ``prefix``."""

    def __init__(
        self,
        queue: UploadQueue,
        *,
        bucket: str,
        site: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = "sites/{site}/",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_bytes: int = 8 << 20,
        path_style: bool = True,
        max_bytes_per_s: float | None = None,
        backoff_max: float = 300.0,
        timeout: float = 30.0,
    ) -> None:
        import boto3
        from botocore.config import Config

        super().__init__(
            queue,
            endpoint_url or "AWS S3",
            site,
            "",
            chunk_bytes=part_bytes,
            max_bytes_per_s=max_bytes_per_s,
            backoff_max=backoff_max,
            timeout=timeout,
        )
        self.bucket = bucket
        self.prefix = prefix.format(site=site)
        settings = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 1},  # this thread retries, with its back-off, resuming from the parts held
            s3={"addressing_style": "path" if path_style else "auto"},
        )
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=settings,
        )

    def key(self, remote: str) -> str:
        return self.prefix + remote

    def object_url(self, remote: str) -> str:
        """Where the file of ``remote`` (its path under the data directory) is kept: ``s3://<bucket>/<key>``."""
        return f"s3://{self.bucket}/{quote(self.key(remote))}"

    # --- one file ---------------------------------------------------------------------
    def send(self, item: UploadItem) -> bool:
        """Send one file, resuming its multipart upload. True: sent (or dropped for good); False: stopped."""
        path = item.path
        facts = self._size_and_digest(item)
        if facts is None:
            return True
        size, digest = facts
        key = self.key(item.remote)
        if self._holds(key, digest):
            log.info("%s is in the bucket already", key)
            self.stats.files_sent += 1
            return True
        upload_id, held = self._resume(key, digest)
        difference = self._difference(path, size, held) if held else None
        if difference:
            # The file changed since (a live stack's preview is rewritten at every fold): start it again,
            # with its new checksum.
            log.info("%s changed since its upload began (%s): sending it again", item.remote, difference)
            self._call("AbortMultipartUpload", Bucket=self.bucket, Key=key, UploadId=upload_id)
            upload_id, held = self._create(key, digest), {}
        elif held:
            self.stats.resumed += 1
            log.info("resuming %s: %d parts held by the server", key, len(held))
        parts: list[dict[str, Any]] = []
        count = max(1, -(-size // self.chunk_bytes))
        with path.open("rb") as source:
            for number in range(1, count + 1):
                if self._stopping.is_set():
                    return False
                if number in held:
                    parts.append({"PartNumber": number, "ETag": held[number]})
                    continue
                source.seek((number - 1) * self.chunk_bytes)
                chunk = source.read(self.chunk_bytes)
                md5 = hashlib.md5(chunk, usedforsecurity=False)
                started = time.monotonic()
                answer = self._call(
                    "UploadPart",
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ContentMD5=base64.b64encode(md5.digest()).decode(),
                )
                self.stats.bytes_sent += len(chunk)
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                self._pace(len(chunk), started)
        self._call(
            "CompleteMultipartUpload",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
        self.stats.files_sent += 1
        log.info("sent %s to %s (%d bytes)", item.remote, self.object_url(item.remote), size)
        return True

    def _holds(self, key: str, digest: str) -> bool:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # 404 is "not there"; the others are raised as the sender's
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._refused("HeadObject", exc) from None
        return head.get("Metadata", {}).get("sha256") == digest

    def _resume(self, key: str, digest: str) -> tuple[str, dict[int, str]]:
        """The upload in progress for ``key`` of this same file (its id and parts held), else a new one."""
        listed = self._call("ListMultipartUploads", Bucket=self.bucket, Prefix=key)
        for upload in sorted(listed.get("Uploads", []), key=lambda u: u.get("Initiated") or 0, reverse=True):
            if upload.get("Key") != key:
                continue
            upload_id = upload["UploadId"]
            held: dict[int, str] = {}
            marker = 0
            while True:
                page = self._call("ListParts", Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker)
                for part in page.get("Parts", []):  # checked against the file's bytes when sending
                    held[part["PartNumber"]] = part["ETag"]
                if not page.get("IsTruncated"):
                    break
                marker = page["NextPartNumberMarker"]
            return upload_id, held
        return self._create(key, digest), {}

    def _create(self, key: str, digest: str) -> str:
        created = self._call(
            "CreateMultipartUpload",
            Bucket=self.bucket,
            Key=key,
            Metadata={"sha256": digest},
            ContentType=_content_type(key),
        )
        return created["UploadId"]

    def _difference(self, path: Path, size: int, held: dict[int, str]) -> str | None:
        """None when every part held is the file's bytes at its place (its ETag is the part's MD5), else
        the first part that is not, said for the log."""
        count = max(1, -(-size // self.chunk_bytes))
        with path.open("rb") as source:
            for number, etag in sorted(held.items()):
                if number > count:
                    return f"part {number} held, the file has {count}"
                source.seek((number - 1) * self.chunk_bytes)
                md5 = hashlib.md5(source.read(self.chunk_bytes), usedforsecurity=False).hexdigest()
                held_md5 = etag.strip('"')
                if md5 != held_md5:
                    return f"part {number} held with ETag {held_md5}, the file's has MD5 {md5}"
        return None

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        method = getattr(self.client, _snake(operation))
        try:
            return method(**arguments)
        except Exception as exc:  # every failure becomes the sender's: waited on, retried
            raise self._refused(operation, exc) from None

    def _refused(self, operation: str, exc: Exception) -> UploadRefusedError:
        code = _code(exc)
        where = f"{self.base_url} bucket {self.bucket}"
        if code in BUSY_CODES:
            return UploadRefusedError(503, f"{operation} at {where}: busy ({code})")
        if code is None:
            return UploadRefusedError(0, f"{operation}: the S3 server {where} is not reachable: {exc}")
        hint = " (check upload.s3: bucket, credentials)" if code in SETUP_CODES else ""
        return UploadRefusedError(400, f"{operation} at {where}: {code}{hint}: {str(exc)[:200]}")


def _code(exc: Exception) -> str | None:
    """The S3 error code of a botocore ClientError; None for a transport error (no answer)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return None


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"
