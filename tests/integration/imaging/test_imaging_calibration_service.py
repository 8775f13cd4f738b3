"""Calibration in the running imaging service: real broker, real watched folder, real SQLite, real files.

Bias, darks and flats written into the capture folder become masters; lights written after
them are calibrated, and their pixels are the known truth of the frames' fixed pattern
(tests/support/calibration_frames.py) within the noise of the masters, and ccdproc's result
from the same masters; a light taken before its flats waits and is calibrated when they come;
a frame without signal and a group of mismatched sizes get an error event naming the file,
and the service goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from obsy.messages import Event, ImagingCalibrated, ImagingMaster, ImagingMastersState, ImagingState
from obsy_imaging.calibration import FrameKind
from obsy_imaging.repository import database
from obsy_imaging.repository.models import Calibration, Frame, Master, MasterInput
from obsy_imaging.repository.store import Repository
from tests.integration.imaging.test_imaging_service import Running, wait_online
from tests.support.calibration_frames import Sensor, frame_info, write_frame, write_series
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

MASTERS = "obsy/imaging/masters"
CALIBRATED = "obsy/imaging/calibrated"
STATE = "obsy/imaging/state"
EVENTS = "obsy/imaging/events"
START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
SKY = 800.0
COUNT = 5  # imaging.calibration.min_frames, the default


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/#"])
    yield w
    w.close()


@pytest.fixture
def sensor() -> Sensor:
    return Sensor(rows=96, cols=144, hot_count=10, cold_count=4)


def running(tmp_path: Path, mosquitto) -> Running:
    return Running(
        tmp_path, mosquitto, grading={"enabled": False}, calibration={"quiet_time": 0.5, "quiet_exposures": 0}
    )


def masters(watcher: Watcher) -> list[ImagingMaster]:
    return [ImagingMaster.model_validate_json(m.payload) for m in watcher.on(MASTERS)]


def calibrated(watcher: Watcher) -> list[ImagingCalibrated]:
    return [ImagingCalibrated.model_validate_json(m.payload) for m in watcher.on(CALIBRATED)]


def events(watcher: Watcher, kind: str) -> list[Event]:
    found = [Event.model_validate_json(m.payload) for m in watcher.on(EVENTS)]
    return [e for e in found if e.kind == kind]


def state(watcher: Watcher) -> ImagingState:
    return ImagingState.model_validate_json(watcher.on(STATE)[-1].payload)


def repository_of(run: Running) -> Repository:
    settings, data_dir = run.config.imaging, run.config.data_dir
    engine = database.make_engine(settings.database(data_dir))
    return Repository(engine, settings.repository_dir(data_dir), settings.quarantine_dir(data_dir))


def truth_noise(sensor: Sensor, count: int, sky: float, flat_level: float) -> np.ndarray:
    """The standard deviation per pixel of (our calibrated light − the truth), from the masters' noise alone.

    Both are calculated from the same raw light, so its own noise cancels: what is left is the
    master dark's noise (read and shot noise over ``count`` frames) and the master flat's
    (relative shot noise of ``flat_level`` over ``count`` frames) times the sky, through the flat.
    """
    dark = sensor.read_noise**2 / count
    flat_relative = (flat_level * sensor.flat + sensor.read_noise**2) / (flat_level * sensor.flat) ** 2 / count
    return np.sqrt(dark + (sky * sensor.flat) ** 2 * flat_relative) / sensor.flat


def test_masters_are_built_and_lights_calibrated_as_they_arrive(tmp_path, mosquitto, watcher, sensor):
    flat_level = 20000.0
    with running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        assert state(watcher).calibration_queue == 0 and state(watcher).masters_total == 0
        write_series(run.capture, sensor, FrameKind.BIAS, COUNT, exposure=0, seed=1)
        write_series(run.capture, sensor, FrameKind.DARK, COUNT, exposure=60, seed=2)
        write_series(run.capture, sensor, FrameKind.FLAT, COUNT, exposure=2, seed=3, filter="Red", level=flat_level)
        watcher.wait_for(lambda _: len(masters(watcher)) == 3, timeout=240)
        built = {m.kind: m for m in masters(watcher)}
        assert set(built) == {"bias", "dark", "flat"}
        assert all(m.frames == COUNT and len(m.frame_ids) == COUNT for m in built.values())
        assert built["dark"].bad_pixel_map is not None and built["dark"].hot_pixels >= sensor.hot_count
        watcher.wait_for(lambda _: len(events(watcher, "master_built")) == 3, timeout=10)
        watcher.wait_for(lambda _: state(watcher).masters_total == 3, timeout=10)

        lights = write_series(run.capture, sensor, FrameKind.LIGHT, 3, exposure=60, seed=4, filter="Red", level=SKY)
        short = write_series(run.capture, sensor, FrameKind.LIGHT, 2, exposure=30, seed=5, filter="Red", level=SKY / 2)
        watcher.wait_for(lambda _: len(calibrated(watcher)) == 5, timeout=240)
        watcher.wait_for(lambda _: state(watcher).calibration_queue == 0, timeout=10)
        done = {Path(c.light).name: c for c in calibrated(watcher)}
        root = run.repository

        # Each light says which masters and why; a 30 s light has the 60 s dark scaled down, with the bias.
        for info in lights:
            message = done[info.path.name]
            assert message.dark == built["dark"].master_id and message.flat == built["flat"].master_id
            assert message.bias is None and message.dark_scale == 1.0
            assert any(line.startswith("dark:") and "matches the light's" in line for line in message.explanation)
        for info in short:
            message = done[info.path.name]
            assert message.bias == built["bias"].master_id and message.dark_scale == pytest.approx(0.5)
            assert any("scaled by 0.5" in line for line in message.explanation)

        # The pixels: the truth (light − bias − dark current) / flat, within the masters' noise.
        bad = np.zeros(sensor.shape, bool)
        bad[tuple(sensor.hot.T)] = bad[tuple(sensor.cold.T)] = True
        for info, sky in [(i, SKY) for i in lights] + [(i, SKY / 2) for i in short]:
            message = done[info.path.name]
            raw = fits.getdata(info.path).astype(np.float64)
            with fits.open(root / message.path) as hdul:
                ours = hdul[0].data.astype(np.float64)
                header = hdul[0].header
            assert header["BITPIX"] == -32 and "C" in header["CALSTAT"]
            assert any("dark:" in line for line in header["HISTORY"])
            truth = (raw - sensor.bias - sensor.dark_current * info.exposure) / sensor.flat
            good = ~bad & np.isfinite(ours)
            assert good.sum() > 0.99 * good.size
            deviation = (ours - truth)[good] / truth_noise(sensor, COUNT, sky, flat_level)[good]
            assert abs(np.mean(deviation)) < 0.25 and np.std(deviation) < 1.3  # measured: 0.06, 1.01
            assert abs(np.median(ours[good]) - sky) < 0.01 * sky
            # Hot pixels are repaired from their neighbours: the sky, not the dark current's shot noise.
            hot = ours[tuple(sensor.hot.T)]
            noise = np.sqrt(sky + sensor.read_noise**2)
            assert np.all(np.abs(hot - sky) < 8 * noise / sensor.flat.min())
            assert info.path.read_bytes()  # the raw light is still there...
        for info in lights + short:
            with fits.open(info.path) as hdul:
                assert hdul[0].header["BITPIX"] == 16  # ...and still the camera's file

        # ccdproc from the same masters gives the same light.
        ccdproc = pytest.importorskip("ccdproc")
        from astropy import units as u
        from astropy.nddata import CCDData

        dark = fits.getdata(root / built["dark"].path)
        flat = fits.getdata(root / built["flat"].path)
        raw = fits.getdata(lights[0].path).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):  # ccdproc divides by the dead flat pixels too
            reference = ccdproc.ccd_process(
                CCDData(raw, unit="adu"),
                dark_frame=CCDData(dark.astype(np.float32), unit="adu"),
                master_flat=CCDData(flat.astype(np.float32), unit="adu"),
                dark_exposure=60 * u.s,
                data_exposure=60 * u.s,
            ).data
        ours = fits.getdata(root / done[lights[0].path.name].path)
        compare = ~bad & np.isfinite(ours)
        np.testing.assert_allclose(ours[compare], reference[compare], rtol=1e-5, atol=1e-3)
        # A 30 s light: ccdproc takes the bias off, and scales the (bias-subtracted) 60 s dark by 0.5.
        bias = fits.getdata(root / built["bias"].path).astype(np.float32)
        raw = fits.getdata(short[0].path).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            reference = ccdproc.ccd_process(
                CCDData(raw, unit="adu"),
                master_bias=CCDData(bias, unit="adu"),
                dark_frame=CCDData(dark.astype(np.float32) - bias, unit="adu"),
                master_flat=CCDData(flat.astype(np.float32), unit="adu"),
                dark_exposure=60 * u.s,
                data_exposure=30 * u.s,
                dark_scale=True,
            ).data
        ours = fits.getdata(root / done[short[0].path.name].path)
        compare = ~bad & np.isfinite(ours)
        np.testing.assert_allclose(ours[compare], reference[compare], rtol=1e-5, atol=1e-3)

        # Provenance in the database: each master's raw frames, each light's masters and why.
        repository = repository_of(run)
        try:
            with repository.sessions() as session:
                rows = {m.kind: m for m in session.scalars(select(Master))}
                assert rows["flat"].provenance["parameters"]["method"] == "sigma_clip"
                assert rows["flat"].provenance["offset_master"] == built["bias"].master_id
                inputs = session.scalars(select(MasterInput.frame_id).where(MasterInput.master_id == rows["dark"].id))
                assert sorted(inputs) == sorted(built["dark"].frame_ids)
                links = session.scalars(select(Calibration).where(Calibration.status == "calibrated")).all()
                assert len(links) == 5 and all(link.dark_id == rows["dark"].id for link in links)
                assert all(link.explanation for link in links)
        finally:
            repository.engine.dispose()


def test_a_light_waits_for_its_flats_and_is_calibrated_when_they_arrive(tmp_path, mosquitto, watcher, sensor):
    with running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        write_series(run.capture, sensor, FrameKind.DARK, COUNT, exposure=60, seed=2)
        watcher.wait_for(lambda _: len(masters(watcher)) == 1, timeout=240)
        [light] = write_series(run.capture, sensor, FrameKind.LIGHT, 1, exposure=60, seed=4, filter="Green", level=SKY)
        watcher.wait_for(lambda _: state(watcher).calibration_queue == 1 and state(watcher).waiting_for, timeout=240)
        assert any("flat: no match" in reason for reason in state(watcher).waiting_for)
        assert calibrated(watcher) == []

        # Dawn flats (with their own dark-flats, written as Ekos does: dark frames of the flats' exposure).
        dawn = START + timedelta(hours=11)
        write_series(run.capture, sensor, FrameKind.DARK, COUNT, exposure=2, seed=6, start=dawn)
        write_series(run.capture, sensor, FrameKind.FLAT, COUNT, exposure=2, seed=3, filter="Green", start=dawn)
        watcher.wait_for(lambda _: len(calibrated(watcher)) == 1, timeout=240)
        [message] = calibrated(watcher)
        assert message.light.endswith(light.path.name) and message.flat is not None
        assert message.waited_s is not None and message.waited_s > 0
        flat = next(m for m in masters(watcher) if m.kind == "flat")
        assert message.flat == flat.master_id
        with fits.open(run.repository / flat.path) as hdul:
            # The 2 s darks served as the flats' dark-flat.
            assert hdul[0].header["CALDFLAT"].startswith("dark-")
        watcher.wait_for(lambda _: state(watcher).calibration_queue == 0 and not state(watcher).waiting_for, timeout=10)


def test_a_waiting_light_survives_a_restart_and_is_calibrated_by_flats_written_while_down(
    tmp_path, mosquitto, watcher, sensor
):
    with running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        write_series(run.capture, sensor, FrameKind.BIAS, COUNT, exposure=0, seed=1)
        write_series(run.capture, sensor, FrameKind.DARK, COUNT, exposure=60, seed=2)
        write_series(run.capture, sensor, FrameKind.LIGHT, 2, exposure=60, seed=4, filter="Red", level=SKY)
        watcher.wait_for(lambda _: len(masters(watcher)) == 2, timeout=240)
        watcher.wait_for(lambda _: state(watcher).calibration_queue == 2 and state(watcher).waiting_for, timeout=240)
        capture = run.capture
    write_series(capture, sensor, FrameKind.FLAT, COUNT, exposure=2, seed=3, filter="Red", start=START)
    watcher.messages.clear()
    with running(tmp_path, mosquitto):
        watcher.wait_for(lambda _: len(calibrated(watcher)) == 2, timeout=240)
        assert [m.kind for m in masters(watcher)] == ["flat"]  # the bias and dark were not built again
        assert all(c.waited_s is not None and c.flat == masters(watcher)[0].master_id for c in calibrated(watcher))
        watcher.wait_for(lambda _: state(watcher).calibration_queue == 0, timeout=10)


def test_bad_calibration_input_gets_an_error_event_and_the_service_goes_on(tmp_path, mosquitto, watcher, sensor):
    with running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        write_series(run.capture, sensor, FrameKind.BIAS, COUNT, exposure=0, seed=1)
        write_series(run.capture, sensor, FrameKind.FLAT, COUNT, exposure=2, seed=3, filter="Red")
        # A flat read out empty (a camera glitch): a valid FITS, so the ingest takes it; it has no signal.
        empty = frame_info(FrameKind.FLAT, exposure=2, filter="Red", time=START + timedelta(seconds=30))
        write_frame(run.capture / "Flat_empty.fits", np.zeros(sensor.shape, np.uint16), empty)
        watcher.wait_for(lambda _: events(watcher, "frame_unusable"), timeout=240)
        [problem] = events(watcher, "frame_unusable")
        assert problem.level == "error" and "Flat_empty.fits" in problem.message
        assert "without signal" in problem.message
        watcher.wait_for(lambda _: {m.kind for m in masters(watcher)} == {"bias", "flat"}, timeout=240)
        assert next(m for m in masters(watcher) if m.kind == "flat").frames == COUNT

        # Masters on command: two darks of one size and one of another cannot make one master.
        write_series(run.capture, sensor, FrameKind.DARK, 2, exposure=60, seed=2)
        small = Sensor(rows=48, cols=72)
        [odd] = write_series(run.capture, small, FrameKind.DARK, 1, exposure=60, seed=7)
        repository = repository_of(run)
        try:

            def dark_ids() -> list[int]:
                with repository.sessions() as session:
                    return list(session.scalars(select(Frame.id).where(Frame.frame_type == "dark")))

            watcher.wait_for(lambda _: len(dark_ids()) == 3, timeout=240)
            ids = dark_ids()
        finally:
            repository.engine.dispose()
        command = {"frame_ids": ids, "request_id": "r1", "origin": {"kind": "cli", "user": "ada"}}
        watcher.publish("obsy/imaging/masters/set", json.dumps(command))

        def answer(request: str) -> ImagingMastersState | None:
            for m in reversed(watcher.on("obsy/imaging/masters/state")):
                got = ImagingMastersState.model_validate_json(m.payload)
                if got.request_id == request and got.status in ("done", "failed"):
                    return got
            return None

        watcher.wait_for(lambda _: answer("r1") is not None, timeout=240)
        failed = answer("r1")
        assert failed.status == "failed" and failed.built == []
        assert odd.path.name in failed.errors[0] and "size" in failed.errors[0]
        assert any(odd.path.name in e.message for e in events(watcher, "master_failed"))

        # On command the rest builds with fewer frames than min_frames; the service is still up.
        watcher.publish("obsy/imaging/masters/set", json.dumps({"min_frames": 2, "request_id": "r2"}))
        watcher.wait_for(lambda _: answer("r2") is not None, timeout=240)
        assert answer("r2").status == "done" and len(answer("r2").built) == 1
        dark = next(m for m in masters(watcher) if m.kind == "dark")
        assert dark.frames == 2 and dark.master_id == answer("r2").built[0]
        assert watcher.on("obsy/imaging/availability")[-1].payload == b"online"
        assert run.thread.is_alive()


def masters_answer(watcher: Watcher, request: str) -> ImagingMastersState | None:
    for m in reversed(watcher.on("obsy/imaging/masters/state")):
        got = ImagingMastersState.model_validate_json(m.payload)
        if got.request_id == request and got.status in ("done", "failed"):
            return got
    return None


def test_a_master_pinned_over_the_bus_recalibrates_the_lights_it_now_serves(tmp_path, mosquitto, watcher, sensor):
    start = (datetime.now(UTC) - timedelta(hours=12)).replace(minute=0, second=0, microsecond=0)
    with running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        assert (
            ImagingMastersState.model_validate_json(watcher.on("obsy/imaging/masters/state")[-1].payload).pinned == []
        )
        write_series(run.capture, sensor, FrameKind.BIAS, COUNT, exposure=0, seed=1, start=start)
        write_series(run.capture, sensor, FrameKind.DARK, COUNT, exposure=60, seed=2, start=start)
        write_series(run.capture, sensor, FrameKind.FLAT, COUNT, exposure=2, seed=3, filter="Red", start=start)
        watcher.wait_for(lambda _: len(masters(watcher)) == 3, timeout=240)
        [light] = write_series(
            run.capture, sensor, FrameKind.LIGHT, 1, exposure=60, seed=4, filter="Red", level=SKY, start=start
        )
        watcher.wait_for(lambda _: len(calibrated(watcher)) == 1, timeout=240)
        first_dark = calibrated(watcher)[0].dark

        # Darks of a later session: a newer master of the group, chosen now; the light is calibrated again.
        later = start + timedelta(hours=8)
        write_series(run.capture, sensor, FrameKind.DARK, COUNT, exposure=60, seed=5, start=later)
        watcher.wait_for(lambda _: len(calibrated(watcher)) == 2, timeout=240)
        again = calibrated(watcher)[1]
        assert again.recalibrated and again.frame_id == calibrated(watcher)[0].frame_id
        assert again.replaces["dark"] == first_dark and again.dark != first_dark
        assert again.path == calibrated(watcher)[0].path  # the file replaced in place
        watcher.wait_for(lambda _: events(watcher, "lights_recalibrated"), timeout=30)

        # Pinned over the bus: the first dark wins again, and says so.
        pin = {"action": "pin", "master_id": first_dark, "request_id": "p1", "origin": {"kind": "cli", "user": "ada"}}
        watcher.publish("obsy/imaging/masters/set", json.dumps(pin))
        watcher.wait_for(lambda _: masters_answer(watcher, "p1") is not None, timeout=60)
        answer = masters_answer(watcher, "p1")
        assert answer.status == "done" and answer.action == "pin" and answer.pinned == [first_dark]
        watcher.wait_for(lambda _: len(calibrated(watcher)) == 3, timeout=240)
        pinned = calibrated(watcher)[2]
        assert pinned.recalibrated and pinned.dark == first_dark and pinned.replaces["dark"] == again.dark
        assert any(line.startswith("dark:") and "pinned by the user" in line for line in pinned.explanation)
        with fits.open(run.repository / pinned.path) as hdul:
            assert hdul[0].header["CALDARK"] == f"{first_dark}.fits"
        assert light.path.exists()

        # An unknown master: a clear answer naming it; the service goes on.
        watcher.publish(
            "obsy/imaging/masters/set", json.dumps({"action": "unpin", "master_id": "dark-0", "request_id": "p2"})
        )
        watcher.publish("obsy/imaging/masters/set", json.dumps({"action": "pin", "request_id": "p3"}))
        watcher.wait_for(lambda _: masters_answer(watcher, "p3") is not None, timeout=60)
        assert masters_answer(watcher, "p2").status == "failed"
        assert "no master 'dark-0' in the calibration library" in masters_answer(watcher, "p2").errors[0]
        assert masters_answer(watcher, "p3").errors == ["pin: no master_id given"]
        assert masters_answer(watcher, "p3").pinned == [first_dark]  # nothing changed
        assert len(calibrated(watcher)) == 3 and run.thread.is_alive()
