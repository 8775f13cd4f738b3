"""The allsky service under the runner: CCD simulator in, frames, retained image, state and HA entities out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from astropy.io import fits

from obsy.config import AllskyPipelineConfig, DiskConfig, load_config
from obsy.indi import IndiClient
from obsy.messages import AllskyDarksState, AllskyFrame, AllskyState, Event, ServiceHealth
from obsy.skymodel import SkyModel
from obsy_allsky.capture.darks import DarkLibrary
from obsy_allsky.capture.fits import decode_fits
from obsy_allsky.pipeline.chain import FramePipeline
from obsy_allsky.pipeline.overlay import FrameInfo
from obsy_allsky.service import AllskyService, main
from tests.support.configs import write_config
from tests.support.indi_proxy import BlobDamagingProxy
from tests.support.indiserver import CCD, IndiServer, find_executable, require_indi
from tests.support.service_thread import ServiceThread
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

DRIVER = "indi_simulator_ccd"
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi([DRIVER])

FRAMES = "obsy/allsky/frames"
IMAGE = "obsy/allsky/image"
STATE = "obsy/allsky/state"
EVENTS = "obsy/allsky/events"
HEALTH = "obsy/allsky/health"
DARKS_SET = "obsy/allsky/darks/set"
DARKS_STATE = "obsy/allsky/darks/state"
PROFILE = {"min_exposure_s": 0.01, "max_exposure_s": 0.5, "gain": 10}


@pytest.fixture
def indiserver(tmp_path) -> Iterator[IndiServer]:
    server = IndiServer(tmp_path / "indi", [DRIVER])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/#", "homeassistant/#"])
    yield w
    w.close()


class Running(ServiceThread):
    def __init__(
        self,
        tmp_path: Path,
        mosquitto,
        indiserver: IndiServer,
        *,
        indi_port: int | None = None,
        sections: dict | None = None,
        **overrides,
    ) -> None:
        """``overrides`` are the allsky section's settings; ``sections`` other sections of the config (``disk``)."""
        allsky = {
            "heartbeat_interval": 1,
            "camera": {"binning": 2, "interval_s": 0, "bracket": 3, "readout_margin_s": 3, "dark_count": 2},
            # The same limits by day, night and moon: the test runs at any hour.
            "exposure": {"night": PROFILE, "day": PROFILE, "moon": {"profile": PROFILE}},
            "pipeline": {"bayer_pattern": "MONO", "backend": "numpy", "fusion": {"saturation_weight": 0}},
            "keep_fits": True,
            "image_width": 320,
            **overrides,
        }
        indi = {"host": "127.0.0.1", "port": indi_port or indiserver.port}
        path = write_config(
            tmp_path,
            mosquitto,
            allsky=allsky,
            indi=indi,
            run_dir=str(tmp_path),
            homeassistant={"enabled": True},
            **(sections or {}),
        )
        self.config_path = path
        super().__init__(AllskyService, load_config(path))


def frames(watcher: Watcher) -> list[AllskyFrame]:
    return [AllskyFrame.model_validate_json(m.payload) for m in watcher.on(FRAMES)]


def events(watcher: Watcher) -> list[Event]:
    return [Event.model_validate_json(m.payload) for m in watcher.on(EVENTS)]


def test_frames_from_the_ccd_simulator_are_stored_and_published(tmp_path, mosquitto, indiserver, watcher):
    with Running(tmp_path, mosquitto, indiserver) as running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 2, timeout=60)
        frame = frames(watcher)[0]
        path = Path(urlparse(frame.url).path)
        data_dir = running.config.data_dir.resolve()
        assert path.is_relative_to(data_dir / "allsky" / frame.night) and path.suffix == ".jpg"  # the default
        stored = cv2.imread(str(path))
        assert stored.shape[:2] == (frame.height, frame.width)
        assert Path(urlparse(frame.fits_url).path).read_bytes().startswith(b"SIMPLE")
        assert frame.stars is not None and frame.sqm is not None
        assert frame.sun_altitude is not None and 0 <= frame.moon_phase <= 1
        assert 0.01 <= frame.exposure_s <= 0.5 and frame.gain == 10

        image = watcher.on(IMAGE)[-1]
        preview = cv2.imdecode(np.frombuffer(image.payload, np.uint8), cv2.IMREAD_COLOR)
        assert preview.shape[1] == 320
        assert len(image.payload) < 100_000  # a small JPEG, never the full frame

        state = AllskyState.model_validate_json(watcher.on(STATE)[-1].payload)
        assert state.camera == "ok" and state.backend == "numpy" and state.frame_id is not None
        assert state.dark is False  # the dark library is empty

        # A bias master for this camera's gain, binning and temperature: from now on it is subtracted.
        library = DarkLibrary(running.config.data_dir / "allsky" / "darks")
        library.save(
            np.zeros((frame.height, frame.width), np.float32), gain=10, binning=2, temperature_c=0.0, exposure_s=0.0001
        )
        watcher.wait_for(lambda _: running_state(watcher).dark is True, timeout=30)

        watcher.wait_for(lambda m: any(x.topic.startswith("homeassistant/image/") for x in m), timeout=10)
        configs = {m.topic: json.loads(m.payload) for m in watcher.messages if m.topic.startswith("homeassistant/")}
        image_config = next(c for t, c in configs.items() if t.startswith("homeassistant/image/"))
        assert image_config["image_topic"] == IMAGE
        sensors = {c["unique_id"].rsplit("_", 1)[-1] for t, c in configs.items() if "allsky" in c.get("unique_id", "")}
        assert {"stars", "sqm", "exposure", "gain"} <= sensors


def test_a_camera_that_disappears_is_reported_and_comes_back(tmp_path, mosquitto, indiserver, watcher):
    with Running(tmp_path, mosquitto, indiserver):
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        driver = find_executable(DRIVER)
        indiserver.stop_driver(driver)
        watcher.wait_for(lambda _: any(e.kind == "camera_failed" for e in events(watcher)), timeout=30)
        watcher.wait_for(
            lambda _: any(
                AllskyState.model_validate_json(m.payload).camera in ("failing", "lost") for m in watcher.on(STATE)
            ),
            timeout=10,
        )
        before = len(frames(watcher))
        indiserver.start_driver(driver)
        watcher.wait_for(lambda _: any(e.kind == "camera_recovered" for e in events(watcher)), timeout=60)
        watcher.wait_for(lambda _: len(frames(watcher)) > before, timeout=60)
        assert running_state(watcher).camera == "ok"


def test_an_indiserver_that_stops_mid_exposure_is_reported_and_capture_resumes(
    tmp_path, mosquitto, indiserver, watcher
):
    with Running(tmp_path, mosquitto, indiserver, exposure=fixed_exposure(2.0)):
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        with IndiClient.from_config(indiserver.config()) as ccd:
            ccd.wait_for(CCD, "CCD_EXPOSURE", lambda p: p.state == "Busy", timeout=30, what="an exposure under way")
        time.sleep(0.5)
        indiserver.stop()  # server and driver gone, mid-exposure
        watcher.wait_for(lambda _: "camera_failed" in kinds(watcher), timeout=30)
        watcher.wait_for(lambda _: running_state(watcher).camera == "lost", timeout=60)
        watcher.wait_for(lambda _: health(watcher).details.get("camera") == "lost", timeout=10)
        assert running_state(watcher).camera_error  # names what failed
        before = len(frames(watcher))
        indiserver.start()
        watcher.wait_for(lambda _: "camera_recovered" in kinds(watcher), timeout=60)
        watcher.wait_for(lambda _: len(frames(watcher)) > before, timeout=60)
        assert running_state(watcher).camera == "ok"


def fixed_exposure(seconds: float) -> dict:
    """Exposure settings of ``seconds`` at any hour (day, night and moon alike), no auto-exposure."""
    profile = PROFILE | {"max_exposure_s": seconds}
    return {"auto": False, "fixed_exposure_s": seconds, "night": profile, "day": profile, "moon": {"profile": profile}}


def running_state(watcher: Watcher) -> AllskyState:
    return AllskyState.model_validate_json(watcher.on(STATE)[-1].payload)


@pytest.fixture
def full_data_dir(tmp_path) -> Iterator[Path]:
    """The data dir on a real 1 MiB tmpfs: room for about one frame with its FITS."""
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(data)], check=False, capture_output=True, text=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_a_full_disk_is_reported_and_capture_goes_on(tmp_path, mosquitto, indiserver, watcher, full_data_dir):
    with Running(tmp_path, mosquitto, indiserver):
        watcher.wait_for(lambda _: any(e.kind == "storage_failed" for e in events(watcher)), timeout=60)
        failure = next(e for e in events(watcher) if e.kind == "storage_failed")
        assert "No space left on device" in failure.message
        watcher.wait_for(lambda _: running_state(watcher).storage_error is not None, timeout=10)
        # The service stays alive: more frames are taken, the preview and the state go on, the event is not repeated.
        # (Waited for as such: the health's failure count rises before that frame's preview and state are sent.)
        previews, states = len(watcher.on(IMAGE)), len(watcher.on(STATE))
        watcher.wait_for(lambda _: len(watcher.on(IMAGE)) >= previews + 2 and len(watcher.on(STATE)) > states, 60)
        watcher.wait_for(lambda _: health(watcher).details["storage_failures"] >= 2, timeout=60)
        assert kinds(watcher).count("storage_failed") == 1
        assert health(watcher).details["storage_error"] and running_state(watcher).camera == "ok"
        stored = sorted((full_data_dir / "allsky").rglob("*.*"))
        for path in stored:  # whatever was stored before is whole
            assert not path.name.startswith(".")
            if path.suffix == ".jpg":
                assert cv2.imread(str(path)) is not None
        before = len(frames(watcher))
        for path in stored:  # room again: the operator (or retention) deleted old frames
            path.unlink()
        watcher.wait_for(lambda _: len(frames(watcher)) > before, timeout=60)
        watcher.wait_for(lambda _: running_state(watcher).storage_error is None, timeout=10)
        assert "storage_recovered" in kinds(watcher)


def test_at_a_critical_disk_no_fits_is_kept_until_there_is_room(tmp_path, mosquitto, indiserver, watcher):
    # An exabyte as the critical limit: the real measurement of the images' disk is critical.
    critical = {"disk": {"enabled": True, "interval": 1, "warning_free_gb": 1e9, "critical_free_gb": 1e9}}
    with Running(tmp_path, mosquitto, indiserver, sections=critical) as running:  # keep_fits is on
        watcher.wait_for(lambda _: len(frames(watcher)) >= 2, timeout=60)
        assert "disk_critical" in kinds(watcher)
        assert all(frame.fits_url is None for frame in frames(watcher))  # the picture is stored, the FITS is not
        assert not any((running.config.data_dir / "allsky").rglob("*.fits"))
        assert health(watcher).details["disk"]["paths"]["images"]["level"] == "critical"

        running.runner.disk.settings = DiskConfig(
            warning_free_gb=0.001, warning_free_percent=0, critical_free_gb=0.0005, critical_free_percent=0
        )
        watcher.wait_for(lambda _: "disk_ok" in kinds(watcher), timeout=15)
        before = len(frames(watcher))
        watcher.wait_for(lambda _: len(frames(watcher)) >= before + 2, timeout=60)
        assert frames(watcher)[-1].fits_url is not None
        assert Path(urlparse(frames(watcher)[-1].fits_url).path).read_bytes().startswith(b"SIMPLE")


def health(watcher: Watcher) -> ServiceHealth:
    return ServiceHealth.model_validate_json(watcher.on(HEALTH)[-1].payload)


def kinds(watcher: Watcher) -> list[str]:
    return [e.kind for e in events(watcher)]


def test_a_corrupt_image_is_skipped_and_the_camera_not_reconnected(tmp_path, mosquitto, indiserver, watcher):
    """Truncated and garbled FITS files on their way from the real simulator: two frames lost, nothing else."""
    with (
        BlobDamagingProxy(indiserver.host, indiserver.port) as proxy,
        Running(tmp_path, mosquitto, indiserver, indi_port=proxy.port),
    ):
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        proxy.damage_next("truncate", "garbage")
        watcher.wait_for(lambda _: kinds(watcher).count("frame_corrupt") >= 2, timeout=60)
        before = len(frames(watcher))
        watcher.wait_for(lambda _: len(frames(watcher)) > before, timeout=60)  # the next exposures go on
        assert proxy.damaged == ["truncate", "garbage"]
        corrupt = [e for e in events(watcher) if e.kind == "frame_corrupt"]
        assert "corrupt FITS" in corrupt[0].message and "not FITS" in corrupt[1].message
        assert "camera_failed" not in kinds(watcher) and "camera_recovered" not in kinds(watcher)
        watcher.wait_for(lambda _: health(watcher).details.get("corrupt_frames") == 2, timeout=10)
        details = health(watcher).details
        assert details["camera_recoveries"] == 0 and details["camera_failures"] == 0
        assert running_state(watcher).corrupt_frames == 2 and running_state(watcher).camera == "ok"


def driver_pid(server: IndiServer, driver: str) -> int:
    """The process id of a driver the test's indiserver started (its child running that executable)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = int(next(line for line in status.read_text().splitlines() if line.startswith("PPid:")).split()[1])
            cmdline = (status.parent / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, StopIteration, ValueError):
            continue
        if ppid == server.process.pid and Path(cmdline).name == driver:
            return int(status.parent.name)
    raise LookupError(f"{driver} is not running under indiserver {server.process.pid}")


def test_a_camera_that_hangs_mid_exposure_is_found_by_timeout_and_resumes(tmp_path, mosquitto, indiserver, watcher):
    """The driver frozen (SIGSTOP) during an exposure: no image, no error from INDI, only the clock tells."""
    with (
        Running(tmp_path, mosquitto, indiserver, exposure=fixed_exposure(2.0)),
        IndiClient.from_config(indiserver.config()) as ccd,
    ):
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        # Another INDI client sees the service's next exposure start; the driver freezes half a second in.
        ccd.wait_for(CCD, "CCD_EXPOSURE", lambda p: p.state == "Busy", timeout=30, what="an exposure under way")
        time.sleep(0.5)
        pid = driver_pid(indiserver, DRIVER)
        os.kill(pid, signal.SIGSTOP)
        try:
            frozen_at = time.monotonic()
            watcher.wait_for(lambda _: "camera_failed" in kinds(watcher), timeout=30)
            failure = next(e for e in events(watcher) if e.kind == "camera_failed")
            assert "no image" in failure.message  # found by the clock: exposure (2 s) + readout margin (3 s)
            assert time.monotonic() - frozen_at < 2 + 3 + 3
            watcher.wait_for(lambda _: health(watcher).details.get("camera") in ("failing", "lost"), timeout=20)
            assert health(watcher).details["camera_failures"] >= 1
            assert running_state(watcher).camera in ("failing", "lost")
            before = len(frames(watcher))
        finally:
            os.kill(pid, signal.SIGCONT)
        watcher.wait_for(lambda _: "camera_recovered" in kinds(watcher), timeout=60)
        watcher.wait_for(lambda _: len(frames(watcher)) > before, timeout=60)
        watcher.wait_for(lambda _: health(watcher).details.get("camera") == "ok", timeout=10)
        assert health(watcher).details["camera_recoveries"] >= 1


def darks_state(watcher: Watcher) -> AllskyDarksState:
    return AllskyDarksState.model_validate_json(watcher.on(DARKS_STATE)[-1].payload)


def test_master_darks_on_command_fill_the_library_and_are_used(tmp_path, mosquitto, indiserver, watcher):
    with Running(tmp_path, mosquitto, indiserver) as running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        assert darks_state(watcher).status == "idle"
        watcher.wait_for(lambda _: running_state(watcher).dark is False, timeout=10)  # no masters yet
        # A command the service cannot read: dropped, counted, nothing captured.
        watcher.client.publish(DARKS_SET, b'{"exposures": [-1]}', qos=1)
        watcher.wait_for(lambda _: health(watcher).invalid_messages >= 1, timeout=10)
        assert darks_state(watcher).status == "idle"

        # Empty exposures: those of the current bracket, at the current gain; two frames each (camera.dark_count).
        watcher.client.publish(DARKS_SET, b"{}", qos=1)
        watcher.wait_for(lambda _: darks_state(watcher).status in ("done", "failed"), timeout=90)
        progress = [AllskyDarksState.model_validate_json(m.payload) for m in watcher.on(DARKS_STATE)]
        done = darks_state(watcher)
        assert done.status == "done", done.error
        assert done.count == 2 and done.gain == 10 and done.total == 2 * len(done.exposures)
        assert [p.done for p in progress if p.status == "running"] == list(range(done.total + 1))
        assert done.done == done.total and done.hot_pixels is not None
        library = DarkLibrary(running.config.data_dir / "allsky" / "darks")
        assert sorted(m.path.name for m in library.masters()) == sorted(done.masters)
        assert {m.gain for m in library.masters()} == {10} and {m.binning for m in library.masters()} == {2}
        watcher.wait_for(lambda _: "darks_done" in kinds(watcher), timeout=10)  # the event follows the state
        assert [k for k in kinds(watcher) if k.startswith("darks_")] == ["darks_started", "darks_done"]

        # Frames after it use the new masters, and the bad-pixel map built from them.
        watcher.wait_for(lambda _: running_state(watcher).dark is True, timeout=60)
        assert running_state(watcher).bad_pixels == done.hot_pixels


def test_the_darks_command_line_asks_the_running_service(tmp_path, mosquitto, indiserver, watcher, capsys):
    with Running(tmp_path, mosquitto, indiserver) as running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        argv = ["darks", "--service", "--config", str(running.config_path), "--exposures", "0.2", "--count", "3"]
        assert main(argv) == 0
        out, err = capsys.readouterr()
        library = DarkLibrary(running.config.data_dir / "allsky" / "darks")
        (master,) = library.masters()
        assert (master.exposure_s, master.gain, master.binning) == (0.2, 10, 2)  # the service's current gain
        assert master.path.name in out and "hot pixels" in out
        assert "3/3" in err  # the progress bar reached the end
        # The command line saw the state "done" on its own connection; the watcher's copy may come a moment later.
        watcher.wait_for(lambda _: darks_state(watcher).status == "done", timeout=10)
        started = next(e for e in events(watcher) if e.kind == "darks_started")
        assert started.data["origin"]["kind"] == "cli" and "asked by command line" in started.message
        before = len(frames(watcher))
        watcher.wait_for(lambda _: len(frames(watcher)) > before, timeout=60)  # and the frames go on


def test_the_darks_command_line_says_when_no_service_answers(tmp_path, mosquitto, capsys):
    path = write_config(tmp_path, mosquitto)
    assert main(["darks", "--service", "--config", str(path), "--timeout", "2"]) == 1
    assert "did not answer" in capsys.readouterr().err


def test_darks_cut_short_by_a_camera_that_hangs_fail_cleanly_and_lights_resume(
    tmp_path, mosquitto, indiserver, watcher
):
    with Running(tmp_path, mosquitto, indiserver) as running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        watcher.client.publish(DARKS_SET, b'{"exposures": [1.0], "count": 5}', qos=1)
        watcher.wait_for(lambda _: darks_state(watcher).done >= 1, timeout=30)
        pid = driver_pid(indiserver, DRIVER)
        os.kill(pid, signal.SIGSTOP)  # mid-way through the darks
        try:
            watcher.wait_for(lambda _: darks_state(watcher).status == "failed", timeout=30)
            assert "no image" in darks_state(watcher).error
            watcher.wait_for(lambda _: {"darks_failed", "camera_failed"} <= set(kinds(watcher)), timeout=10)
        finally:
            os.kill(pid, signal.SIGCONT)
        watcher.wait_for(lambda _: "camera_recovered" in kinds(watcher), timeout=60)
        before = len(frames(watcher))
        watcher.wait_for(lambda _: len(frames(watcher)) > before, timeout=60)
        with IndiClient.from_config(indiserver.config()) as ccd:
            ccd.wait_property(CCD, "CCD_FRAME_TYPE", timeout=10)
            assert ccd.get_switch(CCD, "CCD_FRAME_TYPE")["FRAME_LIGHT"] is True  # lights again, not darks
        assert DarkLibrary(running.config.data_dir / "allsky" / "darks").masters() == []  # no half master

        # Not stuck at "running": the next command is taken.
        watcher.client.publish(DARKS_SET, b'{"exposures": [0.1], "count": 2}', qos=1)
        watcher.wait_for(lambda _: darks_state(watcher).status == "done", timeout=60)


# --- what is stored: PNG, overlay, linear FITS; an encoder that fails ----------------------------

DEFAULT_FINISH = [{"stage": "white_balance"}, {"stage": "stretch"}, {"stage": "saturation"}, {"stage": "mask"}]
OVERLAY = {"stage": "overlay", "show": ["time", "exposure"], "time_format": "%H:%M:%S", "cardinals": False}


def file_of(url: str) -> Path:
    return Path(urlparse(url).path)


def test_png_with_overlay_and_linear_fits_hold_exactly_what_the_pipeline_made(tmp_path, mosquitto, indiserver, watcher):
    """One frame, re-developed here from the raw FITS the service kept beside it (no darks yet, bracket of 1):
    the 16-bit PNG is that picture to the last bit, with the overlay telling the event's time and exposure;
    the linear FITS is the fused linear image with its header."""
    pipeline = {
        "bayer_pattern": "MONO",
        "backend": "numpy",
        "finish": [*DEFAULT_FINISH, OVERLAY],
        "output": {"format": "png", "png_bit_depth": 16, "keep_linear": True},
    }
    camera = {"binning": 2, "interval_s": 0, "bracket": 1, "readout_margin_s": 3}
    with Running(tmp_path, mosquitto, indiserver, camera=camera, pipeline=pipeline) as running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        config = running.config
    frame = frames(watcher)[0]
    png = file_of(frame.url)
    assert png.suffix == ".png" and png.parent == config.data_dir.resolve() / "allsky" / frame.night
    stored = cv2.cvtColor(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert stored.dtype == np.uint16 and stored.shape == (frame.height, frame.width, 3)

    raw = decode_fits(file_of(frame.fits_url).read_bytes())  # keep_fits: the raw exposure is the fits_url
    taken = datetime.strptime(frame.frame_id, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    info = FrameInfo(taken_at=taken.astimezone(ZoneInfo(config.site.timezone)), exposure_s=frame.exposure_s, gain=10)
    settings = config.allsky.pipeline
    made = FramePipeline(settings).process([raw.data], [frame.exposure_s], info=info)
    assert np.array_equal(stored, made.image16)  # lossless, and the overlay said this time and exposure

    plain = AllskyPipelineConfig.model_validate({**pipeline, "finish": DEFAULT_FINISH})
    without = FramePipeline(plain).process([raw.data], [frame.exposure_s]).image16
    changed = np.any(stored != without, axis=2)
    height, width = changed.shape
    assert changed[: height // 8, : width // 2].any()  # the info lines, top left
    assert not changed[height // 8 :].any()  # nothing else

    # The picture without the overlay, for clouddetect: a JPEG of the same picture, no text.
    clean = cv2.cvtColor(cv2.imread(str(file_of(frame.clean_url))), cv2.COLOR_BGR2RGB)
    assert file_of(frame.clean_url).parent == png.parent / "clean" and clean.shape == stored.shape
    assert np.abs(clean.astype(int) - made.clean.astype(int)).mean() < 2.0  # JPEG of exactly that picture
    assert np.array_equal(made.clean, FramePipeline(plain).process([raw.data], [frame.exposure_s]).image)

    linear = png.with_name(f"{frame.frame_id}.linear.fits")
    with fits.open(linear) as hdus:
        header, cube = hdus[0].header, hdus[0].data
    assert np.array_equal(cube, np.moveaxis(made.linear, 2, 0))
    assert header["EXPTIME"] == frame.exposure_s and header["GAIN"] == frame.gain == 10
    assert header["NCOMBINE"] == 1 and header["INSTRUME"] == "CCD Simulator"
    assert header["DATE-OBS"] == taken.replace(tzinfo=None).isoformat(timespec="milliseconds")
    assert header["SUNALT"] == pytest.approx(frame.sun_altitude, abs=0.01)


def test_the_names_on_the_sky_use_clouddetects_model_file_once_it_is_there(tmp_path, mosquitto, indiserver, watcher):
    """No model: the frame has no names (said once in the log, "none" in the health). Then clouddetect's
    fitted model appears in its file on the shared data directory: the next frame carries the names,
    exactly as the chain draws them with that model here."""
    pipeline = {
        "bayer_pattern": "MONO",
        "backend": "numpy",
        "finish": [*DEFAULT_FINISH, {"stage": "overlay", "show": [], "cardinals": False}],
        "output": {"format": "png", "png_bit_depth": 16},
    }
    camera = {"binning": 2, "interval_s": 0, "bracket": 1, "readout_margin_s": 3}
    running = Running(tmp_path, mosquitto, indiserver, camera=camera, pipeline=pipeline)
    config = running.config
    with running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        first = frames(watcher)[0]
        assert running.runner.service.sky_models.source == "none"
        model = SkyModel((first.width - 1) / 2, (first.height - 1) / 2, 0.5 * min(first.width, first.height) / 1.5708)
        path = config.data_dir / "clouddetect" / "sky_model.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(model.to_dict()))
        written = datetime.now(UTC)  # a frame begun after this reads the model after its exposure

        def after(frame: AllskyFrame) -> bool:  # begun (the frame id's time) after the file was written
            begun = datetime.strptime(frame.frame_id, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
            return begun > written + timedelta(seconds=0.1)

        watcher.wait_for(lambda _: any(after(f) for f in frames(watcher)), timeout=60)
        assert running.runner.service.sky_models.source == "clouddetect's fitted model"
    later = next(f for f in frames(watcher) if after(f))

    def develop(frame: AllskyFrame, sky_model: SkyModel | None) -> tuple[np.ndarray, np.ndarray]:
        stored = cv2.cvtColor(cv2.imread(str(file_of(frame.url)), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
        raw = decode_fits(file_of(frame.fits_url).read_bytes())
        taken = datetime.strptime(frame.frame_id, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        info = FrameInfo(taken_at=taken, exposure_s=frame.exposure_s, sky_model=sky_model, site=config.site)
        return stored, FramePipeline(config.allsky.pipeline).process([raw.data], [frame.exposure_s], info=info).image16

    stored, plain = develop(first, None)
    assert np.array_equal(stored, plain)  # no model, no names
    stored, named = develop(later, model)
    assert np.array_equal(stored, named)
    _, unnamed = develop(later, None)
    assert np.any(stored != unnamed, axis=2).mean() > 0.001  # names, lines and circles were drawn


def test_an_encoder_that_fails_is_reported_once_and_the_frames_go_on(tmp_path, mosquitto, indiserver, watcher):
    with Running(tmp_path, mosquitto, indiserver) as running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 1, timeout=60)
        pipeline = running.runner.service.pipeline
        working = pipeline.encode

        def broken(*_args, **_kwargs):
            raise RuntimeError("encoder out of order")

        pipeline.encode = broken  # the next pictures cannot be encoded
        watcher.wait_for(lambda _: "encode_failed" in kinds(watcher), timeout=30)
        failure = next(e for e in events(watcher) if e.kind == "encode_failed")
        assert "picture" in failure.message and "encoder out of order" in failure.message
        previews, stored = len(watcher.on(IMAGE)), len(frames(watcher))
        # The preview goes on: two more are published while the picture cannot be encoded. (Waiting on the
        # health's count instead raced the frame: the count is raised before that frame's preview is sent.)
        watcher.wait_for(lambda _: len(watcher.on(IMAGE)) >= previews + 2, timeout=60)
        watcher.wait_for(lambda _: health(watcher).details["encode_failures"] >= 2, timeout=30)
        assert len(frames(watcher)) <= stored + 1  # no frame event without a file (one may have been under way)
        assert kinds(watcher).count("encode_failed") == 1 and running_state(watcher).camera == "ok"
        assert "picture" in health(watcher).details["encode_errors"]

        pipeline.encode = working
        watcher.wait_for(lambda _: "encode_recovered" in kinds(watcher), timeout=30)
        before = len(frames(watcher))
        watcher.wait_for(lambda _: len(frames(watcher)) > before, timeout=30)
        assert file_of(frames(watcher)[-1].url).is_file()


def test_a_gain_outside_the_cameras_range_is_one_clear_error_and_frames_go_on(tmp_path, mosquitto, indiserver, watcher):
    """The CCD simulator declares gain 0..100: 200 in the config is said once, the frames use 100.

    Before, every exposure failed on the driver's Alert and the camera was reconnected, frame
    after frame, while the state said "ok, gain 200".
    """
    wrong = {**PROFILE, "gain": 200}
    exposure = {"night": wrong, "day": wrong, "moon": {"profile": wrong}}
    with Running(tmp_path, mosquitto, indiserver, exposure=exposure) as running:
        watcher.wait_for(lambda _: len(frames(watcher)) >= 3, timeout=90)
        out_of_range = [e for e in events(watcher) if e.kind == "setting_out_of_range"]
        assert {e.message.split(":")[0] for e in out_of_range} == {
            "allsky.exposure.night.gain",
            "allsky.exposure.day.gain",
            "allsky.exposure.moon.profile.gain",
        }
        assert len(out_of_range) == 3  # once each, not once per frame
        assert all(e.level == "error" and "0..100" in e.message and "using 100" in e.message for e in out_of_range)
        assert {f.gain for f in frames(watcher)} == {100}
        assert running_state(watcher).gain == 100 and running_state(watcher).camera == "ok"
        assert health(watcher).details["camera_failures"] == 0
        assert not {"camera_failed", "camera_recovered"} & set(kinds(watcher))

        # Darks asked for at a gain the camera refuses: one clear failure, nothing captured.
        watcher.client.publish(DARKS_SET, b'{"exposures": [0.1], "gain": 150}', qos=1)
        watcher.wait_for(lambda _: darks_state(watcher).status == "failed", timeout=30)
        assert "gain 150 is outside" in darks_state(watcher).error
        assert DarkLibrary(running.config.data_dir / "allsky" / "darks").masters() == []
        # Without a gain: the one the frames are taken at.
        watcher.client.publish(DARKS_SET, b'{"exposures": [0.1], "count": 1}', qos=1)
        watcher.wait_for(lambda _: darks_state(watcher).status == "done", timeout=60)
        assert darks_state(watcher).gain == 100
