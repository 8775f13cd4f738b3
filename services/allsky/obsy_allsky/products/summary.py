"""The per-night summary: ``summary.json`` and a small ``summary.jpg``.

The JSON holds the frame count and time span, star count and SQM statistics and the clear
fraction (from the frame log; ``null`` where nothing was measured or known), sunset, the
astronomical night and sunrise, the Moon's phase at the middle of the night, and the night's
product files. The image shows the same figures with the star count and SQM over the night.
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from obsy import astro
from obsy.config import SiteConfig
from obsy_allsky.products import framelog
from obsy_allsky.storage import encode_jpeg, write_atomic

SIZE = (640, 360)  # width, height of summary.jpg


def frame_time(frame_id: str) -> datetime | None:
    """The UTC time in a frame id (``YYYYMMDDTHHMMSSmmmZ``), None for another name."""
    try:
        return datetime.strptime(frame_id[:15], "%Y%m%dT%H%M%S").replace(
            microsecond=int(frame_id[15:18]) * 1000, tzinfo=UTC
        )
    except ValueError:
        return None


def _stats(values: list[float], digits: int) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def night_summary(night: date, frames: list[Path], products: dict[str, str], site: SiteConfig) -> dict[str, Any]:
    """The summary of ``night`` from its frame files, its frame log and its ``products`` (kind -> path)."""
    night_dir = frames[0].parent if frames else None
    log = framelog.read(night_dir) if night_dir is not None else framelog.FrameLog()
    times = [t for t in (frame_time(p.stem) for p in frames) if t is not None]
    records = log.records
    stars = [float(r["stars"]) for r in records if isinstance(r.get("stars"), int | float)]
    sqm = [float(r["sqm"]) for r in records if isinstance(r.get("sqm"), int | float)]
    judged = [r["clear"] for r in records if isinstance(r.get("clear"), bool)]
    times_of_night = astro.twilight(site, night)
    if times_of_night.sunset and times_of_night.sunrise:
        middle = times_of_night.sunset + (times_of_night.sunrise - times_of_night.sunset) / 2
    else:  # polar day or night: local midnight is as good a middle as any
        middle = datetime.combine(night + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    moon = astro.moon_phase(middle)
    return {
        "night": night.isoformat(),
        "generated": datetime.now(UTC).isoformat(),
        "frames": len(frames),
        "first_frame": _iso(min(times)) if times else None,
        "last_frame": _iso(max(times)) if times else None,
        "measured_frames": len(records),
        "frame_log_bad_lines": log.bad_lines,
        "stars": _stats(stars, 1),
        "sqm": _stats(sqm, 2),
        "clear_fraction": round(sum(judged) / len(judged), 3) if judged else None,
        "cloud_judged_frames": len(judged),
        "sun": {
            "sunset": _iso(times_of_night.sunset),
            "astronomical_dusk": _iso(times_of_night.astronomical_dusk),
            "astronomical_dawn": _iso(times_of_night.astronomical_dawn),
            "sunrise": _iso(times_of_night.sunrise),
        },
        "moon": {
            "at": middle.isoformat(),
            "illumination": round(float(moon.illumination), 3),
            "phase": str(moon.name),
            "waxing": bool(moon.waxing),
        },
        "products": dict(sorted(products.items())),
        "streaks": _streaks(night_dir),
        "series": _series(records),
    }


def _streaks(night_dir: Path | None) -> dict[str, Any]:
    """The night's meteors and satellites from their crops (``streaks/<frame id>-<n>-<kind>.png``)."""
    crops = sorted((night_dir / "streaks").glob("*.png")) if night_dir is not None else []
    kinds = [crop.stem.rsplit("-", 1)[-1] for crop in crops]
    return {
        "meteors": kinds.count("meteor"),
        "satellites": kinds.count("satellite"),
        "crops": [f"streaks/{crop.name}" for crop in crops],
    }


def _series(records: list[dict[str, Any]]) -> dict[str, list]:
    """Time, stars and SQM of every measured frame, for the plot (and for anyone graphing the night)."""
    return {
        "time": [r.get("time") for r in records],
        "stars": [r.get("stars") for r in records],
        "sqm": [r.get("sqm") for r in records],
    }


def write_summary(summary: dict[str, Any], json_path: Path) -> tuple[Path, Path]:
    """``summary.json`` and ``summary.jpg`` beside it, each written atomically."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(json_path, json.dumps(summary, indent=2).encode())
    image_path = json_path.with_suffix(".jpg")
    write_atomic(image_path, encode_jpeg(summary_image(summary), 90))
    return json_path, image_path


def _hhmm(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%H:%M") if value else "--:--"


def summary_image(summary: dict[str, Any]) -> np.ndarray:
    """A 640×360 RGB card: the figures as text, then stars (yellow) and SQM (cyan) over the night."""
    width, height = SIZE
    image = np.full((height, width, 3), (16, 18, 28), np.uint8)
    white, grey = (235, 235, 235), (150, 150, 160)
    stars, sqm, sun, moon = summary["stars"], summary["sqm"], summary["sun"], summary["moon"]
    clear = summary["clear_fraction"]
    lines = [
        (f"Night {summary['night']}", 0.8, white),
        (
            f"{summary['frames']} frames  {_hhmm(summary['first_frame'])}-{_hhmm(summary['last_frame'])} UTC",
            0.55,
            white,
        ),
        (
            f"stars median {stars['median']:g}, max {stars['max']:g}" if stars else "stars: not measured",
            0.55,
            (250, 220, 90),
        ),
        (
            f"SQM median {sqm['median']:.2f}, best {sqm['max']:.2f}" if sqm else "SQM: not measured",
            0.55,
            (90, 220, 250),
        ),
        (f"clear {100 * clear:.0f} % of judged frames" if clear is not None else "clear: unknown", 0.55, white),
        (f"sunset {_hhmm(sun['sunset'])}  sunrise {_hhmm(sun['sunrise'])} UTC", 0.5, grey),
        (f"Moon {moon['phase']}, {100 * moon['illumination']:.0f} % lit", 0.5, grey),
    ]
    y = 30
    for text, scale, colour in lines:
        cv2.putText(image, text, (16, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
        y += int(36 * scale + 8)
    plot = (16, y, width - 16, height - 12)  # left, top, right, bottom
    cv2.rectangle(image, plot[:2], plot[2:], (60, 60, 70), 1)
    series = summary["series"]
    _plot(image, plot, series["stars"], (250, 220, 90))
    _plot(image, plot, series["sqm"], (90, 220, 250))
    return image


def _plot(image: np.ndarray, box: tuple[int, int, int, int], values: list, colour: tuple[int, int, int]) -> None:
    points = [(i, float(v)) for i, v in enumerate(values) if isinstance(v, int | float)]
    if len(points) < 2:
        return
    left, top, right, bottom = box
    low, high = min(v for _, v in points), max(v for _, v in points)
    span_x, span_y = max(len(values) - 1, 1), (high - low) or 1.0
    xy = np.array(
        [
            (left + 2 + (right - left - 4) * i / span_x, bottom - 2 - (bottom - top - 4) * (v - low) / span_y)
            for i, v in points
        ],
        np.int32,
    )
    cv2.polylines(image, [xy], False, colour, 1, cv2.LINE_AA)
