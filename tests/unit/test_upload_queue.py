"""The site's upload queue on disk: survives a restart, oldest first, bounded, one entry per remote path."""

from __future__ import annotations

import pytest

from obsy.upload import QueueFullError, UploadQueue
from obsy.upload.protocol import ContentRange, ProtocolError, parse_checksum


def test_entries_survive_a_restart_oldest_first(tmp_path):
    files = [tmp_path / f"{name}.jpg" for name in ("a", "b", "c")]
    queue = UploadQueue(tmp_path / "queue")
    for path in files:
        path.write_bytes(b"x")
        queue.put(path, f"allsky/n/{path.name}")
    again = UploadQueue(tmp_path / "queue")  # a restart of the service
    assert [item.remote for item in again.items()] == ["allsky/n/a.jpg", "allsky/n/b.jpg", "allsky/n/c.jpg"]
    first = again.peek(timeout=0)
    assert first is not None and first.path == files[0].resolve()
    again.done(first)
    assert [item.remote for item in UploadQueue(tmp_path / "queue").items()] == ["allsky/n/b.jpg", "allsky/n/c.jpg"]


def test_a_full_queue_refuses_new_entries_and_keeps_the_ones_it_holds(tmp_path):
    queue = UploadQueue(tmp_path / "queue", max_files=2)
    queue.put(tmp_path / "a.jpg", "a.jpg")
    queue.put(tmp_path / "b.jpg", "b.jpg")
    queue.put(tmp_path / "a.jpg", "a.jpg")  # the same file again: still one entry
    with pytest.raises(QueueFullError, match=r"c\.jpg not queued"):
        queue.put(tmp_path / "c.jpg", "c.jpg")
    assert [item.remote for item in queue.items()] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize("remote", ["/etc/passwd", "../x.jpg", "a/../../x.jpg", "a/.hidden.jpg", ""])
def test_a_remote_path_must_stay_inside(tmp_path, remote):
    with pytest.raises(ValueError, match="remote path"):
        UploadQueue(tmp_path / "queue").put(tmp_path / "a.jpg", remote)


def test_a_damaged_entry_is_set_aside_not_fatal(tmp_path):
    queue = UploadQueue(tmp_path / "queue")
    (tmp_path / "queue" / "00000000000000000001-x.json").write_text("{not json")
    queue.put(tmp_path / "a.jpg", "a.jpg")
    assert [item.remote for item in queue.items()] == ["a.jpg"]
    assert (tmp_path / "queue" / "00000000000000000001-x.damaged").exists()


def test_protocol_headers_are_checked_and_named():
    assert ContentRange.parse("bytes 0-9/10") == ContentRange(0, 9, 10)
    assert ContentRange(5, 9, 10).header() == "bytes 5-9/10" and ContentRange(5, 9, 10).length == 5
    for bad in ("bytes 0-10/10", "bytes 5-4/10", "0-9/10", None):
        with pytest.raises(ProtocolError, match="Content-Range"):
            ContentRange.parse(bad)
    with pytest.raises(ProtocolError, match="Upload-Checksum"):
        parse_checksum("sha256=XYZ")
    assert parse_checksum("sha256=" + "a" * 64) == "a" * 64
