"""Meteor and satellite detection on full-size night frames: 3856 x 2180 (IMX585) RGGB from the sky simulator.

Two consecutive night frames (10 s, 15 s apart, stars drifting) are rendered once; a meteor and a
satellite are injected into the second. Timed (median wall and CPU time of ``RUNS`` after a
warm-up): the detector's ``process`` on the second frame with the first as its reference, per
backend that can run here (NumPy/OpenCV always, CuPy where a GPU is), and split into its parts on
the CPU. The reference, in the same run on the same frames: the textbook way, OpenCV's
``absdiff`` of the full-resolution frames, a fixed threshold and ``HoughLinesP`` on the whole
frame, without star masks or validation (what it finds is printed too).

Target: under 50 ms per frame on the CPU (2 cores shared). CPU time (all threads) is what the flag
judges: on a shared machine the wall time jumps with the others' load. Timings are figures, never
assertions.

    python -m bench bench_allsky_streaks
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from obsy_allsky.backend import CupyBackend, NumpyBackend, cupy_status
from obsy_allsky.streaks import StreakDetector
from obsy_skysim.allsky import AllskyRenderer, Site
from obsy_skysim.clouds import Clouds
from obsy_skysim.sensor import SensorSpec
from obsy_skysim.stars import add_point_sources
from tests.support.skysim import SITE
from tests.support.streaks import Track, add_track

WHEN = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
EXPOSURE_S, GAIN, INTERVAL_S = 10.0, 0.0, 15.0
RUNS = 7


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


def frames() -> tuple[AllskyRenderer, np.ndarray, np.ndarray, list[Track]]:
    r = AllskyRenderer(Site(*SITE), SensorSpec())
    lights = []
    for when in (WHEN, WHEN + timedelta(seconds=INTERVAL_S)):
        c = r.conditions(when)
        light = r.background(c, EXPOSURE_S, Clouds(), 0.0)
        stars = r.stars(when, EXPOSURE_S, Clouds(), 0.0)
        add_point_sources(light, stars.x, stars.y, stars.electrons, stars.sigma, channel_map=r.sensor.channel_map())
        lights.append(light)
    zx, zy = r.lens.zenith_x, r.lens.zenith_y
    noise = float(np.sqrt(np.median(lights[1][int(zy) - 50 : int(zy) + 50, int(zx) - 50 : int(zx) + 50]) + 10.0))
    tracks = [
        Track("meteor", zx - 400, zy - 300, zx - 150, zy - 120, 8.0),
        Track("satellite", zx + 100, zy - 700, zx + 600, zy + 500, 8.0),
    ]
    rng = np.random.default_rng(3)
    for track in tracks:
        add_track(lights[1], track, track.snr * noise, rng, width=1.5)
    first = r.sensor.read_out(lights[0], EXPOSURE_S, GAIN, seed=1)
    second = r.sensor.read_out(lights[1], EXPOSURE_S, GAIN, seed=2)
    return r, first, second, tracks


def naive(first: np.ndarray, second: np.ndarray, threshold: float) -> int:
    """The reference: absdiff, a fixed threshold, HoughLinesP on the full frame."""
    diff = cv2.absdiff(second, first)
    _, binary = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)
    lines = cv2.HoughLinesP(binary.astype(np.uint8), 1, np.pi / 180, 30, minLineLength=40, maxLineGap=5)
    return 0 if lines is None else len(lines)


def main() -> None:
    r, first, second, tracks = frames()
    h, w = first.shape
    yy, xx = np.mgrid[0:h, 0:w]
    circle = np.hypot(xx - r.lens.zenith_x, yy - r.lens.zenith_y) < r.lens.horizon_radius(0.0)
    print(
        f"  {w} x {h} RGGB, {EXPOSURE_S:g} s frames {INTERVAL_S:g} s apart; injected: meteor and satellite at 8 sigma"
    )
    backends = [NumpyBackend()]
    cupy, reason = cupy_status()
    if cupy is not None:
        backends.append(CupyBackend(cupy))
    else:
        print(f"  (no GPU backend: {reason})")
    cpu_ms = None
    for backend in backends:
        detector = StreakDetector(lens=r.lens, circle=circle, backend=backend)

        def run(detector: StreakDetector = detector, backend=backend) -> object:
            detector.reset()
            detector.process(first, EXPOSURE_S)
            found = detector.process(second, EXPOSURE_S)
            backend.synchronize()
            return found

        found = run()
        # Only the second call is the per-frame cost (the first sets the reference): time it alone.
        detector.reset()
        detector.process(first, EXPOSURE_S)
        reference = detector._previous

        def second_only(detector: StreakDetector = detector, reference=reference, backend=backend) -> object:
            detector._previous = reference
            found = detector.process(second, EXPOSURE_S)
            backend.synchronize()
            return found

        wall, cpu = timed(second_only)
        flag = "ok" if cpu < 0.05 else "OVER the 50 ms target"
        print(
            f"  {backend.name:6s} {wall * 1000:6.1f} ms wall, {cpu * 1000:6.1f} ms CPU per frame ({flag}); "
            f"found {[(s.kind, round(s.length_px), round(s.snr)) for s in found]} "
            f"(injected {[(t.kind, round(t.length)) for t in tracks]})"
        )
        if backend.name == "numpy":
            cpu_ms = cpu * 1000
    sample = (second[::8, ::8].astype(np.float32) - first[::8, ::8])[circle[::8, ::8]]
    threshold = 3.0 * 1.4826 * float(np.median(np.abs(sample - np.median(sample))))  # 3 sigma of the difference
    wall, cpu = timed(lambda: naive(first, second, threshold))
    print(
        f"  reference: absdiff + 3-sigma threshold + HoughLinesP on the full frame {wall * 1000:6.1f} ms wall, "
        f"{cpu * 1000:6.1f} ms CPU, {naive(first, second, threshold)} segments (no masks, no validation)"
    )
    if cpu_ms is not None:
        print(f"  ratio (CPU time): detector / reference = {cpu_ms / (cpu * 1000):.2f}")


if __name__ == "__main__":
    main()
