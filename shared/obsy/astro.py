"""Sun and Moon positions, Moon phase and twilight times, on astropy.

Offline first
    Importing this module sets ``astropy.utils.iers.conf.auto_download = False``, so
    nothing is downloaded at run time: astropy uses the Earth orientation (IERS-A) and
    leap-second tables bundled in the ``astropy-iers-data`` package, which predict about
    a year past the package's release. With downloads off, astropy's default
    ``auto_max_age`` (30 days) makes it raise for any time after the start of those
    predictions once the package is a month old, i.e. for "now" soon after installing.
    So we also set ``auto_max_age = None``: astropy then uses the predictions, and past
    their end keeps the last predicted UT1-UTC and the mean polar motion. The error that
    causes grows by a few arcseconds per year past the end, far below anything that
    matters to an observatory's schedule. ``iers_degraded_accuracy = "warn"`` does the
    same for code that selects the IERS-B table on its own. The warnings astropy and
    ERFA give about this (ERFA's "dubious year" for dates some years ahead included) are
    silenced inside this module's functions; instead one INFO line is logged the first
    time a computation goes past the predictions. These settings are process-wide; they
    only make astropy more tolerant.

    :func:`refresh_iers` downloads current tables into astropy's download cache. It is
    never called automatically. Later processes use the cached copy when it is newer
    than the bundled one, still without network access.

Conventions
    Times are timezone-aware :class:`datetime.datetime` (any zone; naive ones raise
    ``ValueError``) or :class:`astropy.time.Time`. One time gives floats, a sequence or
    array of times gives numpy arrays of the same shape. Angles are degrees; azimuth is
    measured from north through east. Altitudes are topocentric and geometric, i.e.
    WITHOUT atmospheric refraction, unless ``refraction=True`` is passed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, overload
from zoneinfo import ZoneInfo

import astropy.units as u
import erfa
import numpy as np
from astropy.coordinates import AltAz, EarthLocation, get_body, get_sun
from astropy.coordinates.erfa_astrom import ErfaAstromInterpolator, erfa_astrom
from astropy.time import Time
from astropy.utils import iers
from astropy.utils.exceptions import AstropyWarning

from obsy.nights import aware_timestamp, night_of, site_zone

iers.conf.auto_download = False
iers.conf.auto_max_age = None
iers.conf.iers_degraded_accuracy = "warn"

__all__ = [
    "ASTRONOMICAL",
    "CIVIL",
    "NAUTICAL",
    "SUNRISE_SUNSET",
    "AltAzPosition",
    "MoonPhase",
    "NightTimes",
    "airmass",
    "location",
    "moon_altaz",
    "moon_illumination",
    "moon_phase",
    "moon_phase_angle",
    "night_of",
    "refresh_iers",
    "sun_altaz",
    "sun_altitude_now",
    "time_grid",
    "twilight",
]

logger = logging.getLogger(__name__)

# Altitudes of the Sun's centre (degrees) that define the events of a night.
SUNRISE_SUNSET = -0.833  # 34' refraction at the horizon plus 16' semi-diameter
CIVIL = -6.0
NAUTICAL = -12.0
ASTRONOMICAL = -18.0

# Twilight search: astropy samples the Sun every 10 minutes over the night, cubics through
# those samples are searched for crossings every 10 s, then Newton steps with exact
# altitudes correct each crossing until the last step was below the tolerance.
_COARSE_STEP_S = 600.0
_FINE_STEP_S = 10.0
_POLISH_TOLERANCE_S = 0.5
_POLISH_ROUNDS = 4


class SiteLike(Protocol):
    """Anything with a position: :class:`obsy.config.SiteConfig` or a lookalike."""

    latitude: float
    longitude: float


class AltAzPosition(NamedTuple):
    """Topocentric altitude and azimuth in degrees (floats, or arrays for many times)."""

    alt: float | np.ndarray
    az: float | np.ndarray


class MoonPhase(NamedTuple):
    """Illuminated fraction (0..1), phase angle (Sun-Moon-Earth, 0 = full, 180 = new),
    elongation (Moon minus Sun ecliptic longitude, 0..360, increasing through the month),
    whether it is waxing, and the phase name."""

    illumination: float | np.ndarray
    phase_angle: float | np.ndarray
    elongation: float | np.ndarray
    waxing: bool | np.ndarray
    name: str | np.ndarray


@dataclass(frozen=True)
class NightTimes:
    """Events of the night that starts on the local evening of ``night``, as UTC datetimes.

    A field is ``None`` when the Sun does not cross that altitude between local noon on
    ``night`` and local noon the next day (polar day or night, or a twilight that does
    not get that deep). Sunset and sunrise refer to the Sun's centre at -0.833°; civil,
    nautical and astronomical twilight to its centre at -6°, -12° and -18°. Dusk is the
    first time the Sun goes below the altitude in the window, dawn the first time it
    comes back up after that.
    """

    night: date
    sunset: datetime | None
    civil_dusk: datetime | None
    nautical_dusk: datetime | None
    astronomical_dusk: datetime | None
    astronomical_dawn: datetime | None
    nautical_dawn: datetime | None
    civil_dawn: datetime | None
    sunrise: datetime | None


# --------------------------------------------------------------------------- plumbing

_lock = threading.RLock()
_prepared = False
_warned_beyond_iers = False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the degraded-accuracy warnings described in the module docstring.

    ``warnings.catch_warnings`` is not thread-safe, so calls into astropy from this
    module are serialised by a lock.
    """
    with _lock, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=iers.IERSDegradedAccuracyWarning)
        warnings.filterwarnings("ignore", category=iers.IERSStaleWarning)
        warnings.filterwarnings("ignore", category=erfa.ErfaWarning, message=r".*dubious year")
        warnings.filterwarnings("ignore", category=AstropyWarning, message=r"Tried to get polar motions")
        _prepare()
        yield


def _prepare() -> None:
    """Once per process: use a previously downloaded IERS-A table if newer than the bundled one."""
    global _prepared  # noqa: PLW0603
    if _prepared:
        return
    _prepared = True
    try:
        from astropy.utils.data import download_file, is_url_in_cache

        url = iers.conf.iers_auto_url
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. CacheMissingWarning when there is no cache at all
            if not is_url_in_cache(url):
                return
            path = download_file(url, cache=True)  # from the cache, no network
        bundled = iers.IERS_Auto.open()
        cached = iers.IERS_Auto.read(file=path)
        if cached.meta["predictive_mjd"] > bundled.meta["predictive_mjd"]:
            iers.IERS_Auto.iers_table = cached
            logger.debug("using IERS-A table from astropy's download cache")
    except Exception:  # a broken cache must never stop the computation
        logger.debug("ignoring unusable cached IERS-A table", exc_info=True)


def _last_mjd(table: iers.IERS) -> float:
    last = table["MJD"][-1]
    return float(getattr(last, "value", last))


def _note_iers_range(t: Time) -> None:
    """Log once when times go past the Earth orientation predictions."""
    global _warned_beyond_iers  # noqa: PLW0603
    if _warned_beyond_iers or t.size == 0:
        return
    last_mjd = _last_mjd(iers.earth_orientation_table.get())
    if float(np.max(t.utc.mjd)) > last_mjd:
        _warned_beyond_iers = True
        end = Time(last_mjd, format="mjd").to_datetime().date()
        logger.info(
            "times after %s are past the bundled IERS predictions; positions are extrapolated "
            "(arcsecond accuracy). Call obsy.astro.refresh_iers() once online to update.",
            end.isoformat(),
        )


def refresh_iers(timeout: float = 30.0) -> date:
    """Download current IERS-A and leap-second tables and use them from now on.

    Needs network access; never called automatically. The files stay in astropy's
    download cache, where later processes find them without network access. Returns
    the last date the new table covers. Raises ``RuntimeError`` when the download fails.
    """
    from astropy.time import update_leap_seconds
    from astropy.utils.data import download_file

    urls = (iers.conf.iers_auto_url, iers.conf.iers_auto_url_mirror)
    with _lock:
        try:
            with iers.conf.set_temp("remote_timeout", timeout):
                path = download_file(urls[0], sources=list(urls), cache="update")
            table = iers.IERS_Auto.read(file=path)
        except Exception as exc:
            raise RuntimeError(f"could not download the IERS-A table: {exc}") from exc
        iers.IERS_Auto.iers_table = table
        iers.earth_orientation_table.set(table)
        with iers.conf.set_temp("auto_download", True), iers.conf.set_temp("remote_timeout", timeout):
            update_leap_seconds()
        global _warned_beyond_iers  # noqa: PLW0603
        _warned_beyond_iers = False
    return Time(_last_mjd(table), format="mjd").to_datetime().date()


@lru_cache(maxsize=64)
def _location(latitude: float, longitude: float, elevation: float) -> EarthLocation:
    return EarthLocation.from_geodetic(lon=longitude * u.deg, lat=latitude * u.deg, height=elevation * u.m)


def location(site: SiteLike) -> EarthLocation:
    """The site as an astropy EarthLocation (WGS84), cached per position."""
    return _location(float(site.latitude), float(site.longitude), float(getattr(site, "elevation", 0.0) or 0.0))


def _as_time(times: Any) -> tuple[Time, bool]:
    """Times as astropy Time and whether a single time was given."""
    if isinstance(times, Time):
        return times, times.isscalar
    if isinstance(times, datetime):
        return Time(aware_timestamp(times), format="unix", scale="utc"), True
    if isinstance(times, np.datetime64) or (isinstance(times, np.ndarray) and times.dtype.kind == "M"):
        raise ValueError("numpy datetime64 has no time zone; pass aware datetimes or astropy Time")
    if isinstance(times, (str, bytes, date)):
        raise TypeError(f"expected an aware datetime, astropy Time or a sequence of them, not {type(times).__name__}")
    items = np.asarray(times, dtype=object)
    flat = items.ravel()
    if flat.size and all(isinstance(item, Time) for item in flat):
        return Time(list(flat)).reshape(items.shape), False
    seconds = np.empty(flat.size)
    for i, item in enumerate(flat):
        if isinstance(item, datetime):
            seconds[i] = aware_timestamp(item)
        elif isinstance(item, Time) and item.isscalar:
            seconds[i] = item.utc.unix
        else:
            raise TypeError(f"expected aware datetimes or astropy Time, got {type(item).__name__}")
    return Time(seconds.reshape(items.shape), format="unix", scale="utc"), False


def _out(values: Any, scalar: bool) -> Any:
    array = np.asarray(values)
    return array.item() if scalar else array


def _to_datetime(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(round(unix_seconds, 6), UTC)


# --------------------------------------------------------------------------- positions


def _standard_atmosphere(elevation_m: float) -> tuple[float, float]:
    """Pressure (hPa) and temperature (°C) of the ICAO standard atmosphere at the site."""
    pressure = 1013.25 * (1.0 - 2.25577e-5 * elevation_m) ** 5.25588
    return pressure, 15.0 - 0.0065 * elevation_m


def _refraction(alt_deg: np.ndarray, pressure_hpa: float, temperature_c: float) -> np.ndarray:
    """Refraction (degrees) to add to a geometric altitude.

    Sæmundsson's formula (Meeus, Astronomical Algorithms, 16.4) scaled for pressure and
    temperature; it holds down to the horizon, unlike astropy's built-in model, which
    stays near 10' there instead of the real 34'. Below -1°, where nothing is visible
    anyway, the formula would diverge; the value tapers off as 1/tan(altitude) instead
    (like NOAA's solar calculator), so the result stays continuous and monotonic.
    """
    h = np.maximum(alt_deg, -1.0)
    arcmin = 1.02 / np.tan(np.radians(h + 10.3 / (h + 5.11))) + 0.0019279
    taper = np.tan(np.radians(-1.0)) / np.tan(np.radians(np.minimum(alt_deg, -1.0)))
    arcmin = np.clip(arcmin * taper, 0.0, None)
    return arcmin / 60.0 * (pressure_hpa / 1010.0) * (283.0 / (273.0 + temperature_c))


def airmass(alt_deg: Any) -> np.ndarray:
    """Relative air mass at apparent altitude ``alt_deg`` (degrees), 1 at the zenith.

    Kasten & Young style: close to sec(z) high up, finite (about 38) at the horizon, so
    extinction by ``k * (airmass - 1)`` magnitudes stays usable down to it.
    """
    s = np.sin(np.radians(np.clip(alt_deg, 0.0, 90.0)))
    return 1.0 / (s + 0.025 * np.exp(-11.0 * s))


def _altaz(body: str, site: SiteLike, times: Any, refraction: bool) -> AltAzPosition:
    t, scalar = _as_time(times)
    loc = location(site)
    with _quiet():
        _note_iers_range(t)
        # get_sun is astropy's faster route to the same apparent Sun as get_body("sun", ...)
        # (they agree to 0.01"); the AltAz transform adds the topocentric parallax.
        coord = get_sun(t) if body == "sun" else get_body(body, t, loc)
        observed = coord.transform_to(AltAz(obstime=t, location=loc))
        alt = observed.alt.to_value(u.deg)
        az = observed.az.to_value(u.deg)
    if refraction:
        alt = alt + _refraction(alt, *_standard_atmosphere(float(loc.height.to_value(u.m))))
    return AltAzPosition(_out(alt, scalar), _out(az, scalar))


def sun_altaz(site: SiteLike, times: Any, refraction: bool = False) -> AltAzPosition:
    """Topocentric altitude/azimuth of the Sun's centre (degrees).

    Geometric, without refraction, by default. ``refraction=True`` adds the refraction
    of the ICAO standard atmosphere at the site's elevation (pressure and temperature);
    a real atmosphere differs by a few percent, near the horizon by more.
    """
    return _altaz("sun", site, times, refraction)


def moon_altaz(site: SiteLike, times: Any, refraction: bool = False) -> AltAzPosition:
    """Topocentric altitude/azimuth of the Moon's centre (degrees); see :func:`sun_altaz`."""
    return _altaz("moon", site, times, refraction)


def sun_altitude_now(site: SiteLike, refraction: bool = False) -> float:
    """The Sun's altitude (degrees) at the site right now."""
    return float(sun_altaz(site, datetime.now(UTC), refraction=refraction).alt)


def _moon_geometry(times: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Geocentric phase angle and elongation in longitude (degrees)."""
    t, scalar = _as_time(times)
    with _quiet():
        _note_iers_range(t)
        sun = get_sun(t).cartesian.xyz.to_value(u.au)
        moon = get_body("moon", t).cartesian.xyz.to_value(u.au)
        tt = t.tt
        obliquity = erfa.obl06(tt.jd1, tt.jd2)
    to_sun = sun - moon
    cos_phase = -np.sum(to_sun * moon, axis=0) / (np.linalg.norm(to_sun, axis=0) * np.linalg.norm(moon, axis=0))
    phase_angle = np.degrees(np.arccos(np.clip(cos_phase, -1.0, 1.0)))

    # Ecliptic longitudes: rotate the equatorial (GCRS) vectors about x by the obliquity.
    # Precession would shift both longitudes alike, so their difference is unaffected.
    def longitude(xyz: np.ndarray) -> np.ndarray:
        x, y, z = xyz
        return np.arctan2(y * np.cos(obliquity) + z * np.sin(obliquity), x)

    elongation = np.degrees(longitude(moon) - longitude(sun)) % 360.0
    return phase_angle, elongation, scalar


def moon_illumination(times: Any) -> float | np.ndarray:
    """Illuminated fraction of the Moon's disc, 0 (new) to 1 (full), seen from the Earth's centre."""
    phase_angle, _, scalar = _moon_geometry(times)
    return _out((1.0 + np.cos(np.radians(phase_angle))) / 2.0, scalar)


def moon_phase_angle(times: Any) -> float | np.ndarray:
    """The Moon's phase angle (Sun-Moon-Earth, degrees): 0 at full Moon, 180 at new Moon."""
    phase_angle, _, scalar = _moon_geometry(times)
    return _out(phase_angle, scalar)


_PHASE_NAMES = np.array(
    [
        "new",
        "waxing crescent",
        "first quarter",
        "waxing gibbous",
        "full",
        "waning gibbous",
        "last quarter",
        "waning crescent",
    ]
)


def moon_phase(times: Any) -> MoonPhase:
    """Illumination, phase angle, elongation, waxing flag and name of the Moon's phase.

    The name comes from the elongation in ecliptic longitude in eight 45° sectors
    centred on 0° (new), 45°, 90° (first quarter), ..., 315° (waning crescent).
    """
    phase_angle, elongation, scalar = _moon_geometry(times)
    illumination = (1.0 + np.cos(np.radians(phase_angle))) / 2.0
    names = _PHASE_NAMES[((elongation + 22.5) // 45.0).astype(int) % 8]
    waxing = elongation < 180.0
    return MoonPhase(
        _out(illumination, scalar),
        _out(phase_angle, scalar),
        _out(elongation, scalar),
        bool(waxing) if scalar else np.asarray(waxing),
        str(names) if scalar else names,
    )


# --------------------------------------------------------------------------- time helpers


def time_grid(start: datetime | Time, end: datetime | Time, step_seconds: float) -> Time:
    """Times from ``start`` to ``end`` (included when it falls on the grid) every ``step_seconds``."""
    if step_seconds <= 0:
        raise ValueError("step_seconds must be positive")
    t0, scalar0 = _as_time(start)
    t1, scalar1 = _as_time(end)
    if not (scalar0 and scalar1):
        raise ValueError("start and end must be single times")
    span = float((t1 - t0).to_value(u.s))
    if span < 0:
        raise ValueError("end is before start")
    count = math.floor(span / step_seconds + 1e-9) + 1
    return t0 + np.arange(count) * step_seconds * u.s


# --------------------------------------------------------------------------- twilight

_EVENTS = (
    ("sunset", "sunrise", SUNRISE_SUNSET),
    ("civil_dusk", "civil_dawn", CIVIL),
    ("nautical_dusk", "nautical_dawn", NAUTICAL),
    ("astronomical_dusk", "astronomical_dawn", ASTRONOMICAL),
)


def _lagrange(x: np.ndarray) -> np.ndarray:
    """Weights, shape (4, len(x)), of the cubic through samples at -1, 0, 1, 2 evaluated at x."""
    return np.stack(
        [
            -x * (x - 1) * (x - 2) / 6,
            (x + 1) * (x - 1) * (x - 2) / 2,
            -(x + 1) * x * (x - 2) / 2,
            (x + 1) * x * (x - 1) / 6,
        ]
    )


def _lagrange_slope(x: np.ndarray) -> np.ndarray:
    """Derivatives of the :func:`_lagrange` weights."""
    return np.stack(
        [-(3 * x**2 - 6 * x + 2) / 6, (3 * x**2 - 4 * x - 1) / 2, -(3 * x**2 - 2 * x - 2) / 2, (3 * x**2 - 1) / 6]
    )


_FINE = np.arange(0.0, 1.0, _FINE_STEP_S / _COARSE_STEP_S)  # fractions of a coarse step
_FINE_WEIGHTS = _lagrange(_FINE)


def _sun_altitudes(loc: EarthLocation, unix_seconds: np.ndarray, fast: bool = False) -> np.ndarray:
    """Sun altitudes (degrees). ``fast`` interpolates the slowly varying parts of the
    transformation hourly: several times faster, and within 0.03" for the Sun."""
    t = Time(unix_seconds, format="unix", scale="utc")
    _note_iers_range(t)
    with erfa_astrom.set(ErfaAstromInterpolator(3600 * u.s)) if fast else contextlib.nullcontext():
        return get_sun(t).transform_to(AltAz(obstime=t, location=loc)).alt.to_value(u.deg)


@dataclass
class _Night:
    night: date
    start: float  # unix seconds of local noon
    end: float  # unix seconds of the next local noon
    nodes: np.ndarray  # coarse sample times, from one step before start to one step past end

    @classmethod
    def of(cls, zone: ZoneInfo, night: date) -> _Night:
        start = datetime.combine(night, dtime(12), tzinfo=zone).timestamp()
        end = datetime.combine(night + timedelta(days=1), dtime(12), tzinfo=zone).timestamp()
        intervals = math.ceil((end - start) / _COARSE_STEP_S - 1e-9)
        return cls(night, start, end, start + np.arange(-1, intervals + 2) * _COARSE_STEP_S)

    def interpolate(self, alts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Times and altitudes every _FINE_STEP_S over the window, from cubics through the samples.

        The cubic for the interval starting at node j+1 passes through nodes j .. j+3.
        """
        windows = np.lib.stride_tricks.sliding_window_view(alts, 4)
        times = np.append((self.nodes[1:-2, None] + _FINE * _COARSE_STEP_S).ravel(), self.nodes[-2])
        values = np.append((windows @ _FINE_WEIGHTS).ravel(), alts[-2])
        inside = times <= self.end
        return times[inside], values[inside]

    def slopes(self, alts: np.ndarray, when: np.ndarray) -> np.ndarray:
        """d(altitude)/dt (deg/s) of those cubics at the times ``when``."""
        j = np.clip(((when - self.nodes[1]) // _COARSE_STEP_S).astype(int), 0, len(self.nodes) - 4)
        weights = _lagrange_slope((when - self.nodes[j + 1]) / _COARSE_STEP_S)
        samples = np.stack([alts[j + i] for i in range(4)])
        return np.sum(weights * samples, axis=0) / _COARSE_STEP_S


def _crossings(times: np.ndarray, alts: np.ndarray, horizon: float) -> tuple[float | None, float | None]:
    """First downward crossing, and the first upward one after it (or at all, without one)."""
    above = alts > horizon
    change = np.flatnonzero(above[:-1] != above[1:])
    falling = change[above[change]]
    rising = change[~above[change]]
    if falling.size:
        rising = rising[rising > falling[0]]

    def when(i: np.ndarray) -> float | None:
        if i.size == 0:
            return None
        k = int(i[0])
        a0, a1 = alts[k], alts[k + 1]
        return float(times[k] + (horizon - a0) / (a1 - a0) * (times[k + 1] - times[k]))

    return when(falling), when(rising)


def _polish(loc: EarthLocation, when: np.ndarray, horizon: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Newton steps with exact altitudes, all crossings batched in one astropy call per round.

    A crossing that does not converge belonged to the interpolating cubic only (the Sun
    grazing the altitude); it comes back as NaN.
    """
    when = when.copy()
    slope = np.where(np.abs(slope) < 1e-9, np.copysign(1e-9, slope), slope)
    done = np.zeros(when.shape, dtype=bool)
    for _ in range(_POLISH_ROUNDS):
        todo = np.flatnonzero(~done)
        if todo.size == 0:
            break
        step = np.clip(-(_sun_altitudes(loc, when[todo]) - horizon[todo]) / slope[todo], -60.0, 60.0)
        when[todo] += step
        done[todo[np.abs(step) <= _POLISH_TOLERANCE_S]] = True
    return np.where(done, when, np.nan)


@overload
def twilight(site: SiteLike, night_date: date | None = None) -> NightTimes: ...
@overload
def twilight(site: SiteLike, night_date: Sequence[date]) -> list[NightTimes]: ...
def twilight(site: SiteLike, night_date: Any = None) -> NightTimes | list[NightTimes]:
    """Sunset, twilights and sunrise of the night beginning on the local evening of ``night_date``.

    ``night_date`` defaults to the current night (:func:`night_of` now); a sequence of
    dates gives a list, computed together. The Sun's altitude is sampled with astropy
    every 10 minutes from local noon to local noon, crossings are located on cubics
    through those samples (so a dip below an altitude lasting a minute is still seen),
    then all crossings of all nights are refined together by Newton steps on exact
    altitudes, to well under a second (normally one extra astropy call in all).
    """
    if night_date is None:
        night_date = night_of(site, datetime.now(UTC))
    single = isinstance(night_date, date)
    dates = [night_date] if single else list(night_date)
    for d in dates:
        if isinstance(d, datetime) or not isinstance(d, date):
            raise TypeError(f"night_date must be a date (the local evening), not {type(d).__name__}")
    if not dates:
        return []
    loc = location(site)
    zone = site_zone(site)
    nights = [_Night.of(zone, d) for d in dates]

    keys: list[tuple[int, str]] = []
    horizons: list[float] = []
    estimates: list[float] = []
    slopes: list[np.ndarray] = []
    with _quiet():
        coarse = _sun_altitudes(loc, np.concatenate([n.nodes for n in nights]), fast=True)
        for k, (night, alts) in enumerate(
            zip(nights, np.split(coarse, np.cumsum([len(n.nodes) for n in nights])[:-1]), strict=True)
        ):
            times, values = night.interpolate(alts)
            found = []
            for dusk_name, dawn_name, horizon in _EVENTS:
                for name, estimate in zip((dusk_name, dawn_name), _crossings(times, values, horizon), strict=True):
                    if estimate is not None:
                        keys.append((k, name))
                        horizons.append(horizon)
                        found.append(estimate)
            estimates.extend(found)
            slopes.append(night.slopes(alts, np.array(found)))
        refined = _polish(loc, np.array(estimates), np.array(horizons), np.concatenate(slopes)) if keys else []

    results: list[dict[str, datetime | None]] = [
        dict.fromkeys(name for event in _EVENTS for name in event[:2]) for _ in nights
    ]
    for (k, name), value in zip(keys, refined, strict=True):
        results[k][name] = None if np.isnan(value) else _to_datetime(float(value))
    out = [NightTimes(night=night.night, **result) for night, result in zip(nights, results, strict=True)]
    return out[0] if single else out
