"""What a capture program hands its post-capture script: the frame it has just saved.

KStars 3.7 and later (Ekos capture, ``CameraProcess::generateScriptInput``) start the script with
no arguments, write one compact JSON object to its standard input and close it::

    {"script_type": "POST_CAPTURE",
     "job": {"filter": "Red", "exposure": 60, "type": "Light", "binning_x": 1, "binning_y": 1,
             "target_name": "M 42"},
     "fits": {"filename": "/home/obs/frames/M_42/Light/Red/M_42_Light_Red_060_secs_0001.fits",
              "headers": {"OBJECT": "M 42", "EXPTIME": 60, ...}},
     "progress": {"completed": 1, "total": 20}}

(``job`` only while a job is active, ``fits`` only when Ekos holds the image.) KStars 3.6 (Debian's)
writes nothing and keeps standard input open, so it is read only when something arrives within a
short wait: a script that blocked on it would stop the capture sequence, which waits for it.

``obsy-imaging post-capture`` (:func:`post_capture_command`) hands the frame to the running service
over the bus. Ekos waits for the script before the next exposure, so this module imports only the
bus, the config and the messages (about a second); the repository's modules are imported only when
the service does not answer and the frame is registered here (docs/imaging.md, "Post-capture script").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

from obsy.bus import Bus
from obsy.config import ConfigError, ObsyConfig, load_config
from obsy.messages import CommandOrigin, ImagingIngestCommand, ImagingIngestState

#: More than any header KStars writes; a bigger input is not a post-capture document.
MAX_INPUT_BYTES = 4 * 1024 * 1024
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_TAKEN = 3
#: Its bus connection's name: its Last Will lies in the imaging service's own tree.
POST_CAPTURE_BUS_NAME = "imaging/post-capture"
#: The outcomes after which the frame is safe: in the repository, or waiting in its folder for space.
TAKEN = {"registered", "duplicate", "known", "storage_full", "scanning"}


class PostCaptureError(ValueError):
    """The input is not the post-capture document of a saved frame; the message says what is wrong."""


def read_input(stream: IO[Any], wait: float) -> str | None:
    """Everything on ``stream`` if something arrives within ``wait`` seconds, until it is closed; else None.

    None for a terminal, an empty input (``/dev/null``) and an input nobody writes to (KStars 3.6).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if os.isatty(fd):
        return None
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic() if not chunks else wait
        ready, _, _ = select.select([fd], [], [], max(left, 0.0))
        if not ready:
            if not chunks:
                return None  # nothing written: KStars 3.6 keeps the pipe open and silent
            raise PostCaptureError(f"standard input stopped for {wait:g} s without being closed")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_INPUT_BYTES:
            raise PostCaptureError(f"standard input is larger than {MAX_INPUT_BYTES // 1024 // 1024} MiB")
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return text if text.strip() else None


def frame_path(text: str) -> Path:
    """The saved frame's path in KStars's post-capture document; :class:`PostCaptureError` naming the fault."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PostCaptureError(
            f"standard input is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(document, dict):
        raise PostCaptureError(f"standard input holds a JSON {type(document).__name__}, not an object")
    script_type = document.get("script_type")
    if script_type is not None and script_type != "POST_CAPTURE":
        raise PostCaptureError(
            f'"script_type" is {script_type!r}: set obsy-imaging post-capture as the post-capture script only'
            " (POST_CAPTURE)"
        )
    fits = document.get("fits")
    if fits is None:
        raise PostCaptureError('no "fits" object: KStars names the saved frame in "fits": {"filename": ...}')
    if not isinstance(fits, dict):
        raise PostCaptureError(f'"fits" is a JSON {type(fits).__name__}, not an object')
    filename = fits.get("filename")
    if not isinstance(filename, str) or not filename.strip():
        found = "missing" if filename is None else f"{filename!r}, not a file name"
        raise PostCaptureError(f'"fits.filename" is {found}')
    path = Path(filename)
    if not path.is_absolute():
        raise PostCaptureError(f'"fits.filename" {filename!r} is not an absolute path')
    return path


def post_capture_command(argv: list[str]) -> int:  # noqa: PLR0911 - one exit status per outcome
    parser = argparse.ArgumentParser(
        prog="obsy-imaging post-capture",
        description="Post-capture script: hand the frame the capture program saved to the imaging service.",
    )
    parser.add_argument("file", nargs="?", type=Path, help="the frame (default: the JSON KStars 3.7+ writes on stdin)")
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the service's answer")
    parser.add_argument("--stdin-wait", type=float, default=0.5, help="seconds to wait for JSON on standard input")
    args = parser.parse_args(argv[1:])
    path: Path | None = args.file
    try:
        if path is None:
            text = read_input(sys.stdin, args.stdin_wait)
            path = None if text is None else frame_path(text)
    except PostCaptureError as exc:
        print(f"obsy-imaging post-capture: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if path is not None:
        path = path.absolute()
        if not path.is_file():
            print(f"obsy-imaging post-capture: {path} is not a file", file=sys.stderr)
            return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-imaging"), file=sys.stderr)
        return EXIT_USAGE
    answer = _ask_service(config, path, args.timeout)
    if answer is not None:
        where = f" as frame {answer.frame_id}" if answer.frame_id is not None else ""
        reason = f": {answer.reason}" if answer.reason else ""
        print(f"obsy-imaging post-capture: {path or 'capture folders'}: {answer.outcome}{where}{reason}")
        if answer.outcome in TAKEN:
            return 0
        return EXIT_USAGE if answer.outcome == "rejected" else EXIT_SOME_FAILED
    if path is None:
        print(
            "obsy-imaging post-capture: the imaging service did not answer; the frames stay in the capture folders"
            " and are taken when it starts",
            file=sys.stderr,
        )
        return EXIT_NOT_TAKEN
    print(f"obsy-imaging post-capture: the imaging service did not answer in {args.timeout:g} s; registering directly")
    return _register_directly(config, path)


def _ask_service(config: ObsyConfig, path: Path | None, timeout: float) -> ImagingIngestState | None:
    """Hand ``path`` to the running service over the bus; its answer, or None without one."""
    command = ImagingIngestCommand(
        path=None if path is None else str(path), request_id=uuid.uuid4().hex, origin=CommandOrigin.command_line()
    )
    answers: list[ImagingIngestState] = []
    answered = threading.Event()

    def on_answer(_topic: str, answer: ImagingIngestState) -> None:
        if answer.request_id == command.request_id:
            answers.append(answer)
            answered.set()

    bus = Bus(config.broker, POST_CAPTURE_BUS_NAME)
    # Subscribed on connecting, before the command goes out on the same connection: the answer cannot be missed.
    bus.subscribe(bus.topics.imaging_ingest_state, on_answer, ImagingIngestState)
    try:
        if not bus.start(wait=min(timeout, 5.0)):
            return None
        bus.publish(bus.topics.imaging_ingest_command, command, qos=1)
        answered.wait(timeout)
    finally:
        bus.stop()
    return answers[0] if answers else None


def _register_directly(config: ObsyConfig, path: Path) -> int:
    """The frame into the repository (and graded) here, as ``import --grade`` takes it."""
    from obsy_imaging.cli import open_repository
    from obsy_imaging.grading.grader import Grader
    from obsy_imaging.ingest.ingestor import Ingestor, Outcome

    logging.basicConfig(level=logging.ERROR, format="obsy-imaging post-capture: %(message)s")
    engine, repository = open_repository(config)
    try:
        result = Ingestor(repository, config.site).ingest(path, "post_capture", final=True)
        frame = result.frame if result.outcome is Outcome.REGISTERED else None
        if frame is not None and frame.frame_type == "light" and config.imaging.grading.enabled:
            try:
                Grader(repository, config.imaging.grading).grade(frame)
            except Exception as exc:  # an unmeasurable frame stays registered, ungraded
                print(f"obsy-imaging post-capture: cannot grade {path}: {exc}", file=sys.stderr)
    finally:
        engine.dispose()
    where = f" as frame {result.frame.id}" if result.frame is not None else ""
    reason = f": {result.reason}" if result.reason else ""
    print(f"obsy-imaging post-capture: {path}: {result.outcome.value}{where}{reason}")
    if result.outcome.value in TAKEN:
        return 0
    return EXIT_NOT_TAKEN if result.outcome is Outcome.WAITING else EXIT_SOME_FAILED
