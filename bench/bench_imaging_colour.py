"""Peak memory and time of a colour image made from project stacks (LRGB at 26 MP by default).

Four mono stacks (L, R, G, B) of 6248x4176 float32 (a camera of 26 MP), each with its own sky
gradient and a few thousand stars, R, G and B framed a few pixels off L's grid (a dither between
nights), written as FITS to a temporary folder. Then, in a child process of its own, the colour chain
the project stacker runs after its stacks (``obsy_imaging.colour.write_colour_image``): aligned onto
G's grid, gradients removed, combined (LRGB), neutralised, white-balanced on the stars, written as
a float32 FITS cube with a stretched JPEG sample and thumbnail. Printed: seconds and the child's peak
resident memory (VmHWM from /proc/self/status, the whole process: Python, NumPy, OpenCV included).

Goal (issue 18): under 1 GB for 26 MP LRGB. ``--whole`` also runs the chain as the project stacker
ran it before it worked in bands: the stacks read whole, ``compose(...).image``, a FITS of the whole
cube, a whole-image stretch (with the code of before on ``PYTHONPATH``, that is the before figure;
with today's it still holds every whole image the old way did not need to).

    python -m bench bench_imaging_colour                 # 26 MP LRGB
    python -m bench bench_imaging_colour --small         # 1500x1000, to try it out
    python -m bench bench_imaging_colour --whole         # also the whole-image way, for comparison
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

FULL = (4176, 6248)
SMALL = (1000, 1500)
FILTERS = {"L": (0.0, 0.0), "R": (3.4, -2.1), "G": (-1.7, 2.6), "B": (2.2, 1.3)}  # shift (x, y) px


def write_stacks(folder: Path, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(26)
    height, width = shape
    count = max(300, height * width // 8000)
    xs, ys = rng.uniform(20, width - 20, count), rng.uniform(20, height - 20, count)
    flux = 10 ** rng.uniform(2.5, 5.0, count)
    colour = rng.uniform(0.85, 1.15, (3, count))  # the brightest stars stay the brightest in every filter
    yy, xx = np.mgrid[-7:8, -7:8]
    for index, (name, (dx, dy)) in enumerate(FILTERS.items()):
        sky = np.float32(400.0 + 50 * index)
        image = rng.normal(sky, 8.0, shape).astype(np.float32)
        y = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
        x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
        image += np.float32(20.0 + 5 * index) * x + np.float32(12.0) * y * y
        share = 1.0 if name == "L" else colour["RGB".index(name)]
        for i in range(count):
            cx, cy = xs[i] + dx, ys[i] + dy
            r0, c0 = int(cy) - 7, int(cx) - 7
            if r0 < 0 or c0 < 0 or r0 + 15 > height or c0 + 15 > width:
                continue
            f = flux[i] * (share if np.ndim(share) == 0 else share[i])
            dxs, dys = xx + c0 + 7 - cx, yy + r0 + 7 - cy
            stamp = f / (2 * np.pi * 1.5**2) * np.exp(-(dxs**2 + dys**2) / (2 * 1.5**2))
            image[r0 : r0 + 15, c0 : c0 + 15] += stamp.astype(np.float32)
        fits.PrimaryHDU(image).writeto(folder / f"{name}.fits")


def peak_gb() -> float:
    from bench.bench_imaging_stacking import own_peak_gb

    peak = own_peak_gb()
    return float("nan") if peak is None else peak


def child(folder: Path, way: str) -> dict:
    from obsy_imaging.colour import compose
    from obsy_imaging.stacking import fits_reader
    from obsy_imaging.stretch import autostretch_colour
    from obsy_imaging.stretch.samples import write_samples

    started = time.perf_counter()
    out = folder / f"lrgb-{way}.fits"
    if way == "banded":
        from obsy_imaging.colour import write_colour_image

        sources = {name: fits_reader(folder / f"{name}.fits") for name in FILTERS}
        made = write_colour_image(sources, "lrgb", out, fits.Header(), white="stars", scratch=folder)
        balance = made.white_balance.tolist()
    else:
        stacks = {name: fits.getdata(folder / f"{name}.fits").astype(np.float32) for name in FILTERS}
        made = compose(stacks, "lrgb", white="stars")
        image = made.image
        fits.PrimaryHDU(np.moveaxis(image, 2, 0)).writeto(out, overwrite=True)
        write_samples(out, autostretch_colour(image), stretched=True)
        balance = made.white_balance.tolist()
    return {"seconds": time.perf_counter() - started, "peak_gb": peak_gb(), "white_balance": balance}


def main() -> None:
    shape = SMALL if "--small" in sys.argv else FULL
    ways = ["banded"] + (["whole"] if "--whole" in sys.argv else [])
    with tempfile.TemporaryDirectory(prefix="obsy-bench-colour-") as name:
        folder = Path(name)
        started = time.perf_counter()
        write_stacks(folder, shape)
        megapixels = shape[0] * shape[1] / 1e6
        print(
            f"stacks: L, R, G, B of {shape[1]}x{shape[0]} ({megapixels:.1f} MP) float32, written in "
            f"{time.perf_counter() - started:.0f} s; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        for way in ways:
            done = subprocess.run(
                [sys.executable, "-m", "bench.bench_imaging_colour", "child", str(folder), way],
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                print(f"{way}: failed ({done.returncode}): {done.stderr[-1500:]}")
                continue
            result = json.loads(lines[-1])
            balance = ", ".join(f"{k:.3f}" for k in result["white_balance"])
            print(
                f"LRGB {way:6s} {result['seconds']:6.1f} s  peak {result['peak_gb']:.2f} GB (VmHWM)  "
                f"white balance {balance}  (goal: under 1 GB)"
            )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        print(json.dumps(child(Path(sys.argv[2]), sys.argv[3])), flush=True)
    else:
        main()
