"""The imaging service as it runs: a real broker, real watchdog on a real folder, real SQLite.

Frames written into a watched capture folder are registered and published; a file still being
written is taken only once complete; bad files are quarantined with their reason; frames written
while the service was down are taken when it starts; the INDI CCD simulator's own frames, saved
straight into the capture folder, are taken as they come.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from obsy.config import DiskConfig, load_config
from obsy.messages import Event, ImagingFrame, ImagingQuarantined, ImagingState
from tests.support.configs import write_config
from tests.support.imaging_frames import frame_bytes, star_field, write_frame
from tests.support.indiserver import CCD, TELESCOPE, IndiServer, find_executable
from tests.support.service_thread import ServiceThread
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

FRAMES = "obsy/imaging/frames"
QUARANTINE = "obsy/imaging/quarantine"
STATE = "obsy/imaging/state"
EVENTS = "obsy/imaging/events"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/#", "homeassistant/#"])
    yield w
    w.close()


class Running(ServiceThread):
    def __init__(self, tmp_path: Path, mosquitto, sections: dict | None = None, **imaging) -> None:
        """``imaging`` are the imaging section's settings; ``sections`` other sections (``disk``...)."""
        self.capture = tmp_path / "capture"
        self.capture.mkdir(exist_ok=True)
        settings = {
            "heartbeat_interval": 1,
            "capture_folders": [str(self.capture)],
            "settle_time": 0.3,
            "incomplete_timeout": 3,
            **imaging,
        }
        path = write_config(
            tmp_path,
            mosquitto,
            imaging=settings,
            run_dir=str(tmp_path),
            homeassistant={"enabled": True},
            **(sections or {}),
        )
        self.config_path = path
        from obsy_imaging.service import ImagingService  # the service's runtime: when a test runs

        super().__init__(ImagingService, load_config(path), stop_timeout=90)

    def stop(self) -> None:
        super().stop()
        assert not self.thread.is_alive()

    @property
    def repository(self) -> Path:
        return self.config.imaging.repository_dir(self.config.data_dir)


def frames(watcher: Watcher) -> list[ImagingFrame]:
    return [ImagingFrame.model_validate_json(m.payload) for m in watcher.on(FRAMES)]


def quarantined(watcher: Watcher) -> list[ImagingQuarantined]:
    return [ImagingQuarantined.model_validate_json(m.payload) for m in watcher.on(QUARANTINE)]


def state(watcher: Watcher) -> ImagingState:
    return ImagingState.model_validate_json(watcher.on(STATE)[-1].payload)


def wait_online(watcher: Watcher) -> None:
    watcher.wait_payload("obsy/imaging/availability", b"online", timeout=120)


def test_frames_in_the_capture_folder_are_registered_and_published(tmp_path, mosquitto, watcher):
    with Running(tmp_path, mosquitto) as running:
        wait_online(watcher)
        assert state(watcher).frames_tonight == 0 and state(watcher).watching == [str(running.capture.resolve())]
        written = time.monotonic()
        write_frame(running.capture / "M42" / "Light_M42_001.fits", DATE_OBS=now_iso(), data=star_field(seed=1))
        watcher.wait_for(lambda _: len(frames(watcher)) == 1, timeout=10)
        latency = watcher.on(FRAMES)[0].at - written
        frame = frames(watcher)[0]
        assert frame.frame_type == "light" and frame.target == "M 42" and frame.filter == "Red"
        assert (running.repository / frame.path).is_file()
        assert frame.bjd_tdb_mid is not None and frame.source.endswith("Light_M42_001.fits")
        assert frame.accepted is True and frame.rejected_because == []  # graded as it came
        assert frame.stars > 50 and frame.fwhm_px == pytest.approx(3.0, rel=0.15)
        # The counts are published as they change (a frame registered, then graded): the state that has them all.
        watcher.wait_for(
            lambda _: (
                (state(watcher).frames_tonight, state(watcher).lights_tonight, state(watcher).accepted_tonight)
                == (1, 1, 1)
            ),
            timeout=10,
        )
        assert state(watcher).queue == 0
        assert state(watcher).last_frame == frame.path
        print(f"frame registered {latency:.2f} s after it was written")

        # Home Assistant: frames tonight and the queue, with availability.
        configs = {m.topic: json.loads(m.payload) for m in watcher.messages if m.topic.startswith("homeassistant/")}
        ids = {c["unique_id"] for c in configs.values() if c}
        assert {
            "obsy_obsy_imaging_frames_tonight",
            "obsy_obsy_imaging_queue",
            "obsy_obsy_imaging_accepted_fraction",
        } <= ids


def test_a_file_written_slowly_is_taken_once_complete(tmp_path, mosquitto, watcher):
    whole = frame_bytes(cards={"DATE-OBS": now_iso()}, seed=2)
    with Running(tmp_path, mosquitto) as running:
        wait_online(watcher)
        path = running.capture / "slow.fits"
        with path.open("wb") as stream:
            stream.write(whole[:1000])  # part of the header
            stream.flush()
            time.sleep(1.5)  # several settle times: the watcher looks at it and waits
            stream.write(whole[1000:6000])  # the header and some of the data
            stream.flush()
            time.sleep(1.0)
            assert frames(watcher) == [] and quarantined(watcher) == []
            assert state(watcher).queue == 1
            stream.write(whole[6000:])
        watcher.wait_for(lambda _: len(frames(watcher)) == 1, timeout=10)
        assert (running.repository / frames(watcher)[0].path).read_bytes() == whole
        assert quarantined(watcher) == []


def test_at_a_critical_disk_frames_wait_in_the_capture_folder_and_are_taken_when_there_is_room(
    tmp_path, mosquitto, watcher
):
    # An exabyte as the critical limit: the real measurement of the repository's disk is critical.
    critical = {"disk": {"enabled": True, "interval": 1, "warning_free_gb": 1e9, "critical_free_gb": 1e9}}
    with Running(tmp_path, mosquitto, sections=critical) as running:
        wait_online(watcher)
        disk = [Event.model_validate_json(m.payload) for m in watcher.on(EVENTS)]
        assert {(e.kind, e.data["name"]) for e in disk} == {
            ("disk_critical", "repository"),
            ("disk_critical", "capture"),
        }
        write_frame(running.capture / "Light_M42_001.fits", DATE_OBS=now_iso(), data=star_field(seed=1))
        watcher.wait_for(lambda _: state(watcher).queue == 1, timeout=10)
        time.sleep(2)  # several settle times and measurements: the frame waits, nothing is copied
        assert frames(watcher) == [] and not any(running.repository.rglob("*.fits"))
        assert state(watcher).storage_error == "the disk is nearly full (critical)"
        health = json.loads(watcher.on("obsy/imaging/health")[-1].payload)["details"]
        assert health["ingest_paused"] and health["disk"]["level"] == "critical"

        running.runner.disk.settings = DiskConfig(
            warning_free_gb=0.001, warning_free_percent=0, critical_free_gb=0.0005, critical_free_percent=0
        )
        watcher.wait_for(lambda _: len(frames(watcher)) == 1, timeout=15)
        assert (running.repository / frames(watcher)[0].path).is_file()
        assert (running.capture / "Light_M42_001.fits").is_file()  # the capture program's file stays
        watcher.wait_for(lambda _: state(watcher).storage_error is None, timeout=5)
        kinds = [Event.model_validate_json(m.payload).kind for m in watcher.on(EVENTS)]
        assert kinds.count("disk_ok") == 2 and kinds.count("disk_critical") == 2


def test_bad_files_are_quarantined_with_their_reason(tmp_path, mosquitto, watcher):
    with Running(tmp_path, mosquitto) as running:
        wait_online(watcher)
        (running.capture / "Light_001.xisf").write_bytes(b"XISF0100" + bytes(100))
        (running.capture / "noise.fits").write_bytes(b"not a fits file at all" * 200)
        whole = frame_bytes(seed=3)
        (running.capture / "abandoned.fits").write_bytes(whole[: len(whole) // 2])  # never finished
        watcher.wait_for(lambda _: len(quarantined(watcher)) == 3, timeout=20)
        problems = {Path(q.source).name: q for q in quarantined(watcher)}
        assert problems["Light_001.xisf"].problem == "xisf"
        assert problems["noise.fits"].problem == "not_fits"
        assert problems["abandoned.fits"].problem == "truncated"  # after incomplete_timeout, not at once
        for record in problems.values():
            assert (running.config.imaging.quarantine_dir(running.config.data_dir) / record.quarantined_as).is_file()
        for name in problems:
            assert (running.capture / name).exists()  # originals untouched

        def kinds() -> list[str]:
            return [Event.model_validate_json(m.payload).kind for m in watcher.on(EVENTS)]

        watcher.wait_for(lambda _: kinds().count("frame_quarantined") == 3, timeout=5)
        watcher.wait_for(lambda _: state(watcher).quarantined_tonight == 3, timeout=5)


def test_frames_written_while_the_service_was_down_are_taken_on_start(tmp_path, mosquitto, watcher):
    capture = tmp_path / "capture"
    with Running(tmp_path, mosquitto) as running:
        wait_online(watcher)
        write_frame(capture / "a.fits", DATE_OBS=now_iso(), seed=10)
        watcher.wait_for(lambda _: len(frames(watcher)) == 1, timeout=10)
    for seed in (11, 12):
        write_frame(capture / f"b{seed}.fits", DATE_OBS=now_iso(), seed=seed)
    watcher.messages.clear()
    with Running(tmp_path, mosquitto) as running:
        watcher.wait_for(lambda _: len(frames(watcher)) == 2, timeout=15)
        assert sorted(Path(f.source).name for f in frames(watcher)) == ["b11.fits", "b12.fits"]
        watcher.wait_for(lambda _: state(watcher).frames_total == 3, timeout=5)
        assert len(list(running.repository.rglob("*.fits"))) == 3


def test_a_capture_folder_that_appears_later_is_watched(tmp_path, mosquitto, watcher):
    late = tmp_path / "mounted-later"
    with Running(tmp_path, mosquitto, capture_folders=[str(late)]):
        wait_online(watcher)
        assert state(watcher).watching == []
        late.mkdir()
        watcher.wait_for(lambda _: state(watcher).watching == [str(late.resolve())], timeout=10)
        write_frame(late / "x.fits", DATE_OBS=now_iso(), seed=20)
        watcher.wait_for(lambda _: len(frames(watcher)) == 1, timeout=10)


def indi_set(port: int, *assignments: str) -> None:
    for assignment in assignments:
        subprocess.run(["indi_setprop", "-p", str(port), assignment], check=True, timeout=10, capture_output=True)


@pytest.mark.slow
def test_frames_the_indi_ccd_simulator_saves_are_taken(tmp_path, mosquitto, watcher):
    if find_executable("indi_setprop") is None:
        pytest.skip("indi_setprop not installed (indi-bin)")
    server = IndiServer(tmp_path / "indi", ["indi_simulator_ccd", "indi_simulator_telescope"])
    server.start()
    try:
        with Running(tmp_path, mosquitto) as running:
            wait_online(watcher)
            indi_set(server.port, f"{CCD}.CONNECTION.CONNECT=On", f"{TELESCOPE}.CONNECTION.CONNECT=On")
            time.sleep(1)
            indi_set(
                server.port,
                f"{CCD}.UPLOAD_MODE.UPLOAD_LOCAL=On",
                f"{CCD}.UPLOAD_SETTINGS.UPLOAD_DIR;UPLOAD_PREFIX={running.capture};Light_XXX",
                f"{CCD}.FITS_HEADER.FITS_OBJECT=NGC 253",
                f"{CCD}.CCD_EXPOSURE.CCD_EXPOSURE_VALUE=0.5",
            )
            watcher.wait_for(lambda _: len(frames(watcher)) == 1, timeout=30)
            frame = frames(watcher)[0]
            assert frame.frame_type == "light" and frame.target == "NGC 253" and frame.camera == CCD
            stored = running.repository / frame.path
            assert os.path.samefile(stored, frame.source)
    finally:
        server.stop()
