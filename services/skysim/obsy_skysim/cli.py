"""``obsy-skysim``: render one allsky frame to a FITS file, to look at or to feed a test by hand.

obsy-skysim render frame.fits --time 2026-01-15T22:00:00Z --clouds scattered --cover 40
obsy-skysim settings skysim.yaml --site-of obsy.yaml
obsy-skysim index --ra 83.8 --dec -5.4 --radius-deg 1.5 --out indexes/
obsy-skysim science-night --out night/ --start 2026-01-15T22:00:00Z --config skysim.yaml
obsy-skysim warm-up

``index`` writes the main camera's stars of a region (the catalogue's and the synthetic ones the
field renderer draws there) and builds astrometry.net index files of them for the camera's field
(:mod:`obsy_skysim.index`): with the folder as its index path, ``solve-field`` solves the
simulator's frames of that region.

``science-night`` writes a night of science (:mod:`obsy_skysim.science`): a scenario with a variable
star and a transit soon after ``--start``, the planet's ephemeris, the variable's photometry target,
the fields' index and a manifest of the targets, the configuration and the truth.

``settings`` writes a settings file whose cameras stand at the site of an OBSY configuration:
the indiserver container starts the simulator's drivers with it, so that the sky they render
is the sky over the site OBSY's services judge (docs/skysim.md).
``warm-up`` compiles the sensor's read-out and the star stamps (numba kernels) into numba's on-disk
cache, an install step: the drivers then load them in well under a second instead of compiling
them for seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import ValidationError

from obsy_skysim.clouds import CLOUD_KINDS
from obsy_skysim.config import ConfigError, load_config, problems


def _time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time such as 2026-01-15T22:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="obsy-skysim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="render one allsky frame to a FITS file")
    render.add_argument("output", type=Path)
    render.add_argument("--config", help="settings file (default: $OBSY_SKYSIM_CONFIG, else the defaults)")
    render.add_argument("--time", type=_time, default=None, help="UTC time (default: now plus the clock offset)")
    render.add_argument("--exposure", type=float, default=10.0, help="seconds")
    render.add_argument("--gain", type=float, default=100.0)
    render.add_argument("--clouds", choices=CLOUD_KINDS, default=None)
    render.add_argument("--cover", type=float, default=None, help="percent, for scattered clouds")
    render.add_argument("--seed", type=int, default=None, help="noise seed (default: random)")
    settings = sub.add_parser("settings", help="write a settings file for the site of an OBSY configuration")
    settings.add_argument("output", type=Path)
    settings.add_argument("--site-of", required=True, help="the OBSY configuration file whose site: is used")
    index = sub.add_parser("index", help="astrometry.net index files of the main camera's stars of a region")
    index.add_argument("--ra", type=float, required=True, help="the region's centre, ICRS right ascension, degrees")
    index.add_argument("--dec", type=float, required=True, help="the region's centre, ICRS declination, degrees")
    index.add_argument(
        "--radius-deg", type=float, default=None, help="degrees (default: the camera's field diagonal, twice over)"
    )
    index.add_argument("--out", type=Path, required=True, help="folder for the star list and the index files")
    index.add_argument("--config", help="settings file (default: $OBSY_SKYSIM_CONFIG, else the defaults)")
    _science_parser(sub)
    sub.add_parser("warm-up", help="compile the read-out and star kernels into numba's cache now")
    args = parser.parse_args(argv)
    others = {
        "settings": lambda: _write_settings(args.output, args.site_of),
        "index": lambda: _build_index(args),
        "science-night": lambda: _science_night(args),
        "warm-up": _warm_up,
    }
    if args.command in others:
        return others[args.command]()

    from obsy_skysim.driver import AllskyCamera, frame_fits

    try:
        config = load_config(args.config)
        updates = {k: v for k, v in (("kind", args.clouds), ("cover", args.cover)) if v is not None}
        clouds = config.allsky.clouds.model_validate({**config.allsky.clouds.model_dump(), **updates})
    except ValidationError as exc:
        print(f"obsy-skysim: {problems(exc)}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"obsy-skysim: {exc}", file=sys.stderr)
        return 2
    settings = config.allsky.model_copy(update={"clouds": clouds})
    renderer = AllskyCamera.make_renderer(settings)
    when = args.time or datetime.now(UTC)
    try:
        frame = renderer.render(when, args.exposure, args.gain, clouds.clouds(), seed=args.seed)
    except ValueError as exc:
        print(f"obsy-skysim: {exc}", file=sys.stderr)
        return 2
    args.output.write_bytes(frame_fits(frame, settings, renderer))
    print(f"{args.output}: {len(frame.stars or ())} stars, true cloud cover {frame.cloud_cover:.1f} %")
    return 0


def _science_parser(sub: argparse._SubParsersAction) -> None:
    science = sub.add_parser(
        "science-night", help="a variable star and a transit soon after --start, with the files to observe them"
    )
    science.add_argument("--out", type=Path, required=True, help="folder for the night's files")
    science.add_argument("--start", type=_time, default=None, help="UTC start of the night (default: now)")
    science.add_argument(
        "--config", help="settings file whose camera: (site, sensor, telescope) is used (default: $OBSY_SKYSIM_CONFIG)"
    )
    science.add_argument("--latitude", type=float, default=None, help="the site's, degrees (default: the camera's)")
    science.add_argument("--longitude", type=float, default=None, help="the site's, degrees east")
    science.add_argument("--elevation", type=float, default=None, help="the site's, metres")
    science.add_argument("--transit-mid-min", type=float, default=None, help="minutes from --start to mid-transit")
    science.add_argument("--transit-duration-min", type=float, default=None, help="first to last contact, minutes")
    science.add_argument("--transit-depth", type=float, default=None, help="(Rp/R*)², a fraction (0.025 = 2.5 %%)")
    science.add_argument("--variable-period-min", type=float, default=None, help="the sine variable's period")
    science.add_argument("--no-index", action="store_true", help="leave out the astrometry.net index")


def _main_camera(args: argparse.Namespace):
    """The main camera's settings from --config, or None (and why, on stderr)."""
    try:
        return load_config(args.config).camera
    except ConfigError as exc:
        print(f"obsy-skysim: {exc}", file=sys.stderr)
        return None


def _building(work):
    """``(what work() made, 0)``, or ``(None, exit status)`` with why on stderr: 2 for a setting that makes
    nothing (ValueError), 1 for astrometry.net's tools or the disk failing."""
    from obsy_skysim.index import IndexBuildError

    try:
        return work(), 0
    except ValueError as exc:
        print(f"obsy-skysim: {exc}", file=sys.stderr)
        return None, 2
    except (IndexBuildError, OSError) as exc:
        print(f"obsy-skysim: {exc}", file=sys.stderr)
        return None, 1


def _build_index(args: argparse.Namespace) -> int:
    """The main camera's stars around --ra/--dec and their index files in --out."""
    from obsy_skysim.driver import MainCamera
    from obsy_skysim.index import build_index, field_arcmin

    settings = _main_camera(args)
    if settings is None:
        return 2
    renderer = MainCamera.make_renderer(settings)
    radius = args.radius_deg if args.radius_deg is not None else 2.0 * renderer.field_radius_deg
    built, status = _building(lambda: build_index(renderer, args.ra, args.dec, radius, args.out))
    if built is None:
        return status
    print(
        f"{args.out}: {built.stars} stars to {renderer.optics.limiting_magnitude:g} mag within {radius:.3g}° of "
        f"({args.ra:g}, {args.dec:+g}); {len(built.indexes)} index files (-P {', '.join(map(str, built.scales))}) "
        f"for a field of {field_arcmin(renderer):.1f}′ at {renderer.arcsec_per_pixel:.3f}″/px"
    )
    return 0


def _science_night(args: argparse.Namespace) -> int:
    """The science night's files in --out (obsy_skysim.science)."""
    from dataclasses import replace

    from obsy_skysim.allsky import Site
    from obsy_skysim.science import ScienceNightSettings, write_science_night

    camera = _main_camera(args)
    if camera is None:
        return 2
    here = camera.site
    site = Site(
        here.latitude if args.latitude is None else args.latitude,
        here.longitude if args.longitude is None else args.longitude,
        here.elevation if args.elevation is None else args.elevation,
    )
    given = {
        "transit_mid_min": args.transit_mid_min,
        "transit_duration_min": args.transit_duration_min,
        "transit_depth": args.transit_depth,
        "variable_period_min": args.variable_period_min,
    }
    settings = replace(ScienceNightSettings(), **{k: v for k, v in given.items() if v is not None})
    start = args.start or datetime.now(UTC).replace(microsecond=0)
    night, status = _building(
        lambda: write_science_night(args.out, site, start, camera, settings=settings, index=not args.no_index)
    )
    if night is None:
        return status
    t, v = night.transit, night.variable
    print(
        f"{night.manifest}: {t.planet} transits {t.host} ({t.ra:.4f}, {t.dec:+.4f}) from {t.ingress_utc:%H:%M:%S} "
        f"to {t.egress_utc:%H:%M:%S} UTC (mid {t.mid_utc:%H:%M:%S}, depth {t.depth:.1%}); {v.name} "
        f"({v.ra:.4f}, {v.dec:+.4f}) {v.mag:g} ± {v.amplitude:g} mag every {v.period_min:g} min; "
        f"{len(night.comparisons)} comparison stars; index {night.index_dir or 'left out'}"
    )
    return 0


def _warm_up() -> int:
    from obsy_skysim import warm_up

    started = time.monotonic()
    warm_up()
    took = time.monotonic() - started
    print(f"obsy-skysim warm-up: read-out and star kernels compiled (or loaded from cache), {took:.1f} s")
    return 0


def _write_settings(output: Path, obsy_config: str) -> int:
    """Both cameras at the site of the OBSY configuration ``obsy_config`` (its OBSY_* overrides applied)."""
    from obsy.config import ConfigError as ObsyConfigError
    from obsy.config import load_config as load_obsy_config

    try:
        site = load_obsy_config(obsy_config).site
    except ObsyConfigError as exc:
        print(exc.report("obsy-skysim settings"), file=sys.stderr)
        return 2
    place = {"latitude": site.latitude, "longitude": site.longitude, "elevation": site.elevation}
    try:
        output.write_text(yaml.safe_dump({"allsky": {"site": place}, "camera": {"site": dict(place)}}))
    except OSError as exc:
        print(f"obsy-skysim: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{output}: the sky simulator's cameras at {site.latitude:.4f}, {site.longitude:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
