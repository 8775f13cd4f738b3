"""Registration and stacking of calibrated lights, side by side with Siril in the same run.

Calibrated lights from the sky simulator's main camera (dithered by up to a minute of arc, every
fifth one after a meridian flip), written as 32-bit float FITS (0..1) to a temporary folder; then each tool,
in a child process of its own so its peak resident memory is its own:

- OBSY register: stars (sep) in every frame, in 2 processes as Siril uses 2 threads, matched to the
  reference (triangle asterisms + refit);
- OBSY stack: Lanczos resampling, additive+scaling normalisation, winsorized 3-sigma rejection,
  noise weights, in bands of rows read from the files (256 MB budget);
- Siril (``siril-cli -s``): ``register`` (global star alignment; it also resamples and writes
  the registered frames, which OBSY does inside its stack, so compare the chain too) and
  ``stack ... rej w 3 3 -norm=addscale``, timed separately. Skipped with a line saying so when
  ``siril-cli`` is not installed.

Printed: seconds, CPU seconds (all threads; OBSY's of the step itself, Siril's of its process),
peak memory (resident, of the child process), ratios (Siril / OBSY: above 1 means OBSY is
faster; the CPU ratio moves less with other work on the machine than the wall-clock one), the
load average before and after, and for both stacks the background noise, the median star FWHM and SNR
(grading's measure) and the light of the same stars in both.
Targets (issue 18): registration >= 2x faster than Siril, stacking with rejection >= 3x faster
and under 1 GB, noise no worse than Siril's, FWHM within 5 %.

    python -m bench bench_imaging_stacking            # 10 frames of 1500x1000
    python -m bench bench_imaging_stacking --full     # 30 frames of 3000x2000
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from tests.support.siril import compare_stacks, load_stack, write_lights

# --- OBSY, in a child process ------------------------------------------------------------------
#: Stars detected in this many processes: Siril registers with 2 threads here.
REGISTER_WORKERS = min(2, os.cpu_count() or 1)


def cpu_with_children() -> float:
    """CPU seconds (user + system) of this process and of its children that have ended."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def obsy_register(folder: Path) -> dict:
    from obsy_imaging.registration import register_frames
    from obsy_imaging.stacking.sources import fits_reader

    names = sorted(str(p) for p in folder.glob("frame_*.fit"))

    def load(name: str) -> np.ndarray:
        read, (height, width) = fits_reader(Path(name))
        return read(0, height, 0, width)

    started, cpu = time.perf_counter(), cpu_with_children()
    results = register_frames(names, load, reference=names[0], workers=REGISTER_WORKERS)
    seconds, cpu = time.perf_counter() - started, cpu_with_children() - cpu
    transforms = {r.name: r.transform.matrix.tolist() for r in results if r.registered}
    (folder / "obsy_transforms.json").write_text(json.dumps(transforms))
    return {"seconds": seconds, "cpu": cpu, "registered": len(transforms), "frames": len(names)}


def obsy_stack(folder: Path) -> dict:
    from obsy_imaging.registration.transform import Transform
    from obsy_imaging.stacking import StackFrame, StackOptions, fits_reader, stack, warm_up

    warm_up()  # paid once at service start (obsy-imaging warm-up), not per stack
    transforms = json.loads((folder / "obsy_transforms.json").read_text())
    frames = []
    for name, matrix in transforms.items():
        read, shape = fits_reader(Path(name))
        frames.append(StackFrame(name, read, shape, Transform(np.array(matrix))))
    started, cpu = time.perf_counter(), time.process_time()
    result = stack(frames, StackOptions())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    fits.PrimaryHDU(result.image).writeto(folder / "obsy_stack.fits", overwrite=True)
    return {"seconds": seconds, "cpu": cpu}


def own_peak_gb(pid: int | str = "self") -> float | None:
    """The peak resident memory (GB) of a process's own address space (``VmHWM``; Linux), None when
    it cannot be read (the process has ended, another system)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        return None
    return None


def run_child(*args: str) -> tuple[dict, float, float]:
    """Run ``args`` in a child process; its printed JSON, its peak resident memory (GB) and the
    CPU seconds (user + system, all threads) it used.

    The peak is the child's own ``VmHWM``: sampled every 0.1 s while it runs, or the ``peak_gb``
    it prints itself at its end, whichever is larger. Not ``ru_maxrss`` from ``wait4``: Linux
    carries the parent's peak over into a child it starts (fork and exec), so a parent that made
    the test data first would lend the child its own peak (that only where nothing was sampled)."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    sampled: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak = own_peak_gb(process.pid)
            if peak is not None:
                sampled.append(peak)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read() if process.stdout else ""
    done.set()
    sampler.join()
    _pid, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise RuntimeError(f"{' '.join(args)} failed with status {status}:\n{tail}")
    process.returncode = 0
    lines = [line for line in output.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    cpu = usage.ru_utime + usage.ru_stime
    reported = result.get("peak_gb") if isinstance(result, dict) else None
    peaks = [*sampled, *([reported] if isinstance(reported, float) else [])]
    return result, (max(peaks) if peaks else usage.ru_maxrss / 1e6), cpu  # ru_maxrss: KiB on Linux


def siril(folder: Path, script: str) -> tuple[float, float, float]:
    """Siril's seconds, peak resident memory (GB) and CPU seconds for one script step."""
    path = folder / "step.ssf"
    path.write_text("requires 1.0.0\nset32bits\n" + script)  # one precision for every registered frame
    started = time.perf_counter()
    _result, peak, cpu = run_child("siril-cli", "-d", str(folder), "-s", str(path))
    return time.perf_counter() - started, peak, cpu


def main() -> None:
    full = "--full" in sys.argv
    count, shape = (30, (2000, 3000)) if full else (10, (1000, 1500))
    with tempfile.TemporaryDirectory(prefix="obsy-bench-stacking-") as name:
        folder = Path(name)
        started = time.perf_counter()
        write_lights(folder, count, shape)
        seconds = time.perf_counter() - started
        print(f"lights: {count} calibrated frames of {shape[1]}x{shape[0]} written in {seconds:.1f} s")
        me = [sys.executable, "-m", "bench.bench_imaging_stacking"]
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        registered, register_peak, _ = run_child(*me, "register", str(folder))
        stacked, stack_peak, _ = run_child(*me, "stack", str(folder))
        print(
            f"OBSY  register {registered['seconds']:6.2f} s  cpu {registered['cpu']:6.2f} s  "
            f"peak {register_peak:.2f} GB  ({registered['registered']}/{registered['frames']} frames, "
            f"{REGISTER_WORKERS} processes)"
        )
        print(
            f"OBSY  stack    {stacked['seconds']:6.2f} s  cpu {stacked['cpu']:6.2f} s  peak {stack_peak:.2f} GB  "
            "(winsorized 3/3, addscale, Lanczos)"
        )
        if shutil.which("siril-cli") is None:
            print("Siril: siril-cli is not installed here: no Siril figures in this run (apt-get install siril)")
            return
        version = subprocess.run(["siril-cli", "--version"], check=False, capture_output=True, text=True).stdout.strip()
        link_s, _, _ = siril(folder, "link light -out=.\n")
        register_s, register_siril_peak, register_cpu = siril(folder, "register light\n")
        stack_s, stack_siril_peak, stack_cpu = siril(
            folder, "stack r_light rej w 3 3 -norm=addscale -out=siril_stack\n"
        )
        # The light and noise comparison uses Siril's -nonorm stack (see tests/support/siril.py).
        siril(folder, "stack r_light rej w 3 3 -nonorm -out=siril_nonorm\n")
        print(f"{version}: link {link_s:.2f} s (not counted)")
        print(
            f"Siril register {register_s:6.2f} s  cpu {register_cpu:6.2f} s  peak {register_siril_peak:.2f} GB   "
            f"ratio {register_s / registered['seconds']:.2f}x, cpu {register_cpu / registered['cpu']:.2f}x  "
            "(target >= 2x)"
        )
        print(
            f"Siril stack    {stack_s:6.2f} s  cpu {stack_cpu:6.2f} s  peak {stack_siril_peak:.2f} GB   "
            f"ratio {stack_s / stacked['seconds']:.2f}x, cpu {stack_cpu / stacked['cpu']:.2f}x  "
            "(target >= 3x, OBSY under 1 GB)"
        )
        ours, theirs = registered["seconds"] + stacked["seconds"], register_s + stack_s
        print(f"chain (register + stack): OBSY {ours:.2f} s, Siril {theirs:.2f} s, ratio {theirs / ours:.2f}x")
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        siril_stack = next(iter(folder.glob("siril_nonorm*.fit*")), None)
        if siril_stack is None:
            print("Siril wrote no stack: no quality comparison")
            return
        comparison = compare_stacks(load_stack(folder / "obsy_stack.fits"), load_stack(siril_stack))
        print("stacks (Siril's -nonorm): " + comparison.describe())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("register", "stack"):
        step = obsy_register if sys.argv[1] == "register" else obsy_stack
        print(json.dumps(step(Path(sys.argv[2]))), flush=True)
    else:
        main()
