"""The project stack of a target: lights of three nights registered onto one reference and stacked
by the service's own :class:`~obsy_imaging.projectstack.ProjectStacker`, in a child process so its
peak resident memory is its own. Then the same stack again (a new night's stack would do that):
the registrations are kept, only the stacking is redone. Then a colour image (RGB) from three
filters' project stacks (the same lights recorded as R, G and B: the colour chain's cost, not its
colours).

    python -m bench bench_imaging_projectstack          # 12 lights of 1500x1000
    python -m bench bench_imaging_projectstack --full   # 30 lights of 3000x2000

Printed: seconds (wall and CPU) of each build's registration and stacking, peak memory, and the
band height and memory bound the stacking library would use for 200 lights of 26 MP.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_imaging_stacking import own_peak_gb, run_child


def build(folder: Path, target: str, filters: list[str], colour: bool, *, say_every: float | None = None) -> dict:
    """In the child: build the project stack(s) of ``filters`` (and the RGB image); seconds per phase
    and the peak resident memory at each phase's end. ``say_every``: a progress line on stderr every
    so many seconds (long runs)."""
    from obsy.config import ImagingProjectStackConfig
    from obsy_imaging.projectstack import ProjectBuilt, ProjectStacker
    from obsy_imaging.stacking import warm_up
    from tests.support.live_stack import make_repository

    warm_up()  # paid once at service start, not per stack
    repository = make_repository(folder)
    stacker = ProjectStacker(repository, ImagingProjectStackConfig())
    phases: dict[str, float] = {}
    peaks: dict[str, float] = {}  # the process's peak resident memory (GB) so far at each phase's end
    last = [time.perf_counter(), None]
    said = [0.0]

    def peak_so_far() -> float:
        return own_peak_gb() or 0.0

    def progress(phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if last[1] is not None:
            phases[last[1]] = phases.get(last[1], 0.0) + now - last[0]
        last[0], last[1] = now, phase
        if total and done >= total:
            peaks[phase] = peak_so_far()
        if say_every is not None and (now - said[0] >= say_every or done >= total):
            said[0] = now
            print(f"  {phase} {done}/{total}, peak so far {peak_so_far():.2f} GB", file=sys.stderr, flush=True)

    started, cpu = time.perf_counter(), time.process_time()
    frames = 0
    for filter_name in filters:
        last[1] = None
        done = stacker.build(target, filter_name, progress)
        if not isinstance(done, ProjectBuilt):
            raise RuntimeError(done.reason)
        frames = done.row.frame_count
        phases[last[1]] = phases.get(last[1], 0.0) + time.perf_counter() - last[0]
        peaks["written"] = peak_so_far()  # stacking's end, the FITS and the stretched JPEGs
    out = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "frames": frames, **phases}
    out["peaks"], out["peak_gb"] = peaks, own_peak_gb()
    if colour:
        started = time.perf_counter()
        stacker.colour(target, "rgb")
        out["colour"] = time.perf_counter() - started
    return out


def main() -> None:
    from bench.bench_imaging_stacking import write_lights
    from obsy.config import ImagingProjectStackConfig
    from obsy_imaging.stacking import StackOptions
    from obsy_imaging.stacking.stack import band_rows
    from tests.support.live_stack import make_repository, record

    full = "--full" in sys.argv
    count, shape = (30, (2000, 3000)) if full else (12, (1000, 1500))
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="obsy-bench-projectstack-", dir=scratch) as name:
        folder = Path(name)
        repository = make_repository(folder)
        started = time.perf_counter()
        paths = write_lights(repository.root / "calibrated", count, shape)
        print(f"lights: {count} calibrated frames of {shape[1]}x{shape[0]} in {time.perf_counter() - started:.1f} s")
        nights = ["2026-01-15", "2026-01-18", "2026-01-23"]
        for n, night in enumerate(nights):
            part = paths[n::3]
            for filter_name in ("L", "R", "G", "B"):
                record(repository, part, night=night, filter_name=filter_name, grades=[(90.0, 3.0, True)] * len(part))
        repository.engine.dispose()
        me = [sys.executable, "-m", "bench.bench_imaging_projectstack", "child", str(folder)]
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        for label, args in (("first build", ["L"]), ("again (registrations kept)", ["L"])):
            result, peak, cpu = run_child(*me, *args)
            print(
                f"{label:28} {result['seconds']:6.2f} s (registering {result.get('registering', 0):.2f}, "
                f"stacking {result.get('stacking', 0):.2f})  cpu {cpu:6.2f} s  peak {peak:.2f} GB  "
                f"{result['frames']} lights of 3 nights"
            )
        result, peak, cpu = run_child(*me, "R", "G", "B", "--colour")
        print(
            f"{'R, G, B stacks + RGB image':28} {result['seconds']:6.2f} s stacks, colour {result['colour']:.2f} s  "
            f"cpu {cpu:6.2f} s  peak {peak:.2f} GB"
        )
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    settings = ImagingProjectStackConfig()
    rows = band_rows(200, 6248, StackOptions(memory_budget_mb=settings.memory_budget_mb))
    print(
        f"200 lights of 6248x4176 (26 MP) in a {settings.memory_budget_mb:g} MB budget: bands of {rows} rows; "
        f"held at once: the band ({200 * rows * 6248 * 8 / 1e6:.0f} MB with its work array), the output and "
        f"its two maps ({6248 * 4176 * 8 / 1e6:.0f} MB), one light while registering ({6248 * 4176 * 4 / 1e6:.0f} MB)"
    )


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "child":
        filters = [a for a in sys.argv[3:] if not a.startswith("--")]
        print(json.dumps(build(Path(sys.argv[2]), "M 42", filters, "--colour" in sys.argv)), flush=True)
    else:
        main()
