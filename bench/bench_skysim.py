"""Render time of the sky simulator's frames: the allsky camera's 3856 x 2180 (IMX585), Bayer RGGB and
mono, and the main camera's 6248 x 4176 (IMX455) light, dark and flat.

Per scene (clear night, scattered clouds, twilight, full Moon) the median wall time and CPU time
of ``RUNS`` renders after a warm-up, split into the background, the stars and the sensor
read-out, then the cost of sending a frame (FITS file, base64 lines of the BLOB). The reference
is clouddetect's own synthetic frame (``SyntheticSky``: stars and a background, no colour, no
Moon, no twilight) at the same size.

The allsky pipeline's star detection on rendered frames is measured in bench_allsky, clouddetect's
demonstration classifier on rendered skies in bench_clouddetect.

Target: under 0.5 s of CPU per frame (either camera) on 2 cores, so the simulator never dominates a
demo or a test run. CPU time (all threads) is what the flag judges: on a shared machine the wall
time jumps with the others' load.

    python -m bench bench_skysim
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from obsy.skymodel import load_bright_stars
from obsy_clouddetect.transmission.synthetic import SyntheticSky
from obsy_skysim.allsky import AllskyRenderer, Site
from obsy_skysim.clouds import Clouds, make_clouds
from obsy_skysim.config import AllskyCameraSettings, MainCameraSettings
from obsy_skysim.driver import frame_fits
from obsy_skysim.field import FieldRenderer
from obsy_skysim.indi_xml import base64_lines
from obsy_skysim.sensor import SensorSpec

SITE = Site(48.2, 16.4, 180.0)
SCENES = {
    "clear night": (datetime(2026, 1, 15, 22, 0, tzinfo=UTC), Clouds()),
    "scattered 40 %": (datetime(2026, 1, 15, 22, 0, tzinfo=UTC), make_clouds("scattered", cover_percent=40)),
    "nautical twilight": (datetime(2026, 1, 15, 16, 10, tzinfo=UTC), Clouds()),
    "full Moon": (datetime(2026, 1, 3, 22, 0, tzinfo=UTC), Clouds()),
}
RUNS = 5


def timed(action: Callable[[], object], runs: int = RUNS) -> tuple[float, float]:
    """Median wall and CPU seconds (all threads) of ``runs`` calls after one warm-up."""
    action()
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def bench_sensor(bayer: str | None) -> None:
    spec = SensorSpec(bayer=bayer)
    renderer = AllskyRenderer(SITE, spec)
    print(f"  {spec.width} x {spec.height} {bayer or 'mono'}:")
    for name, (when, clouds) in SCENES.items():
        wall, cpu = timed(lambda when=when, clouds=clouds: renderer.render(when, 10.0, 100.0, clouds, seed=1))
        flag = "ok" if cpu < 0.5 else "OVER the 0.5 s CPU target"
        print(f"    {name:18s} {wall * 1000:6.0f} ms wall, {cpu * 1000:6.0f} ms CPU  ({flag})")
    when, clouds = SCENES["scattered 40 %"]
    c = renderer.conditions(when)
    light = renderer.background(c, 10.0, clouds, 0.0)
    parts = {
        "sun, moon (astropy)": lambda: renderer.conditions(when),
        "star places (astropy)": lambda: renderer.star_places(when),
        "background": lambda: renderer.background(c, 10.0, clouds, 0.0),
        "stars": lambda: renderer.stars(when, 10.0, clouds, 0.0),
        "sensor read-out": lambda: renderer.sensor.read_out(light.copy(), 10.0, 100.0),
    }
    for name, action in parts.items():
        wall, _ = timed(action)
        print(f"      {name:22s} {wall * 1000:6.0f} ms")


def bench_main_camera() -> None:
    settings = MainCameraSettings()
    renderer = FieldRenderer(SITE, settings.sensor.spec(), settings.telescope.optics())
    spec = renderer.sensor.spec
    when = SCENES["clear night"][0]
    print(f"  main camera {spec.width} x {spec.height} mono, {renderer.arcsec_per_pixel:.2f} arcsec/px:")
    for name, pointing in (("M42 (sparse field)", (83.82, -5.39)), ("M13", (250.42, 36.46))):
        frame = renderer.render(when, pointing, 60.0, 100.0, seed=1)
        wall, cpu = timed(lambda pointing=pointing: renderer.render(when, pointing, 60.0, 100.0, seed=1))
        flag = "ok" if cpu < 0.5 else "OVER the 0.5 s CPU target"
        stars = len(frame.truth.x) if frame.truth is not None else 0
        print(f"    light, {name:18s} {wall * 1000:6.0f} ms wall, {cpu * 1000:6.0f} ms CPU, {stars} stars ({flag})")
    for kind in ("dark", "flat"):
        wall, cpu = timed(lambda kind=kind: renderer.render(when, (0.0, 0.0), 60.0, 100.0, frame_type=kind, seed=1))
        print(f"    {kind:25s} {wall * 1000:6.0f} ms wall, {cpu * 1000:6.0f} ms CPU")


def main() -> None:
    print(f"  {os.cpu_count()} CPU cores; median of {RUNS} after a warm-up")
    for bayer in ("RGGB", None):
        bench_sensor(bayer)
    bench_main_camera()
    when = SCENES["clear night"][0]
    renderer = AllskyRenderer(SITE)
    frame = renderer.render(when, 10.0, 100.0, seed=1)
    settings = AllskyCameraSettings()
    fits_wall, _ = timed(lambda: frame_fits(frame, settings, renderer))
    data = frame_fits(frame, settings, renderer)
    b64_wall, _ = timed(lambda: base64_lines(data))
    print(
        f"  sending a frame ({len(data) / 1e6:.1f} MB): FITS {fits_wall * 1000:.0f} ms, base64 {b64_wall * 1000:.0f} ms"
    )

    site = (SITE.latitude, SITE.longitude, SITE.elevation)
    mono = AllskyRenderer(SITE, SensorSpec(bayer=None))
    reference = SyntheticSky(mono.lens, 3856, 2180)
    catalogue = load_bright_stars()
    positions = catalogue.brighter_than(reference.catalogue_limit).altaz(*site, when)
    ref_wall, _ = timed(lambda: reference.render(catalogue, *site, when, positions=positions))
    ours, _ = timed(lambda: mono.render(when, 10.0, 100.0, seed=1))
    print(
        f"  reference (clouddetect SyntheticSky, mono, star places given): {ref_wall * 1000:.0f} ms; "
        f"skysim mono: {ours * 1000:.0f} ms ({ref_wall / ours:.1f}x)"
    )
