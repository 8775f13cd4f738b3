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

``masters``: the calibration library's masters, and pins (docs/imaging-calibration.md, "Pinned masters"):

    obsy-imaging masters                          list the masters in use, pinned ones marked
    obsy-imaging masters pin dark-1a2b3c          choose this master for its group over newer ones
    obsy-imaging masters unpin dark-1a2b3c        the newest (nearest, for flats) matching master again

A pin changes which masters the lights of its group get: the service (or the next
``obsy-imaging calibrate``) calibrates the lights of the last ``recalibrate_nights`` nights
again. Exit status 0, 1 for an unknown master (named), 2 for a configuration problem.

``report``: the AAVSO Extended report of one night and variable-star target, from the magnitudes
the service stored (docs/imaging-photometry.md):

    obsy-imaging report --night 2026-10-15 --target "SS Cyg"       write it (as the service does) and print it
    obsy-imaging report --night 2026-10-15 --target sscyg --print  print it only

Exit status 0 when a report was made, 1 when the night has no magnitude of that target, 2 for a
configuration or usage problem.

``post-capture``: the capture program's post-capture script: hand the frame it has just saved to
the running service (docs/imaging.md, "Post-capture script"):

    obsy-imaging post-capture                     KStars 3.7+: the JSON document on standard input names it;
                                                  KStars 3.6 (nothing): the capture folders are looked at again
    obsy-imaging post-capture FILE                that file (any other capture program)

The frame joins the folder watch's queue, so it is taken once whichever route names it first, and
the content hash keeps copies out. Without an answer from the service (not running, no broker) the
frame is registered (and graded) directly in the repository. Exit status 0 when the frame is in the
repository (or waits there for disk space, or the folders are being looked at), 1 when it was
quarantined or is gone, 2 for bad input (the JSON, the file name) or configuration, 3 when neither
the service nor the repository could take it.

``transit``: reduce and fit one planet's transit night again now, as the service does once the
window is over, store it, write its report, plot and points, and print the result
(docs/imaging-transits.md, "In the service"):

    obsy-imaging transit 2026-10-15 "WASP-12 b"     the planet's pl_name in the ephemeris file

Exit status 0 when the night was fitted, 1 when it was not (the reason is printed and stored),
2 for a configuration or usage problem.

``stack-project``: the project stack of a target, every night's accepted, calibrated lights of a
filter registered onto one reference and stacked, then the colour images its filters allow
(docs/imaging-stacking.md, "The project stack"):

    obsy-imaging stack-project "M 42"               every filter of the target, then its colour images
    obsy-imaging stack-project "M 42" --filter Ha   that filter's stack only (and the colour images)
    obsy-imaging stack-project "M 42" --colour-only the colour images from the stacks there are

Exit status 0 when every stack (and colour image) was made, 1 when one was not (the reason is
printed), 2 for a configuration or usage problem.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

from sqlalchemy import Engine

from obsy.config import ConfigError, ObsyConfig, load_config
from obsy_imaging.config import scheduler_transits
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


def config_of(args: argparse.Namespace) -> ObsyConfig | None:
    """The config file ``--config`` names (or the default one); None after saying what is wrong with it."""
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-imaging"), file=sys.stderr)
        return None


def open_repository(config: ObsyConfig) -> tuple[Engine, Repository]:
    """The imaging repository of ``config``, its schema brought up to date; dispose of the engine after."""
    settings = config.imaging
    engine = database.make_engine(settings.database(config.data_dir))
    database.upgrade(engine)
    repository = Repository(engine, settings.repository_dir(config.data_dir), settings.quarantine_dir(config.data_dir))
    return engine, repository


def import_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="obsy-imaging import", description="Import an archive of frames into the imaging repository."
    )
    parser.add_argument("folder", type=Path, help="folder with FITS frames (searched recursively)")
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, only the summary")
    parser.add_argument("--grade", action="store_true", help="grade the lights as the service does (imaging.grading)")
    args = parser.parse_args(argv[1:])
    config = config_of(args)
    if config is None:
        return EXIT_USAGE
    if not args.folder.is_dir():
        print(f"obsy-imaging import: {args.folder} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    # The progress bar names each quarantined file; the log would say it twice.
    logging.basicConfig(level=logging.ERROR, format="obsy-imaging import: %(message)s")
    settings = config.imaging
    engine, repository = open_repository(config)
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
    config = config_of(args)
    if config is None:
        return EXIT_USAGE
    if args.min_frames is not None and args.min_frames < 1:
        print("obsy-imaging calibrate: --min-frames must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.ERROR, format="obsy-imaging calibrate: %(message)s")
    from obsy_imaging.calibrator import Calibrator, PassResult  # numba, scipy, OpenCV: not for the other commands

    settings = config.imaging
    engine, repository = open_repository(config)
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
            calibrator.recalibrate(result)
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
    for done in result.recalibrated:
        before = ", ".join(done.replaced.values()) or "none"
        print(f"  calibrated again: {done.frame.path} with {', '.join(done.masters.values())} (was {before})")
    for reason in counts.waiting_for:
        print(f"  waiting: {reason}")
    return EXIT_SOME_FAILED if result.problems else 0


def masters_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="obsy-imaging masters", description="List the calibration library's masters; pin or unpin one."
    )
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("action", nargs="?", choices=["list", "pin", "unpin"], default="list")
    parser.add_argument("master", nargs="?", metavar="ID", help="pin, unpin: the master's id (or its number)")
    args = parser.parse_args(argv[1:])
    if args.action != "list" and not args.master:
        parser.error(f"{args.action} needs the master's id")
    config = config_of(args)
    if config is None:
        return EXIT_USAGE
    from obsy_imaging.calibrator import Calibrator, PinError

    settings = config.imaging
    engine, repository = open_repository(config)
    calibrator = Calibrator(repository, settings.calibration)
    try:
        if args.action == "pin":
            change = calibrator.pin(args.master, by="obsy-imaging masters (command line)")
            print(f"pinned {change.master.kind} {change.master.master_id}: {change.master.path}")
            for other in change.unpinned:
                print(f"unpinned {other} (pinned for the same group before)")
        elif args.action == "unpin":
            change = calibrator.unpin(args.master)
            print(f"unpinned {change.master.kind} {change.master.master_id}")
        else:
            for master in calibrator.library():
                mark = " pinned" if master.pinned_at is not None else ""
                setting = f"{master.exposure_s:g} s" + (f" {master.filter}" if master.filter else "")
                print(f"{master.master_id:<24} {master.kind:<8} {master.camera} {setting}{mark}")
    except PinError as exc:
        print(f"obsy-imaging masters: {exc}", file=sys.stderr)
        return EXIT_SOME_FAILED
    finally:
        engine.dispose()
    return 0


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
    config = config_of(args)
    if config is None:
        return EXIT_USAGE
    settings = config.imaging
    if not settings.photometry.observer_code:
        print("obsy-imaging report: set imaging.photometry.observer_code (your AAVSO observer code)", file=sys.stderr)
        return EXIT_USAGE
    from obsy_imaging.photometer import Photometer
    from obsy_imaging.photometry.aavso import ReportError

    engine, repository = open_repository(config)
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


def transit_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="obsy-imaging transit",
        description="Reduce and fit one planet's transit night now, store it and write its report and plot.",
    )
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("night", help="the observing night, YYYY-MM-DD (the evening's date)")
    parser.add_argument("planet", help="the planet's name in the ephemeris file (pl_name)")
    args = parser.parse_args(argv[1:])
    config = config_of(args)
    if config is None:
        return EXIT_USAGE
    settings = config.imaging
    if not settings.transits.observer_code:
        print("obsy-imaging transit: set imaging.transits.observer_code (your AAVSO observer code)", file=sys.stderr)
        return EXIT_USAGE
    if settings.transits.ephemeris_path(scheduler_transits(config)) is None:
        print(
            "obsy-imaging transit: set imaging.transits.ephemeris_file (or scheduler.transits.ephemeris_file)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.night):
        print(f"obsy-imaging transit: {args.night!r} is not a night (YYYY-MM-DD)", file=sys.stderr)
        return EXIT_USAGE
    from obsy_imaging.transiter import FITTED, Transiter

    engine, repository = open_repository(config)
    try:
        done = Transiter(repository, settings.transits, scheduler_transits(config), config.site).process(
            args.night, args.planet
        )
    finally:
        engine.dispose()
    row = done.row
    if row.status != FITTED:
        print(f"obsy-imaging transit: {row.planet} on {row.night}: no fit: {row.reason}", file=sys.stderr)
        return EXIT_SOME_FAILED
    minutes = 1440.0
    print(f"{row.planet} on the night of {row.night} (epoch {row.epoch}, filter {row.filter})")
    print(f"  Tc      {row.tc:.5f} ± {row.tc_err:.5f} BJD_TDB")
    print(f"  O−C     {row.o_minus_c * minutes:+.2f} ± {row.o_minus_c_err * minutes:.2f} min")
    print(f"  depth   {100 * row.depth:.3f} ± {100 * row.depth_err:.3f} %")
    print(f"  Rp/R*   {row.rp_rs:.4f} ± {row.rp_rs_err:.4f}")
    print(f"  a/R*    {row.a_rs:.2f} ± {row.a_rs_err:.2f}   inc {row.inc:.2f} ± {row.inc_err:.2f}°")
    print(f"  T14     {24 * row.duration:.3f} ± {24 * row.duration_err:.3f} h" + (
        f"   partial ({row.contact} only)" if row.partial else ""
    ))  # fmt: skip
    print(
        f"  points  {row.points_used} used, {row.points_rejected} left out, ensemble of {row.ensemble_size} stars,"
        f" χ²_red {row.chi2_reduced:.2f}, β {row.red_noise_beta:.2f}"
    )
    for kind, path in (("report", row.report_path), ("plot", row.plot_path), ("points", row.points_path)):
        print(f"  {kind:7} {path or 'not written'}")
    for problem in done.problems:
        print(f"obsy-imaging transit: {problem}", file=sys.stderr)
    return 0


def stack_project_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="obsy-imaging stack-project",
        description="Stack a target's lights of every night per filter, then make its colour images.",
    )
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("target", help="the target's name as the lights' OBJECT header has it")
    parser.add_argument("--filter", dest="filter_name", help="only this filter's stack (default: every filter)")
    parser.add_argument("--colour-only", action="store_true", help="no stacking: the colour images only")
    parser.add_argument("--white-balance", choices=["stars", "average", "none"], default="stars")
    parser.add_argument("--stretch", choices=["stf", "arcsinh"], default="stf", help="for the colour JPEGs")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")
    args = parser.parse_args(argv[1:])
    config = config_of(args)
    if config is None:
        return EXIT_USAGE
    from obsy_imaging.colour import ColourError
    from obsy_imaging.projectstack import ProjectBuilt, ProjectStacker

    engine, repository = open_repository(config)
    failed = False
    try:
        stacker = ProjectStacker(repository, config.imaging.project_stack)
        filters = [args.filter_name] if args.filter_name else stacker.filters(args.target)
        if not args.colour_only:
            if not filters:
                print(f"obsy-imaging stack-project: no accepted, calibrated lights of {args.target!r}", file=sys.stderr)
                return EXIT_SOME_FAILED
            for filter_name in filters:
                progress = None if args.no_progress else _progress_printer(args.target, filter_name)
                done = stacker.build(args.target, filter_name, progress)
                for text in done.left_out:
                    print(f"obsy-imaging stack-project: left out {text}", file=sys.stderr)
                if isinstance(done, ProjectBuilt):
                    row = done.row
                    print(
                        f"{args.target} / {filter_name or 'no filter'}: {row.frame_count} lights of {len(row.nights)}"
                        f" night(s), {row.integration_s / 3600:.2f} h, {100 * row.rejected_fraction:.2f} % rejected,"
                        f" {row.seconds:.1f} s: {row.path}"
                    )
                else:
                    failed = True
                    print(f"obsy-imaging stack-project: {args.target} / {filter_name}: {done.reason}", file=sys.stderr)
        for palette in stacker.palettes(args.target):
            try:
                made = stacker.colour(args.target, palette, white=args.white_balance, stretch=args.stretch)
            except ColourError as exc:
                failed = True
                print(f"obsy-imaging stack-project: no {palette} image: {exc}", file=sys.stderr)
                continue
            balance = ", ".join(f"{k:.3f}" for k in made.white_balance)
            print(f"{args.target} / {palette}: {made.path} (white balance {balance})")
    finally:
        engine.dispose()
    return EXIT_SOME_FAILED if failed else 0


def _progress_printer(target: str, filter_name: str | None, interval: float = 5.0):
    """progress(phase, done, total) as a line every ``interval`` seconds and at each phase's end."""
    last = [0.0]

    def show(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < interval:
            return
        last[0] = now
        print(f"{target} / {filter_name or 'no filter'}: {phase} {done}/{total}", file=sys.stderr, flush=True)

    return show
