"""Sky-simulator transit nights: main-camera frames of a field with a scripted transiting planet,
rendered as a library (no indiserver), calibrated with the simulator's known answers and written
with the keywords the camera and Ekos write, for the transit reduction's tests and bench."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time

from obsy import astro
from obsy.transits.ephemeris import Ephemeris, transit_duration
from obsy.transits.predict import bjd_tdb
from obsy_imaging.headers.normalise import Site as HeaderSite
from obsy_imaging.photometry.aperture import CcdNoise
from obsy_skysim.allsky import Site
from obsy_skysim.clouds import Clouds
from obsy_skysim.field import FieldRenderer, TelescopeOptics
from obsy_skysim.scenario import Scenario, SineVariable, TransitHost
from obsy_skysim.sensor import SensorSpec
from obsy_skysim.sky import sky_conditions_at
from tests.support.photometry import noise_of, saturation_of, write_light
from tests.support.skysim import SITE

#: A field high over the site on an October night, away from the Milky Way.
POINTING = (350.0, 40.0)
HOST_RA, HOST_DEC = 350.02, 40.01
MID = datetime(2026, 10, 15, 21, 0, tzinfo=UTC)  # mid-transit, UTC at the site
PERIOD_H = 72.0
EXPOSURE_S = 60.0
GAIN = 0.0


def transit_host(mid: datetime = MID, *, mag: float = 10.5) -> TransitHost:
    """A hot Jupiter (depth about 1.3 %) across a limb-darkened star, the physical form."""
    return TransitHost(
        name="SIM-T1 (test)",
        ra=HOST_RA,
        dec=HOST_DEC,
        kind="transit",
        mag=mag,
        mid=mid,
        period_h=PERIOD_H,
        rp_rs=0.11,
        a_rs=9.0,
        inc=87.5,
        u1=0.52,
        u2=0.08,
    )


def small_renderer(size: int = 500) -> FieldRenderer:
    """A ``size`` × ``size`` crop at 3.1″ per pixel (200 mm at f/1.25, 3.76 µm; 26′ square): about
    ten stars within two magnitudes of the 10.5 mag host. Defocused to 12.4″ (4 px), as transit
    observers do, so that the host's 500,000 electrons in 60 s (1.4 ppt of photon noise) peak at
    about half the full well."""
    return FieldRenderer(
        Site(*SITE),
        SensorSpec(width=size, height=size, pixel_um=3.76, bayer=None),
        TelescopeOptics(focal_length_mm=250.0, aperture_mm=200.0, limiting_magnitude=16.0, seeing_fwhm_arcsec=12.4),
    )


@dataclass(frozen=True)
class TransitNight:
    paths: list[Path]
    host: SkyCoord
    tc_bjd: float  # the scenario's mid-transit in BJD_TDB
    depth: float  # rp_rs²
    noise: CcdNoise
    saturation_adu: float
    site: HeaderSite


def truth_bjd(host: TransitHost) -> float:
    """The scenario's mid-transit (UTC at the site) in BJD_TDB towards the host."""
    where = astro.location(HeaderSite(*SITE))
    return bjd_tdb(Time(host.mid, scale="utc"), host.ra, host.dec, where)


def night_ephemeris(host: TransitHost) -> Ephemeris:
    """A year-old ephemeris, slightly wrong everywhere (as the direct science test's): T0 off by
    2.9 min with σ 1.4 min, Rp/R*, a/R* and inclination a little off."""
    tc = truth_bjd(host)
    period = host.period_h / 24.0
    return Ephemeris(
        name="SIM-T1 b",
        t0=tc - 100 * period + 0.002,
        t0_err=0.001,
        period=period,
        period_err=1e-6,
        rp_rs=0.105,
        a_rs=9.3,
        a_rs_err=0.3,
        inc=87.8,
        inc_err=0.6,
        ra=host.ra,
        dec=host.dec,
    )


def write_transit_night(
    folder: Path,
    seed: int,
    *,
    frames: int = 200,
    renderer: FieldRenderer | None = None,
    host: TransitHost | None = None,
    extra: tuple[SineVariable | TransitHost, ...] = (),
    with_wcs: bool = True,
    clouds: dict[int, Clouds] | None = None,
    pointings: dict[int, tuple[float, float]] | None = None,
    sixteen_bit: bool = False,
) -> TransitNight:
    """A night of ``frames`` 60 s exposures over T14 + 2 h about mid-transit, each start jittered
    by a few seconds; calibrated lights named in time order. ``clouds`` and ``pointings`` change
    the frames they name by index (the skysim's cloud layer; the mount pointing elsewhere).
    ``sixteen_bit`` writes the calibrated pixels rounded to 16 bits (half the disk of float32:
    a full-size night is 16 GB so)."""
    renderer = renderer or small_renderer()
    host = host or transit_host()
    scenario = Scenario(variables=[host, *extra])
    t14_h = 24.0 * transit_duration(host.period_h / 24.0, host.rp_rs, host.a_rs, host.inc)
    span_s = (t14_h + 2.0) * 3600.0
    step = span_s / (frames - 1)
    start = host.mid - timedelta(seconds=span_s / 2 + EXPOSURE_S / 2)
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    jitters = [((seed * 7919 + i * 104729) % 1000 - 500) / 1000.0 * 0.1 * step for i in range(frames)]
    starts = [start + timedelta(seconds=i * step + jitter) for i, jitter in enumerate(jitters)]
    for i, (when, conditions) in enumerate(zip(starts, sky_conditions_at(renderer.site, starts), strict=True)):
        frame = renderer.render(
            when,
            (pointings or {}).get(i, POINTING),
            EXPOSURE_S,
            GAIN,
            scenario=scenario,
            clouds=(clouds or {}).get(i),
            seed=seed * 100_000 + i,
            conditions=conditions,
        )
        path = write_light(
            folder / f"light_{i:04d}.fits", renderer, frame, with_wcs=with_wcs, calibrated=True, keywords=EKOS_KEYWORDS
        )
        if sixteen_bit:
            _sixteen_bit(path)
        paths.append(path)
    return TransitNight(
        paths,
        SkyCoord(host.ra * u.deg, host.dec * u.deg),
        truth_bjd(host),
        host.rp_rs**2,
        noise_of(renderer, GAIN, EXPOSURE_S, calibrated=True),
        saturation_of(renderer, GAIN) - renderer.sensor.spec.offset_adu,
        HeaderSite(*SITE),
    )


#: What Ekos adds to the camera's keywords: the object's name and the filter.
EKOS_KEYWORDS = {"OBJECT": ("SIM-T1", "Object name"), "FILTER": ("R", "Filter")}


def _sixteen_bit(path: Path) -> None:
    """The calibrated pixels rounded to 16-bit integers, in place."""
    with fits.open(path) as hdul:
        header, data = hdul[0].header.copy(), hdul[0].data
        hdu = fits.PrimaryHDU(np.clip(np.rint(data), 0, 65535).astype(np.uint16), header)
        hdu.writeto(path, overwrite=True)


@dataclass(frozen=True)
class NightsFitted:
    """Simulator nights reduced from their frames and fitted: per night, Tc − truth and Tc's σ (days), and
    the depth's relative error."""

    tc_error: np.ndarray
    tc_sigma: np.ndarray
    depth_error: np.ndarray

    @property
    def z(self) -> np.ndarray:
        return np.abs(self.tc_error / self.tc_sigma)

    @property
    def sigma_over_scatter(self) -> float:
        return float(np.median(self.tc_sigma) / np.std(self.tc_error, ddof=1))

    def summary(self) -> str:
        return (
            f"within 1σ {np.mean(self.z < 1):.0%}, largest {self.z.max():.2f}σ; median σ "
            f"{np.median(self.tc_sigma) * 1440:.2f} min, scatter {np.std(self.tc_error, ddof=1) * 1440:.2f} min "
            f"(ratio {self.sigma_over_scatter:.2f}), mean error {np.mean(self.tc_error) * 1440:+.2f} min; depth mean "
            f"{np.mean(self.depth_error):+.1%}, largest {np.max(np.abs(self.depth_error)):.1%}"
        )


def fit_simulator_nights(
    workdir: Path, seeds: range, *, frames: int = 300, chain: tuple[int, int] | None = None
) -> NightsFitted:
    """Render each seeded night (``write_transit_night``), reduce it from its frames and fit it against the
    slightly wrong ephemeris: what the science test and the nights' bench measure. ``chain``: the MCMC's
    steps and burn-in (the fit's default when None)."""
    from obsy_imaging.transits.fit import McmcSettings, fit_transit
    from obsy_imaging.transits.reduce import TransitReductionSettings, reduce_night

    ephemeris = night_ephemeris(transit_host())
    tc_error, tc_sigma, depth_error = [], [], []
    for seed in seeds:
        night = write_transit_night(workdir / f"night-{seed}", seed, frames=frames)
        settings = TransitReductionSettings(saturation_adu=night.saturation_adu, noise=night.noise)
        reduced = reduce_night(night.paths, night.host, site=night.site, settings=settings)
        assert not reduced.rejected_frames, reduced.rejected_frames[:3]
        # Airmass detrending only: nothing else moves the simulator's flux, and the regressors
        # (background, FWHM, position) only add freedom to the fit (docs/imaging-transits.md).
        lc = replace(reduced.light_curve, regressors={})
        steps = {} if chain is None else {"steps": chain[0], "burn": chain[1]}
        fit = fit_transit(lc, ephemeris, mcmc=McmcSettings(seed=seed, **steps))
        assert not fit.partial
        tc_error.append(fit.tc.value - night.tc_bjd)
        tc_sigma.append(fit.tc.error)
        depth_error.append(fit.depth.value / night.depth - 1)
        print(
            f"night {seed}: {len(lc.time)} points, {len(reduced.ensemble)} comparisons, "
            f"Tc {tc_error[-1] * 1440:+.2f} ± {tc_sigma[-1] * 1440:.2f} min, depth {depth_error[-1]:+.1%}",
            flush=True,
        )
        for path in night.paths:  # 300 MB a night
            path.unlink()
    return NightsFitted(np.array(tc_error), np.array(tc_sigma), np.array(depth_error))
