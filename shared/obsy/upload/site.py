"""What a service runs to send its files to the centre (``upload`` in the config; off without ``upload.url``).

The allsky service sends its pictures; any service whose files lie under ``data_dir`` may send
them the same way: ``SiteUploads.from_config(config)``, ``.send(path)`` after the file is written
whole, ``.stop()`` on exit. The thread works beside the service and never holds it up: a slow or
absent centre only lets the queue grow (up to ``upload.max_queued_files``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from obsy.config import ObsyConfig
from obsy.upload.queue import QueueFullError, UploadQueue
from obsy.upload.sender import Uploader

log = logging.getLogger("obsy.upload")


class SiteUploads:
    def __init__(self, data_dir: Path, queue: UploadQueue, uploader: Uploader) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.queue = queue
        self.uploader = uploader

    @classmethod
    def from_config(cls, config: ObsyConfig) -> SiteUploads | None:
        """Started uploads, or None where nothing is sent (``upload.url`` empty, ``upload.target`` http)."""
        settings = config.upload
        if not settings.enabled:
            return None
        queue = UploadQueue(settings.queue_path(config.data_dir), settings.max_queued_files)
        if settings.target == "s3":
            from obsy.upload.s3 import S3Uploader

            s3 = settings.s3
            assert s3.bucket is not None  # the config checked it
            sender = S3Uploader(
                queue,
                bucket=s3.bucket,
                site=settings.site or config.site_id(),
                endpoint_url=s3.endpoint_url,
                region=s3.region,
                prefix=s3.prefix,
                access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
                secret_access_key=s3.secret_access_key.get_secret_value() if s3.secret_access_key else None,
                part_bytes=s3.part_bytes,
                path_style=s3.path_style,
                max_bytes_per_s=settings.max_bytes_per_s,
                backoff_max=settings.backoff_max,
            )
            where = f"bucket {s3.bucket} at {s3.endpoint_url or 'AWS'}"
            log.info("sending files to %s under %s (%d queued)", where, sender.prefix, len(queue))
            return cls(config.data_dir, queue, sender.start())
        if not settings.url or settings.token is None:
            return None
        uploader = Uploader(
            queue,
            settings.url,
            settings.site or config.site_id(),
            settings.token.get_secret_value(),
            chunk_bytes=settings.chunk_bytes,
            max_bytes_per_s=settings.max_bytes_per_s,
            backoff_max=settings.backoff_max,
        )
        log.info("sending files to %s as site %s (%d queued)", settings.url, uploader.site, len(queue))
        return cls(config.data_dir, queue, uploader.start())

    def send(self, path: Path) -> bool:
        """Queue a file under the data directory; False (logged) when it is elsewhere or the queue is full."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.data_dir):
            log.error("not sending %s: it is not under the data directory %s", resolved, self.data_dir)
            return False
        try:
            self.queue.put(resolved, resolved.relative_to(self.data_dir).as_posix())
        except QueueFullError as exc:
            log.error("%s", exc)
            return False
        return True

    def object_url(self, path: Path) -> str | None:
        """Where a file under the data directory is kept once sent, for the metadata on the bus: its S3 object
        (``s3://<bucket>/<key>``); None for the centre's HTTP upload (the centre serves it by the frame)."""
        object_url = getattr(self.uploader, "object_url", None)
        resolved = Path(path).resolve()
        if object_url is None or not resolved.is_relative_to(self.data_dir):
            return None
        return object_url(resolved.relative_to(self.data_dir).as_posix())

    def health(self) -> dict[str, Any]:
        """For the service's health message: what waits, what went, and how the centre answered."""
        stats = self.uploader.stats
        return {
            "queued": len(self.queue),
            "sent": stats.files_sent,
            "bytes_sent": stats.bytes_sent,
            "resumed": stats.resumed,
            "busy_answers": stats.busy_answers,
            "failures": stats.failures,
            "dropped": len(stats.dropped),
            "last_error": stats.last_error,
        }

    def stop(self) -> None:
        self.uploader.stop()
