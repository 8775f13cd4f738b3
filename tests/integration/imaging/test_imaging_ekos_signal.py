"""Ekos's ``captureComplete`` D-Bus signal as an ingest route, against the real headless KStars 3.6
capturing with the sky simulator's main camera (the set-up of tests/integration/skysim/test_skysim_ekos_capture.py).

Ekos saves the frames into a folder the imaging service does not watch: only the signal can bring
them in. Each is registered once, under the route ``dbus``, within seconds of being written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from obsy.config import SchedulerCalibrationConfig, SchedulerEkosConfig
from obsy.messages import ExposurePlan, FrameType, ImagingFrame
from obsy_imaging.repository import database
from obsy_imaging.repository.models import Frame
from obsy_scheduler.ekos import sequence_xml
from tests.integration.imaging.test_imaging_service import Running, wait_online
from tests.integration.skysim import test_skysim_ekos_capture as ekos_capture
from tests.support.kstars import requires_kstars
from tests.support.watcher import Watcher

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    requires_kstars,
]

BIAS_FRAMES = 3
CAMERA, CAPTURE, CAPTURE_PATH = ekos_capture.CAMERA, ekos_capture.CAPTURE, ekos_capture.CAPTURE_PATH
#: The same headless KStars/Ekos on an indiserver with the sky simulator's main camera.
observatory = ekos_capture.observatory


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/imaging/#"])
    yield w
    w.close()


@pytest.mark.long(seconds=60)
def test_frames_ekos_reports_in_capture_complete_are_registered_once(observatory, tmp_path, mosquitto, watcher):
    kstars, _indi, _site = observatory
    frames_dir = tmp_path / "ekos-frames"  # not a capture folder: the folder watch never sees these
    ekos = SchedulerEkosConfig(
        camera=CAMERA, filter_wheel=None, calibration=SchedulerCalibrationConfig(camera_shutter=True)
    )
    plan = ExposurePlan(exposure_s=0.001, count=BIAS_FRAMES, frame_type=FrameType.BIAS)
    queue = tmp_path / "bias.esq"
    queue.write_bytes(sequence_xml("Signal", [(plan, BIAS_FRAMES)], frames_dir, ekos))
    address = kstars.bus_file.read_text().strip()
    run = Running(tmp_path, mosquitto, ekos_signal={"enabled": True, "bus_address": address, "retry_interval": 1})
    with run:
        wait_online(watcher)
        assert run.capture != frames_dir and not frames_dir.exists()
        kstars.call(CAPTURE_PATH, CAPTURE, "loadSequenceQueue", "s", str(queue))
        kstars.call(CAPTURE_PATH, CAPTURE, "start")
        deadline = time.monotonic() + 120
        while (
            len(registered := [ImagingFrame.model_validate_json(m.payload) for m in watcher.on("obsy/imaging/frames")])
            < BIAS_FRAMES
        ):
            assert time.monotonic() < deadline, (
                f"{len(registered)} frames registered; Ekos wrote {sorted(frames_dir.rglob('*.fits'))}; "
                f"capture log: {kstars.module_log(CAPTURE_PATH, CAPTURE)[:10]}"
            )
            time.sleep(0.5)
        time.sleep(2.0)  # nothing more comes: one registration per frame
        registered = [ImagingFrame.model_validate_json(m.payload) for m in watcher.on("obsy/imaging/frames")]
        engine = database.make_engine(run.config.imaging.database(run.config.data_dir))
        try:
            with engine.connect() as connection:
                rows = connection.execute(select(Frame.source_path, Frame.route, Frame.frame_type)).all()
        finally:
            engine.dispose()
    written = sorted(str(p) for p in frames_dir.rglob("*.fits"))
    assert len(written) == BIAS_FRAMES and sorted(f.source for f in registered) == written
    assert sorted(rows) == sorted((path, "dbus", "bias") for path in written)
