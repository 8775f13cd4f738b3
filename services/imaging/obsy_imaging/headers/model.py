"""The typed header every later stage (repository, grading, calibration) reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class FrameType(StrEnum):
    LIGHT = "light"
    DARK = "dark"
    BIAS = "bias"
    FLAT = "flat"
    DARK_FLAT = "dark_flat"

    @property
    def is_calibration(self) -> bool:
        return self is not FrameType.LIGHT


class HeaderError(ValueError):
    """The header lacks what a frame needs, or holds a value that cannot be read.

    ``missing`` names absent keys (the ``missing_keys`` quarantine reason); ``invalid``
    names keys whose value could not be understood, with that value.
    """

    def __init__(self, missing: list[str], invalid: dict[str, str] | None = None) -> None:
        self.missing = missing
        self.invalid = invalid or {}
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if self.invalid:
            parts.append("unreadable " + ", ".join(f"{key}={value}" for key, value in self.invalid.items()))
        super().__init__("; ".join(parts))


@dataclass(frozen=True)
class FrameHeader:
    """What a frame is, in one spelling whatever program wrote it. Units are in the names."""

    frame_type: FrameType
    #: Which capture program's spelling was recognised: indi, nina, sgp, maxim, or unknown.
    program: str = "unknown"
    target: str | None = None
    filter: str | None = None
    exposure_s: float | None = None
    binning_x: int = 1
    binning_y: int = 1
    gain: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    sensor_temp_c: float | None = None
    setpoint_temp_c: float | None = None
    camera: str | None = None
    telescope: str | None = None
    focal_length_mm: float | None = None
    #: Physical (unbinned) pixel size.
    pixel_size_um: float | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    site_latitude: float | None = None
    site_longitude: float | None = None
    site_elevation_m: float | None = None
    #: Exposure start, UTC (timezone-aware).
    date_obs: datetime | None = None
    jd_start: float | None = None
    jd_mid: float | None = None
    bjd_tdb_mid: float | None = None
    airmass: float | None = None
    width: int | None = None
    height: int | None = None
    #: Where derived values came from, for people ("airmass: computed", "site: configuration").
    notes: tuple[str, ...] = field(default=())

    @property
    def binning(self) -> str:
        return f"{self.binning_x}x{self.binning_y}"
