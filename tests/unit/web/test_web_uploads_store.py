"""The centre's staging of unfinished uploads: admission limits and stale uploads dropped."""

from __future__ import annotations

import os
import time

import pytest

from obsy.config import WebUploadsConfig
from obsy_web.uploads import BusyError, UploadStore


def test_admission_is_bounded_by_slots_and_staging_space(tmp_path):
    store = UploadStore(tmp_path, WebUploadsConfig(max_concurrent=2, max_staging_bytes=2048))
    store.admit("north", "a.jpg")
    with pytest.raises(BusyError, match="being uploaded already"):
        store.admit("north", "a.jpg")
    store.admit("north", "b.jpg")
    with pytest.raises(BusyError, match="max_concurrent"):
        store.admit("south", "c.jpg")
    store.release("north", "a.jpg")
    store.release("north", "b.jpg")
    staged = store.staged("north", "a.jpg")
    staged.begin(4096, "0" * 64, "a.jpg")
    staged.part.write_bytes(b"x" * 3000)
    with pytest.raises(BusyError, match="max_staging_bytes"):
        store.admit("south", "c.jpg")
    assert staged.offset() == 3000 and staged.expected() == (4096, "0" * 64)


def test_an_upload_untouched_for_stale_hours_is_dropped(tmp_path):
    store = UploadStore(tmp_path, WebUploadsConfig(stale_hours=1, max_staging_bytes=2048))
    old = store.staged("north", "old.jpg")
    old.begin(4096, "0" * 64, "old.jpg")
    old.part.write_bytes(b"x" * 3000)
    fresh = store.staged("south", "new.jpg")
    fresh.begin(4096, "1" * 64, "new.jpg")
    fresh.part.write_bytes(b"y" * 100)
    two_hours_ago = time.time() - 7200
    os.utime(old.part, (two_hours_ago, two_hours_ago))
    store.admit("south", "other.jpg")  # the stale one no longer counts
    assert not old.part.exists() and not old.meta.exists()
    assert fresh.offset() == 100 and store.staging_bytes() == 100
