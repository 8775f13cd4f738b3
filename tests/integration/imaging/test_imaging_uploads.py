"""The imaging service as one site of a fleet: its live stack's preview reaches the centre's web by HTTP.

The site: the imaging service (real broker, watched folder, SQLite) with ``upload`` pointed at
the centre; the centre: the web service with the site bridged as ``north``. After each fold the
preview at the centre is the site's, byte for byte (the second fold's replaces the first's).
"""

from __future__ import annotations

import pytest

from tests.integration.fleet.test_fleet_uploads import centre, site_token
from tests.integration.imaging.test_imaging_live_stack_service import stacks, write_bias, write_light
from tests.integration.imaging.test_imaging_service import Running, wait_online
from tests.support.stacking import offset_pointing, render
from tests.support.watcher import Watcher
from tests.support.web_server import web_on

pytestmark = pytest.mark.integration


@pytest.mark.long(seconds=90)
def test_the_live_stacks_preview_arrives_at_the_centre_after_each_fold(tmp_path, mosquitto):
    sky = [render(offset_pointing(e, n), seed=300 + i) for i, (e, n) in enumerate([(0.0, 0.0), (12.0, -20.0)])]
    with web_on("sqlite", centre(tmp_path), {}, sites=[{"prefix": "sites/north"}]) as web:
        upload = {"url": web.url, "site": "north", "token": site_token(web)}
        site = tmp_path / "site"
        site.mkdir()
        watcher = Watcher(mosquitto.port, ["obsy/#"])
        try:
            with Running(
                site,
                mosquitto,
                sections={"upload": upload},
                grading={"min_stars": None, "min_stars_ratio": None, "max_background_ratio": None},
                calibration={"require_dark": False, "require_flat": False, "quiet_time": 0.5, "quiet_exposures": 0},
            ) as run:
                wait_online(watcher)
                write_bias(run.capture, watcher)
                arrived = None
                for index, frame in enumerate(sky):
                    write_light(run.capture, index, frame.image)
                    watcher.wait_for(lambda _, n=index + 1: len(stacks(watcher)) == n, timeout=120)
                    folded = stacks(watcher)[-1]
                    here = run.repository / folded.preview
                    arrived = web.data_dir / "sites" / "north" / here.relative_to(run.config.data_dir.resolve())
                    web.wait_until(lambda a=arrived, h=here: a.is_file() and a.read_bytes() == h.read_bytes(), 60)
                assert arrived is not None and arrived.read_bytes()[:2] == b"\xff\xd8"
        finally:
            watcher.close()
