"""The project stack at the size issue 18 promises for a 4 GB Raspberry Pi: 200 lights of 26 MP.

Calibrated lights of the sky simulator's main camera at full size (6248x4176, float32 FITS, dithered
by up to 1', every fifth after a meridian flip: ``tests/support/siril.write_lights``), recorded in an
imaging repository as calibrated and accepted lights of three nights (``tests/support/live_stack``),
then the project stack of the target built by the service's own
:class:`~obsy_imaging.projectstack.ProjectStacker` (``obsy-imaging stack-project``'s call), with the
default settings (256 MB stacking budget), in a child process so that its memory is its own. Every
light is matched directly (no live stack ran, so none is registered through its night).

The child can run under a hard memory limit: a cgroup (v1) made beforehand, as root, e.g.

    mkdir /sys/fs/cgroup/memory/obsy-pi
    echo 4G > /sys/fs/cgroup/memory/obsy-pi/memory.limit_in_bytes
    echo 4G > /sys/fs/cgroup/memory/obsy-pi/memory.memsw.limit_in_bytes   # no swapping either
    nice -n 19 python -m bench bench_imaging_project_pi --cgroup=/sys/fs/cgroup/memory/obsy-pi

The child joins it first thing; cgroup v1 counts the page cache of the files it reads too (the
kernel drops clean cache at the limit rather than failing), so the cgroup's peak is printed beside
its anonymous memory (``rss`` of ``memory.stat``, sampled twice a second) and the process's own peak
resident memory (``VmHWM``: ``run_child``), which is the figure to hold against the 4 GB.

    python -m bench bench_imaging_project_pi                           # 200 lights of 6248x4176
    python -m bench bench_imaging_project_pi --frames=10 --size=1500x1000
    ... --scratch=DIR   where the lights go (about 21 GB for the full run; a temporary folder, removed)

Printed: the lights written (and how long that took), wall and CPU seconds of the build (registering,
stacking with the files written), the peak memory by phase, the cgroup's figures, the scratch on
disk (lights, stack files), the load average, and the stack's background noise against its
reference light's (where every light covers) beside 1/sqrt(N).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

TARGET, FILTER = "M 42", "L"
NIGHTS = ["2026-01-15", "2026-01-18", "2026-01-23"]


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_imaging_project_pi")
    parser.add_argument("--frames", type=int, default=200, help="lights (200)")
    parser.add_argument("--size", default="6248x4176", help="WIDTHxHEIGHT of a light (6248x4176: 26 MP)")
    parser.add_argument("--scratch", help="folder for the lights and the repository (a temporary folder in it)")
    parser.add_argument("--cgroup", help="a cgroup v1 memory folder the stacking process joins")
    found, _names = parser.parse_known_args([a for a in argv if a.startswith("--")])
    width, _, height = found.size.partition("x")
    try:
        found.shape = (int(height), int(width))
    except ValueError:
        parser.error(f"--size {found.size!r}: WIDTHxHEIGHT, e.g. 6248x4176")
    if found.frames < 3:
        parser.error(f"--frames {found.frames}: at least 3 (a light a night)")
    if found.cgroup and not (Path(found.cgroup) / "memory.limit_in_bytes").is_file():
        parser.error(f"--cgroup {found.cgroup}: not a cgroup v1 memory folder (no memory.limit_in_bytes)")
    return found


class CgroupWatch:
    """The memory figures of a cgroup v1 folder while a process runs in it: its peak usage reset
    first, its anonymous memory (``rss``) sampled every ``interval`` seconds."""

    def __init__(self, folder: Path, interval: float = 0.5) -> None:
        self.folder, self.interval = folder, interval
        self.rss_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _read(self, name: str) -> int | None:
        try:
            return int((self.folder / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _rss(self) -> int:
        for line in (self.folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "rss":
                return int(value)
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.rss_peak = max(self.rss_peak, self._rss())

    def __enter__(self) -> CgroupWatch:
        for name in ("memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes", "memory.failcnt"):
            with contextlib.suppress(OSError):  # not every kernel has them all
                (self.folder / name).write_text("0")  # a reset
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def describe(self) -> str:
        gb = lambda value: "n/a" if value is None else f"{value / 2**30:.2f} GiB"  # noqa: E731
        return (
            f"cgroup limit {gb(self._read('memory.limit_in_bytes'))} (with swap "
            f"{gb(self._read('memory.memsw.limit_in_bytes'))}): peak {gb(self._read('memory.max_usage_in_bytes'))} "
            f"with page cache, anonymous (rss) peak {gb(self.rss_peak)} sampled every {self.interval:g} s, "
            f"failed charges {self._read('memory.failcnt')} (the kernel gave page cache back first)"
        )


def child(folder: Path, cgroup: str | None) -> dict:
    """In the child: join the cgroup, then the project stack as the service builds it."""
    if cgroup:
        (Path(cgroup) / "cgroup.procs").write_text(str(os.getpid()))
    from bench.bench_imaging_projectstack import build

    out = build(folder, TARGET, [FILTER], False, say_every=60.0)
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    out["read_gb"] = int(io["rchar"]) / 1e9  # read by the process, from the page cache or the disk
    out["disk_read_gb"] = int(io["read_bytes"]) / 1e9  # of which fetched from the disk
    return out


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def noise_against_the_reference(repository) -> tuple[float, float, int]:
    """The stack's background noise and its reference light's, in the middle half of the frame
    (every light covers it), and how many lights cover it at least."""
    from astropy.io import fits
    from sqlalchemy import select

    from obsy_imaging.repository.models import Calibration, ProjectStack
    from tests.support.stacking import background_noise

    with repository.sessions() as session:
        row = session.scalars(select(ProjectStack)).one()
        query = select(Calibration.path).where(Calibration.frame_id == row.reference_frame_id)
        reference = session.scalars(query).one()
    with fits.open(repository.root / row.path, memmap=True) as hdus:
        height, width = hdus[0].shape
        middle = (slice(height // 4, 3 * height // 4), slice(width // 4, 3 * width // 4))
        stacked = np.array(hdus[0].data[middle], dtype=np.float32)
    covered = int(np.min(fits.getdata(repository.root / row.path, "COVERAGE", memmap=False)[middle]))  # scaled ints
    with fits.open(repository.root / reference, memmap=True) as hdus:
        single = np.array(hdus[0].data[middle], dtype=np.float32)
    return background_noise(stacked), background_noise(single), covered


def main() -> None:
    from bench.bench_imaging_stacking import run_child
    from tests.support.live_stack import make_repository, record
    from tests.support.siril import write_lights

    args = options(sys.argv[1:])
    count, (height, width) = args.frames, args.shape
    load = lambda: " ".join(f"{x:.1f}" for x in os.getloadavg())  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="obsy-bench-project-pi-", dir=args.scratch) as name:
        folder = Path(name)
        repository = make_repository(folder)
        started = time.perf_counter()

        def written(done: int, total: int) -> None:
            if done % 20 == 0 or done == total:
                print(f"  {done}/{total} lights written, {time.perf_counter() - started:.0f} s", flush=True)

        paths = write_lights(repository.root / "calibrated", count, (height, width), progress=written)
        lights_bytes = folder_bytes(repository.root / "calibrated")
        print(
            f"lights: {count} calibrated frames of {width}x{height} ({width * height / 1e6:.1f} MP, float32, "
            f"{lights_bytes / 1e9:.1f} GB) written in {time.perf_counter() - started:.0f} s"
        )
        nights = NIGHTS[: min(len(NIGHTS), count)]
        for night, part in zip(nights, np.array_split(np.arange(count), len(nights)), strict=True):
            chosen = [paths[i] for i in part]
            record(repository, chosen, night=night, filter_name=FILTER, grades=[(90.0, 3.0, True)] * len(chosen))
        repository.engine.dispose()
        print(f"load average before: {load()} on {os.cpu_count()} cores", flush=True)
        me = [sys.executable, "-m", "bench.bench_imaging_project_pi", "child", str(folder), args.cgroup or ""]
        watch = CgroupWatch(Path(args.cgroup)) if args.cgroup else None
        started = time.perf_counter()
        if watch is not None:
            with watch:
                result, peak, cpu = run_child(*me)
        else:
            result, peak, cpu = run_child(*me)
        process_s = time.perf_counter() - started
        print(f"load average after: {load()}")
        peaks = ", ".join(f"{phase} {gb:.2f} GB" for phase, gb in result["peaks"].items())
        print(
            f"project stack: {result['frames']} lights of {len(nights)} nights in {result['seconds']:.0f} s "
            f"(registering {result.get('registering', 0):.0f} s, "
            f"stacking and writing {result.get('stacking', 0):.0f} s; "
            f"the whole process {process_s:.0f} s)  cpu {cpu:.0f} s  peak resident {peak:.2f} GB "
            f"(by the end of: {peaks})"
        )
        if watch is not None:
            print(watch.describe())
        print(
            f"read: {result['read_gb']:.1f} GB by the stacking process, {result['disk_read_gb']:.1f} GB of it "
            f"from the disk (the rest from the page cache: shared with the machine unless in a cgroup)"
        )
        stacks = folder_bytes(repository.root / "stacks")
        print(
            f"scratch on disk: lights {lights_bytes / 1e9:.2f} GB, the stack's files {stacks / 1e6:.0f} MB "
            f"(FITS with its two maps, the JPEGs), the rest (the database) "
            f"{(folder_bytes(folder) - lights_bytes - stacks) / 1e6:.1f} MB"
        )
        stacked, single, covered = noise_against_the_reference(repository)
        print(
            f"noise: the stack {stacked:.4g}, its reference light {single:.4g}: ratio {stacked / single:.3f} "
            f"against 1/sqrt({result['frames']}) = {1 / np.sqrt(result['frames']):.3f} "
            f"(the middle half of the frame, {covered}+ lights each pixel)"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        print(json.dumps(child(Path(sys.argv[2]), sys.argv[3] or None)), flush=True)
    else:
        main()
