"""Where a frame lives in the repository: one layout, derived from its typed header only.

    lights/<night>/<target>/<filter>/<file name>
    calibration/<camera>/<type>/<settings>/<night>/<file name>

``<night>`` is the observing night (YYYY-MM-DD of the evening, site time zone). ``<settings>``
holds what calibration frames are matched by: binning, gain, offset, readout mode, set-point
(or sensor) temperature, and the exposure for darks or the filter for flats. Folder names are
made safe (letters, digits, ``.``, ``-``, ``_``); missing values read ``unknown``/``nofilter``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from obsy_imaging.headers import FrameHeader, FrameType

_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")


def folder_name(value: str | None, missing: str = "unknown") -> str:
    """A portable folder name: 'M 42' -> 'M_42', '../x' -> 'x'; empty -> ``missing``."""
    cleaned = _UNSAFE.sub("_", value or "").strip("._-")
    return cleaned[:80] or missing


def _number(value: float) -> str:
    return f"{value:g}".replace("-", "m") if value < 0 else f"{value:g}"


def calibration_settings(header: FrameHeader) -> str:
    """'bin1x1_gain100_offset50_m10C_300s' - the matching settings of a calibration frame."""
    parts = [f"bin{header.binning}"]
    if header.gain is not None:
        parts.append(f"gain{_number(header.gain)}")
    if header.offset is not None:
        parts.append(f"offset{_number(header.offset)}")
    if header.readout_mode:
        parts.append(folder_name(header.readout_mode))
    temperature = header.setpoint_temp_c if header.setpoint_temp_c is not None else header.sensor_temp_c
    if temperature is not None:
        parts.append(f"{_number(round(temperature))}C")
    if header.frame_type in (FrameType.DARK, FrameType.DARK_FLAT, FrameType.FLAT) and header.exposure_s is not None:
        parts.append(f"{_number(header.exposure_s)}s")
    if header.frame_type is FrameType.FLAT:
        parts.append(folder_name(header.filter, "nofilter"))
    return "_".join(parts)


def frame_folder(header: FrameHeader, night: str) -> PurePosixPath:
    """The folder (relative to the repository root) a frame with this header belongs in."""
    if header.frame_type is FrameType.LIGHT:
        return PurePosixPath("lights", night, folder_name(header.target), folder_name(header.filter, "nofilter"))
    return PurePosixPath(
        "calibration",
        folder_name(header.camera),
        header.frame_type.value,
        calibration_settings(header),
        night,
    )
