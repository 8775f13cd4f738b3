"""A 300-frame night of a scripted variable (issue 19): the reduction's time on 2 cores and the light
curve's figures against the scenario's truth.

The sky simulator renders a sine variable (11.5 mag, amplitude 0.3, period 3 h) at RA 359.97°, Dec
−11.97° (south of the equator, in a 26′ field across RA 0h, seen from 48° N at airmass 2.0–2.8),
300 calibrated 30 s lights of 1024 × 768 with a header WCS, one a minute for 5 hours, with an
ensemble of 4 comparison stars and a check star. Each light goes through ``reduce_frame`` (the
normalised header, the header WCS, the frame's FWHM, differential photometry, the target's airmass
and HJD), first in one process, then in 2 worker processes (their start included). Rendering and
writing the frames is not timed. Target: the 300 frames in under a minute on 2 cores.

Printed figures: the shares of points within 1, 2 and 3 of their reported errors of the truth (a
Gaussian's: 68.3, 95.4, 99.7 %), the median absolute error at SNR ≥ 100, the reduced χ² of the
target against the truth and of the check star about its mean.

    python -m bench bench_photometry_nights                 # one night of 300 frames
    python -m bench bench_photometry_nights --nights=3      # three nights (other noise), for the spread
    python -m bench bench_photometry_nights --full          # 300 frames of 3000 × 2000 (6 MP; 7 GB on disk),
                                                           # the 12 stars nearest the variable as its sequence
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

FRAMES = 300
CADENCE_S = 60.0
WORKERS = 2
START = datetime(2026, 10, 15, 18, 45, tzinfo=UTC)


def _worker_start() -> None:
    """One numba thread per worker process: the workers already fill the cores."""
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:
        pass


def _reduce_block(args) -> list:
    from obsy_imaging.headers.normalise import Site as HeaderSite
    from obsy_imaging.photometry.reduce import reduce_frame
    from tests.support.photometry import night_point
    from tests.support.skysim import SITE

    paths, expected, sequence, noise, *fwhm = args
    fwhm_px = fwhm[0] if fwhm else None
    return [
        night_point(
            reduce_frame(path, sequence, noise, site=HeaderSite(*SITE), saturation_adu=25000.0, fwhm_px=fwhm_px),
            truth,
        )
        for path, truth in zip(paths, expected, strict=True)
    ]


def night(seed: int, folder: Path, *, full: bool = False) -> None:
    from obsy_imaging.photometry import aperture
    from obsy_skysim.allsky import Site
    from obsy_skysim.field import FieldRenderer, TelescopeOptics
    from obsy_skysim.scenario import Scenario, SineVariable
    from obsy_skysim.sensor import SensorSpec
    from tests.support.photometry import describe_night, night_figures, noise_of, write_night
    from tests.support.skysim import SITE

    renderer = FieldRenderer(
        Site(*SITE),
        SensorSpec(width=3000 if full else 1024, height=2000 if full else 768, pixel_um=3.76, bayer=None),
        TelescopeOptics(limiting_magnitude=15.0, seeing_fwhm_arcsec=3.5),
    )
    variable = SineVariable(
        name="V1 Psc (test)", ra=359.97, dec=-11.97, kind="sine", mag=11.5, amplitude=0.3, period_h=3.0, epoch=START
    )
    times = [START + timedelta(seconds=CADENCE_S * i) for i in range(FRAMES)]
    started = time.perf_counter()
    paths, expected, sequence = write_night(
        renderer,
        Scenario(variables=[variable]),
        variable,
        pointing=(0.0, -12.0),
        times=times,
        folder=folder,
        exposure_s=30.0,
        gain=0.0,
        seed=seed,
        stars=12 if full else None,
    )
    s = renderer.sensor.spec
    print(
        f"  night seed {seed}: {FRAMES} frames of {s.width}x{s.height}, {len(sequence.comparisons)} comparison "
        f"stars and a check star, rendered and written in "
        f"{time.perf_counter() - started:.1f} s (not timed)"
    )
    noise = noise_of(renderer, 0.0, 30.0, calibrated=True)
    aperture.warm_up()

    # 2 worker processes, each a contiguous half of the night; their start (imports, numba's cache) counted.
    started, cpu = time.perf_counter(), os.times()
    half = (FRAMES + WORKERS - 1) // WORKERS
    blocks = [(paths[i : i + half], expected[i : i + half], sequence, noise) for i in range(0, FRAMES, half)]
    import multiprocessing

    with ProcessPoolExecutor(
        WORKERS, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start
    ) as pool:
        parallel = [p for block in pool.map(_reduce_block, blocks) for p in block]
    parallel_s = time.perf_counter() - started
    done = os.times()
    workers_cpu = done.children_user + done.children_system - cpu.children_user - cpu.children_system

    started, cpu = time.perf_counter(), os.times()
    points = _reduce_block((paths, expected, sequence, noise))
    one_s = time.perf_counter() - started
    done = os.times()
    one_cpu = done.user + done.system - cpu.user - cpu.system
    assert [p.mag for p in points] == [p.mag for p in parallel]

    # The service's path: grading measured each light's FWHM when it came in, so the reduction
    # need not measure it again (here the simulator's seeing stands for the grade).
    fwhm_px = renderer.optics.seeing_fwhm_arcsec / renderer.arcsec_per_pixel
    started, cpu = time.perf_counter(), os.times()
    given = _reduce_block((paths, expected, sequence, noise, fwhm_px))
    given_s = time.perf_counter() - started
    done = os.times()
    given_cpu = done.user + done.system - cpu.user - cpu.system
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"  reduce_frame × {FRAMES}: {parallel_s:.1f} s in {WORKERS} worker processes ({cores} cores; worker start "
        f"included; CPU {workers_cpu:.1f} s), {one_s:.1f} s in one process ({one_s / FRAMES * 1000:.0f} ms a frame; "
        f"CPU {one_cpu:.1f} s); load average at the end {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  with the FWHM given (grading measured it): {given_s:.1f} s in one process "
        f"({given_s / FRAMES * 1000:.0f} ms a frame; CPU {given_cpu:.1f} s); "
        f"{sum(p.mag is not None for p in given)} magnitudes"
    )
    print(f"  light curve: {describe_night(night_figures(points))}")


def main() -> None:
    nights = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--nights=")), 1)
    full = "--full" in sys.argv
    # On a RAM disk when there is room (250 MB for the small frames); the 6 MP night on disk.
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() and not full else None
    for n in range(nights):
        with tempfile.TemporaryDirectory(prefix="obsy-bench-night-", dir=scratch) as name:
            night(1000 + 1000 * n, Path(name), full=full)
