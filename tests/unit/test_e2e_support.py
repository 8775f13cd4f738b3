"""The end-to-end test's own helpers: the dark site it picks and the log folder a failure names."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from obsy import astro
from obsy.config import SiteConfig
from tests.support.e2e_observatory import logs_named_on_failure
from tests.support.e2e_site import CITY_DB, HOLD, dark_site


@pytest.mark.skipif(not CITY_DB.exists(), reason="KStars' city database is not installed (Debian package kstars)")
@pytest.mark.parametrize("hour", [0, 7, 13, 19])
def test_the_site_is_in_astronomical_night_now_and_for_the_test(hour: int) -> None:
    when = datetime(2026, 6, 21, hour, 30, tzinfo=UTC)  # midsummer in the north: the shortest nights
    site = dark_site(when)
    config = SiteConfig(**site.site_config())
    # Checked with the project's own astronomy, not the helper's quick formula.
    altitudes = astro.sun_altaz(config, [when, when + HOLD]).alt
    assert max(altitudes) < -18, (site, altitudes)
    local = when.astimezone(ZoneInfo(config.timezone))  # "tonight" runs noon to noon in this zone
    assert local.hour >= 17 or local.hour < 7, (site, local)


def test_a_failure_names_the_folder_with_every_log(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "mcp.log").write_text("the mcp's story\n")
    server_log = tmp_path / "indi" / "indiserver.log"
    server_log.parent.mkdir()
    server_log.write_text("driver output\n")
    with pytest.raises(AssertionError) as failure, logs_named_on_failure(log_dir, indiserver=server_log):
        raise TimeoutError("the roof did not close")
    message = str(failure.value)
    assert "the roof did not close" in message and str(log_dir) in message
    assert "the end of mcp.log\nthe mcp's story" in message  # the MCP's last words, for a CI printout
    assert (log_dir / "indiserver.log").read_text() == "driver output\n"
    assert (log_dir / "mcp.log").read_text() == "the mcp's story\n"


def test_a_failure_shows_the_warnings_from_before_the_last_lines(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    story = [
        "16:16:09 INFO    mcp: start_ekos_schedule: started (attempt 1)",
        "16:17:14 WARNING mcp: start_ekos_schedule failed (attempt 1 of 2): no optical train has the camera",
        *(f"16:18:{n:02d} INFO    mcp: line {n}" for n in range(12)),
    ]
    (log_dir / "mcp.log").write_text("\n".join(story) + "\n")
    with pytest.raises(AssertionError) as failure, logs_named_on_failure(log_dir):
        raise TimeoutError("the MCP did not observe")
    message = str(failure.value)
    warnings, _, tail = message.partition("--- the end of mcp.log")
    assert "mcp.log's last warnings and errors\n16:17:14 WARNING mcp: start_ekos_schedule failed" in warnings
    assert "start_ekos_schedule: started" not in message  # only warnings from before the tail
    assert tail.count("INFO    mcp: line") == 8 and "line 11" in tail and "line 3" not in tail


def test_written_frames_leaves_a_frame_still_being_written(tmp_path: Path) -> None:
    import os
    import time

    import numpy as np
    from astropy.io import fits

    from tests.support.kstars import written_frames

    data = np.zeros((64, 64), dtype=np.uint16)
    for name in ("done", "short", "fresh"):
        fits.PrimaryHDU(data, header=fits.Header({"OBJECT": name})).writeto(tmp_path / f"{name}.fits")
    whole = (tmp_path / "short.fits").read_bytes()
    (tmp_path / "short.fits").write_bytes(whole[: len(whole) // 2])  # the data not all there yet
    old = time.time() - 10
    for name in ("done", "short"):
        os.utime(tmp_path / f"{name}.fits", (old, old))

    assert [header["OBJECT"] for _path, header in written_frames(tmp_path)] == ["done"]  # "fresh": written just now
    assert [header["OBJECT"] for _path, header in written_frames(tmp_path, settle_s=0)] == ["done", "fresh"]


def test_a_state_that_never_came_says_where_the_mcp_stood() -> None:
    from types import SimpleNamespace

    from obsy.topics import Topics
    from tests.support.mcp_harness import last_state_said

    topics = Topics()
    state = {
        "state": "closed_unsafe",
        "reason": "sky not clear (Overcast)",
        "roof": "closed",
        "recent_transitions": [
            {"at": "2026-12-07T13:31:02Z", "from_state": "starting", "to_state": "closed_unsafe", "reason": "x"}
        ],
    }
    published = [SimpleNamespace(topic=topics.mcp_state, payload=json.dumps(state).encode())]
    said = last_state_said(SimpleNamespace(on=lambda topic: [m for m in published if m.topic == topic]), topics)
    assert "state='closed_unsafe'" in said and "reason='sky not clear (Overcast)'" in said
    assert "13:31:02 starting -> closed_unsafe (x)" in said
    assert last_state_said(SimpleNamespace(on=lambda topic: []), topics) == "none published"
