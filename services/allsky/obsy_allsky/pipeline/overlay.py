"""Text on the finished image: time, exposure, sun and moon, stars and SQM, cardinal points, labels.

Text is drawn with OpenCV on the host on both backends: each item's small box is copied to
the host, drawn on and copied back, so the GPU path moves a few kilobytes, not the frame.
Every item has a dark outline so that it reads on bright twilight sky as on black night.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cv2
import numpy as np

from obsy.skymodel import SkyModel
from obsy_allsky.backend import Backend

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class FrameInfo:
    """What the overlay can say about a frame; the capture side fills in what it knows."""

    taken_at: datetime | None = None
    exposure_s: float | None = None
    gain: float | None = None
    bracket: int = 1
    sun_altitude: float | None = None
    moon_altitude: float | None = None
    moon_illumination: float | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Text:
    """One piece of text: its baseline's left end (or centre, with ``centred``) in pixels."""

    text: str
    x: float
    y: float
    centred: bool = False


def info_lines(info: FrameInfo, show: list[str], time_format: str, stars: int | None, sqm: float | None) -> list[str]:
    """The information lines, in the order of ``show``, leaving out what is not known."""
    lines = []
    for item in show:
        if item == "time" and info.taken_at is not None:
            lines.append(info.taken_at.strftime(time_format).strip())
        elif item == "exposure" and info.exposure_s is not None:
            text = f"Exposure {_seconds(info.exposure_s)}"
            if info.bracket > 1:
                text += f" (HDR x{info.bracket})"
            if info.gain is not None:
                text += f"  gain {info.gain:g}"
            lines.append(text)
        elif item == "sun_moon":
            parts = []
            if info.sun_altitude is not None:
                parts.append(f"Sun {info.sun_altitude:+.1f} deg")
            if info.moon_altitude is not None:
                moon = f"Moon {info.moon_altitude:+.1f} deg"
                if info.moon_illumination is not None:
                    moon += f" ({info.moon_illumination * 100:.0f} %)"
                parts.append(moon)
            if parts:
                lines.append("  ".join(parts))
        elif item == "stars" and stars is not None:
            lines.append(f"Stars {stars}" + (f"  SQM {sqm:.2f}" if sqm is not None else ""))
    return lines


def _seconds(value: float) -> str:
    return f"{value:.3g} s" if value >= 0.1 else f"{value * 1000:.3g} ms"


def cardinal_texts(
    height: int,
    width: int,
    center: tuple[float, float],
    radius: float,
    *,
    rotation: float,
    mirrored: bool,
    inset_px: float,
) -> list[Text]:
    """N, E, S, W just inside the image circle, placed by the camera's rotation and mirror sense.

    The directions follow :class:`obsy.skymodel.SkyModel` (``rotation`` degrees added to the
    azimuth, 0 = north up; not mirrored = east left of north, the view from below).
    """
    cx, cy = center[0] * width - 0.5, center[1] * height - 0.5
    r = radius * min(width, height) - inset_px
    # An equidistant model whose horizon is the circle: the points at the altitude of radius r.
    model = SkyModel(
        zenith_x=cx,
        zenith_y=cy,
        scale=radius * min(width, height) / (math.pi / 2),
        rotation=rotation,
        mirrored=mirrored,
    )
    altitude = 90.0 - math.degrees(r / model.scale)
    return [Text(name, x, y, centred=True) for name, (x, y) in model.cardinal_points(altitude).items()]


def draw_texts(
    be: Backend, image: Any, texts: list[Text], *, text_px: float, colour: tuple[float, float, float]
) -> Any:
    """Draw each text (outlined) onto the (H, W, 3) image in [0, 1]; in place."""
    scale = text_px / 22.0  # Hershey simplex capitals are about 22 px at scale 1
    thickness = max(1, round(text_px / 12))
    outline = thickness + max(1, round(text_px / 10))
    height, width = image.shape[:2]
    for item in texts:
        (w, h), descent = cv2.getTextSize(item.text, _FONT, scale, outline)
        x = item.x - w / 2 if item.centred else item.x
        y = item.y + h / 2 if item.centred else item.y
        margin = outline + 2
        x0, y0 = max(int(x) - margin, 0), max(int(y) - h - margin, 0)
        x1, y1 = min(int(x) + w + margin, width), min(int(y) + descent + margin, height)
        if x0 >= x1 or y0 >= y1:
            continue
        origin = (round(x) - x0, round(y) - y0)
        # OpenCV draws text on 8-bit images only: draw coverage masks, blend them into the float box.
        shadow = np.zeros((y1 - y0, x1 - x0), np.uint8)
        fill = np.zeros_like(shadow)
        cv2.putText(shadow, item.text, origin, _FONT, scale, 255, outline, cv2.LINE_AA)
        cv2.putText(fill, item.text, origin, _FONT, scale, 255, thickness, cv2.LINE_AA)
        box = np.array(be.to_host(image[y0:y1, x0:x1]), dtype=np.float32)
        box *= (1 - shadow.astype(np.float32) / 255)[:, :, None]
        alpha = (fill.astype(np.float32) / 255)[:, :, None]
        box = box * (1 - alpha) + alpha * np.asarray(colour, np.float32)
        image[y0:y1, x0:x1] = be.asarray(box)
    return image


def overlay(
    be: Backend,
    image: Any,
    stage: Any,
    info: FrameInfo | None,
    *,
    stars: int | None,
    sqm: float | None,
    circle_center: tuple[float, float],
    circle_radius: float,
) -> Any:
    """The overlay stage (``stage`` is its configuration, :class:`obsy.config.AllskyOverlayStage`)."""
    height, width = image.shape[:2]
    text_px = max(8.0, stage.text_height * height)
    line = text_px * 1.6
    texts: list[Text] = []
    info = info or FrameInfo()
    for number, text in enumerate(info_lines(info, stage.show, stage.time_format, stars, sqm)):
        texts.append(Text(text, x=text_px * 0.6, y=text_px * 0.6 + line * (number + 1) - (line - text_px)))
    if stage.cardinals:
        texts += cardinal_texts(
            height,
            width,
            circle_center,
            circle_radius,
            rotation=stage.rotation,
            mirrored=stage.mirrored,
            inset_px=text_px * 1.2,
        )
    for label in stage.labels:
        texts.append(Text(label.text, x=label.x * width, y=label.y * height))
    for number, text in enumerate(info.labels):  # per-frame labels, bottom left
        texts.append(Text(text, x=text_px * 0.6, y=height - text_px * 0.6 - line * number))
    return draw_texts(be, image, texts, text_px=text_px, colour=stage.colour)
