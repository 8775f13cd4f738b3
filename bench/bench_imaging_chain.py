"""The whole chain, raw frames to stack, OBSY against Siril in one figure.

The same raw frames from the sky simulator's main camera (16-bit FITS as INDI writes them): bias
frames, darks of the lights' exposure, flats, and lights dithered by up to a minute of arc (every
fifth after a meridian flip). Then each tool, in a child process of its own (its peak resident
memory is its own), runs the chain end to end:

- OBSY: master bias, master dark (3σ/3σ sigma clip), master flat (its bias taken off, 3σ/3σ),
  the lights calibrated (dark + flat, float32 FITS written, as the service keeps them), registered
  (stars by ``sep``, 2 processes as Siril uses 2 threads) and stacked (Lanczos, additive+scaling
  normalisation, winsorized 3σ/3σ rejection, noise weights, in bands of rows from the files);
- Siril (``siril-cli -s``, one script): ``stack bias rej s 3 3``, ``stack dark rej s 3 3``,
  ``preprocess flat -bias``, ``stack pp_flat rej s 3 3 -norm=mul``, ``preprocess light -dark -flat``,
  ``register pp_light`` (it writes the registered frames), ``stack r_pp_light rej w 3 3
  -norm=addscale``; all 32-bit. Linking the raw files into sequences is done before and not counted.

Printed: wall time (OBSY's stages measured inside its process, after the kernels' warm-up, which the
service pays once at its start: the whole process, imports and warm-up included, beside it; Siril's
whole ``siril-cli`` run), peak resident memory, scratch disk (the
bytes each chain wrote and left: masters, calibrated and, for Siril, registered frames, the stack), the
load average before and after, and for both stacks the background noise, the median star FWHM and SNR
and the light of the same stars (tests/support/siril.py: the light and noise against Siril's
``-nonorm`` stack of the same registered frames, stacked after the timed run).
Goals (issue 18): the whole chain >= 2x faster than Siril, under 1 GB of scratch; noise no worse,
FWHM within 5 %.

    python -m bench bench_imaging_chain            # 30 lights of 3000x2000, 15 each of bias, dark, flat
    python -m bench bench_imaging_chain --small    # 10 lights of 1500x1000, 5 of each
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from bench.bench_imaging_stacking import REGISTER_WORKERS, run_child
from tests.support.siril import FULL_SCALE, compare_stacks, load_stack

FULL = (30, 15, (2000, 3000))  # lights, frames of each calibration kind, shape
SMALL = (10, 5, (1000, 1500))
FLAT_S = 2.0
KINDS = ("bias", "dark", "flat", "light")


# --- the raw frames -----------------------------------------------------------------------------------
def write_raw(folder: Path, lights: int, each: int, shape: tuple[int, int]) -> None:
    """Raw 16-bit frames of the sky simulator's camera into ``folder/<kind>/<kind>_NNNNN.fits``."""
    from obsy_skysim.allsky import Site
    from obsy_skysim.field import FieldRenderer, TelescopeOptics
    from obsy_skysim.sensor import SensorSpec
    from tests.support.stacking import EXPOSURE_S, GAIN, NIGHT, SITE, offset_pointing

    spec = SensorSpec(width=shape[1], height=shape[0], pixel_um=3.76, bayer=None, temperature_c=-10.0, seed=5)
    renderers = {
        pa: FieldRenderer(
            Site(*SITE), spec, TelescopeOptics(position_angle=pa, limiting_magnitude=15.0, seeing_fwhm_arcsec=3.5)
        )
        for pa in (0.0, 180.0)
    }
    rng = np.random.default_rng(18)
    plan = [("bias", 0.0, each), ("dark", EXPOSURE_S, each), ("flat", FLAT_S, each), ("light", EXPOSURE_S, lights)]
    for kind, exposure, count in plan:
        (folder / kind).mkdir(parents=True)
        for index in range(count):
            east, north = (0.0, 0.0) if kind != "light" or index == 0 else rng.uniform(-60.0, 60.0, 2)
            renderer = renderers[180.0 if kind == "light" and index % 5 == 4 else 0.0]
            frame = renderer.render(
                NIGHT,
                offset_pointing(east, north),
                exposure,
                GAIN,
                frame_type=kind,
                seed=100 * KINDS.index(kind) + index,
            )
            header = fits.Header(
                {
                    "IMAGETYP": f"{kind.title()} Frame",
                    "EXPTIME": exposure,
                    "CCD-TEMP": -10.0,
                    "GAIN": GAIN,
                    "FILTER": "L",
                }
            )
            data = np.asarray(frame.image).astype(np.uint16)
            fits.PrimaryHDU(data, header=header).writeto(folder / kind / f"{kind}_{index + 1:05d}.fits")


def written_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links to the raw frames not counted)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


# --- OBSY, in a child process -----------------------------------------------------------------------
def obsy_chain(raw: Path, out: Path) -> dict:
    from obsy_imaging.calibration import CombineSettings, FrameKind, PreparedMasters, build_master, calibrate_lights
    from obsy_imaging.calibration import warm_up as warm_up_calibration
    from obsy_imaging.registration import register_frames
    from obsy_imaging.stacking import StackFrame, StackOptions, fits_reader, stack
    from obsy_imaging.stacking import warm_up as warm_up_stacking
    from tests.support.calibration_frames import frame_info
    from tests.support.stacking import EXPOSURE_S

    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = now - clock
        clock = now

    warm_up_calibration("numba")
    warm_up_stacking()  # both paid once at the service's start
    lap("warm-up")
    out.mkdir(parents=True, exist_ok=True)
    sigma = CombineSettings(method="sigma_clip")

    def frames(kind: FrameKind, exposure: float) -> list:
        paths = sorted((raw / kind.value).glob("*.fits"))
        return [frame_info(kind, exposure=exposure, filter="L", gain=100.0, path=p) for p in paths]

    bias = build_master("bias", frames(FrameKind.BIAS, 0.0), sigma, backend="numba")
    dark = build_master("dark", frames(FrameKind.DARK, EXPOSURE_S), sigma, backend="numba")
    flat = build_master("flat", frames(FrameKind.FLAT, FLAT_S), sigma, bias=bias, backend="numba")
    for name, master in (("bias", bias), ("dark", dark), ("flat", flat)):
        master.write(out / f"master_{name}.fits")
    lap("masters")
    masters = PreparedMasters.from_arrays(dark=dark.data, flat=flat.data)
    lights = sorted((raw / "light").glob("*.fits"))
    calibrated = [out / f"cal_{p.stem}.fits" for p in lights]
    calibrate_lights(list(zip(lights, calibrated, strict=True)), masters, backend="numba")
    lap("calibration")

    def load(name: str) -> np.ndarray:
        read, (height, width) = fits_reader(Path(name))
        return read(0, height, 0, width)

    names = [str(p) for p in calibrated]
    results = register_frames(names, load, reference=names[0], workers=REGISTER_WORKERS)
    lap("registration")
    stack_frames = []
    for r in results:
        if r.registered:
            read, shape = fits_reader(Path(r.name))
            stack_frames.append(StackFrame(r.name, read, shape, r.transform))
    result = stack(stack_frames, StackOptions())
    fits.PrimaryHDU((result.image / FULL_SCALE).astype(np.float32)).writeto(out / "obsy_stack.fits")  # Siril's 0..1
    lap("stacking")
    return {"stages": stages, "registered": len(stack_frames), "lights": len(lights)}


# --- Siril ----------------------------------------------------------------------------------------
def siril_script(folder: Path, lines: list[str]) -> tuple[float, float]:
    """Run a Siril script (32-bit) in ``folder``; its wall seconds and peak resident memory (GB)."""
    path = folder / "chain.ssf"
    path.write_text("requires 1.0.0\nset32bits\n" + "\n".join(lines) + "\n")
    started = time.perf_counter()
    _result, peak, _cpu = run_child("siril-cli", "-d", str(folder), "-s", str(path))
    return time.perf_counter() - started, peak


SIRIL_CHAIN = [
    "cd siril/bias",
    "stack bias rej s 3 3 -nonorm -out=../master_bias",
    "cd ../dark",
    "stack dark rej s 3 3 -nonorm -out=../master_dark",
    "cd ../flat",
    "preprocess flat -bias=../master_bias",
    "stack pp_flat rej s 3 3 -norm=mul -out=../master_flat",
    "cd ../light",
    "preprocess light -dark=../master_dark -flat=../master_flat",
    "register pp_light",
    "stack r_pp_light rej w 3 3 -norm=addscale -out=../siril_stack",
]


def main() -> None:
    lights, each, shape = SMALL if "--small" in sys.argv else FULL
    with tempfile.TemporaryDirectory(prefix="obsy-bench-chain-") as name:
        folder = Path(name)
        started = time.perf_counter()
        write_raw(folder / "raw", lights, each, shape)
        raw_bytes = written_bytes(folder / "raw")
        print(
            f"raw frames: {lights} lights, {each} each of bias, dark, flat, {shape[1]}x{shape[0]} 16-bit "
            f"({raw_bytes / 1e9:.2f} GB) written in {time.perf_counter() - started:.0f} s; {os.cpu_count()} cores"
        )
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        me = [sys.executable, "-m", "bench.bench_imaging_chain", "obsy", str(folder / "raw"), str(folder / "obsy")]
        started = time.perf_counter()
        ours, obsy_peak, _ = run_child(*me)
        process_s = time.perf_counter() - started
        obsy_s = sum(v for k, v in ours["stages"].items() if k != "warm-up")
        obsy_disk = written_bytes(folder / "obsy")
        stages = "  ".join(f"{k} {v:.1f} s" for k, v in ours["stages"].items())
        print(
            f"OBSY  chain {obsy_s:7.1f} s  peak {obsy_peak:.2f} GB  scratch {obsy_disk / 1e9:.2f} GB  "
            f"({ours['registered']}/{ours['lights']} lights stacked; {stages}; the whole process with "
            f"its imports and warm-up {process_s:.1f} s)"
        )
        if shutil.which("siril-cli") is None:
            print("Siril: siril-cli is not installed here: no Siril figures in this run (apt-get install siril)")
            return
        version = subprocess.run(["siril-cli", "--version"], check=False, capture_output=True, text=True).stdout.strip()
        for kind in KINDS:
            (folder / "siril" / kind).mkdir(parents=True)
        siril_script(folder, [f"cd raw/{k}\nlink {k} -out=../../siril/{k}\ncd ../.." for k in KINDS])
        before = written_bytes(folder / "siril")
        siril_s, siril_peak = siril_script(folder, SIRIL_CHAIN)
        siril_disk = written_bytes(folder / "siril") - before
        print(f"Siril chain {siril_s:7.1f} s  peak {siril_peak:.2f} GB  scratch {siril_disk / 1e9:.2f} GB  ({version})")
        print(
            f"ratio (Siril / OBSY): time {siril_s / obsy_s:.2f}x (goal >= 2x), OBSY scratch "
            f"{obsy_disk / 1e9:.2f} GB (goal < 1 GB), peak memory {siril_peak / obsy_peak:.2f}x"
        )
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        siril_script(folder, ["cd siril/light", "stack r_pp_light rej w 3 3 -nonorm -out=../siril_nonorm"])
        siril_stack = next(iter((folder / "siril").glob("siril_nonorm*.fit*")), None)
        if siril_stack is None:
            print("Siril wrote no stack: no quality comparison")
            return
        comparison = compare_stacks(load_stack(folder / "obsy" / "obsy_stack.fits"), load_stack(siril_stack))
        print("stacks (Siril's -nonorm): " + comparison.describe())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "obsy":
        print(json.dumps(obsy_chain(Path(sys.argv[2]), Path(sys.argv[3]))), flush=True)
    else:
        main()
