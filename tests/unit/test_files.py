"""Replacing a file atomically (obsy.files): all of the new content or the old file, whole; nothing left behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

from obsy.files import atomic_replacement, write_atomic


def test_write_atomic_replaces_the_content_with_bytes_or_text(tmp_path):
    target = tmp_path / "state.json"
    write_atomic(target, b"old")
    write_atomic(target, "nouveau ciel \u2601")
    assert target.read_text(encoding="utf-8") == "nouveau ciel \u2601"
    write_atomic(target, b"\x00\xff", durable=True)
    assert target.read_bytes() == b"\x00\xff"
    assert os.listdir(tmp_path) == ["state.json"]


def test_the_temporary_file_is_hidden_beside_the_target(tmp_path):
    target = tmp_path / "stack.fits"
    with atomic_replacement(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".stack.fits.")
        assert temporary.exists() and temporary.stat().st_size == 0
        assert not target.exists()  # nothing shows before the block ends
        temporary.write_bytes(b"data")
    assert target.read_bytes() == b"data" and os.listdir(tmp_path) == ["stack.fits"]


def test_a_writer_that_fails_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    target = tmp_path / "report.txt"
    target.write_bytes(b"the old report")
    with pytest.raises(RuntimeError, match="half way"), atomic_replacement(target) as temporary:
        temporary.write_bytes(b"the new rep")
        raise RuntimeError("half way")
    assert target.read_bytes() == b"the old report"
    assert os.listdir(tmp_path) == ["report.txt"]


def test_a_writer_may_delete_and_recreate_the_temporary_file(tmp_path):
    """What astropy's ``writeto(..., overwrite=True)`` does with a file that is not empty."""
    target = tmp_path / "x.fits"
    with atomic_replacement(target) as temporary:
        temporary.write_bytes(b"first try")
        temporary.unlink()
        temporary.write_bytes(b"second try")
    assert target.read_bytes() == b"second try"


def test_a_write_the_file_system_refuses_leaves_the_old_file_whole(tmp_path):
    """A real failed write: the process may not write files over 4 kB (as a full disk refuses)."""
    target = tmp_path / "picture.jpg"
    target.write_bytes(b"the old picture")
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from obsy.files import write_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_atomic({str(target)!r}, b"x" * 100_000, durable=True)
        except OSError as error:
            sys.exit(f"refused: {{error.strerror}}")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "refused: File too large" in done.stderr, done.stderr
    assert target.read_bytes() == b"the old picture"
    assert os.listdir(tmp_path) == ["picture.jpg"]


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_has_the_permissions_a_plain_open_gives(tmp_path, umask, expected):
    """Not mkstemp's 0o600: the web server and the other services read what a service writes."""
    script = textwrap.dedent(
        f"""
        import os
        from obsy.files import write_atomic
        os.umask({umask})
        write_atomic({str(tmp_path / "new.jpg")!r}, b"x")
        open({str(tmp_path / "plain.jpg")!r}, "wb").close()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("new.jpg", "plain.jpg")}
    assert modes == {"new.jpg": expected, "plain.jpg": expected}


def test_a_reader_sees_one_whole_version_or_the_other(tmp_path):
    target = tmp_path / "cloud_map.png"
    versions = [bytes([n]) * 200_000 for n in range(8)]
    write_atomic(target, versions[0])
    seen: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(20):
            for version in versions:
                write_atomic(target, version)
    finally:
        stop.set()
        reader.join()
    print(f"{len(seen)} reads while writing")
    assert seen and all(content in versions for content in seen)
