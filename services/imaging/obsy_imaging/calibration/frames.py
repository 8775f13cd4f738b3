"""What the calibration library needs to know about a frame or a master, filled in by the repository.

These are plain values read from the headers (the ingest normalises the spellings of INDI,
N.I.N.A., SGP and MaxIm); the calibration code never reads a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path


class FrameKind(StrEnum):
    BIAS = "bias"
    DARK = "dark"
    FLAT = "flat"
    DARK_FLAT = "darkflat"
    LIGHT = "light"


#: The kinds a master is built from (a light is never combined into a master).
MASTER_KINDS = (FrameKind.BIAS, FrameKind.DARK, FrameKind.FLAT, FrameKind.DARK_FLAT)


@dataclass(frozen=True, kw_only=True)
class FrameInfo:
    """One frame (raw or master) as the calibration rules see it.

    ``None`` means the header did not say; for the matching rules an unknown value only
    matches another unknown value (see :mod:`.matching`).
    """

    kind: FrameKind
    camera: str
    time: datetime  # exposure start, UTC (for a master: the middle of its inputs' times)
    exposure: float  # seconds
    binning: tuple[int, int] = (1, 1)
    gain: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    temperature: float | None = None  # sensor temperature, °C
    filter: str | None = None
    optical_train: str | None = None
    shape: tuple[int, int] | None = None  # (rows, columns)
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError(
                f"{self.path or self.kind}: the frame's time must be timezone-aware (UTC), not {self.time}"
            )
        if self.exposure < 0:
            raise ValueError(f"{self.path or self.kind}: a negative exposure ({self.exposure} s)")

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else f"<{self.kind} in memory>"


@dataclass(frozen=True, kw_only=True)
class MasterInfo(FrameInfo):
    """A master in the calibration library: a frame description plus its identity."""

    master_id: str
    frame_count: int = 0
    built: datetime | None = None  # when the master was made (the newest wins among equals)
    #: Pinned by the user for its group: chosen over any other for the lights it fits (see :mod:`.matching`).
    pinned: bool = False
