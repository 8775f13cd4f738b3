"""``obsy-imaging import DIR`` and ``obsy-imaging calibrate``: the repository from the command line.

``import``: bring an existing archive of frames into the repository.

    obsy-imaging import /data/astro/2023          every FITS under the folder, recursively
    obsy-imaging import --no-progress DIR         one line at the end (for scripts and logs)
    obsy-imaging import --grade DIR               grade the lights too (slower: every frame's pixels are read)

It can run while the service runs (the database keeps one record per frame) and may be
interrupted and run again: it goes on where it stopped. Exit status 0 when every file was taken
or was known; 1 when some were quarantined or the disk filled; 2 for a configuration problem.

``calibrate``: build masters and calibrate lights now, as the service does in its passes
(docs/imaging-calibration.md, "In the service"):

    obsy-imaging calibrate                        masters of every ready group, then every light that can be
    obsy-imaging calibrate --min-frames 3         groups of 3 frames or more are ready too (this once)
    obsy-imaging calibrate --frames 12 13 14      one master of exactly these frames (ids in the database)
    obsy-imaging calibrate --masters-only         build masters, calibrate nothing

Exit status 0 when nothing went wrong, 1 when something could not be built or calibrated (each
problem is printed), 2 for a configuration problem.

``report``: the AAVSO Extended report of one night and variable-star target, from the magnitudes
the service stored (docs/imaging-photometry.md):

    obsy-imaging report --night 2026-10-15 --target "SS Cyg"       write it (as the service does) and print it
    obsy-imaging report --night 2026-10-15 --target sscyg --print  print it only

Exit status 0 when a report was made, 1 when the night has no magnitude of that target, 2 for a
configuration or usage problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from obsy.config import ConfigError, load_config
from obsy_imaging.calibrator import Calibrator, PassResult
from obsy_imaging.grading.grader import Grader
from obsy_imaging.ingest.archive import ImportProgress, import_archive
from obsy_imaging.ingest.ingestor import Ingestor, Outcome, Result
from obsy_imaging.repository import database
from obsy_imaging.repository.store import Repository

EXIT_SOME_FAILED = 1
EXIT_USAGE = 2


class ProgressBar:
    """A one-line progress bar on a terminal; a line every ``interval`` seconds otherwise."""

    def __init__(self, stream=sys.stderr, interval: float = 10.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = interval
        self._last = 0.0

    def __call__(self, progress: ImportProgress, result: Result) -> None:
        if result.outcome is Outcome.QUARANTINED:
            self._line(f"quarantined {result.path}: {result.problem}: {result.reason}")
        now = time.monotonic()
        if progress.done < progress.total and now - self._last < (0.2 if self.tty else self.interval):
            return
        self._last = now
        width = 30
        filled = int(width * progress.done / max(progress.total, 1))
        left = (progress.total - progress.done) / progress.rate if progress.rate else 0.0
        text = (
            f"[{'#' * filled}{'.' * (width - filled)}] {progress.done}/{progress.total}"
            f"  {progress.rate:.1f} files/s  {left:.0f} s left"
        )
        if self.tty:
            self.stream.write("\r" + text)
            if progress.done == progress.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")


def import_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="obsy-imaging import", description="Import an archive of frames into the imaging repository."
    )
    parser.add_argument("folder", type=Path, help="folder with FITS frames (searched recursively)")
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, only the summary")
    parser.add_argument("--grade", action="store_true", help="grade the lights as the service does (imaging.grading)")
    args = parser.parse_args(argv[1:])
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-imaging"), file=sys.stderr)
        return EXIT_USAGE
    if not args.folder.is_dir():
        print(f"obsy-imaging import: {args.folder} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    # The progress bar names each quarantined file; the log would say it twice.
    logging.basicConfig(level=logging.ERROR, format="obsy-imaging import: %(message)s")
    settings = config.imaging
    engine = database.make_engine(settings.database(config.data_dir))
    database.upgrade(engine)
    repository = Repository(engine, settings.repository_dir(config.data_dir), settings.quarantine_dir(config.data_dir))
    ingestor = Ingestor(repository, config.site)
    bar = None if args.no_progress else ProgressBar()
    grader = Grader(repository, settings.grading) if args.grade else None

    def on_progress(progress: ImportProgress, result: Result) -> None:
        if grader is not None and result.outcome is Outcome.REGISTERED:
            frame = result.frame
            if frame is not None and frame.frame_type == "light":
                try:
                    grade = grader.grade(frame)
                    progress.outcomes["accepted" if grade.accepted else "rejected"] += 1
                except Exception as exc:  # an unmeasurable frame stays registered, ungraded
                    print(f"obsy-imaging import: cannot grade {frame.path}: {exc}", file=sys.stderr)
        if bar is not None:
            bar(progress, result)

    try:
        progress = import_archive(ingestor, args.folder.resolve(), settings.suffixes, on_progress=on_progress)
    except KeyboardInterrupt:
        print("\nobsy-imaging import: interrupted; run it again to continue", file=sys.stderr)
        return EXIT_SOME_FAILED
    finally:
        engine.dispose()
    print(f"obsy-imaging import: {progress.summary()}")
    failed = progress.outcomes[Outcome.QUARANTINED.value] + progress.outcomes[Outcome.STORAGE_FULL.value]
    if progress.outcomes[Outcome.STORAGE_FULL.value]:
        print("obsy-imaging import: the repository's disk is full; free space and run it again", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0


def calibrate_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="obsy-imaging calibrate", description="Build masters and calibrate lights in the imaging repository now."
    )
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--min-frames", type=int, help="frames a group needs (default: imaging.calibration.min_frames)")
    parser.add_argument("--frames", type=int, nargs="+", metavar="ID", help="one master of exactly these frames")
    parser.add_argument("--masters-only", action="store_true", help="build masters only, calibrate no light")
    args = parser.parse_args(argv[1:])
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-imaging"), file=sys.stderr)
        return EXIT_USAGE
    if args.min_frames is not None and args.min_frames < 1:
        print("obsy-imaging calibrate: --min-frames must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.ERROR, format="obsy-imaging calibrate: %(message)s")
    settings = config.imaging
    engine = database.make_engine(settings.database(config.data_dir))
    database.upgrade(engine)
    repository = Repository(engine, settings.repository_dir(config.data_dir), settings.quarantine_dir(config.data_dir))
    calibrator = Calibrator(repository, settings.calibration)
    result = PassResult()
    try:
        if args.frames:
            calibrator.build_from(args.frames, result)
        else:
            calibrator.build_due(result, min_frames=args.min_frames, force=True)
        if not args.masters_only:
            calibrator.queue_new_lights()
            calibrator.calibrate(result, retry_waiting=True)
        counts = calibrator.counts("")
    finally:
        engine.dispose()
    for built in result.built:
        master = built.master
        replaces = f", replaces {built.replaces}" if built.replaces else ""
        print(f"master {master.kind} {master.master_id} of {master.frame_count} frames: {master.path}{replaces}")
    for text in dict.fromkeys(result.waiting_groups):
        print(f"not built: {text}")
    for problem in result.problems:
        print(f"obsy-imaging calibrate: {problem.message}", file=sys.stderr)
    print(
        f"obsy-imaging calibrate: {len(result.built)} master(s) built, {len(result.calibrated)} light(s) calibrated,"
        f" {counts.queue} waiting, {len(result.problems)} problem(s)"
    )
    for reason in counts.waiting_for:
        print(f"  waiting: {reason}")
    return EXIT_SOME_FAILED if result.problems else 0


def warm_up_command(argv: list[str]) -> int:
    """Compile the numba kernels into numba's on-disk cache now (an install or upgrade step).

    The service compiles them at start when the cache is empty, which takes tens of seconds of CPU
    on a small computer; after this command it loads them in well under a second.
    """
    parser = argparse.ArgumentParser(
        prog="obsy-imaging warm-up",
        description="Compile the calibration, stacking (rejection, resampling) and photometry kernels (numba) now.",
    )
    parser.parse_args(argv[1:])
    from obsy_imaging import calibration, stacking
    from obsy_imaging.photometry import aperture

    started = time.monotonic()
    backend = calibration.warm_up()
    compiled = stacking.warm_up()
    photometry_compiled = aperture.warm_up()
    took = time.monotonic() - started
    stacking_kernels = "compiled" if compiled else "not used (no numba)"
    photometry_kernels = "compiled" if photometry_compiled else "not used (no numba)"
    print(
        f"obsy-imaging warm-up: calibration backend {backend.name}, stacking kernels {stacking_kernels}, "
        f"photometry kernels {photometry_kernels}, {took:.1f} s"
    )
    return 0


def report_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="obsy-imaging report",
        description="Write (and print) the AAVSO Extended report of one night and target from the stored magnitudes.",
    )
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--night", required=True, help="the observing night, YYYY-MM-DD (the evening's date)")
    parser.add_argument("--target", required=True, help="the target's name (case and blanks ignored)")
    parser.add_argument("--print", dest="print_only", action="store_true", help="print the report, write no file")
    args = parser.parse_args(argv[1:])
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-imaging"), file=sys.stderr)
        return EXIT_USAGE
    settings = config.imaging
    if not settings.photometry.observer_code:
        print("obsy-imaging report: set imaging.photometry.observer_code (your AAVSO observer code)", file=sys.stderr)
        return EXIT_USAGE
    from obsy_imaging.photometer import Photometer
    from obsy_imaging.photometry.aavso import ReportError

    engine = database.make_engine(settings.database(config.data_dir))
    database.upgrade(engine)
    repository = Repository(engine, settings.repository_dir(config.data_dir), settings.quarantine_dir(config.data_dir))
    photometer = Photometer(repository, settings.photometry, config.site, config.data_dir)
    try:
        report = photometer.report(args.night, args.target) if args.print_only else None
        if report is None:
            report = photometer.write_report(args.night, args.target)
    except ReportError as exc:
        print(f"obsy-imaging report: {exc}", file=sys.stderr)
        return EXIT_SOME_FAILED
    finally:
        engine.dispose()
    for problem in report.left_out:
        print(f"obsy-imaging report: left out: {problem}", file=sys.stderr)
    if report.text is None:
        print(f"obsy-imaging report: no magnitude of {args.target} on the night of {args.night}", file=sys.stderr)
        return EXIT_SOME_FAILED
    sys.stdout.write(report.text)
    if not args.print_only:
        print(f"obsy-imaging report: {report.observations} observation(s) in {report.path}", file=sys.stderr)
    return 0


COMMANDS = {
    "import": import_command,
    "calibrate": calibrate_command,
    "warm-up": warm_up_command,
    "report": report_command,
}
