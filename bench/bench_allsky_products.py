"""Night products on IMX294-size (4144×2822) frames: timelapse throughput and memory, panorama time.

* Timelapse: ``FRAMES`` frames (one JPEG under many names, decoded anew each time) into 640-
  and 1920-wide videos with the encoder ``auto`` picks here, in a child process, with its peak
  RSS and ffmpeg's. Reference in the same run: ffmpeg decoding and scaling the same JPEGs itself
  (image2 demuxer, ``scale`` filter, libx264), the fastest way without our skipping and progress.
* Panorama: our remap (maps cached) on one frame, against OpenCV's ``warpPolar`` unrolling the
  same circle (linear polar, the same output size).

    python -m bench bench_allsky_products
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from obsy_allsky.config import AllskyPanoramaConfig, AllskyPipelineConfig, AllskyTimelapseConfig
from obsy_allsky.products.panorama import panorama
from obsy_allsky.products.timelapse import choose_encoder

WIDTH, HEIGHT = 4144, 2822
FRAMES = 120

CHILD = """
import glob, json, sys, threading, time
from pathlib import Path
from obsy_allsky.config import AllskyTimelapseConfig
from obsy_allsky.products.timelapse import make_timelapse


def hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


peak_children = 0
running = True


def sample():  # VmHWM only grows: the last sample of ffmpeg is (about) its peak
    global peak_children
    while running:
        for listing in glob.glob("/proc/self/task/*/children"):
            for pid in open(listing).read().split():
                peak_children = max(peak_children, hwm_kib(pid))
        time.sleep(0.05)


threading.Thread(target=sample, daemon=True).start()
frames = sorted(Path(sys.argv[1]).glob("*.jpg"))
settings = AllskyTimelapseConfig(width=int(sys.argv[3]), encoder=sys.argv[4])
started = time.perf_counter()
video = make_timelapse(frames, Path(sys.argv[2]), settings)
seconds = time.perf_counter() - started
running = False
print(json.dumps({
    "seconds": seconds,
    "encoder": video.encoder,
    "self_mib": hwm_kib("self") / 1024,
    "ffmpeg_mib": peak_children / 1024,
}))
"""


def sky_frame() -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    cv2.circle(image, (WIDTH // 2, HEIGHT // 2), HEIGHT // 2, (30, 25, 20), -1)
    rng = np.random.default_rng(1)
    for x, y in rng.integers((0, 0), (WIDTH, HEIGHT), size=(1500, 2)):
        cv2.circle(image, (int(x), int(y)), 2, (255, 255, 255), -1)
    return image


def ffmpeg_reference(folder: Path, out: Path, width: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-framerate", "25", "-pattern_type", "glob", "-i", str(folder / "*.jpg"),
         "-vf", f"scale={width}:-2", "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p",
         str(out)],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def bench_timelapse(folder: Path) -> None:
    encoder, passed_over = choose_encoder(AllskyTimelapseConfig())
    print(f"  encoder (auto): {encoder}" + (f"; passed over: {', '.join(passed_over)}" if passed_over else ""))
    decoded_gib = FRAMES * WIDTH * HEIGHT * 3 / 2**30
    print(f"  {FRAMES} frames of {WIDTH}x{HEIGHT} ({decoded_gib:.1f} GiB decoded)")
    for width in (640, 1920):
        out = folder.parent / f"ours-{width}.mp4"
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(folder), str(out), str(width), encoder],
            capture_output=True,
            text=True,
            check=True,
        )
        ours = json.loads(result.stdout.strip().splitlines()[-1])
        reference = ffmpeg_reference(folder, folder.parent / f"ref-{width}.mp4", width)
        print(
            f"  width {width:4d}: {ours['seconds']:6.1f} s ({FRAMES / ours['seconds']:5.1f} frames/s,"
            f" {ours['encoder']}),"
            f" peak RSS {ours['self_mib']:.0f} MiB + ffmpeg {ours['ffmpeg_mib']:.0f} MiB;"
            f" ffmpeg alone (libx264) {reference:6.1f} s: ratio {ours['seconds'] / reference:.2f}"
        )


def bench_panorama(image: np.ndarray) -> None:
    settings, pipeline = AllskyPanoramaConfig(), AllskyPipelineConfig()
    started = time.perf_counter()
    panorama(image, settings, pipeline)
    first = time.perf_counter() - started
    ours = []
    for _ in range(5):
        started = time.perf_counter()
        panorama(image, settings, pipeline)
        ours.append(time.perf_counter() - started)
    radius = 0.5 * min(WIDTH, HEIGHT)
    size = (settings.width // 4, settings.width)  # (radius samples, angle samples) as warpPolar lays them out
    reference = []
    for _ in range(5):
        started = time.perf_counter()
        cv2.warpPolar(image, size, (WIDTH / 2, HEIGHT / 2), radius, cv2.WARP_POLAR_LINEAR | cv2.INTER_LINEAR)
        reference.append(time.perf_counter() - started)
    ours_ms, ref_ms = 1000 * statistics.median(ours), 1000 * statistics.median(reference)
    print(
        f"  panorama {settings.width}x{settings.width // 4} from {WIDTH}x{HEIGHT}: first {1000 * first:.0f} ms"
        f" (maps), then {ours_ms:.1f} ms; cv2.warpPolar {ref_ms:.1f} ms: ratio {ours_ms / ref_ms:.2f}"
    )


def main() -> None:
    print(f"  OpenCV {cv2.__version__}, {os.cpu_count()} CPUs")
    image = sky_frame()
    bench_panorama(image)
    with tempfile.TemporaryDirectory(prefix="obsy-bench-products-") as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        first = folder / "frame-0000.jpg"
        cv2.imwrite(str(first), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        for i in range(1, FRAMES):
            os.link(first, folder / f"frame-{i:04d}.jpg")
        bench_timelapse(folder)


if __name__ == "__main__":
    main()
