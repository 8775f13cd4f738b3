"""The main camera's frame: the telescope's field at a pointing, through a flat field, onto the sensor.

* Stars: the bright-star catalogue where it reaches, and below it (to ``limiting_magnitude``) a
  synthetic field that depends only on the sky position: the sky is cut into cells of
  :data:`CELL_DEG` degrees of declination and about as much right ascension, and each cell's
  stars come from a generator seeded by the cell, so the same pointing always shows the same
  stars, from any neighbouring pointing too. Star counts follow ``N(<m) = 0.19 * 10^(0.45 (m - 6.5))``
  per square degree, about what the sky holds away from the Milky Way (0.19 per square degree
  to 6.5, the catalogue's own density).
* Geometry: a gnomonic (TAN) projection at the focal length and pixel size, rotated by the
  camera's position angle (north up, east left at 0°).
* Light: the star's magnitude through the telescope's zero point and extinction at the
  pointing's altitude; the sky's brightness there (:mod:`.sky`: night, twilight, Moon); seeing
  as a Gaussian of the given FWHM.
* Flat field (the known truth of flats): vignetting falling as r² to the corners and dust
  donuts, a set per filter slot from its seed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from obsy import astro
from obsy.skymodel import StarCatalogue, load_bright_stars
from obsy_skysim.allsky import FRAME_TYPES, FrameType, Site
from obsy_skysim.clouds import Clouds
from obsy_skysim.scenario import Scenario
from obsy_skysim.sensor import Sensor, SensorSpec
from obsy_skysim.sky import SkyBrightness, SkyConditions, sky_conditions
from obsy_skysim.stars import add_point_sources

CELL_DEG = 0.5
#: Faintest synthetic star ever generated: the field does not depend on the limit asked for.
SYNTHETIC_LIMIT = 17.0
CATALOGUE_LIMIT = 6.5
ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0


def stars_per_square_degree(mag: float) -> float:
    """Stars brighter than ``mag`` per square degree, away from the Milky Way."""
    return 0.19 * 10 ** (0.45 * (mag - CATALOGUE_LIMIT))


@dataclass(frozen=True)
class TelescopeOptics:
    focal_length_mm: float = 500.0
    aperture_mm: float = 100.0
    seeing_fwhm_arcsec: float = 2.5
    position_angle: float = 0.0  # degrees, north through east
    limiting_magnitude: float = 16.0
    vignetting: float = 0.25  # light lost in the corners
    dust_per_filter: int = 3
    extinction: float = 0.25
    cloud_glow: float = 1.5  # a fully clouded night sky is this much brighter (reflected light pollution)
    #: The camera's colour term (AAVSO's Tv_bv): a star of colour B−V is rendered as bright as a star of
    #: V − colour_term·(B−V) would be; 0 renders the V band exactly.
    colour_term: float = 0.0
    seed: int = 11
    sky: SkyBrightness = field(default_factory=SkyBrightness)

    @property
    def zero_point(self) -> float:
        """Magnitude giving 1 electron per second: about 18.8 for 100 mm of aperture (V band,
        a sensor of 60 % quantum efficiency behind 80 % throughput)."""
        return 18.8 + 5.0 * math.log10(self.aperture_mm / 100.0)


@dataclass(frozen=True)
class FieldStars:
    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    bv: np.ndarray
    catalogued: np.ndarray  # True for the catalogue's stars, False for synthetic ones


@dataclass(frozen=True)
class VariableTruth:
    """A scenario star on a frame: where, its magnitude at mid-exposure, the light it gave."""

    x: float
    y: float
    mag: float
    electrons: float


@dataclass(frozen=True)
class FieldTruth:
    """The stars on a light frame: where, and their light in electrons before the flat field."""

    stars: FieldStars
    x: np.ndarray
    y: np.ndarray
    electrons: np.ndarray
    variables: dict[str, VariableTruth] = field(default_factory=dict)
    transmission: float = 1.0  # of the clouds towards the field


@dataclass(frozen=True)
class FieldFrame:
    image: np.ndarray
    when: datetime
    exposure_s: float
    gain: float
    frame_type: FrameType
    pointing: tuple[float, float]  # ICRS right ascension and declination, degrees
    truth: FieldTruth | None


@functools.lru_cache(maxsize=512)
def synthetic_cell_stars(band: int, index: int, seed: int) -> FieldStars:
    """The synthetic stars of one sky cell (``band`` of declination, ``index`` of right ascension).

    Cached: the main camera's field spans about 400 cells (of some 2 500 stars each, 80 kB), drawn
    again at every frame otherwise. The arrays are read-only, as they are shared."""
    dec0 = -90.0 + band * CELL_DEG
    dec1 = min(90.0, dec0 + CELL_DEG)
    cells = _cells_in_band(band)
    ra0, width = index * 360.0 / cells, 360.0 / cells
    area = width * (math.sin(math.radians(dec1)) - math.sin(math.radians(dec0))) * 180.0 / math.pi
    rng = np.random.default_rng([seed, band, index])
    bright, faint = stars_per_square_degree(CATALOGUE_LIMIT), stars_per_square_degree(SYNTHETIC_LIMIT)
    count = rng.poisson((faint - bright) * area)
    # Magnitudes from N(<m) between the catalogue's limit and the synthetic one.
    u = rng.uniform(0.0, 1.0, count)
    mag = CATALOGUE_LIMIT + np.log10(1.0 + u * (faint / bright - 1.0)) / 0.45
    ra = ra0 + rng.uniform(0.0, width, count)
    dec = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(dec0)), math.sin(math.radians(dec1)), count)))
    bv = np.clip(rng.normal(0.7, 0.35, count), -0.3, 2.0)
    stars = FieldStars(ra, dec, mag, bv, np.zeros(count, dtype=bool))
    for values in (ra, dec, mag, bv, stars.catalogued):
        values.flags.writeable = False
    return stars


def _cells_in_band(band: int) -> int:
    middle = -90.0 + (band + 0.5) * CELL_DEG
    return max(1, math.ceil(360.0 * math.cos(math.radians(middle)) / CELL_DEG))


def gnomonic(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standard coordinates (xi east, eta north, radians) of each star about (ra0, dec0), and
    whether it lies on the near hemisphere."""
    a, d = np.radians(ra - ra0), np.radians(dec)
    d0 = math.radians(dec0)
    cos_c = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.cos(d) * np.sin(a) / cos_c
        eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a)) / cos_c
    return xi, eta, cos_c > 0


class FieldRenderer:
    """Renders the main camera's frames at one site; caches the catalogue and the flat field."""

    def __init__(
        self,
        site: Site,
        sensor: SensorSpec | None = None,
        optics: TelescopeOptics | None = None,
        catalogue: StarCatalogue | None = None,
    ) -> None:
        self.site = site
        self.sensor = Sensor(sensor or SensorSpec(width=6248, height=4176, pixel_um=3.76, bayer=None))
        self.optics = optics or TelescopeOptics()
        self.catalogue = catalogue or load_bright_stars()
        self._flats: dict[int, np.ndarray] = {}

    @property
    def arcsec_per_pixel(self) -> float:
        return 206.264806 * self.sensor.spec.pixel_um / self.optics.focal_length_mm

    @property
    def field_radius_deg(self) -> float:
        """Half the sensor's diagonal on the sky."""
        s = self.sensor.spec
        return math.hypot(s.width, s.height) / 2.0 * self.arcsec_per_pixel / 3600.0

    # --- the stars ----------------------------------------------------------------------
    def stars_near(self, ra0: float, dec0: float, radius_deg: float) -> FieldStars:
        """Catalogue and synthetic stars within about ``radius_deg`` of (ra0, dec0)."""
        parts = []
        c = self.catalogue
        near = _angular_distance(c.ra, c.dec, ra0, dec0) <= radius_deg
        parts.append(FieldStars(c.ra[near], c.dec[near], c.mag[near], c.bv[near], np.ones(near.sum(), dtype=bool)))
        first = max(0, math.floor((dec0 - radius_deg + 90.0) / CELL_DEG))
        last = min(round(180.0 / CELL_DEG) - 1, math.floor((dec0 + radius_deg + 90.0) / CELL_DEG))
        for band in range(first, last + 1):
            cells = _cells_in_band(band)
            band_dec = max(abs(-90.0 + band * CELL_DEG), abs(-90.0 + (band + 1) * CELL_DEG))
            reach = radius_deg / max(math.cos(math.radians(min(band_dec, 89.9))), 1e-3) + CELL_DEG
            if reach >= 180.0:
                indices = range(cells)
            else:
                lo = math.floor((ra0 - reach) / (360.0 / cells))
                hi = math.floor((ra0 + reach) / (360.0 / cells))
                indices = sorted({i % cells for i in range(lo, hi + 1)})
            for index in indices:
                parts.append(synthetic_cell_stars(band, index, self.optics.seed))
        stars = FieldStars(*(np.concatenate([getattr(p, f) for p in parts]) for f in FieldStars.__dataclass_fields__))
        keep = stars.mag <= self.optics.limiting_magnitude
        return FieldStars(*(getattr(stars, f)[keep] for f in FieldStars.__dataclass_fields__))

    def to_pixels(self, ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
        """Pixel positions about the pointing: north up and east left at position angle 0."""
        xi, eta, near = gnomonic(ra, dec, ra0, dec0)
        scale = ARCSEC_PER_RAD / self.arcsec_per_pixel
        pa = math.radians(self.optics.position_angle)
        # East to the left (x decreasing), north up (y decreasing), then the camera's rotation.
        east, north = xi * scale, eta * scale
        u = -east * math.cos(pa) + north * math.sin(pa)
        v = -north * math.cos(pa) - east * math.sin(pa)
        s = self.sensor.spec
        x, y = (s.width - 1) / 2.0 + u, (s.height - 1) / 2.0 + v
        return np.where(near, x, np.nan), np.where(near, y, np.nan)

    # --- the flat field -----------------------------------------------------------------
    def flat_field(self, filter_slot: int = 1) -> np.ndarray:
        """Relative response per pixel (1 at the centre): vignetting and the filter's dust donuts."""
        if filter_slot not in self._flats:
            self._flats[filter_slot] = self._make_flat(filter_slot)
        return self._flats[filter_slot]

    def _make_flat(self, filter_slot: int) -> np.ndarray:
        s, o = self.sensor.spec, self.optics
        y = np.arange(s.height, dtype=np.float32)[:, None] - (s.height - 1) / 2.0
        x = np.arange(s.width, dtype=np.float32)[None, :] - (s.width - 1) / 2.0
        corner2 = ((s.width - 1) / 2.0) ** 2 + ((s.height - 1) / 2.0) ** 2
        flat = 1.0 - np.float32(o.vignetting) * (x * x + y * y) / np.float32(corner2)
        rng = np.random.default_rng([o.seed, 0xD057, filter_slot])
        for _ in range(o.dust_per_filter):
            cx, cy = rng.uniform(0.1, 0.9) * s.width, rng.uniform(0.1, 0.9) * s.height
            radius = rng.uniform(0.01, 0.03) * min(s.width, s.height)
            depth = rng.uniform(0.02, 0.08)
            x0, x1 = int(max(0, cx - 1.5 * radius)), int(min(s.width, cx + 1.5 * radius + 1))
            y0, y1 = int(max(0, cy - 1.5 * radius)), int(min(s.height, cy + 1.5 * radius + 1))
            yy, xx = np.mgrid[y0:y1, x0:x1]
            r = np.hypot(xx - cx, yy - cy) / radius
            donut = np.exp(-(((r - 0.75) / 0.2) ** 2)) + 0.4 * np.exp(-((r / 0.35) ** 2))  # a ring and a dimmer core
            flat[y0:y1, x0:x1] *= (1.0 - depth * donut).astype(np.float32)
        return flat.astype(np.float32)

    # --- a frame ------------------------------------------------------------------------
    def render(
        self,
        when: datetime,
        pointing: tuple[float, float],
        exposure_s: float,
        gain: float,
        *,
        frame_type: FrameType = "light",
        filter_slot: int = 1,
        clouds: Clouds | None = None,
        elapsed_s: float = 0.0,
        scenario: Scenario | None = None,
        seed: int | None = None,
        conditions: SkyConditions | None = None,
    ) -> FieldFrame:
        """One frame with the telescope pointing at ``pointing`` (ICRS RA, Dec in degrees). The
        ``scenario``'s variable stars shine as they do at mid-exposure. ``conditions``: the Sun and
        Moon at ``when`` (:func:`~obsy_skysim.sky.sky_conditions_at` for a night of frames at once,
        half the CPU of a small frame); computed here when not given."""
        if exposure_s < 0:
            raise ValueError(f"exposure must not be negative, not {exposure_s} s")
        if frame_type not in FRAME_TYPES:
            raise ValueError(f"unknown frame type {frame_type!r} (one of {', '.join(FRAME_TYPES)})")
        s = self.sensor.spec
        if frame_type in ("bias", "dark"):
            image = self.sensor.read_out(None, 0.0 if frame_type == "bias" else exposure_s, gain, seed=seed)
            return FieldFrame(image, when, exposure_s, gain, frame_type, pointing, None)
        flat = self.flat_field(filter_slot)
        if frame_type == "flat":
            image = self.sensor.read_out(None, exposure_s, gain, seed=seed, level_e=0.4 * s.full_well_e, flat=flat)
            return FieldFrame(image, when, exposure_s, gain, frame_type, pointing, None)

        ra0, dec0 = pointing
        alt, az = self._altaz(ra0, dec0, when)
        clouds = clouds or Clouds()
        transmission = float(clouds.transmission(np.array([alt]), np.array([az]), elapsed_s)[0]) if alt > 0 else 0.0
        stars = self.stars_near(ra0, dec0, self.field_radius_deg + 0.05)
        names: list[str] = []
        if scenario is not None and scenario.variables:
            ra, dec, mag, bv = scenario.at(when + timedelta(seconds=exposure_s / 2))
            names = [v.name for v in scenario.variables]
            stars = FieldStars(
                np.concatenate([ra, stars.ra]),
                np.concatenate([dec, stars.dec]),
                np.concatenate([mag, stars.mag]),
                np.concatenate([bv, stars.bv]),
                np.concatenate([np.zeros(len(ra), dtype=bool), stars.catalogued]),
            )
        x, y = self.to_pixels(stars.ra, stars.dec, ra0, dec0)
        inside = np.isfinite(x) & (x > -10) & (x < s.width + 10) & (y > -10) & (y < s.height + 10)
        extinction = self.optics.extinction * (float(astro.airmass(max(alt, 0.0))) - 1.0)
        seen = stars.mag - self.optics.colour_term * stars.bv
        all_electrons = exposure_s * 10 ** (-0.4 * (seen + extinction - self.optics.zero_point)) * transmission
        variables = {
            name: VariableTruth(float(x[i]), float(y[i]), float(stars.mag[i]), float(all_electrons[i]))
            for i, name in enumerate(names)
            if inside[i]
        }
        stars = FieldStars(*(getattr(stars, f)[inside] for f in FieldStars.__dataclass_fields__))
        x, y, electrons = x[inside], y[inside], all_electrons[inside]
        sky = self._sky_electrons(when, alt, az, exposure_s, conditions)
        sky *= 1.0 + self.optics.cloud_glow * (1.0 - transmission)
        # The stars through the flat field at their own pixels; the sky through it in the read-out.
        light = np.zeros((s.height, s.width), dtype=np.float32)
        sigma = np.full(len(x), self.optics.seeing_fwhm_arcsec / 2.3548 / self.arcsec_per_pixel)
        inside_sensor = (x > -0.5) & (x < s.width - 0.5) & (y > -0.5) & (y < s.height - 0.5)
        response = np.ones(len(x))
        response[inside_sensor] = flat[np.rint(y[inside_sensor]).astype(int), np.rint(x[inside_sensor]).astype(int)]
        add_point_sources(light, x, y, electrons * response, sigma)
        image = self.sensor.read_out(light, exposure_s, gain, seed=seed, level_e=sky, flat=flat)
        truth = FieldTruth(stars, x, y, electrons, variables, transmission)
        return FieldFrame(image, when, exposure_s, gain, frame_type, pointing, truth)

    def _altaz(self, ra: float, dec: float, when: datetime) -> tuple[float, float]:
        import astropy.units as u
        from astropy.coordinates import AltAz, SkyCoord
        from astropy.time import Time

        frame = AltAz(obstime=Time(when), location=astro.location(self.site))
        coord = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").transform_to(frame)
        return float(coord.alt.deg), float(coord.az.deg)

    def _sky_electrons(
        self, when: datetime, alt: float, az: float, exposure_s: float, conditions: SkyConditions | None = None
    ) -> float:
        if alt <= 0:
            return 0.0
        c = conditions or sky_conditions(self.site, when)
        flux = sum(float(v[0]) for v in self.optics.sky.components(np.array([alt]), np.array([az]), c).values())
        return flux * self.arcsec_per_pixel**2 * 10 ** (0.4 * self.optics.zero_point) * exposure_s


def _angular_distance(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    d, d0 = np.radians(dec), math.radians(dec0)
    cos_d = np.sin(d) * math.sin(d0) + np.cos(d) * math.cos(d0) * np.cos(np.radians(ra - ra0))
    return np.degrees(np.arccos(np.clip(cos_d, -1.0, 1.0)))


def isolated(
    x: np.ndarray,
    y: np.ndarray,
    mag: np.ndarray,
    *,
    others: tuple[np.ndarray, np.ndarray, np.ndarray],
    radius: float,
    max_share: float = 0.01,
) -> np.ndarray:
    """Which stars (x, y, mag) have no other star of ``others`` (x, y, mag) within ``radius`` (pixels, or
    any unit of x and y) bright enough to pull their centroid or share their aperture: more than
    ``max_share`` of their light (a close double)."""
    ox, oy, omag = others
    d = np.hypot(x[:, None] - ox[None, :], y[:, None] - oy[None, :])
    share = 10 ** (-0.4 * (omag[None, :] - mag[:, None]))
    disturbing = (d < radius) & (d > 1e-6) & (share > max_share)
    return ~disturbing.any(axis=1)
