"""The live stack's fold of one light: the 2 s budget of issue 18 for a 6 MP frame on 2 CPU cores.

Calibrated simulator lights of 3000x2000 (dithered by up to a minute of arc, every fifth after a
meridian flip; the stacking bench's frames), recorded in a throw-away imaging repository (SQLite)
as calibrated and graded, then folded one at a time by the service's own
:class:`~obsy_imaging.livestack.LiveStacker`, as the service's live-stack thread does. Printed: each
fold's seconds and its steps (read the calibrated FITS, measure its level and stars, register,
resample and normalise, fold into the running mean, write the stack FITS, stretch and write the
preview); then one fold after a "restart" (a new stacker: the stack and the reference's stars are
read back first). The first light starts the stack (no registration).

    python -m bench bench_imaging_livestack            # 6 lights of 3000x2000
    python -m bench bench_imaging_livestack --full     # 16 lights
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

STEPS = ("read", "measure", "register", "resample", "fold", "write", "preview")


def main() -> None:
    from bench.bench_imaging_stacking import write_lights
    from obsy.config import ImagingLiveStackConfig
    from obsy_imaging.livestack import LiveStacker
    from tests.support.live_stack import make_repository, record

    full = "--full" in sys.argv
    count, shape = (16 if full else 6), (2000, 3000)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # On a RAM disk when there is room: the figures are the program's, not a shared disk's.
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="obsy-bench-livestack-", dir=scratch) as name:
        repository = make_repository(Path(name))
        started = time.perf_counter()
        paths = write_lights(repository.root / "calibrated", count + 1, shape)
        print(
            f"lights: {count + 1} calibrated frames of {shape[1]}x{shape[0]} written in "
            f"{time.perf_counter() - started:.1f} s; {cores} CPU cores for this process"
        )
        # Graded as grading would: a little spread in SNR and FWHM, so the weights differ.
        grades = [(100.0 - i, 2.8 + 0.05 * (i % 3), True) for i in range(len(paths))]
        ids = record(repository, paths, grades=grades)
        settings = ImagingLiveStackConfig()
        stacker = LiveStacker(repository, settings)
        folds = []
        print("fold  seconds  " + "  ".join(f"{s:>8}" for s in STEPS) + "  frames")
        for frame_id in ids[:count]:
            done = stacker.fold(frame_id)
            if not hasattr(done, "timings"):
                print(f"{frame_id:4d}  left out: {done.reason}")
                continue
            folds.append(done.fold_s)
            steps = "  ".join(f"{done.timings.get(s, 0.0):8.3f}" for s in STEPS)
            print(f"{frame_id:4d}  {done.fold_s:7.3f}  {steps}  {done.stack.frame_count:6d}")
        # A restart: a new stacker reads the stack and the reference's stars back before folding.
        restarted = LiveStacker(repository, settings)
        done = restarted.fold(ids[count])
        print(f"after a restart (stack and reference stars read back first): {done.fold_s:.3f} s")
        later = folds[1:]
        print(
            f"fold of one 6 MP light (registered, frames 2..{len(folds)}): median {statistics.median(later):.3f} s, "
            f"worst {max(later):.3f} s (budget 2 s on 2 cores); the first light (starts the stack): {folds[0]:.3f} s"
        )
        repository.engine.dispose()


if __name__ == "__main__":
    main()
