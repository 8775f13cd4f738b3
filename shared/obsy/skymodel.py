"""The geometry of an all-sky camera: where each altitude/azimuth falls in its image.

A :class:`SkyModel` maps the sky onto the image of an upward-looking fisheye camera:

* ``zenith_x``, ``zenith_y``: the pixel where the zenith falls;
* ``scale``: pixels per radian at the zenith (the same for every projection below);
* ``rotation``: degrees added to the azimuth before projecting (0 puts north at the top);
* ``mirrored``: False for the view from below, east to the left of north as on the sky;
  True for a mirrored image (east to the right);
* ``projection``: the lens's radial law ``r = scale * R(theta) * (1 + distortion * theta^2)``
  of the zenith distance theta (radians): ``equidistant`` (theta), ``equisolid``
  (2 sin(theta/2)), ``stereographic`` (2 tan(theta/2)) or ``orthographic`` (sin theta);
* ``distortion``: how far a real lens strays from that law towards the horizon (0 = none;
  0.02 moves the horizon by 5 %).

:func:`fit_sky_model` finds that model from one night frame by matching detected stars
to a star catalogue (:class:`StarCatalogue`), with no prior beyond the image size: a
vote over rotations, mirror sense and scales, then least squares on the matched stars.
The allsky service uses the same model for star names and cardinal directions on its
images (:meth:`SkyModel.altaz_to_pixel`, :meth:`SkyModel.cardinal_points`).

Angles are degrees; azimuth counts from north through east; pixel coordinates are
(x to the right, y down) with the centre of the top-left pixel at (0, 0).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

Projection = Literal["equidistant", "equisolid", "stereographic", "orthographic"]
PROJECTIONS: tuple[Projection, ...] = ("equidistant", "equisolid", "stereographic", "orthographic")

__all__ = [
    "BRIGHT_STARS",
    "PROJECTIONS",
    "SkyFit",
    "SkyModel",
    "StarCatalogue",
    "fit_sky_model",
    "load_bright_stars",
    "named_star_positions",
    "radial",
    "radial_inverse",
]


def radial(projection: str, theta: np.ndarray) -> np.ndarray:
    """Radius per unit scale for zenith distance ``theta`` (radians)."""
    if projection == "equidistant":
        return theta
    if projection == "equisolid":
        return 2.0 * np.sin(theta / 2.0)
    if projection == "stereographic":
        return 2.0 * np.tan(theta / 2.0)
    if projection == "orthographic":
        return np.sin(theta)
    raise ValueError(f"unknown projection {projection!r} (one of {', '.join(PROJECTIONS)})")


def radial_inverse(projection: str, rho: np.ndarray) -> np.ndarray:
    """Zenith distance (radians) for radius per unit scale ``rho``; NaN where the lens cannot reach."""
    with np.errstate(invalid="ignore"):
        if projection == "equidistant":
            return np.asarray(rho, dtype=float)
        if projection == "equisolid":
            return 2.0 * np.arcsin(np.where(rho <= 2.0, rho / 2.0, np.nan))
        if projection == "stereographic":
            return 2.0 * np.arctan(rho / 2.0)
        if projection == "orthographic":
            return np.arcsin(np.where(rho <= 1.0, rho, np.nan))
    raise ValueError(f"unknown projection {projection!r} (one of {', '.join(PROJECTIONS)})")


@dataclass(frozen=True)
class SkyModel:
    zenith_x: float
    zenith_y: float
    scale: float
    rotation: float = 0.0
    mirrored: bool = False
    projection: Projection = "equidistant"
    distortion: float = 0.0

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale must be positive pixels per radian, not {self.scale}")
        radial(self.projection, np.zeros(1))  # validates the name

    @property
    def pixels_per_degree(self) -> float:
        """Image scale at the zenith."""
        return self.scale * math.pi / 180.0

    def altaz_to_pixel(self, alt: Any, az: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (x, y) of each altitude/azimuth (degrees); works on arrays."""
        theta = np.radians(90.0 - np.asarray(alt, dtype=float))
        r = self.scale * self._rho(theta)
        phi = np.radians(np.asarray(az, dtype=float) + self.rotation)
        sign = 1.0 if self.mirrored else -1.0
        return self.zenith_x + sign * r * np.sin(phi), self.zenith_y - r * np.cos(phi)

    def pixel_to_altaz(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Altitude and azimuth (degrees) of each pixel; NaN altitude beyond the lens's reach."""
        dx = np.asarray(x, dtype=float) - self.zenith_x
        dy = np.asarray(y, dtype=float) - self.zenith_y
        sign = 1.0 if self.mirrored else -1.0
        theta = self._theta(np.hypot(dx, dy) / self.scale)
        phi = np.degrees(np.arctan2(sign * dx, -dy))
        return 90.0 - np.degrees(theta), np.mod(phi - self.rotation, 360.0)

    def horizon_radius(self, altitude: float = 0.0) -> float:
        """Radius in pixels of the circle of the given altitude around the zenith."""
        return float(self.scale * self._rho(np.radians(90.0 - altitude)))

    def _rho(self, theta: np.ndarray) -> np.ndarray:
        return radial(self.projection, theta) * (1.0 + self.distortion * theta**2)

    def _theta(self, rho: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`_rho`: the ideal law's inverse, or Newton steps when distorted."""
        if self.distortion == 0.0:
            return radial_inverse(self.projection, rho)
        theta = np.clip(np.asarray(rho, dtype=float), 0.0, math.pi)  # within ~10 % for every law
        for _ in range(8):
            h = 1e-6
            slope = (self._rho(theta + h) - self._rho(theta - h)) / (2 * h)
            theta = np.clip(theta - (self._rho(theta) - rho) / slope, 0.0, math.pi)
        return np.where(np.abs(self._rho(theta) - rho) < 1e-9, theta, np.nan)

    def cardinal_points(self, altitude: float = 0.0) -> dict[str, tuple[float, float]]:
        """Pixel positions of N, E, S and W at ``altitude``, for labels on an allsky image."""
        names = ("N", "E", "S", "W")
        xs, ys = self.altaz_to_pixel(np.full(4, altitude), np.array([0.0, 90.0, 180.0, 270.0]))
        return {name: (float(x), float(y)) for name, x, y in zip(names, xs, ys, strict=True)}

    def zenith_offset_deg(self, other: SkyModel) -> float:
        """How far apart two models put the zenith, in degrees at this model's scale."""
        return math.hypot(self.zenith_x - other.zenith_x, self.zenith_y - other.zenith_y) / self.pixels_per_degree

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SkyModel:
        return cls(**data)


# --- the star catalogue ----------------------------------------------------------------


@dataclass(frozen=True)
class StarCatalogue:
    """Stars with J2000 positions, magnitudes and (where known) proper names."""

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    bv: np.ndarray
    ids: np.ndarray
    names: np.ndarray

    def __len__(self) -> int:
        return len(self.ra)

    @classmethod
    def from_csv(cls, path: str | Path) -> StarCatalogue:
        """Read ``hip,ra_deg,dec_deg,mag,bv,name`` rows (lines starting with '#' are comments)."""
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
        if not rows:
            raise ValueError(f"star catalogue {path} has no stars")
        try:
            return cls(
                ra=np.array([float(r["ra_deg"]) for r in rows]),
                dec=np.array([float(r["dec_deg"]) for r in rows]),
                mag=np.array([float(r["mag"]) for r in rows]),
                bv=np.array([float(r["bv"] or 0.0) for r in rows]),
                ids=np.array([int(r["hip"]) for r in rows]),
                names=np.array([r["name"] or "" for r in rows], dtype=object),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"star catalogue {path} is malformed: {exc}") from None

    def brighter_than(self, limit: float) -> StarCatalogue:
        keep = self.mag <= limit
        return StarCatalogue(*(getattr(self, f)[keep] for f in ("ra", "dec", "mag", "bv", "ids", "names")))

    def altaz(
        self, latitude: float, longitude: float, elevation: float, when: datetime, refraction: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apparent altitude and azimuth (degrees) of every star at ``when`` (timezone-aware).

        Precession, nutation and aberration through astropy/ERFA (offline, see
        :mod:`obsy.astro`); refraction for a standard atmosphere at the site's elevation.
        """
        import astropy.units as u
        from astropy.coordinates import AltAz, EarthLocation, SkyCoord
        from astropy.time import Time

        from obsy import astro  # noqa: F401  (sets astropy's offline IERS options)

        if when.tzinfo is None:
            raise ValueError("when must be timezone-aware")
        location = EarthLocation.from_geodetic(longitude * u.deg, latitude * u.deg, elevation * u.m)
        pressure = 1013.25 * math.exp(-elevation / 8434.0) if refraction else 0.0
        frame = AltAz(
            obstime=Time(when),
            location=location,
            pressure=pressure * u.hPa,
            temperature=10 * u.deg_C,
            relative_humidity=0.5,
            obswl=0.55 * u.micron,
        )
        coords = SkyCoord(ra=self.ra * u.deg, dec=self.dec * u.deg, frame="icrs").transform_to(frame)
        return coords.alt.deg, coords.az.deg


#: Hipparcos 2 stars to Hp 6.5 with J2000 positions, brightest first (the naked-eye sky; the file's
#: header and services/clouddetect/scripts/make_star_catalogue.py say where it comes from).
BRIGHT_STARS = Path(__file__).resolve().parent / "data" / "bright_stars.csv"


@lru_cache(maxsize=4)
def load_bright_stars(path: Path = BRIGHT_STARS) -> StarCatalogue:
    """The bright-star catalogue shipped with obsy-core (or another file of its format); cached per path."""
    return StarCatalogue.from_csv(path)


# --- fitting the model to a frame ------------------------------------------------------


@dataclass(frozen=True)
class SkyFit:
    """A fitted model and how well the catalogue stars land on detected ones."""

    model: SkyModel
    matched: int
    rms_px: float
    candidates: int
    #: Share of the 50 brightest catalogue stars above 30 degrees that found a detection:
    #: near 1 for a true fit on a clear sky, a few percent for a chance alignment with noise.
    bright_share: float = 0.0

    @property
    def rms_deg(self) -> float:
        return self.rms_px / self.model.pixels_per_degree


def _match(
    model: SkyModel, tree: Any, alt: np.ndarray, az: np.ndarray, tolerance_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (catalogue, detection), each detection used by its nearest catalogue star only."""
    px, py = model.altaz_to_pixel(alt, az)
    distance, nearest = tree.query(np.column_stack([px, py]), distance_upper_bound=tolerance_px)
    ok = np.isfinite(distance)
    cat_idx, det_idx, dist = np.nonzero(ok)[0], nearest[ok], distance[ok]
    order = np.argsort(dist)
    _, first = np.unique(det_idx[order], return_index=True)
    keep = order[first]
    return cat_idx[keep], det_idx[keep]


def _coarse_search(
    det_xy: np.ndarray,
    alt: np.ndarray,
    az: np.ndarray,
    *,
    image_size: tuple[int, int],
    centre: tuple[float, float],
    horizon_px: float,
    projections: Iterable[str],
) -> list[tuple[int, SkyModel]]:
    """Vote over projection, scale, mirror sense, zenith position (a 5 x 5 grid of 2 degree
    steps around ``centre``) and rotation (1 degree steps): how many catalogue stars land
    within about 2.5 degrees of a detection. A mask of discs around the detections makes each
    trial one array lookup."""
    width, height = image_size
    base_ppd = horizon_px / 90.0
    tolerance = max(2, round(2.5 * base_ppd))
    hits = np.zeros((height, width), dtype=np.uint8)
    for x, y in det_xy:
        _disc(hits, x, y, tolerance)
    rotations = np.arange(0.0, 360.0, 1.0)
    phi = np.radians(az[None, :] + rotations[:, None])
    sin_phi, cos_phi = np.sin(phi), np.cos(phi)
    theta = np.radians(90.0 - alt)
    step = 2.0 * base_ppd
    offsets = [(i * step, j * step) for i in range(-2, 3) for j in range(-2, 3)]
    results: list[tuple[int, SkyModel]] = []
    for projection in projections:
        rho = radial(projection, theta)
        base = horizon_px / float(radial(projection, np.array(math.pi / 2)))
        for scale in np.geomspace(0.6 * base, 1.5 * base, 20):
            r = scale * rho[None, :]
            dx, dy = r * sin_phi, r * cos_phi
            for mirrored in (False, True):
                sign = 1.0 if mirrored else -1.0
                for ox, oy in offsets:
                    cx, cy = centre[0] + ox, centre[1] + oy
                    xi = np.rint(cx + sign * dx).astype(np.int32)
                    yi = np.rint(cy - dy).astype(np.int32)
                    inside = (xi >= 0) & (yi >= 0) & (xi < width) & (yi < height)
                    votes = (hits[np.where(inside, yi, 0), np.where(inside, xi, 0)] & inside).sum(axis=1)
                    best = int(np.argmax(votes))
                    model = SkyModel(cx, cy, float(scale), float(rotations[best]), mirrored, projection)
                    results.append((int(votes[best]), model))
    results.sort(key=lambda item: -item[0])
    return results


def _disc(mask: np.ndarray, x: float, y: float, radius: int) -> None:
    height, width = mask.shape
    xi, yi = round(x), round(y)
    x0, x1, y0, y1 = max(0, xi - radius), min(width, xi + radius + 1), max(0, yi - radius), min(height, yi + radius + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    mask[y0:y1, x0:x1] |= ((xx - xi) ** 2 + (yy - yi) ** 2 <= radius * radius).astype(np.uint8)


def _refine(
    start: SkyModel,
    det_xy: np.ndarray,
    alt: np.ndarray,
    az: np.ndarray,
    stages: Iterable[tuple[float, int, int]],
    *,
    distortion: bool = True,
) -> SkyFit:
    """Match and solve by least squares, stage by stage: (tolerance in degrees, how many of the
    brightest catalogue stars and of the brightest detections take part). Wide and few first,
    then narrow and many, so that a rough start does not lock onto chance neighbours."""
    try:
        from scipy.optimize import least_squares
        from scipy.spatial import cKDTree
    except ImportError as exc:  # the rest of the module works without it
        raise ImportError("fitting a sky model needs SciPy: install obsy-core[skyfit]") from exc

    model = start
    rms = math.inf
    stages = list(stages)
    for tolerance, n_cat, n_det in stages:
        tree = cKDTree(det_xy[:n_det])
        cat_idx, det_idx = _match(model, tree, alt[:n_cat], az[:n_cat], model.pixels_per_degree * tolerance)
        if len(cat_idx) < 6:
            return SkyFit(model, len(cat_idx), math.inf, len(alt))
        a, z, target = alt[cat_idx], az[cat_idx], det_xy[det_idx]
        base = model

        # The distortion is solved for only once the match is tight and reaches the horizon.
        free_distortion = distortion and tolerance <= 1.2 and len(cat_idx) >= 30

        def residuals(p: np.ndarray, a=a, z=z, target=target, base=base) -> np.ndarray:
            k = p[4] if len(p) > 4 else base.distortion
            m = replace(base, zenith_x=p[0], zenith_y=p[1], scale=p[2], rotation=p[3], distortion=k)
            x, y = m.altaz_to_pixel(a, z)
            return np.concatenate([x - target[:, 0], y - target[:, 1]])

        x0 = [model.zenith_x, model.zenith_y, model.scale, model.rotation]
        if free_distortion:
            x0.append(model.distortion)
        solution = least_squares(residuals, np.array(x0), loss="soft_l1", f_scale=2.0)
        p = solution.x
        model = replace(
            model,
            zenith_x=float(p[0]),
            zenith_y=float(p[1]),
            scale=float(abs(p[2])),
            rotation=float(p[3] % 360.0),
            distortion=float(np.clip(p[4], -0.2, 0.2)) if len(p) > 4 else model.distortion,
        )
    tree = cKDTree(det_xy)
    cat_idx, det_idx = _match(model, tree, alt, az, model.pixels_per_degree * stages[-1][0])
    if len(cat_idx):
        x, y = model.altaz_to_pixel(alt[cat_idx], az[cat_idx])
        rms = float(np.sqrt(np.mean((x - det_xy[det_idx, 0]) ** 2 + (y - det_xy[det_idx, 1]) ** 2)))
    bright = (alt >= 30.0).nonzero()[0][:50]
    share = float(np.isin(bright, cat_idx).mean()) if len(bright) else 0.0
    return SkyFit(model, len(cat_idx), rms, len(alt), share)


def _same_radius(model: SkyModel, projection: str, altitude: float) -> SkyModel:
    """The model with another projection, scaled to keep the circle of ``altitude`` in place."""
    theta = np.array(math.radians(90.0 - altitude))
    scale = model.scale * float(radial(model.projection, theta) / radial(projection, theta))
    return replace(model, projection=projection, scale=scale)


#: A fit is believed when at least this share of the brightest stars is matched.
MIN_BRIGHT_SHARE = 0.4
_ALL = 1_000_000
_SEARCH_STAGES = (
    (4.0, 80, 80),
    (3.0, 150, 150),
    (2.0, 300, 300),
    (1.2, 600, 800),
    (0.7, _ALL, _ALL),
    (0.4, _ALL, _ALL),
)
_TRACKING_STAGES = ((1.5, 300, 400), (0.7, _ALL, _ALL), (0.4, _ALL, _ALL))


def fit_sky_model(
    det_xy: np.ndarray,
    alt: np.ndarray,
    az: np.ndarray,
    image_size: tuple[int, int],
    *,
    initial: SkyModel | None = None,
    projections: Iterable[str] = PROJECTIONS,
    min_altitude: float = 15.0,
    search: bool = True,
) -> SkyFit:
    """Find the sky model that puts catalogue stars on detected stars.

    ``det_xy`` are detected star positions, brightest first (the 60 brightest vote);
    ``alt``/``az`` the catalogue's apparent positions, brightest first.
    ``image_size`` is (width, height). With ``initial`` the vote is skipped and the
    given model refined (the per-frame path once a model is known); when that fails, the
    full search follows only if ``search`` is true (it costs seconds, not milliseconds). Raises
    ``ValueError`` when no model matches enough stars (cloudy, daytime, wrong site or time).
    """
    det_xy = np.asarray(det_xy, dtype=float).reshape(-1, 2)
    up = alt >= min_altitude
    alt, az = np.asarray(alt)[up], np.asarray(az)[up]
    if len(det_xy) < 8 or len(alt) < 8:
        raise ValueError(f"too few stars to fit a sky model ({len(det_xy)} detected, {len(alt)} expected)")
    if initial is not None:
        fit = _refine(initial, det_xy, alt, az, _TRACKING_STAGES)
        if fit.matched >= 15 and fit.bright_share >= MIN_BRIGHT_SHARE:
            return fit
        if not search:
            raise ValueError(
                f"the sky model no longer matches the stars ({fit.bright_share:.0%} of the brightest found)"
            )
    width, height = image_size
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    vote = (alt >= 30.0).nonzero()[0][:80]
    candidates = _coarse_search(
        det_xy[:60],
        alt[vote],
        az[vote],
        image_size=(width, height),
        centre=centre,
        horizon_px=min(width, height) / 2.0,
        projections=projections,
    )
    best: SkyFit | None = None
    for votes, start in candidates[:2]:
        if votes < 6:
            continue
        rough = _refine(start, det_xy, alt, az, _SEARCH_STAGES[:3])
        # The vote tells projections apart poorly; the faint, low stars do, once the rest is right.
        # The distortion stays at zero meanwhile: free, it would blur the projections' differences.
        for projection in projections:
            trial = _same_radius(rough.model, projection, 45.0)
            fit = _refine(trial, det_xy, alt, az, _SEARCH_STAGES[2:], distortion=False)
            if best is None or (fit.matched, -fit.rms_px) > (best.matched, -best.rms_px):
                best = fit
    if best is not None and best.matched >= 15:
        final = _refine(best.model, det_xy, alt, az, _SEARCH_STAGES[3:])
        if (final.matched, -final.rms_px) >= (best.matched, -best.rms_px):
            best = final
    if best is None or best.matched < 15 or best.bright_share < MIN_BRIGHT_SHARE:
        found = "none" if best is None else f"{best.bright_share:.0%} of the brightest, {best.matched} in all"
        raise ValueError(f"no sky model matches the stars (best matched {found})")
    return best


def named_star_positions(
    model: SkyModel, catalogue: StarCatalogue, site: Any, when: datetime, *, min_altitude: float = 10.0
) -> list[tuple[str, float, float]]:
    """(name, x, y) of every named catalogue star above ``min_altitude`` at ``when``, brightest
    first: what an allsky overlay labels. ``site`` has ``latitude``, ``longitude`` and
    (optionally) ``elevation``, as :class:`obsy.config.SiteConfig` does."""
    named = np.array([bool(n) for n in catalogue.names])
    if not named.any():
        return []
    subset = StarCatalogue(*(getattr(catalogue, f)[named] for f in ("ra", "dec", "mag", "bv", "ids", "names")))
    alt, az = subset.altaz(site.latitude, site.longitude, getattr(site, "elevation", 0.0), when)
    up = alt >= min_altitude
    x, y = model.altaz_to_pixel(alt[up], az[up])
    return [(str(n), float(px), float(py)) for n, px, py in zip(subset.names[up], x, y, strict=True)]
