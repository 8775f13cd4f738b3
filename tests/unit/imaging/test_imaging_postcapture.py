"""The post-capture script's input: KStars 3.7+'s JSON document on standard input (its shape from
Ekos's ``CameraProcess::generateScriptInput``), nothing at all (KStars 3.6 keeps the pipe open and
writes nothing), and what is wrong with bad input, named."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from obsy_imaging.ingest.postcapture import PostCaptureError, frame_path, read_input
from tests.support.kstars import post_capture_document


def kstars_document(filename: object = "/home/obs/frames/M_42/Light/Red/M_42_Light_Red_060_secs_0001.fits") -> dict:
    return post_capture_document(filename)


def test_the_frame_is_named_by_kstars_document() -> None:
    text = json.dumps(kstars_document(), separators=(",", ":"))
    assert str(frame_path(text)) == "/home/obs/frames/M_42/Light/Red/M_42_Light_Red_060_secs_0001.fits"
    minimal = {"fits": {"filename": "/x/a.fits"}}  # no job, no progress, no script_type: still a frame
    assert str(frame_path(json.dumps(minimal))) == "/x/a.fits"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "{not json",
            "standard input is not JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        ("[1, 2]", "standard input holds a JSON list, not an object"),
        (json.dumps({**kstars_document(), "script_type": "PRE_JOB"}), "\"script_type\" is 'PRE_JOB'"),
        (json.dumps({"script_type": "POST_CAPTURE", "job": {}}), 'no "fits" object'),
        (json.dumps({"fits": "a.fits"}), '"fits" is a JSON str, not an object'),
        (json.dumps(kstars_document(None)), '"fits.filename" is missing'),
        (json.dumps(kstars_document(42)), '"fits.filename" is 42, not a file name'),
        (json.dumps(kstars_document("frames/a.fits")), "\"fits.filename\" 'frames/a.fits' is not an absolute path"),
    ],
)
def test_bad_input_is_named(text: str, named: str) -> None:
    with pytest.raises(PostCaptureError) as error:
        frame_path(text)
    assert str(error.value).startswith(named)


def test_standard_input_is_read_when_written_and_left_alone_when_silent() -> None:
    # KStars 3.7+: written at once and closed.
    read_end, write_end = os.pipe()
    os.write(write_end, json.dumps(kstars_document()).encode())
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        assert frame_path(read_input(stream, wait=2.0)).name.endswith("0001.fits")

    # KStars 3.6: the pipe stays open and nothing comes: no input, after the wait (not blocked on it).
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(read_end) as stream:
            started = time.monotonic()
            assert read_input(stream, wait=0.3) is None
            assert time.monotonic() - started < 2.0
    finally:
        os.close(write_end)

    # Written in pieces (a large header): all of it, until it is closed.
    read_end, write_end = os.pipe()
    text = json.dumps(kstars_document()).encode()

    def slowly() -> None:
        for start in range(0, len(text), 50):
            os.write(write_end, text[start : start + 50])
            time.sleep(0.01)
        os.close(write_end)

    writer = threading.Thread(target=slowly)
    writer.start()
    with os.fdopen(read_end) as stream:
        assert json.loads(read_input(stream, wait=2.0)) == json.loads(text)
    writer.join()

    # An empty input (/dev/null) is no input.
    with open(os.devnull) as stream:
        assert read_input(stream, wait=0.3) is None
