"""Text on the finished image: time, exposure, sun and moon, stars and SQM, cardinal points, labels,
and the names on the sky (:mod:`.skynames`: stars, planets, the Moon, constellations, altitude circles,
the celestial equator) where the frame comes with a sky model.

Text is drawn with OpenCV on the host on both backends: each item's small box is copied to
the host, drawn on and copied back, so the GPU path moves a few kilobytes, not the frame.
Every item has a dark outline so that it reads on bright twilight sky as on black night.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cv2
import numpy as np

from obsy.skymodel import SkyModel
from obsy_allsky.backend import Backend
from obsy_allsky.pipeline.skynames import Box, Circle, PlacedLabel, place_labels, sky_scene

_FONT = cv2.FONT_HERSHEY_SIMPLEX
log = logging.getLogger("obsy.allsky.pipeline")


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
    #: The camera's sky model for the finished picture and the site (anything with latitude,
    #: longitude, elevation): both are needed for the names on the sky.
    sky_model: SkyModel | None = None
    site: Any = None


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


def _pen(text_px: float) -> tuple[float, int, int]:
    """OpenCV font scale, stroke and outline thickness for text ``text_px`` high."""
    scale = text_px / 22.0  # Hershey simplex capitals are about 22 px at scale 1
    thickness = max(1, round(text_px / 12))
    return scale, thickness, thickness + max(1, round(text_px / 10))


def text_extent(text: str, text_px: float) -> tuple[float, float, float]:
    """(width, height above the baseline, depth below it) in pixels that ``text`` covers, outline included."""
    scale, _, outline = _pen(text_px)
    (w, h), descent = cv2.getTextSize(text, _FONT, scale, outline)
    margin = outline / 2 + 1
    return w + 2 * margin, h + margin, descent + margin


def text_box(item: Text, text_px: float) -> Box:
    """The box a :class:`Text` covers."""
    w, h, d = text_extent(item.text, text_px)
    (tw, th), _ = cv2.getTextSize(item.text, _FONT, _pen(text_px)[0], _pen(text_px)[2])
    x = item.x - tw / 2 if item.centred else item.x
    y = item.y + th / 2 if item.centred else item.y
    margin = (w - tw) / 2
    return (x - margin, y - h, x + tw + margin, y + d)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def draw_texts(
    be: Backend, image: Any, texts: list[Text], *, text_px: float, colour: tuple[float, float, float]
) -> Any:
    """Draw each text (outlined) onto the (H, W, 3) image in [0, 1]; in place."""
    scale, thickness, outline = _pen(text_px)
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
        fill = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.putText(fill, item.text, origin, _FONT, scale, 255, thickness, cv2.LINE_AA)
        # The outline grows the strokes themselves: text drawn with thicker strokes advances further
        # per letter, so its shadow would drift off the letters towards the end of a word.
        shadow = cv2.dilate(fill, _disc(max(1, round((outline - thickness) / 2))))
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
    """The overlay stage (``stage`` is its configuration, :class:`obsy_allsky.config.AllskyOverlayStage`)."""
    height, width = image.shape[:2]
    text_px = max(8.0, stage.text_height * height)
    line = text_px * 1.6
    circle = image_circle(height, width, circle_center, circle_radius)
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
    names_on_sky(be, image, stage.sky, info, text_px, obstacles=[text_box(t, text_px) for t in texts], circle=circle)
    return draw_texts(be, image, texts, text_px=text_px, colour=stage.colour)


def image_circle(height: int, width: int, center: tuple[float, float], radius: float) -> Circle:
    """The pipeline's image circle (``circle_center``, ``circle_radius``) in pixels."""
    return Circle(center[0] * width - 0.5, center[1] * height - 0.5, radius * min(width, height))


_WARNED: set[tuple[SkyModel, int, int]] = set()


def model_fits_picture(model: SkyModel, width: int, height: int) -> bool:
    """Whether the model can belong to a ``width`` x ``height`` picture: the zenith on it, the horizon
    circle between a tenth of its shorter side and twice its longer one."""
    radius = model.horizon_radius()
    on_picture = -0.5 <= model.zenith_x <= width - 0.5 and -0.5 <= model.zenith_y <= height - 0.5
    return on_picture and 0.1 * min(width, height) <= radius <= 2.0 * max(width, height)


def names_on_sky(
    be: Backend,
    image: Any,
    settings: Any,
    info: FrameInfo,
    text_px: float,
    *,
    obstacles: list[Box],
    circle: Circle,
) -> list[PlacedLabel]:
    """Draw the names on the sky (``settings``: :class:`obsy_allsky.config.AllskySkyNamesConfig`) in place;
    the labels placed. Nothing without a sky model, a site and a time (the service says so once)."""
    if not settings.enabled or info.sky_model is None or info.site is None or info.taken_at is None:
        return []
    height, width = image.shape[:2]
    if not model_fits_picture(info.sky_model, width, height):
        if (info.sky_model, width, height) not in _WARNED:
            _WARNED.add((info.sky_model, width, height))
            log.warning(
                "names on the sky are off: the sky model (zenith %.0f, %.0f; horizon radius %.0f px) does not fit "
                "a %dx%d picture (fitted on pictures of another size?)",
                info.sky_model.zenith_x,
                info.sky_model.zenith_y,
                info.sky_model.horizon_radius(),
                width,
                height,
                extra={"event": "sky_model_mismatch"},
            )
        return []
    line_px = max(1, round(text_px / 16))
    label_px = max(8.0, text_px * settings.text_scale)
    gap = max(3.0, label_px * 0.35)
    scene = sky_scene(info.sky_model, info.site, info.taken_at, settings, circle, star_gap_px=gap + line_px)
    draw_polylines(be, image, scene.grid, colour=settings.grid_colour, thickness=line_px)
    draw_polylines(be, image, scene.figures, colour=settings.line_colour, thickness=line_px)
    marker = label_px * 0.6
    placed = place_labels(
        scene.labels,
        lambda text: text_extent(text, label_px),
        circle,
        (width, height),
        gap=gap,
        marker_radius=marker,
        obstacles=obstacles,
    )
    rings = [p.label for p in placed if p.label.marker]
    draw_rings(be, image, [(r.x, r.y) for r in rings], marker, colour=settings.label_colour, thickness=line_px)
    inset = _pen(label_px)[2] / 2 + 1  # text_extent's margin
    texts = [Text(p.label.text, p.x + inset, p.y) for p in placed]
    draw_texts(be, image, texts, text_px=label_px, colour=settings.label_colour)
    return placed


def _blend_mask(
    be: Backend, image: Any, mask: np.ndarray, origin: tuple[int, int], colour: tuple[float, float, float]
) -> None:
    """Blend ``colour`` into the image where the 8-bit ``mask`` (placed at ``origin``) covers it; in place.

    Only the covered pixels are touched (thin lines cover a few percent of their bounding box); their
    indices and weights are what travels to the device."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return
    alpha = be.asarray((mask[ys, xs].astype(np.float32) / 255)[:, None])
    rows, cols = be.xp.asarray(ys + origin[1]), be.xp.asarray(xs + origin[0])
    pixels = image[rows, cols]
    image[rows, cols] = pixels * (1 - alpha) + alpha * be.xp.asarray(np.asarray(colour, np.float32))


def _mask_bounds(points: list[np.ndarray], pad: float, height: int, width: int) -> tuple[int, int, int, int] | None:
    if not points:
        return None
    allp = np.vstack(points)
    x0 = max(int(np.floor(allp[:, 0].min() - pad)), 0)
    y0 = max(int(np.floor(allp[:, 1].min() - pad)), 0)
    x1 = min(int(np.ceil(allp[:, 0].max() + pad)) + 1, width)
    y1 = min(int(np.ceil(allp[:, 1].max() + pad)) + 1, height)
    return None if x0 >= x1 or y0 >= y1 else (x0, y0, x1, y1)


def draw_polylines(
    be: Backend, image: Any, lines: list[np.ndarray], *, colour: tuple[float, float, float], thickness: int
) -> None:
    """Antialiased polylines ((N, 2) pixel arrays) onto the image; only their bounding box moves to the host."""
    height, width = image.shape[:2]
    bounds = _mask_bounds(lines, thickness + 2, height, width)
    if bounds is None:
        return
    x0, y0, x1, y1 = bounds
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    shift = 4  # sub-pixel precision of OpenCV's drawing
    curves = [np.rint((line - [x0, y0]) * (1 << shift)).astype(np.int32) for line in lines]
    cv2.polylines(mask, curves, False, 255, thickness, cv2.LINE_AA, shift)
    _blend_mask(be, image, mask, (x0, y0), colour)


def draw_rings(
    be: Backend,
    image: Any,
    centres: list[tuple[float, float]],
    radius: float,
    *,
    colour: tuple[float, float, float],
    thickness: int,
) -> None:
    """A ring around each centre (the planets and the Moon); in place."""
    height, width = image.shape[:2]
    for cx, cy in centres:
        bounds = _mask_bounds([np.array([[cx, cy]])], radius + thickness + 2, height, width)
        if bounds is None:
            continue
        x0, y0, x1, y1 = bounds
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        shift = 4
        centre = (round((cx - x0) * (1 << shift)), round((cy - y0) * (1 << shift)))
        cv2.circle(mask, centre, round(radius * (1 << shift)), 255, thickness, cv2.LINE_AA, shift)
        _blend_mask(be, image, mask, (x0, y0), colour)
