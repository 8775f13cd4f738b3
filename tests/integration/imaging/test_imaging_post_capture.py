"""``obsy-imaging post-capture`` as KStars runs it, against the running service on a real broker:
the JSON document KStars 3.7+ writes on standard input, nothing at all (KStars 3.6), a file named on
the command line, bad input, and no service to answer. Whatever route names a frame first, it is
registered once (by path with the folder watch, by content hash with any copy)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from obsy.config import load_config
from obsy_imaging.repository import database
from obsy_imaging.repository.models import Frame, Grade
from tests.integration.imaging.test_imaging_service import Running, frames, now_iso, wait_online
from tests.support.configs import write_config
from tests.support.imaging_frames import star_field, write_frame
from tests.support.kstars import post_capture_document
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/#"])
    yield w
    w.close()


def kstars_json(path: Path) -> bytes:
    """What KStars 3.7+ writes on the script's standard input after saving ``path``."""
    return json.dumps(post_capture_document(str(path)), separators=(",", ":")).encode()


def post_capture(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """The script as KStars 3.7+ starts it: no arguments (unless given), the document on stdin, closed."""
    return subprocess.run(
        [sys.executable, "-m", "obsy_imaging", "post-capture", "-c", str(config), *args],
        input=stdin.decode() if stdin is not None else None,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def frames_in(run: Running) -> list[Frame]:
    engine = database.make_engine(run.config.imaging.database(run.config.data_dir))
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(Frame.source_path, Frame.route, Frame.sha256)).all())
    finally:
        engine.dispose()


def test_kstars_json_on_stdin_hands_the_frame_to_the_service_once(tmp_path, mosquitto, watcher):
    with Running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        # A frame outside the capture folders: only the script names it.
        elsewhere = write_frame(
            tmp_path / "elsewhere" / "Light_M42_001.fits", DATE_OBS=now_iso(), data=star_field(seed=3)
        )
        done = post_capture(run.config_path, stdin=kstars_json(elsewhere))
        assert done.returncode == 0, done.stderr
        assert "registered as frame" in done.stdout
        [frame] = frames(watcher)
        assert frame.source == str(elsewhere) and frame.accepted is True  # graded as the watch's frames are

        # A frame in a capture folder: the folder watch and the script both name it; it is taken once.
        inside = write_frame(run.capture / "M42" / "Light_M42_002.fits", DATE_OBS=now_iso(), data=star_field(seed=4))
        done = post_capture(run.config_path, stdin=kstars_json(inside))
        assert done.returncode == 0, done.stderr
        assert any(word in done.stdout for word in ("registered", "known", "duplicate")), done.stdout

        # The same bytes as the first under another name in the capture folder: a copy, not a frame.
        shutil.copy(elsewhere, run.capture / "M42" / "copy_of_001.fits")
        watcher.wait_for(lambda _: len(frames(watcher)) >= 2, timeout=10)
        time.sleep(2.0)
        registered = frames_in(run)
    assert sorted(source for source, _, _ in registered) == sorted([str(elsewhere), str(inside)])
    assert len(frames(watcher)) == 2
    routes = {source: route for source, route, _ in registered}
    assert routes[str(elsewhere)] == "post_capture" and routes[str(inside)] in ("watch", "post_capture")


def test_kstars_3_6_passes_nothing_and_bad_input_is_named_without_losing_the_frame(tmp_path, mosquitto, watcher):
    with Running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        written = write_frame(run.capture / "M42" / "Light_M42_003.fits", DATE_OBS=now_iso(), data=star_field(seed=5))
        # KStars 3.6: no argument, and a standard input it keeps open and never writes: not waited on.
        script = subprocess.Popen(
            [sys.executable, "-m", "obsy_imaging", "post-capture", "-c", str(run.config_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = _wait_open(script)
        finally:
            script.stdin.close()
        assert script.returncode == 0, err
        assert "capture folders: scanning" in out

        # Bad JSON: named, exit status 2; the frame is in the repository all the same (the folder watch).
        done = post_capture(run.config_path, stdin=b'{"script_type": "POST_CAPTURE", "fits": {"filename": 7}}')
        assert done.returncode == 2
        assert 'post-capture: "fits.filename" is 7, not a file name' in done.stderr
        done = post_capture(run.config_path, stdin=b"<xml/>")
        assert done.returncode == 2 and "standard input is not JSON: Expecting value at line 1 column 1" in done.stderr
        # A file that is not a frame's name: refused by the service with the reason.
        text_file = tmp_path / "notes.txt"
        text_file.write_text("clear skies")
        done = post_capture(run.config_path, str(text_file))
        assert done.returncode == 2 and "notes.txt does not end in one of" in done.stdout
        watcher.wait_for(lambda _: len(frames(watcher)) == 1, timeout=10)
    assert [source for source, _, _ in frames_in(run)] == [str(written)]


def _wait_open(script: subprocess.Popen) -> tuple[str, str]:
    """Its output once it exits, with its standard input still open (as KStars 3.6 leaves it)."""
    deadline = time.monotonic() + 120
    while script.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if script.poll() is None:
        script.kill()
        pytest.fail("post-capture waited on a standard input nobody writes to")
    return script.stdout.read(), script.stderr.read()


def test_without_a_service_the_frame_is_registered_directly_and_not_twice_later(tmp_path, mosquitto, watcher):
    capture = tmp_path / "capture"
    capture.mkdir()
    settings = {"capture_folders": [str(capture)], "settle_time": 0.3, "heartbeat_interval": 1}
    config_path = write_config(tmp_path, mosquitto, imaging=settings, run_dir=str(tmp_path))
    config = load_config(config_path)
    written = write_frame(capture / "M42" / "Light_M42_004.fits", DATE_OBS=now_iso(), data=star_field(seed=6))
    done = post_capture(config_path, "--timeout", "2", stdin=kstars_json(written))
    assert done.returncode == 0, done.stderr
    assert "did not answer in 2 s; registering directly" in done.stdout and "registered as frame" in done.stdout
    engine = database.make_engine(config.imaging.database(config.data_dir))
    try:
        with engine.connect() as connection:
            assert connection.execute(select(Frame.route)).scalars().all() == ["post_capture"]
            assert connection.execute(select(Grade.accepted)).scalars().all() == [True]
    finally:
        engine.dispose()

    # The service starts and looks at its folders: the frame is known, not registered again.
    with Running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        time.sleep(2.0)
        assert frames(watcher) == []
        engine = database.make_engine(run.config.imaging.database(run.config.data_dir))
        try:
            with engine.connect() as connection:
                assert connection.execute(select(func.count()).select_from(Frame)).scalar() == 1
        finally:
            engine.dispose()
