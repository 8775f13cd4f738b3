"""A transit night through the whole reduction at full size (issue 20): 300 sky-simulator frames of
the main camera as configured by default (6248 × 4176 px, 1.55″ per pixel, 60 s), a scripted
transit host of 11 mag, calibrated with the simulator's known answers and written in 16 bits with a
header WCS; then :func:`~obsy_imaging.transits.reduce.reduce_night` (headers and times, the
reference frame and the comparison candidates, the photometry of every frame, the ensemble) and
the transit fit. Printed: each stage's seconds (rendering and writing excluded, shown apart), the
whole reduction and the fit. Target (issue 20): the reduction under 2 min on 2 cores, the fit
under 20 s.

    python -m bench bench_transit_night              # 300 frames (16 GB of disk for a moment)
    python -m bench bench_transit_night --frames=60  # a quicker look
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

logging.getLogger("emcee").setLevel(logging.ERROR)


def main() -> None:
    from obsy_imaging.photometry.aperture import warm_up
    from obsy_imaging.transits.fit import McmcSettings, fit_transit
    from obsy_imaging.transits.reduce import TransitReductionSettings, reduce_night
    from obsy_skysim.allsky import Site
    from obsy_skysim.config import SkySimConfig
    from obsy_skysim.field import FieldRenderer
    from tests.support.skysim import SITE
    from tests.support.transits import night_ephemeris, transit_host, write_transit_night

    frames = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--frames=")), 300)
    camera = SkySimConfig().camera
    renderer = FieldRenderer(Site(*SITE), camera.sensor.spec(), camera.telescope.optics())
    host = transit_host(mag=11.0)
    spec = renderer.sensor.spec
    warm_up()  # numba's kernels compiled (or loaded from its cache) before the clock starts
    with tempfile.TemporaryDirectory(prefix="obsy-transit-night-") as folder:
        started = time.perf_counter()
        night = write_transit_night(Path(folder), 1, frames=frames, renderer=renderer, host=host, sixteen_bit=True)
        print(
            f"  rendered and wrote {frames} frames of {spec.width} × {spec.height} px in "
            f"{time.perf_counter() - started:.0f} s (not part of the reduction)",
            flush=True,
        )
        settings = TransitReductionSettings(saturation_adu=night.saturation_adu, noise=night.noise)
        cpu, wall = time.process_time(), time.perf_counter()
        reduced = reduce_night(night.paths, night.host, site=night.site, settings=settings)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in reduced.stage_seconds.items())
    print(
        f"  reduce_night: {wall:.1f} s for {frames} frames ({wall / frames * 1000:.0f} ms per frame; "
        f"CPU {cpu:.1f} s): {stages}; {len(reduced.points)} points, {len(reduced.ensemble)} comparisons, "
        f"{len(reduced.rejected_frames)} frames rejected"
    )
    lc = replace(reduced.light_curve, regressors={})
    started = time.perf_counter()
    fit = fit_transit(lc, night_ephemeris(host), mcmc=McmcSettings(seed=1))
    seconds = time.perf_counter() - started
    print(
        f"  fit: {seconds:.1f} s; Tc {(fit.tc.value - night.tc_bjd) * 1440:+.2f} ± {fit.tc.error * 1440:.2f} min "
        f"from the truth, depth {fit.depth.value / night.depth - 1:+.1%}; median point error "
        f"{np.median(lc.flux_err / lc.flux) * 1e3:.2f} ppt, residual RMS {fit.residual_rms * 1e3:.2f} ppt"
    )
    print(f"  whole reduction and fit: {wall + seconds:.1f} s (targets: under 120 s, the fit under 20 s)")
