"""The imaging service and the web service together, sharing the data directory as under compose:
the masters it builds and the live stack it folds show in the web's API, the live stack's preview
served from the imaging repository (the bytes of the retained JPEG on the bus); the target's page
shows the lights as graded, the stack's FITS as written, and each light's thumbnail drawn by the web
from the calibrated FITS the imaging service wrote, with the simulator's brightest stars on it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from obsy.messages import ImagingLiveStack
from tests.integration.imaging.test_imaging_live_stack_service import (
    LIVE_IMAGE,
    LIVE_STATE,
    running,
    write_bias,
    write_light,
)
from tests.integration.imaging.test_imaging_service import wait_online
from tests.support.stacking import offset_pointing, render
from tests.support.watcher import Watcher
from tests.support.web_server import RunningWeb

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_masters_and_the_live_stack_of_the_imaging_service_on_the_web(tmp_path, mosquitto):
    watcher = Watcher(mosquitto.port, ["obsy/#"])
    web = RunningWeb(tmp_path, mosquitto, f"sqlite:///{tmp_path / 'web.sqlite3'}").start()
    try:
        web.add_user("vera", "viewer")
        sky = [render(offset_pointing(e, n), seed=500 + i) for i, (e, n) in enumerate([(0.0, 0.0), (15.0, -10.0)])]
        with running(tmp_path, mosquitto) as run:
            assert run.repository == web.config.imaging.repository_dir(web.config.data_dir)  # one data directory
            wait_online(watcher)
            write_bias(run.capture, watcher)
            for index, frame in enumerate(sky):
                write_light(run.capture, index, frame.image)
            watcher.wait_for(
                lambda msgs: any(
                    m.topic == LIVE_STATE and ImagingLiveStack.model_validate_json(m.payload).frames == 2 for m in msgs
                ),
                timeout=180,
            )
            with web.login("vera") as viewer:
                web.wait_until(lambda: viewer.get("/api/v1/imaging/masters").json()["total"] >= 1, timeout=20)
                master = viewer.get("/api/v1/imaging/masters").json()["items"][0]
                assert master["kind"] == "bias" and master["frames"] == 5 and master["binning"] == "1x1"
                web.wait_until(lambda: [s["frames"] for s in viewer.get("/api/v1/imaging/stacks").json()] == [2])
                stack = viewer.get("/api/v1/imaging/stacks").json()[0]
                assert stack["target"] == "M 42" and stack["filter"] == "L" and stack["integration_s"] == 120.0
                preview = viewer.get(stack["preview"])
                assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
                assert preview.content == watcher.on(LIVE_IMAGE)[-1].payload
                state = viewer.get("/api/v1/imaging/state").json()["imaging"]
                assert state["masters_total"] >= 1

                page = viewer.get("/api/v1/imaging/targets/m42").json()
                assert page["target"] == "M 42" and [s["frames"] for s in page["live_stacks"]] == [2]
                served = viewer.get(page["live_stacks"][0]["fits"])
                written = run.repository / ImagingLiveStack.model_validate_json(watcher.on(LIVE_STATE)[-1].payload).path
                assert served.status_code == 200 and served.content == written.read_bytes()
                assert fits.getdata(io.BytesIO(served.content)).shape == (800, 1000)
                web.wait_until(lambda: viewer.get("/api/v1/imaging/targets/M 42/frames").json()["total"] == 2)
                lights = viewer.get("/api/v1/imaging/targets/M 42/frames").json()["items"]
                assert [light["accepted"] for light in lights] == [True, True]
                assert all(light["fwhm_px"] and light["background"] for light in lights)
                for light, frame in zip(lights, sky, strict=True):
                    thumbnail = viewer.get(light["thumbnail"])
                    assert thumbnail.status_code == 200, thumbnail.text
                    pixels = np.asarray(Image.open(io.BytesIO(thumbnail.content)), dtype=float)
                    assert pixels.shape == (200, 250)  # 1000x800 averaged over 4x4 blocks
                    assert np.median(pixels) == pytest.approx(0.25 * 255, abs=10)  # the stretch's sky
                    x, y = frame.truth.x, frame.truth.y
                    inside = np.flatnonzero((x > 8) & (x < 992) & (y > 8) & (y < 792))  # not cut by an edge
                    brightest = inside[np.argsort(-frame.truth.electrons[inside])[:10]]
                    on_stars = pixels[
                        (frame.truth.y[brightest] / 4).astype(int), (frame.truth.x[brightest] / 4).astype(int)
                    ]
                    assert np.all(on_stars > 200), on_stars  # the simulator's brightest stars, where it put them
    finally:
        web.stop()
        watcher.close()
