"""Saving every Nth allsky frame into class folders, for labelling a classifier's training set.

Frames are filed under the label the service gave them (``Clear``, ``Overcast``...,
``unknown``): a person then moves the misfiled ones, and ``obsy-clouddetect train`` learns
from the folders.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from obsy.messages import AllskyFrame

log = logging.getLogger("obsy.clouddetect")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "frame"


class Collector:
    def __init__(self, folder: Path, every: int) -> None:
        if every < 1:
            raise ValueError("collect every must be at least 1")
        self.folder = folder
        self.every = every
        self.seen = 0
        self.saved = 0

    def offer(self, frame: AllskyFrame, label: str, fetch: Callable[[], bytes]) -> Path | None:
        """Count the frame; every Nth is written to ``<folder>/<label>/<frame_id><suffix>``."""
        self.seen += 1
        if (self.seen - 1) % self.every:
            return None
        suffix = Path(urllib.parse.urlparse(frame.clean_url or frame.url).path).suffix.lower() or ".jpg"
        target = self.folder / _safe(label) / f"{_safe(frame.frame_id)}{suffix}"
        try:
            data = fetch()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except Exception as exc:
            log.warning("cannot collect frame %s: %s", frame.frame_id, exc)
            return None
        self.saved += 1
        return target
