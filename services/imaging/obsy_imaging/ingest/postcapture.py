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
"""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path
from typing import IO, Any

#: More than any header KStars writes; a bigger input is not a post-capture document.
MAX_INPUT_BYTES = 4 * 1024 * 1024


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
