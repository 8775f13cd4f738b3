"""The night's frame log: one JSON line per stored frame (``<night>/frames.jsonl``).

The frames themselves are JPEGs; what was measured on them (stars, SQM, exposure, the cloud
verdict at the time) would otherwise only have gone over the bus. The service appends one
line per frame; the night summary reads them back. A line cut short by a crash or a full
disk is skipped and counted when read, never fatal.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obsy.messages import AllskyFrame, CloudState

log = logging.getLogger("obsy.allsky.products")

FRAME_LOG = "frames.jsonl"
FRAME_FIELDS = (
    "frame_id",
    "exposure_s",
    "gain",
    "stars",
    "sqm",
    "sun_altitude",
    "moon_altitude",
    "moon_phase",
    "mode",
)


def frame_record(frame: AllskyFrame, cloud: CloudState | None) -> dict[str, Any]:
    """What the log keeps of a frame: its figures, and the cloud verdict known when it was taken."""
    record = {name: getattr(frame, name, None) for name in FRAME_FIELDS}
    record["time"] = frame.timestamp.isoformat()
    record["clear"] = cloud.clear if cloud is not None else None
    record["cloud_cover"] = cloud.cloud_cover if cloud is not None else None
    return record


def append(night_dir: Path, record: dict[str, Any]) -> None:
    night_dir.mkdir(parents=True, exist_ok=True)
    with open(night_dir / FRAME_LOG, "a", encoding="utf-8") as out:
        out.write(json.dumps(record, separators=(",", ":")) + "\n")


@dataclass
class FrameLog:
    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: int = 0


def read(night_dir: Path) -> FrameLog:
    """The night's records in the order written; an absent log is an empty one."""
    result = FrameLog()
    path = night_dir / FRAME_LOG
    if not path.exists():
        return result
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or "frame_id" not in record:
                result.bad_lines += 1
                log.warning("%s line %d is not a frame record; skipped", path, number)
                continue
            result.records.append(record)
    return result
