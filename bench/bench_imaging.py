"""Imaging ingest: frames per second through header reading, inspection and registration.

An archive of frames the size of the INDI CCD simulator's (1280×1024 uint16, 2.6 MB), with the
headers of INDI, N.I.N.A., SGP and MaxIm in turn, is written to a temporary folder; then:

- reference: astropy's ``fits.getheader`` alone on every file (the floor of any FITS reader);
- normalise: the typed header (spellings, JD, BJD_TDB, airmass) from headers already in memory;
- inspect: open, structure and truncation checks, normalise, SHA-256 of the whole file;
- import: ``obsy-imaging import``'s work: inspect, hard link into the layout, one row in SQLite;
- resume: the same import again (every file known: nothing read);
- watch: seconds from a frame written into a watched folder to its registration (watchdog);
- post-capture: seconds from a frame named by the post-capture route (``notice(route="post_capture")``,
  what the service does on ``imaging/ingest/set``) outside the watched folders to its answer.

Target (issue 17): ingest of headers at >= 50 frames/s.

    python -m bench bench_imaging            # 300 frames
    python -m bench bench_imaging --full     # 2,000 frames
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy.config import SiteConfig
from obsy_imaging.headers import normalise_header
from obsy_imaging.headers.normalise import Site, warm_up
from obsy_imaging.ingest.archive import import_archive
from obsy_imaging.ingest.ingestor import Ingestor, Result
from obsy_imaging.ingest.inspect import inspect_frame
from obsy_imaging.ingest.watcher import CaptureWatcher, frame_files
from obsy_imaging.repository import database
from obsy_imaging.repository.store import Repository
from tests.support.imaging_frames import frame_header

PROGRAMS = ("indi_ccd_simulator_light", "nina_light", "sgp_light", "maxim_light")
SITE = SiteConfig(latitude=-33.93, longitude=18.42, elevation=30, timezone="Africa/Johannesburg")
SHAPE = (1024, 1280)
WATCHED = 30


def write_archive(folder: Path, count: int) -> list[Path]:
    base = (np.random.default_rng(0).random(SHAPE) * 2000 + 100).astype(np.uint16)
    paths = []
    for index in range(count):
        data = base.copy()
        data[0, :8] = np.frombuffer(index.to_bytes(16, "little"), dtype=np.uint16)  # every frame its own hash
        path = folder / f"night{index % 5}" / f"frame_{index:05d}.fits"
        path.parent.mkdir(parents=True, exist_ok=True)
        fits.PrimaryHDU(data, header=frame_header(PROGRAMS[index % len(PROGRAMS)])).writeto(path)
        paths.append(path)
    return paths


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f} frames/s  ({seconds * 1000 / count:6.2f} ms/frame)"


def bench_watch(tmp: Path, repository: Repository, *, named: bool = False) -> list[float]:
    """Latencies of frames written into a watched folder, or (``named``) outside it and named to the watcher
    as the post-capture script names them."""
    capture = tmp / "watched"
    capture.mkdir(exist_ok=True)
    outside = tmp / "elsewhere"
    outside.mkdir(exist_ok=True)
    done: dict[str, float] = {}
    arrived = threading.Condition()

    def on_result(result: Result) -> None:
        with arrived:
            done[result.path.name] = time.perf_counter()
            arrived.notify_all()

    watcher = CaptureWatcher(
        Ingestor(repository, SITE),
        [capture],
        suffixes=[".fits"],
        settle_time=0.5,
        incomplete_timeout=60,
        on_result=on_result,
    )
    watcher.start()
    latencies = []
    base = (np.random.default_rng(1).random(SHAPE) * 2000).astype(np.uint16)
    try:
        for index in range(WATCHED):
            data = base.copy()
            data[0, 0] = index
            data[0, 1] = int(named)
            name = f"{'named' if named else 'watched'}_{index:03d}.fits"
            written = time.perf_counter()
            fits.PrimaryHDU(data, header=frame_header()).writeto((outside if named else capture) / name)
            if named:
                watcher.notice(outside / name, closed=True, route="post_capture", reply=on_result)
            with arrived:
                arrived.wait_for(lambda name=name: name in done, timeout=10)
            latencies.append(done[name] - written)
    finally:
        watcher.stop()
    return latencies


def main() -> None:
    count = 2000 if "--full" in sys.argv else 300
    with tempfile.TemporaryDirectory(prefix="obsy-bench-imaging-") as name:
        tmp = Path(name)
        started = time.perf_counter()
        paths = write_archive(tmp / "archive", count)
        print(
            f"archive: {count} frames of {SHAPE[1]}x{SHAPE[0]} uint16 written in {time.perf_counter() - started:.1f} s"
        )
        warm_up()

        started = time.perf_counter()
        headers = [fits.getheader(path) for path in paths]
        reference = time.perf_counter() - started
        print(f"reference  astropy getheader   {rate(count, reference)}")

        site = Site(SITE.latitude, SITE.longitude, SITE.elevation)
        started = time.perf_counter()
        for header in headers:
            normalise_header(header, site=site)
        normalise = time.perf_counter() - started
        print(f"normalise  typed header        {rate(count, normalise)}")

        started = time.perf_counter()
        for path in paths:
            inspect_frame(path, site=site)
        inspect = time.perf_counter() - started
        print(f"inspect    checks + SHA-256    {rate(count, inspect)}")

        engine = database.make_engine(f"sqlite:///{tmp / 'imaging.sqlite3'}")
        database.upgrade(engine)
        repository = Repository(engine, tmp / "repository", tmp / "quarantine")
        ingestor = Ingestor(repository, SITE)
        started = time.perf_counter()
        progress = import_archive(ingestor, tmp / "archive", [".fits"])
        imported = time.perf_counter() - started
        assert progress.outcomes["registered"] == count, progress.summary()
        print(
            f"import     into the repository {rate(count, imported)}   target >= 50 frames/s: "
            f"{'met' if count / imported >= 50 else 'NOT met'}"
        )

        started = time.perf_counter()
        again = import_archive(ingestor, tmp / "archive", [".fits"])
        resumed = time.perf_counter() - started
        assert again.skipped == count
        print(f"resume     all known           {rate(count, resumed)}")
        print(f"ratios     import/reference {imported / reference:.1f}x, inspect/reference {inspect / reference:.1f}x")

        latencies = sorted(bench_watch(tmp, repository))
        p50 = statistics.median(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            f"watch      written -> registered: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms over {WATCHED} frames (goal: within 2 s)"
        )
        named = sorted(bench_watch(tmp, repository, named=True))
        print(
            f"post-capture named -> answered: p50 {statistics.median(named) * 1000:.0f} ms, "
            f"p95 {named[int(0.95 * (len(named) - 1))] * 1000:.0f} ms over {WATCHED} frames outside the watched folder"
        )
        assert len(list(frame_files(tmp / "repository", [".fits"]))) == count + 2 * WATCHED
        engine.dispose()
