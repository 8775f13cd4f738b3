"""``obsy-imaging import DIR``: bring an existing archive of frames into the repository.

    obsy-imaging import /data/astro/2023          every FITS under the folder, recursively
    obsy-imaging import --no-progress DIR         one line at the end (for scripts and logs)
    obsy-imaging import --grade DIR               grade the lights too (slower: every frame's pixels are read)

It can run while the service runs (the database keeps one record per frame) and may be
interrupted and run again: it goes on where it stopped. Exit status 0 when every file was taken
or was known; 1 when some were quarantined or the disk filled; 2 for a configuration problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from obsy.config import ConfigError, load_config
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


COMMANDS = {"import": import_command}
