"""Night frames from the sky simulator with streaks (meteors, satellites, aircraft) and decoys injected.

The simulator's light (sky background, stars, Moon; electrons per pixel) is rendered once per
moment and read out through its sensor with a fresh noise seed for every frame, so each frame
pair has the simulator's noise, hot pixels and star motion, and the streaks' truth is exact.
A streak's brightness ``snr`` is its peak surface brightness (electrons per pixel on the line's
centre) over the per-pixel noise of the frame there (shot noise of the sky and read noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from obsy_skysim.allsky import AllskyRenderer, Site
from obsy_skysim.clouds import Clouds
from obsy_skysim.sensor import SensorSpec
from obsy_skysim.stars import add_point_sources
from tests.support.skysim import SITE

NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
SMALL = SensorSpec(width=640, height=480, bayer=None)
EXPOSURE_S = 10.0
GAIN = 0.0
INTERVAL_S = 15.0


@dataclass(frozen=True)
class Track:
    kind: str  # meteor (rises, then fades), satellite (steady), aircraft (steady lights and a strobe)
    x0: float
    y0: float
    x1: float
    y1: float
    snr: float  # peak per-pixel amplitude over the per-pixel noise

    @property
    def length(self) -> float:
        return math.hypot(self.x1 - self.x0, self.y1 - self.y0)


def renderer(sensor: SensorSpec = SMALL) -> AllskyRenderer:
    return AllskyRenderer(Site(*SITE), sensor)


def light(r: AllskyRenderer, when: datetime, clouds: Clouds | None = None, elapsed_s: float = 0.0) -> np.ndarray:
    """The frame's light in electrons per pixel before read-out (what ``render`` reads out)."""
    clouds = clouds or Clouds()
    c = r.conditions(when)
    image = r.background(c, EXPOSURE_S, clouds, elapsed_s)
    truth = r.stars(when, EXPOSURE_S, clouds, elapsed_s)
    add_point_sources(image, truth.x, truth.y, truth.electrons, truth.sigma)
    for x, y, electrons, sigma, _bv in r.discs(c, EXPOSURE_S, clouds, elapsed_s):
        add_point_sources(image, np.array([x]), np.array([y]), np.array([electrons]), np.array([sigma]))
    return image


def read_out(r: AllskyRenderer, light_e: np.ndarray, seed: int) -> np.ndarray:
    return r.sensor.read_out(light_e.copy(), EXPOSURE_S, GAIN, seed=seed)


def pixel_noise(r: AllskyRenderer, light_e: np.ndarray, x: float, y: float) -> float:
    """Per-pixel noise in electrons near (x, y): shot noise of the light and dark current, read noise."""
    xi, yi = round(x), round(y)
    box = light_e[max(0, yi - 3) : yi + 4, max(0, xi - 3) : xi + 4]
    spec = r.sensor.spec
    return math.sqrt(float(np.median(box)) + spec.dark_current_e_s * EXPOSURE_S + spec.read_noise_e**2)


def profile(kind: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relative brightness along the track (t from 0 to 1)."""
    if kind == "meteor":
        peak = rng.uniform(0.4, 0.8)
        return np.where(t < peak, t / peak, ((1.0 - t) / (1.0 - peak)) ** 1.5).clip(0, 1)
    if kind == "aircraft":  # steady navigation lights and a strobe
        period = rng.uniform(0.08, 0.15)
        return 0.3 + 0.7 * (((t / period) % 1.0) < 0.3)
    return np.ones_like(t)


def add_track(
    light_e: np.ndarray, track: Track, amplitude_e: float, rng: np.random.Generator, width: float = 1.0
) -> None:
    """Adds a line of Gaussian cross-section ``width`` px and peak ``amplitude_e`` electrons per pixel."""
    h, w = light_e.shape
    left = max(0, int(min(track.x0, track.x1) - 5 * width - 2))
    right = min(w, int(max(track.x0, track.x1) + 5 * width + 3))
    top = max(0, int(min(track.y0, track.y1) - 5 * width - 2))
    bottom = min(h, int(max(track.y0, track.y1) + 5 * width + 3))
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float64)
    length = track.length
    ux, uy = (track.x1 - track.x0) / length, (track.y1 - track.y0) / length
    along = (xx - track.x0) * ux + (yy - track.y0) * uy
    across = -(xx - track.x0) * uy + (yy - track.y0) * ux
    t = along / length
    brightness = profile(track.kind, np.clip(t, 0, 1), rng)
    ends = np.clip(np.minimum(along + 0.5, length + 0.5 - along), 0, 1)  # soft ends
    light_e[top:bottom, left:right] += (amplitude_e * brightness * ends * np.exp(-0.5 * (across / width) ** 2)).astype(
        np.float32
    )


def random_track(r: AllskyRenderer, kind: str, length: float, snr: float, rng: np.random.Generator) -> Track:
    """A track of ``length`` px in a random direction, wholly above about 15° altitude."""
    lens = r.lens
    radius = lens.horizon_radius(15.0)
    while True:
        angle = rng.uniform(0, math.pi)
        cx, cy = lens.zenith_x + rng.uniform(-radius, radius), lens.zenith_y + rng.uniform(-radius, radius)
        x0, y0 = cx - 0.5 * length * math.cos(angle), cy - 0.5 * length * math.sin(angle)
        x1, y1 = cx + 0.5 * length * math.cos(angle), cy + 0.5 * length * math.sin(angle)
        ends_in = all(math.hypot(x - lens.zenith_x, y - lens.zenith_y) < radius for x, y in ((x0, y0), (x1, y1)))
        if ends_in:
            return Track(kind, x0, y0, x1, y1, snr)


def moments(count: int, start: datetime = NIGHT) -> list[tuple[datetime, datetime]]:
    """(previous, current) times of ``count`` frame pairs spread over the night."""
    return [
        (start + timedelta(minutes=23 * i), start + timedelta(minutes=23 * i, seconds=INTERVAL_S)) for i in range(count)
    ]


def on_track(found: Any, track: Track, tol: float) -> bool:
    """Whether a found segment (``x0``, ``y0``, ``x1``, ``y1``) lies on the track's line (within ``tol`` px)
    with its ends within ``2 tol`` px or 15 % of the length of the track's ends (the smoothing and a
    bright streak's wings reach a little beyond; a bridged gap may run on into a noise clump)."""
    ux, uy = (track.x1 - track.x0) / track.length, (track.y1 - track.y0) / track.length
    for x, y in ((found.x0, found.y0), (found.x1, found.y1)):
        t = (x - track.x0) * ux + (y - track.y0) * uy
        beyond = max(2 * tol, 0.15 * track.length)
        if abs(-(x - track.x0) * uy + (y - track.y0) * ux) > tol or not -beyond <= t <= track.length + beyond:
            return False
    return True
