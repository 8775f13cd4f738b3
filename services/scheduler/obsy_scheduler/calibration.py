"""Calibration frames (Dark, Bias, Flat) that Ekos can take without a person, from ``ekos.calibration``.

What KStars 3.6 does before a calibration frame (its ``SequenceJobState``), by the
``<Calibration><FlatSource><Type>`` of the capture job:

- **Dark**: Ekos first asks whether the camera has a shutter, unless KStars already knows
  (its lists of cameras with and without a shutter, remembered from the first answer). With a
  shutter, nothing else is needed. Without one, ``Manual`` asks a person to cover the
  telescope; ``FlatCap``/``DarkCap`` close the dust cap (and turn its light off).
- **Flat**: ``Manual`` asks a person for a light source; ``FlatCap`` closes the dust cap and
  turns on its light (or a light box's); ``Wall`` slews to the wall's azimuth and altitude,
  stops tracking and turns on a light box; ``DawnDusk`` is not implemented in 3.6 (the frame
  fails). The exposure is the plan's (``FlatDuration`` ``Manual``) or found by Ekos for a
  target mean ADU (``<Value>``, ``<Tolerance>``).
- **Light**: with ``FlatCap``/``DarkCap`` Ekos opens the dust cap and turns the light off first.

So a dark or bias is planned only with a camera shutter or a dust cap, a flat only with a
panel or a wall; anything else is left out with the reason naming the setting.
"""

from __future__ import annotations

from collections.abc import Iterable

from obsy.messages import FrameType
from obsy_scheduler.config import SchedulerCalibrationConfig

SETTING = "scheduler.ekos.calibration"


def unavailable_reason(frame_types: Iterable[FrameType | str], calibration: SchedulerCalibrationConfig) -> str | None:
    """Why these frame types cannot be taken unattended with this configuration, or None."""
    types = {FrameType(t) for t in frame_types}
    problems = []
    dark_like = sorted(t.value for t in types & {FrameType.DARK, FrameType.BIAS})
    if dark_like and calibration.dark_source() is None:
        problems.append(
            f"{' and '.join(dark_like)} frames need the telescope dark without a person: set "
            f"{SETTING}.camera_shutter (the camera has a shutter) or {SETTING}.dust_cap"
        )
    if FrameType.FLAT in types and calibration.flat_source == "none":
        problems.append(
            f"Flat frames need a light source Ekos controls: set {SETTING}.flat_source to panel (a flat panel or "
            "dust cap with its own light) or wall (Ekos' dawn/dusk sky flats are not implemented in KStars 3.6)"
        )
    if not problems:
        return None
    return "; ".join(problems) + "; otherwise Ekos would wait for someone to cover the telescope or set up the light"


def flat_source(frame_type: FrameType | str, calibration: SchedulerCalibrationConfig) -> str:
    """The ``<FlatSource><Type>`` for a capture job of this frame type.

    Lights and darks close or open the dust cap only when there is one (``FlatCap`` with a
    panel, ``DarkCap`` with a plain cap), so that a light after a dark finds the cap open; a
    flat takes the configured light.
    """
    frame_type = FrameType(frame_type)
    cap = "FlatCap" if calibration.flat_source == "panel" else "DarkCap" if calibration.dust_cap else None
    if frame_type is FrameType.FLAT:
        return {"panel": "FlatCap", "wall": "Wall"}.get(calibration.flat_source, "Manual")
    if frame_type in (FrameType.DARK, FrameType.BIAS):
        return cap if calibration.dust_cap and cap else "Manual"
    return cap or "Manual"
