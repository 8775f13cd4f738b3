"""The allsky frame: the sky over the site at a moment, through the fisheye lens, onto the sensor.

:class:`AllskyRenderer` puts together

* the catalogue's stars (obsy-core's bright-star catalogue, apparent places with refraction
  through :meth:`obsy.skymodel.StarCatalogue.altaz`), through the lens (:class:`obsy.skymodel.SkyModel`,
  the model clouddetect fits), each star a pixel-integrated Gaussian whose width grows off-axis,
  dimmed by extinction and by the clouds;
* the sky background (:mod:`.sky`): night sky, twilight by the Sun's altitude, moonlight and the
  Moon's glow, brighter where clouds reflect it, per colour channel; the Sun and Moon discs;
* the sensor (:mod:`.sensor`): dark current, hot pixels, shot and read noise, gain, offset,
  saturation, Bayer RGGB or mono.

The background is smooth, so it is computed on a grid of every :data:`GRID` th pixel and
interpolated; stars are drawn at full resolution. Everything is NumPy on whole arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import cv2
import numpy as np

from obsy import astro
from obsy.skymodel import SkyModel, StarCatalogue, load_bright_stars, radial
from obsy_skysim.clouds import Clouds
from obsy_skysim.sensor import RGGB_CHANNELS, Sensor, SensorSpec
from obsy_skysim.sky import ARCSEC2_PER_SR, SkyBrightness, SkyConditions, moon_magnitude, sky_conditions
from obsy_skysim.stars import add_point_sources, channel_weights

FrameType = Literal["light", "dark", "bias", "flat"]
FRAME_TYPES: tuple[FrameType, ...] = ("light", "dark", "bias", "flat")

#: The background is computed every this many pixels and interpolated.
GRID = 8

# Colour of each light source in the red, green and blue channels (green = 1): airglow and
# light pollution are yellow-green, twilight and moonlight (scattered sunlight) blue.
SOURCE_COLOURS = {
    "night": np.array([0.85, 1.0, 0.7]),
    "twilight": np.array([0.55, 1.0, 1.45]),
    "moon": np.array([0.75, 1.0, 1.15]),
}
SUN_BV, MOON_BV = 0.65, 0.92
SUN_MAG = -26.74
DISC_RADIUS_DEG = 0.26  # the Sun's and the Moon's


@dataclass(frozen=True)
class Site:
    latitude: float
    longitude: float
    elevation: float = 0.0


def default_lens(width: int, height: int, projection: str = "equisolid") -> SkyModel:
    """A fisheye centred on the sensor whose horizon circle nearly fills its shorter side, north up."""
    horizon_px = 0.485 * min(width, height)
    scale = horizon_px / float(radial(projection, np.array(math.pi / 2)))
    return SkyModel((width - 1) / 2.0, (height - 1) / 2.0, scale, 0.0, False, projection)


@dataclass(frozen=True)
class AllskyOptics:
    """What the lens and the atmosphere do to the light before the sensor."""

    zero_point: float = 12.0  # magnitude giving 1 electron per second (V, at the zenith, above the air)
    psf_sigma: float = 0.9  # pixels, on the axis
    psf_growth: float = 1.0  # the width at the horizon is psf_sigma * (1 + psf_growth), growing as theta²
    limiting_magnitude: float = 6.5  # faintest catalogue star drawn
    cloud_glow: float = 1.5  # a fully clouded patch of night sky is this much brighter (reflected light pollution)
    sky: SkyBrightness = field(default_factory=SkyBrightness)


@dataclass(frozen=True)
class StarTruth:
    """The catalogue stars drawn on a frame, where, and how much light each put there."""

    ids: np.ndarray
    mag: np.ndarray
    alt: np.ndarray
    az: np.ndarray
    x: np.ndarray
    y: np.ndarray
    electrons: np.ndarray
    sigma: np.ndarray
    bv: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class RenderedFrame:
    image: np.ndarray  # uint16, height x width, top row first
    when: datetime
    exposure_s: float
    gain: float
    frame_type: FrameType
    stars: StarTruth | None
    cloud_cover: float | None  # percent, the truth (see obsy_skysim.clouds)
    conditions: SkyConditions | None
    clouds: Clouds | None = None


class AllskyRenderer:
    """Renders frames of one allsky camera at one site; caches what does not change between frames."""

    def __init__(
        self,
        site: Site,
        sensor: SensorSpec | None = None,
        lens: SkyModel | None = None,
        optics: AllskyOptics | None = None,
        catalogue: StarCatalogue | None = None,
    ) -> None:
        self.site = site
        self.sensor = Sensor(sensor or SensorSpec())
        spec = self.sensor.spec
        self.lens = lens or default_lens(spec.width, spec.height)
        self.optics = optics or AllskyOptics()
        self.catalogue = (catalogue or load_bright_stars()).brighter_than(self.optics.limiting_magnitude)
        self._channel_map = self.sensor.channel_map()
        self._grid = self._background_grid()

    # --- the parts ---------------------------------------------------------------------
    def conditions(self, when: datetime) -> SkyConditions:
        return sky_conditions(self.site, when)

    def star_places(self, when: datetime) -> tuple[np.ndarray, np.ndarray]:
        """Apparent altitude and azimuth of every catalogue star (as clouddetect computes them)."""
        return self.catalogue.altaz(self.site.latitude, self.site.longitude, self.site.elevation, when)

    def psf_sigma(self, alt: np.ndarray) -> np.ndarray:
        theta = np.radians(90.0 - np.asarray(alt, dtype=np.float64)) / (math.pi / 2)
        return self.optics.psf_sigma * (1.0 + self.optics.psf_growth * theta**2)

    def stars(self, when: datetime, exposure_s: float, clouds: Clouds, elapsed_s: float) -> StarTruth:
        """The stars above the horizon that land on the sensor, with their light in electrons."""
        alt, az = self.star_places(when)
        x, y = self.lens.altaz_to_pixel(alt, az)
        spec = self.sensor.spec
        on = (alt > 0.0) & np.isfinite(x) & (x > -0.5) & (x < spec.width - 0.5) & (y > -0.5) & (y < spec.height - 0.5)
        alt, az, x, y = alt[on], az[on], x[on], y[on]
        mag = self.catalogue.mag[on]
        extinction = self.optics.sky.extinction * (astro.airmass(alt) - 1.0)
        electrons = exposure_s * 10 ** (-0.4 * (mag + extinction - self.optics.zero_point))
        electrons = electrons * clouds.transmission(alt, az, elapsed_s)
        return StarTruth(
            self.catalogue.ids[on], mag, alt, az, x, y, electrons, self.psf_sigma(alt), self.catalogue.bv[on]
        )

    def background(self, c: SkyConditions, exposure_s: float, clouds: Clouds, elapsed_s: float) -> np.ndarray:
        """Electrons per pixel from the sky, full resolution (float32), per channel for a colour sensor."""
        g = self._grid
        alt, az, visible = g["alt"], g["az"], g["visible"]
        parts = self.optics.sky.components(alt, az, c)
        opacity = 1.0 - clouds.transmission(alt, az, elapsed_s).astype(np.float64)
        lit = {
            "night": parts["night"] * (1.0 + self.optics.cloud_glow * opacity),
            "twilight": parts["twilight"] * (1.0 + 0.5 * opacity),
            "moon": parts["moon"] * (1.0 + 0.5 * opacity),
        }
        to_electrons = g["arcsec2"] * 10 ** (0.4 * self.optics.zero_point) * exposure_s * visible
        spec = self.sensor.spec
        if self._channel_map is None:
            coarse = sum(lit.values()) * to_electrons
            return _upsample(coarse, spec.width, spec.height)
        image = np.empty((spec.height, spec.width), dtype=np.float32)
        for channel in range(3):
            coarse = sum(lit[k] * SOURCE_COLOURS[k][channel] for k in lit) * to_electrons
            full = _upsample(coarse, spec.width, spec.height)
            for row, col in np.argwhere(np.equal(RGGB_CHANNELS, channel)):  # this channel's sites
                image[row::2, col::2] = full[row::2, col::2]
        return image

    def discs(self, c: SkyConditions, exposure_s: float, clouds: Clouds, elapsed_s: float) -> list[tuple]:
        """The Sun and Moon above the horizon as (x, y, electrons, sigma, B-V) for :func:`add_point_sources`."""
        found = []
        radius_px = DISC_RADIUS_DEG * self.lens.pixels_per_degree
        for alt, az, mag, bv in (
            (c.sun_alt, c.sun_az, SUN_MAG, SUN_BV),
            (c.moon_alt, c.moon_az, moon_magnitude(c.moon_phase_angle), MOON_BV),
        ):
            if alt <= 0.0:
                continue
            x, y = self.lens.altaz_to_pixel(alt, az)
            extinction = self.optics.sky.extinction * (float(astro.airmass(alt)) - 1.0)
            light = exposure_s * 10 ** (-0.4 * (mag + extinction - self.optics.zero_point))
            light *= float(clouds.transmission(np.array([alt]), np.array([az]), elapsed_s)[0])
            found.append((float(x), float(y), light, max(radius_px / 1.5, self.optics.psf_sigma), bv))
        return found

    # --- a frame -------------------------------------------------------------------------
    def render(
        self,
        when: datetime,
        exposure_s: float,
        gain: float,
        clouds: Clouds | None = None,
        *,
        elapsed_s: float = 0.0,
        frame_type: FrameType = "light",
        seed: int | None = None,
    ) -> RenderedFrame:
        """One frame. ``elapsed_s`` is the time since the clouds were set (they drift with it)."""
        if exposure_s < 0:
            raise ValueError(f"exposure must not be negative, not {exposure_s} s")
        if frame_type not in FRAME_TYPES:
            raise ValueError(f"unknown frame type {frame_type!r} (one of {', '.join(FRAME_TYPES)})")
        clouds = clouds or Clouds()
        spec = self.sensor.spec
        if frame_type in ("dark", "bias"):
            image = self.sensor.read_out(None, 0.0 if frame_type == "bias" else exposure_s, gain, seed=seed)
            return RenderedFrame(image, when, exposure_s, gain, frame_type, None, None, None)
        if frame_type == "flat":
            image = self.sensor.read_out(None, exposure_s, gain, seed=seed, level_e=0.4 * spec.full_well_e)
            return RenderedFrame(image, when, exposure_s, gain, frame_type, None, None, None)

        c = self.conditions(when)
        light = self.background(c, exposure_s, clouds, elapsed_s)
        truth = self.stars(when, exposure_s, clouds, elapsed_s)
        colours = channel_weights(truth.bv) if self._channel_map is not None else None
        add_point_sources(
            light, truth.x, truth.y, truth.electrons, truth.sigma, channel_map=self._channel_map, colour=colours
        )
        for x, y, electrons, sigma, bv in self.discs(c, exposure_s, clouds, elapsed_s):
            add_point_sources(
                light,
                np.array([x]),
                np.array([y]),
                np.array([electrons]),
                np.array([sigma]),
                channel_map=self._channel_map,
                colour=channel_weights(np.array([bv])),
            )
        image = self.sensor.read_out(light, exposure_s, gain, seed=seed)
        return RenderedFrame(image, when, exposure_s, gain, frame_type, truth, clouds.cover(elapsed_s), c, clouds)

    # --- internals ------------------------------------------------------------------------
    def _background_grid(self) -> dict[str, np.ndarray]:
        """Altitude, azimuth and solid angle (arcsec²) of the pixels on the background's grid."""
        spec = self.sensor.spec
        ys = np.arange(0, spec.height + GRID - 1, GRID) + (GRID - 1) / 2.0
        xs = np.arange(0, spec.width + GRID - 1, GRID) + (GRID - 1) / 2.0
        gx, gy = np.meshgrid(xs[: -(-spec.width // GRID)], ys[: -(-spec.height // GRID)])
        alt, az = self.lens.pixel_to_altaz(gx, gy)
        visible = np.nan_to_num(alt, nan=-1.0) > 0.0
        alt = np.where(visible, alt, 45.0)
        # Solid angle of a pixel: sin(theta) dtheta dphi on the sky over r dr dphi on the image.
        theta = np.radians(90.0 - alt)
        step = 1e-4
        r = np.hypot(gx - self.lens.zenith_x, gy - self.lens.zenith_y)
        x2, y2 = self.lens.altaz_to_pixel(alt - np.degrees(step), az)
        dr = np.hypot(x2 - self.lens.zenith_x, y2 - self.lens.zenith_y) - r
        with np.errstate(divide="ignore", invalid="ignore"):
            sr = np.where(r > 1e-3, np.sin(theta) * step / (r * dr), 1.0 / self.lens.scale**2)
        return {"alt": alt, "az": az, "visible": visible.astype(np.float64), "arcsec2": sr * ARCSEC2_PER_SR}


def _upsample(coarse: np.ndarray, width: int, height: int) -> np.ndarray:
    """The grid's values interpolated to every pixel (each grid value sits at its cell's centre)."""
    rows, cols = coarse.shape
    full = cv2.resize(coarse.astype(np.float32), (cols * GRID, rows * GRID), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(full[:height, :width])
