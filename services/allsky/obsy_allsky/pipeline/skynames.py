"""Names on the sky: what an allsky frame shows, placed through the camera's sky model.

:func:`sky_scene` computes, for one frame time and one :class:`obsy.skymodel.SkyModel`, the
anchor pixel of every label (the brightest named stars, the planets, the Moon, the
constellations' names) and the polylines of the constellation figures, the altitude circles
and the celestial equator, each cut where it leaves the image circle or sinks below the
horizon. :func:`place_labels` puts the labels' text beside their anchors, brightest first,
trying several offsets and skipping what cannot be placed without covering another label or
leaving the image circle. The overlay stage (:mod:`.overlay`) draws both.

Positions are apparent (precession, nutation, aberration, refraction), the stars' exactly as
:meth:`obsy.skymodel.StarCatalogue.altaz` computes them (as clouddetect and the sky simulator
do); the planets come from astropy's built-in ephemeris (offline, nothing is downloaded), the
Moon from :func:`obsy.astro.moon_altaz`. The constellation figures are the chains of Hipparcos
ids in obsy-core's ``data/constellation_lines.csv`` (its header says where they come from).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from obsy import astro
from obsy.skymodel import BRIGHT_STARS, SkyModel, StarCatalogue, load_bright_stars

CONSTELLATION_LINES = BRIGHT_STARS.parent / "constellation_lines.csv"

#: Rough visual magnitudes, only to order the planets' labels among the stars' (brightest first).
PLANET_MAGNITUDES = {
    "venus": -4.0,
    "jupiter": -2.2,
    "mars": 0.5,
    "mercury": 0.0,
    "saturn": 0.7,
    "uranus": 5.7,
    "neptune": 7.8,
}
MOON_MAGNITUDE = -12.0
#: Constellation names come after every object's label.
CONSTELLATION_RANK = 20.0
#: Step of the sampled curves (figure segments along great circles, altitude circles, equator).
STEP_DEG = 1.0

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class SkyLabel:
    """One name and the pixel it belongs to (``x``, ``y``: the star's, planet's or figure's centre)."""

    text: str
    x: float
    y: float
    kind: str  # "star", "planet", "moon" or "constellation"
    magnitude: float  # orders the placement: brightest first
    marker: bool = False  # a ring around the anchor (planets, the Moon)


@dataclass(frozen=True)
class Circle:
    """The image circle in pixels (the part of the picture the lens fills)."""

    cx: float
    cy: float
    radius: float

    def inside(self, x: np.ndarray, y: np.ndarray, margin: float = 0.0) -> np.ndarray:
        return np.hypot(np.asarray(x) - self.cx, np.asarray(y) - self.cy) <= self.radius - margin


@dataclass
class SkyScene:
    labels: list[SkyLabel]
    figures: list[np.ndarray]  # constellation lines: (N, 2) pixel polylines
    grid: list[np.ndarray]  # altitude circles and the celestial equator


@dataclass(frozen=True)
class Constellation:
    abbr: str
    name: str
    chains: tuple[tuple[int, ...], ...]  # Hipparcos ids, joined in order


@lru_cache(maxsize=2)
def load_constellations(path: Path = CONSTELLATION_LINES) -> tuple[Constellation, ...]:
    """The stick figures: ``abbr,name,hip`` rows, ``hip`` a space-separated chain; one figure may have several rows."""
    chains: dict[tuple[str, str], list[tuple[int, ...]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            try:
                ids = tuple(int(h) for h in row["hip"].split())
            except (KeyError, ValueError, AttributeError) as exc:
                raise ValueError(f"constellation lines {path} are malformed: {exc}") from None
            if len(ids) < 2:
                raise ValueError(f"constellation lines {path}: a chain of {row['abbr']} has fewer than two stars")
            chains.setdefault((row["abbr"], row["name"]), []).append(ids)
    return tuple(Constellation(abbr, name, tuple(c)) for (abbr, name), c in chains.items())


def _unit(alt: np.ndarray, az: np.ndarray) -> np.ndarray:
    a, z = np.radians(alt), np.radians(az)
    return np.stack([np.cos(a) * np.cos(z), np.cos(a) * np.sin(z), np.sin(a)], axis=-1)


def _altaz_of(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return np.degrees(np.arcsin(np.clip(v[..., 2], -1, 1))), np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0


def _great_circle(alt: Sequence[float], az: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points every :data:`STEP_DEG` along the great circles joining consecutive (alt, az) points."""
    v = _unit(np.asarray(alt, float), np.asarray(az, float))
    parts = []
    for a, b in itertools.pairwise(v):
        angle = math.degrees(math.acos(float(np.clip(a @ b, -1.0, 1.0))))
        t = np.linspace(0.0, 1.0, max(2, math.ceil(angle / STEP_DEG) + 1))[:, None]
        omega = math.radians(angle)
        if omega < 1e-9:
            parts.append(np.repeat(a[None], len(t), axis=0))
            continue
        parts.append((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / math.sin(omega))
    return _altaz_of(np.concatenate(parts))


def _polylines(
    model: SkyModel, alt: np.ndarray, az: np.ndarray, circle: Circle, closed: bool = False
) -> list[np.ndarray]:
    """The curve through (alt, az) in pixels, cut into the runs that are above the horizon and inside the circle."""
    x, y = model.altaz_to_pixel(alt, az)
    ok = (alt >= 0.0) & np.isfinite(x) & np.isfinite(y) & circle.inside(x, y)
    points = np.column_stack([x, y])
    if closed and ok.all():
        return [np.vstack([points, points[:1]])]
    runs, start = [], None
    for i, good in enumerate(np.append(ok, False)):
        if good and start is None:
            start = i
        elif not good and start is not None:
            if i - start >= 2:
                runs.append(points[start:i])
            start = None
    if closed and len(runs) >= 2 and ok[0] and ok[-1]:  # the run through the seam is one
        runs[0] = np.vstack([runs.pop(), runs[0]])
    return runs


def _trim(line: np.ndarray, gap: float) -> np.ndarray:
    """The polyline less ``gap`` pixels (along it) at each end; empty when nothing is left."""
    if gap <= 0 or len(line) < 2:
        return line
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
    total = along[-1]
    if total <= 2 * gap:
        return line[:0]
    keep = (along > gap) & (along < total - gap)
    ends = [np.interp(d, along, line[:, k]) for d in (gap, total - gap) for k in (0, 1)]
    return np.vstack([ends[0:2], line[keep], ends[2:4]])


def _radec_altaz(ra: np.ndarray, dec: np.ndarray, site: Any, when: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Apparent alt/az of J2000 positions, computed exactly as the star catalogue's."""
    n = len(ra)
    points = StarCatalogue(ra, dec, np.zeros(n), np.zeros(n), np.zeros(n, int), np.full(n, "", dtype=object))
    return points.altaz(site.latitude, site.longitude, getattr(site, "elevation", 0.0), when)


def planet_altaz(names: Iterable[str], site: Any, when: datetime) -> dict[str, tuple[float, float]]:
    """Apparent (alt, az) of each planet from astropy's built-in ephemeris, with the stars' refraction."""
    import astropy.units as u
    from astropy.coordinates import AltAz, CartesianRepresentation, get_body, solar_system_ephemeris
    from astropy.time import Time

    names = list(names)
    if not names:
        return {}
    elevation = getattr(site, "elevation", 0.0)
    location = astro.location(site)
    t = Time(when)
    frame = AltAz(
        obstime=t,
        location=location,
        pressure=1013.25 * math.exp(-elevation / 8434.0) * u.hPa,  # as StarCatalogue.altaz
        temperature=10 * u.deg_C,
        relative_humidity=0.5,
        obswl=0.55 * u.micron,
    )
    with solar_system_ephemeris.set("builtin"):
        each = [get_body(name, t, location) for name in names]
    # One transform for all: their geocentric (GCRS) places side by side in the first one's frame.
    xyz = np.stack([body.cartesian.xyz.to_value(u.au) for body in each], axis=1)
    bodies = each[0].frame.realize_frame(CartesianRepresentation(xyz * u.au)).transform_to(frame)
    return {name: (float(alt), float(az)) for name, alt, az in zip(names, bodies.alt.deg, bodies.az.deg, strict=True)}


def sky_scene(
    model: SkyModel,
    site: Any,
    when: datetime,
    settings: Any,
    circle: Circle,
    *,
    catalogue: StarCatalogue | None = None,
    constellations: Sequence[Constellation] | None = None,
    star_gap_px: float = 0.0,
) -> SkyScene:
    """What to draw for ``settings`` (:class:`obsy_allsky.config.AllskySkyNamesConfig`) at ``when``.

    The constellation lines stop ``star_gap_px`` short of their stars: they neither hide the stars
    nor add light to them (clouddetect measures the stars on the same pictures)."""
    catalogue = catalogue if catalogue is not None else load_bright_stars()
    figures_on = settings.constellation_lines or settings.constellation_names
    if not figures_on:
        constellations = ()
    elif constellations is None:
        constellations = load_constellations()
    view = _View(model, circle, settings.min_altitude, star_gap=star_gap_px)

    # One transform for every star any layer needs.
    index = {int(h): i for i, h in enumerate(catalogue.ids)}
    wanted = {index[h] for c in constellations for chain in c.chains for h in chain if h in index}
    if settings.stars:
        named = np.array([bool(n) for n in catalogue.names]) & (catalogue.mag <= settings.star_magnitude)
        wanted.update(int(i) for i in np.nonzero(named)[0])
    rows = np.array(sorted(wanted), dtype=int)
    places: dict[int, tuple[float, float]] = {}
    if len(rows):
        alt, az = _radec_altaz(catalogue.ra[rows], catalogue.dec[rows], site, when)
        places = {int(r): (float(a), float(z)) for r, a, z in zip(rows, alt, az, strict=True)}

    labels: list[SkyLabel] = []
    if settings.stars:
        labels += _star_labels(view, catalogue, places, settings)
    if settings.planets and settings.planet_list:
        for name, (a, z) in planet_altaz(settings.planet_list, site, when).items():
            labels += view.label(
                name.capitalize(), a, z, kind="planet", magnitude=PLANET_MAGNITUDES.get(name, 6.0), marker=True
            )
    if settings.moon:
        moon = astro.moon_altaz(site, when, refraction=True)
        labels += view.label(
            "Moon", float(moon.alt), float(moon.az), kind="moon", magnitude=MOON_MAGNITUDE, marker=True
        )
    figures, names = _figures(view, constellations, index, places, settings)
    labels += names
    labels.sort(key=lambda label: label.magnitude)
    return SkyScene(labels, figures, _grid(model, site, when, settings, circle))


@dataclass(frozen=True)
class _View:
    model: SkyModel
    circle: Circle
    min_altitude: float
    edge: float = 2.0  # px: an anchor on the rim of the circle is not named
    star_gap: float = 0.0  # px: the constellation lines stop this far from their stars

    def label(
        self, text: str, alt: float, az: float, *, kind: str, magnitude: float, marker: bool = False
    ) -> list[SkyLabel]:
        """The label, or none where the object is too low or outside the image circle."""
        x, y = self.model.altaz_to_pixel(alt, az)
        x, y = float(x), float(y)
        if alt < self.min_altitude or not (math.isfinite(x) and math.isfinite(y)):
            return []
        if not self.circle.inside(np.array(x), np.array(y), self.edge):
            return []
        return [SkyLabel(text, x, y, kind, magnitude, marker)]


def _figures(
    view: _View,
    constellations: Sequence[Constellation],
    index: dict[int, int],
    places: dict[int, tuple[float, float]],
    settings: Any,
) -> tuple[list[np.ndarray], list[SkyLabel]]:
    """The constellations' lines (along great circles) and names (at the mean direction of their stars)."""
    figures: list[np.ndarray] = []
    labels: list[SkyLabel] = []
    for constellation in constellations:
        chains = [[places[index[h]] for h in chain if h in index] for chain in constellation.chains]
        chains = [chain for chain in chains if len(chain) >= 2]
        if not chains:
            continue
        if settings.constellation_lines:
            for chain in chains:
                for start, end in itertools.pairwise(chain):  # segment by segment, each stopping short of its stars
                    a, z = _great_circle([start[0], end[0]], [start[1], end[1]])
                    figures += [
                        line
                        for run in _polylines(view.model, a, z, view.circle)
                        if len(line := _trim(run, view.star_gap)) >= 2
                    ]
        if settings.constellation_names:
            stars = [p for chain in chains for p in chain]
            a, z = _altaz_of(_unit(np.array([p[0] for p in stars]), np.array([p[1] for p in stars])).mean(axis=0))
            labels += view.label(
                constellation.name, float(a), float(z), kind="constellation", magnitude=CONSTELLATION_RANK
            )
    return figures, labels


def _star_labels(
    view: _View, catalogue: StarCatalogue, places: dict[int, tuple[float, float]], settings: Any
) -> list[SkyLabel]:
    """The brightest named stars in view, at most ``settings.max_stars``."""
    rows = [r for r in places if catalogue.names[r] and catalogue.mag[r] <= settings.star_magnitude]
    labels: list[SkyLabel] = []
    for r in sorted(rows, key=lambda r: catalogue.mag[r]):
        if len(labels) >= settings.max_stars:
            break
        labels += view.label(str(catalogue.names[r]), *places[r], kind="star", magnitude=float(catalogue.mag[r]))
    return labels


def _grid(model: SkyModel, site: Any, when: datetime, settings: Any, circle: Circle) -> list[np.ndarray]:
    """The altitude circles and the celestial equator."""
    grid: list[np.ndarray] = []
    az_ring = np.arange(0.0, 360.0, STEP_DEG)
    for altitude in settings.altitude_circles:
        grid += _polylines(model, np.full(len(az_ring), float(altitude)), az_ring, circle, closed=True)
    if settings.equator:
        ra = np.arange(0.0, 360.0, 2.0 * STEP_DEG)
        a, z = _radec_altaz(ra, np.zeros(len(ra)), site, when)
        grid += _polylines(model, a, z, circle, closed=True)
    return grid


# --- placing the labels -----------------------------------------------------------------


@dataclass(frozen=True)
class PlacedLabel:
    label: SkyLabel
    x: float  # the text's baseline, left end
    y: float
    box: Box  # what the text covers, outline included


def boxes_overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(
    labels: Sequence[SkyLabel],
    measure: Callable[[str], tuple[float, float, float]],
    circle: Circle,
    image_size: tuple[int, int],
    *,
    gap: float,
    marker_radius: float = 0.0,
    obstacles: Sequence[Box] = (),
) -> list[PlacedLabel]:
    """Greedy placement, in the given order (brightest first): for each label the first of several
    positions around its anchor whose box stays inside the image circle and the picture and covers
    no label placed before, no obstacle and no other label's anchor; a label with none is skipped.

    ``measure(text)`` gives (width, height above the baseline, depth below it) in pixels, margins
    included; ``gap`` is the distance between an anchor (or its marker ring) and the text.
    """
    width, height = image_size
    taken: list[Box] = list(obstacles)
    anchors = [(label.x, label.y, label.marker) for label in labels]
    placed: list[PlacedLabel] = []
    for number, label in enumerate(labels):
        w, h, d = measure(label.text)
        g = gap + (marker_radius if label.marker else 0.0)
        x, y = label.x, label.y
        # (left, baseline) candidates: right, left, above, below, then the four corners.
        candidates = [
            (x + g, y + (h - d) / 2),
            (x - g - w, y + (h - d) / 2),
            (x - w / 2, y - g - d),
            (x - w / 2, y + g + h),
            (x + g * 0.7, y - g * 0.7 - d),
            (x - g * 0.7 - w, y - g * 0.7 - d),
            (x + g * 0.7, y + g * 0.7 + h),
            (x - g * 0.7 - w, y + g * 0.7 + h),
        ]
        if label.kind == "constellation":  # no object at a figure's centre: the name sits on it
            candidates.insert(0, (x - w / 2, y + (h - d) / 2))
        others = [
            _anchor_box(ax, ay, marker_radius if marker else 1.5)
            for i, (ax, ay, marker) in enumerate(anchors)
            if i != number
        ]
        for left, base in candidates:
            box = (left, base - h, left + w, base + d)
            if not _fits(box, circle, width, height):
                continue
            if any(boxes_overlap(box, other) for other in taken) or any(boxes_overlap(box, o) for o in others):
                continue
            taken.append(box)
            placed.append(PlacedLabel(label, left, base, box))
            break
    return placed


def _anchor_box(x: float, y: float, radius: float) -> Box:
    return (x - radius, y - radius, x + radius, y + radius)


def _fits(box: Box, circle: Circle, width: int, height: int) -> bool:
    x0, y0, x1, y1 = box
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return False
    corners_x, corners_y = np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1])
    return bool(circle.inside(corners_x, corners_y).all())
