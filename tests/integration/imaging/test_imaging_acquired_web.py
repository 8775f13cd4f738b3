"""Accepted lights counted as acquired, end to end: imaging service → broker → web service → scheduler's list.

A real Mosquitto, the imaging service watching a capture folder, the web service on SQLite.
Lights of a target are written as Ekos would; the accepted ones raise the matching plan's
``acquired`` in the API and in the retained ``<p>/web/targets``; a rejected light does not
count; a second filter counts separately.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from obsy.messages import ImagingAcquired, ImagingFrame, TargetList
from tests.integration.imaging.test_imaging_service import Running, now_iso, wait_online
from tests.support.imaging_frames import star_field, write_frame
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb

pytestmark = pytest.mark.integration


def test_accepted_lights_raise_acquired_in_the_api_and_the_published_targets(tmp_path, mosquitto):
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    (tmp_path / "web").mkdir()
    (tmp_path / "imaging").mkdir()
    web = RunningWeb(tmp_path / "web", mosquitto, f"sqlite:///{tmp_path / 'web' / 'obsy.sqlite3'}").start()
    try:
        web.add_user("otto", "operator")
        with web.login("otto") as operator:
            created = operator.post(
                "/api/v1/targets",
                json={
                    "name": "M 42",
                    "ra_deg": 83.82,
                    "dec_deg": -5.39,
                    "exposure_plans": [
                        {"filter": "Ha", "exposure_s": 300, "count": 20},
                        {"filter": "OIII", "exposure_s": 300, "count": 20},
                    ],
                },
            )
            assert created.status_code == 201, created.text
            target_id = created.json()["id"]

            with Running(tmp_path / "imaging", mosquitto) as running:
                wait_online(watcher)
                lights = [
                    ("Ha", star_field(seed=1)),
                    ("Ha", star_field(seed=2)),
                    ("Ha", star_field(seed=3, stars=3)),  # too few stars: rejected
                    ("OIII", star_field(seed=4)),
                ]
                for i, (filter_name, data) in enumerate(lights):
                    write_frame(
                        running.capture / "M42" / f"Light_M42_{filter_name}_{i:03d}.fits",
                        OBJECT="M42",
                        FILTER=filter_name,
                        EXPTIME=300.0,
                        DATE_OBS=now_iso(),
                        data=data,
                    )

                def graded(_):
                    return len(watcher.on("obsy/imaging/frames")) == len(lights)

                watcher.wait_for(graded, timeout=30)
                verdicts = [ImagingFrame.model_validate_json(m.payload) for m in watcher.on("obsy/imaging/frames")]
                assert sorted((f.filter, f.accepted) for f in verdicts) == [
                    ("Ha", False),
                    ("Ha", True),
                    ("Ha", True),
                    ("OIII", True),
                ]

                def summarised(_):
                    published = watcher.on("obsy/imaging/acquired")
                    if not published:
                        return False
                    rows = ImagingAcquired.model_validate_json(published[-1].payload).lights
                    return sum(r.accepted for r in rows) == 3

                watcher.wait_for(summarised, timeout=10)

                def published_plans(_):
                    retained = watcher.on("obsy/web/targets")
                    if not retained:
                        return False
                    targets = TargetList.model_validate_json(retained[-1].payload).targets
                    m42 = next((t for t in targets if t.id == target_id), None)
                    return m42 is not None and [p.acquired for p in m42.exposure_plans] == [2, 1]

                watcher.wait_for(published_plans, timeout=10)
                plans = operator.get(f"/api/v1/targets/{target_id}").json()["exposure_plans"]
                assert [(p["filter"], p["acquired"]) for p in plans] == [("Ha", 2), ("OIII", 1)]

        # The summary is retained: a scheduler (or a web service) connecting later sees the same.
        late = Watcher(mosquitto.port, ["obsy/imaging/acquired"])
        try:
            late.wait_for(bool, timeout=5)
            rows = json.loads(late.messages[-1].payload)["lights"]
            assert {(r["filter"], r["accepted"]) for r in rows} == {("Ha", 2), ("OIII", 1)}
        finally:
            late.close()
    finally:
        web.stop()
        watcher.close()


def test_lights_graded_by_an_import_in_another_process_are_published(tmp_path, mosquitto, monkeypatch):
    monkeypatch.setattr("obsy_imaging.service.ACQUIRED_CHECK_INTERVAL_S", 0.5)
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    archive = tmp_path / "archive"
    for seed in range(3):
        write_frame(archive / f"light_{seed}.fits", OBJECT="M42", FILTER="Ha", EXPTIME=60.0, data=star_field(seed=seed))
    try:
        with Running(tmp_path, mosquitto) as running:
            wait_online(watcher)
            watcher.wait_for(lambda _: bool(watcher.on("obsy/imaging/acquired")), timeout=10)
            first = ImagingAcquired.model_validate_json(watcher.on("obsy/imaging/acquired")[-1].payload)
            assert first.lights == []
            config = running.config_path
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "obsy_imaging",
                    "import",
                    "-c",
                    str(config),
                    "--grade",
                    "--no-progress",
                    str(archive),
                ],
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
            assert result.returncode == 0, result.stderr

            def counted(_):
                published = watcher.on("obsy/imaging/acquired")
                rows = ImagingAcquired.model_validate_json(published[-1].payload).lights
                return [(r.filter, r.exposure_s, r.accepted) for r in rows] == [("Ha", 60.0, 3)]

            watcher.wait_for(counted, timeout=10)
            published = len(watcher.on("obsy/imaging/acquired"))
            time.sleep(1.5)  # unchanged counts are not published again
            assert len(watcher.on("obsy/imaging/acquired")) == published
    finally:
        watcher.close()
