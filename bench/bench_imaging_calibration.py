"""Calibration masters and calibrated lights on 30 frames of 3000×2000 uint16, against Siril and ccdproc.

In one run, on the same FITS files (written as INDI writes them: int16 with BZERO 32768):

* a sigma-clipped master (3σ/3σ) and a median master from 30 darks;
* 30 lights calibrated with a master dark and a master flat, including reading and writing
  (float32 FITS out);

each by us (numba on the CPU; the GPU backend too where CuPy sees a GPU), by Siril
(``stack … rej s 3 3``, ``stack … med``, ``preprocess``; driven headless with
``siril-cli -s script.ssf``) and by ccdproc (``combine``, ``ccd_process``). Every task runs in
its own process: ours and Siril's the best of three runs (the machine is shared, and load
only ever slows a run down), ccdproc's once (it takes tens of seconds). The figures are the
wall time (ours and ccdproc's measured inside the process after the imports, Siril's as
Siril logs it for the command, with the whole ``siril-cli`` run beside it) and the peak
resident memory (VmHWM) of the process.

Siril is Debian's package (``apt-get install siril``, 1.0.6 on Debian 12); without
``siril-cli`` its lines say so and are skipped. ccdproc comes with requirements-dev.txt.
Goals (issue 17): sigma-clipped master ≥ 2× faster than Siril and < 0.8 GB; median master no
slower than Siril; calibrating 30 lights ≥ 2× faster than Siril.

    python -m bench bench_imaging_calibration           # 30 × 3000×2000
    python -m bench bench_imaging_calibration --quarter # 30 × 1500×1000
    python -m bench bench_imaging_calibration --small   # 10 × 750×500, to try it out
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from bench.bench_imaging_stacking import own_peak_gb

FULL = (30, 2000, 3000)  # frames, rows, columns
QUARTER = (30, 1000, 1500)
SMALL = (10, 500, 750)
RUNS = 3
EXPOSURE = 120.0


# --- data ---------------------------------------------------------------------------------------
def make_frames(folder: Path, count: int, rows: int, cols: int) -> None:
    """Darks (fixed pattern, hot pixels, cosmic rays) and lights, as FITS; a master flat for the lights."""
    rng = np.random.default_rng(17)
    bias = (1000 + rng.normal(0, 4, cols)[None, :] + rng.normal(0, 2, (rows, cols))).astype(np.float32)
    current = np.full((rows, cols), 0.02 * EXPOSURE, np.float32)
    current.flat[rng.choice(rows * cols, rows * cols // 5000, replace=False)] = 1500
    y, x = np.mgrid[0:rows, 0:cols]
    flat = (1 - 0.3 * (((y - rows / 2) ** 2 + (x - cols / 2) ** 2) / (0.5 * cols) ** 2)).astype(np.float32)
    flat /= flat.mean()
    for kind, signal in (("dark", bias + current), ("light", bias + current + 600 * flat)):
        (folder / kind).mkdir()
        for i in range(count):
            frame = signal + 6 * rng.standard_normal((rows, cols), dtype=np.float32)
            if kind == "dark":
                frame.flat[rng.choice(rows * cols, 200, replace=False)] += 8000  # cosmic rays
            header = fits.Header({"IMAGETYP": f"{kind.title()} Frame", "EXPTIME": EXPOSURE, "CCD-TEMP": -10.0})
            data = np.clip(np.rint(frame), 0, 65535).astype(np.uint16)
            fits.PrimaryHDU(data, header=header).writeto(folder / kind / f"{kind}_{i + 1:05d}.fits")
    fits.PrimaryHDU(flat, header=fits.Header({"IMAGETYP": "Master Flat"})).writeto(folder / "master_flat.fits")


# --- the tasks, each in its own process ---------------------------------------------------------
def task(name: str, folder: Path, backend: str) -> dict:
    darks = sorted((folder / "dark").glob("*.fits"))
    lights = sorted((folder / "light").glob("*.fits"))
    out = folder / f"out_{name}_{backend}"
    out.mkdir(exist_ok=True)
    if name.startswith("ours"):
        from obsy_imaging.calibration import (
            CombineSettings,
            FitsFrame,
            FrameKind,
            PreparedMasters,
            build_master,
            calibrate_lights,
            warm_up,
        )
        from tests.support.calibration_frames import frame_info

        warm_up(backend)
        start = time.perf_counter()
        if name == "ours_calibrate":
            dark = FitsFrame(folder / "master_dark.fits").read_float32()
            flat = FitsFrame(folder / "master_flat.fits").read_float32()
            masters = PreparedMasters.from_arrays(dark=dark, flat=flat)
            calibrate_lights([(p, out / f"cal_{p.name}") for p in lights], masters, backend=backend)
            extra = {}
        else:
            method = "median" if name == "ours_median" else "sigma_clip"
            frames = [frame_info(FrameKind.DARK, exposure=EXPOSURE, path=p) for p in darks]
            master = build_master("dark", frames, CombineSettings(method=method), backend=backend)
            master.write(out / "master.fits")
            extra = {"rejected": master.provenance.statistics["rejected_fraction"]}
        return {"seconds": time.perf_counter() - start, **extra}
    import warnings

    import astropy.units as u
    import ccdproc
    from astropy.nddata import CCDData

    warnings.simplefilter("ignore")  # astropy's notes on the headers it fixes while reading

    start = time.perf_counter()
    if name == "ccdproc_calibrate":
        dark = CCDData.read(folder / "master_dark.fits", unit="adu")
        flat = CCDData.read(folder / "master_flat.fits", unit="adu")
        for p in lights:
            light = CCDData.read(p, unit="adu")
            done = ccdproc.ccd_process(
                light, dark_frame=dark, master_flat=flat, dark_exposure=EXPOSURE * u.s, data_exposure=EXPOSURE * u.s
            )
            done.data = done.data.astype(np.float32)
            done.write(out / f"cal_{p.name}", overwrite=True)
    else:
        sigma = name == "ccdproc_sigma"
        ccdproc.combine(
            [str(p) for p in darks],
            output_file=str(out / "master.fits"),
            method="average" if sigma else "median",
            sigma_clip=sigma,
            sigma_clip_func=np.ma.median,
            unit="adu",
            overwrite_output=True,
        )
    return {"seconds": time.perf_counter() - start}


def measured(command: list[str], cwd: Path) -> tuple[str, float, float]:
    """Run a program: its output, wall time and peak resident memory (GB).

    The peak is the process's VmHWM, sampled until it exits (it only grows). Not the
    ``ru_maxrss`` of ``wait4``: a child starts with its parent's high-water mark, and this
    process holds the frames it generated.
    """
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, own_peak_gb(process.pid) or 0.0)  # None: not started yet, or gone
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read()
    process.wait()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {output[-2000:]}")
    return output, time.perf_counter() - start, peak


def run_child(name: str, folder: Path, backend: str = "numba") -> dict:
    """Run one task in a fresh process; its result plus its peak memory."""
    command = [sys.executable, "-m", "bench.bench_imaging_calibration", "--task", name, str(folder), backend]
    output, _, peak = measured(command, Path(__file__).parent.parent)
    return {**json.loads(output.strip().splitlines()[-1]), "peak_gb": peak}


# --- Siril --------------------------------------------------------------------------------------
def siril(folder: Path, commands: list[str]) -> dict:
    """Run a Siril script; Siril's own time for the last command, the whole run's wall time and peak memory."""
    script = folder / "bench.ssf"
    script.write_text("requires 1.0.0\nsetext fits\n" + "\n".join(commands) + "\n")
    output, wall, peak = measured(["siril-cli", "-d", str(folder), "-s", str(script)], folder)
    if "Script execution finished successfully" not in output:
        raise RuntimeError(f"siril failed: {output[-2000:]}")
    times = re.findall(r"Execution time: ([\d.]+) (ms|s)\.", output)
    seconds = float(times[-1][0]) / (1000 if times[-1][1] == "ms" else 1) if times else wall
    return {"seconds": seconds, "wall": wall, "peak_gb": peak}


def siril_version() -> str | None:
    if shutil.which("siril-cli") is None:
        return None
    out = subprocess.run(["siril-cli", "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip() or "siril"


def _scratch(needed: int) -> str | None:
    """A RAM disk when there is room: the figures then measure the programs, not a disk others share."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 2 * needed:
        return str(shm)
    return None


def _write_floor(folder: Path, count: int, size: int) -> float:
    """How long writing ``count`` new files of ``size`` bytes takes here: the floor under every calibrator."""
    block = np.zeros(size, np.uint8)
    start = time.perf_counter()
    for i in range(count):
        with open(folder / f"floor_{i}", "wb", buffering=0) as f:
            f.write(block)
    seconds = time.perf_counter() - start
    for i in range(count):
        (folder / f"floor_{i}").unlink()
    return seconds


# --- report -------------------------------------------------------------------------------------
def line(label: str, result: dict | None, reference: dict | None = None, note: str = "") -> None:
    if result is None:
        print(f"  {label:<34} skipped: {note}")
        return
    text = f"  {label:<34} {result['seconds']:7.2f} s  peak {result['peak_gb']:.2f} GB"
    if "wall" in result:
        text += f"  (siril-cli run {result['wall']:.2f} s)"
    if "rejected" in result:
        text += f"  rejected {100 * result['rejected']:.2f} %"
    if reference is not None:
        text += f"  speed-up over Siril {reference['seconds'] / result['seconds']:.2f}×"
    print(text + (f"  {note}" if note else ""), flush=True)


def best(run, runs: int) -> dict | None:
    """The fastest of ``runs`` runs (a loaded machine only ever makes a run slower); the highest peak."""
    results = [run() for _ in range(runs)]
    if results[0] is None:
        return None
    fastest = min(results, key=lambda r: r["seconds"])
    return {**fastest, "peak_gb": max(r["peak_gb"] for r in results), "runs": runs}


def _clean(folder: Path) -> None:
    """Remove what the calibrators wrote, so the RAM disk does not fill up between the tasks."""
    for path in folder.glob("out_*"):
        shutil.rmtree(path)
    for path in folder.glob("siril_*/pp_*"):
        path.unlink()


def main() -> None:
    count, rows, cols = SMALL if "--small" in sys.argv else QUARTER if "--quarter" in sys.argv else FULL
    runs = RUNS
    from obsy_imaging.calibration.backend import cupy_status

    cupy, reason = cupy_status()
    backends = ["numba"] + (["cupy"] if cupy is not None else [])
    version = siril_version()
    print(f"  {count} frames of {cols}×{rows} uint16, {os.cpu_count()} CPUs; backends: {', '.join(backends)}")
    print(f"  ours and Siril: the best of {runs} runs; ccdproc: one run")
    if cupy is None:
        print(f"  (no GPU backend: {reason})")
    print(f"  Siril: {version or 'not installed (apt-get install siril): its lines are skipped'}")
    where = _scratch(count * rows * cols * 2 * 5)
    with tempfile.TemporaryDirectory(prefix="obsy-bench-calibration-", dir=where) as tmp:
        folder = Path(tmp)
        make_frames(folder, count, rows, cols)
        floor = _write_floor(folder, count, rows * cols * 4)
        print(f"  files in {where or tempfile.gettempdir()}; writing {count} float32 frames there takes {floor:.2f} s")
        if version:
            siril(folder, ["cd dark", "link dark -out=../siril_dark", "cd ../light", "link light -out=../siril_light"])

        def siril_task(where: str, command: str):
            return (lambda: siril(folder / where, [command])) if version else (lambda: None)

        def ours(name: str, backend: str):
            return lambda: run_child(name, folder, backend)

        stages = [
            ("sigma-clipped master (3σ/3σ):", "stack dark rej s 3 3 -nonorm -out=master_sigma", "ours_sigma"),
            ("median master:", "stack dark med -nonorm -out=master_median", "ours_median"),
        ]
        for title, command, name in stages:
            print(f"  {title}")
            ref = best(siril_task("siril_dark", command), runs)
            line(f"Siril {command.split(' -')[0]}", ref, note="" if version else "no siril-cli")
            line(f"ccdproc {name.replace('ours_', '')}", run_child(name.replace("ours", "ccdproc"), folder), ref)
            for backend in backends:
                line(f"ours ({backend})", best(ours(name, backend), runs), ref)
                if name == "ours_sigma" and backend == "numba":
                    # The lights' master dark, for every calibrator alike.
                    run_child(name, folder, backend)
                    shutil.copy(folder / "out_ours_sigma_numba" / "master.fits", folder / "master_dark.fits")
            _clean(folder)

        print(f"  calibrating {count} lights (dark + flat, read and written as float32 FITS):")
        preprocess = "preprocess light -dark=../master_dark -flat=../master_flat"
        ref = best(lambda: (_clean(folder), siril_task("siril_light", preprocess)())[1], runs)
        line("Siril preprocess", ref, note="" if version else "no siril-cli")
        line("ccdproc ccd_process", run_child("ccdproc_calibrate", folder), ref)
        _clean(folder)
        for backend in backends:
            line(
                f"ours ({backend})",
                best(lambda b=backend: (_clean(folder), run_child("ours_calibrate", folder, b))[1], runs),
                ref,
            )
        _clean(folder)


if __name__ == "__main__":
    if "--task" in sys.argv:
        _, _, name, where, backend = sys.argv
        print(json.dumps(task(name, Path(where), backend)))
    else:
        main()
