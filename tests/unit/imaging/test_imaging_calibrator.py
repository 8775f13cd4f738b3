"""The calibration library wired to the repository: masters from registered frames, lights calibrated, state kept.

Frames are written with the known fixed pattern of tests/support/calibration_frames.py, registered
by the real ingest into a real SQLite repository, and the :class:`Calibrator` runs passes on them
as the service does (the service and its bus: tests/integration/imaging/test_imaging_calibration_service.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from obsy.config import ImagingCalibrationConfig, SiteConfig
from obsy_imaging.calibration import FrameKind
from obsy_imaging.calibrator import CALIBRATED, WAITING, Calibrator, PassResult, PinError, calibrated_path
from obsy_imaging.ingest.ingestor import Ingestor, Outcome
from obsy_imaging.repository.models import Calibration, Frame, FrameProblem, Master, MasterInput
from obsy_imaging.repository.store import Repository
from tests.support.calibration_frames import Sensor, frame_info, write_frame, write_series

SITE = SiteConfig(latitude=-33.93, longitude=18.42, elevation=30, timezone="Africa/Johannesburg")
START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


@pytest.fixture
def sensor() -> Sensor:
    return Sensor(rows=64, cols=96, hot_count=8, cold_count=4)


class Bench:
    def __init__(self, tmp_path: Path, repository: Repository, sensor: Sensor, **settings) -> None:
        self.capture = tmp_path / "capture"
        self.capture.mkdir(exist_ok=True)
        self.repository = repository
        self.sensor = sensor
        self.ingestor = Ingestor(repository, SITE)
        self.calibrator = Calibrator(
            repository, ImagingCalibrationConfig(**{"quiet_time": 0, "quiet_exposures": 0, **settings}), backend="numpy"
        )

    def series(self, kind: FrameKind, count: int, *, exposure: float, seed: int, **info) -> list[Path]:
        written = write_series(self.capture, self.sensor, kind, count, exposure=exposure, seed=seed, **info)
        for frame in written:
            assert self.ingestor.ingest(frame.path, "watch", final=True).outcome is Outcome.REGISTERED
        return [f.path for f in written]

    def rows(self, model) -> list:
        with self.repository.sessions() as session:
            return list(session.scalars(select(model)))


def test_masters_are_built_and_lights_calibrated_against_the_truth(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor, method="median")
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1)
    bench.series(FrameKind.DARK, 5, exposure=60, seed=2)
    bench.series(FrameKind.FLAT, 5, exposure=2, seed=3, filter="Red", level=20000)
    sky = 800.0
    lights = bench.series(FrameKind.LIGHT, 2, exposure=60, seed=4, filter="Red", level=sky)
    raw_bytes = [p.read_bytes() for p in lights]

    result = bench.calibrator.run()
    assert result.problems == []
    assert sorted(b.master.kind for b in result.built) == ["bias", "dark", "flat"]
    assert len(result.calibrated) == 2
    flat = next(b.master for b in result.built if b.master.kind == "flat")
    assert flat.provenance["offset_master"].startswith("bias-")  # the flats' offset was taken off
    dark = next(b.master for b in result.built if b.master.kind == "dark")
    assert dark.bad_pixel_path and (repository.root / dark.bad_pixel_path).is_file()
    assert set(dark.provenance["bad_pixels"]) >= {"hot", "cold"}

    # Provenance in the database (inputs) and in the master's header (HISTORY).
    inputs = bench.rows(MasterInput)
    assert len(inputs) == 15
    header = fits.getheader(repository.root / flat.path)
    assert header["NCOMBINE"] == 5 and header["IMAGETYP"] == "Master Flat"
    assert sum("input" in line for line in header["HISTORY"]) == 5

    for done in result.calibrated:
        row = done.calibration
        assert row.status == CALIBRATED and row.dark_id == dark.id and row.flat_id == flat.id
        assert row.bias_id is None and row.dark_scale == 1.0  # a dark of the light's exposure holds the bias
        assert any(line.startswith("dark:") and "matches the light's" in line for line in row.explanation)
        output = repository.root / row.path
        with fits.open(output) as hdul:
            data = hdul[0].data.astype(np.float64)
            assert hdul[0].header["BITPIX"] == -32 and hdul[0].header["CALSTAT"] == "DFC"
        # The fixed pattern is gone: (light - bias - dark current) / flat is the sky everywhere.
        good = np.isfinite(data)
        assert abs(np.median(data[good]) - sky) < 0.01 * sky
        corners = np.median(data[:8, :8]), np.median(data[-8:, -8:])
        centre = np.median(data[28:36, 44:52])
        assert all(abs(c - centre) < 0.03 * sky for c in corners)  # the vignetting is flattened
    assert [p.read_bytes() for p in lights] == raw_bytes  # originals untouched

    # A second pass does nothing more.
    again = bench.calibrator.run(retry_waiting=True)
    assert again.built == [] and again.calibrated == [] and again.problems == []


def test_a_light_waits_for_its_flat_and_is_calibrated_when_it_comes(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor)
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1)
    bench.series(FrameKind.DARK, 5, exposure=120, seed=2)
    bench.series(FrameKind.LIGHT, 1, exposure=60, seed=4, filter="Green", level=500)

    first = bench.calibrator.run()
    assert first.calibrated == []
    [row] = bench.rows(Calibration)
    assert row.status == WAITING and any(line.startswith("flat: no match") for line in row.waiting_for)
    assert bench.calibrator.counts(row.night).queue == 1

    bench.series(FrameKind.FLAT, 5, exposure=2, seed=3, filter="Green", start=START + timedelta(hours=10), level=20000)
    second = bench.calibrator.run()
    assert [b.master.kind for b in second.built] == ["flat"]
    [done] = second.calibrated
    assert done.calibration.dark_scale == pytest.approx(0.5)  # the 120 s dark scaled down...
    assert done.masters.keys() == {"bias", "dark", "flat"}  # ...with the bias taken off in its place
    assert any("scaled by 0.5" in line for line in done.calibration.explanation)
    assert bench.calibrator.counts(row.night).queue == 0


def test_a_group_that_grows_gets_a_bigger_master_that_replaces_the_first(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor)
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1)
    first = bench.calibrator.run()
    [small] = [b.master for b in first.built]
    write_more = write_series(
        bench.capture, sensor, FrameKind.BIAS, 3, exposure=0, seed=9, start=START + timedelta(minutes=1)
    )
    for frame in write_more:
        bench.ingestor.ingest(frame.path, "watch", final=True)
    second = bench.calibrator.run()
    [big] = second.built
    assert big.master.frame_count == 8 and big.replaces == small.master_id
    assert [m.master_id for m in bench.calibrator.library()] == [big.master.master_id]


def test_an_unusable_calibration_frame_is_left_out_with_its_reason(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor)
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1)
    bench.series(FrameKind.FLAT, 5, exposure=2, seed=3, filter="Red", level=20000)
    # A flat read out empty (the panel was off, the camera glitched): the ingest takes it, it has no signal.
    empty = frame_info(FrameKind.FLAT, exposure=2, filter="Red", time=START + timedelta(seconds=30))
    path = write_frame(bench.capture / "Flat_empty.fits", np.zeros(sensor.shape, np.uint16), empty)
    assert bench.ingestor.ingest(path, "watch", final=True).outcome is Outcome.REGISTERED

    result = bench.calibrator.run()
    [problem] = result.problems
    assert problem.kind == "frame_unusable" and "Flat_empty.fits" in problem.message
    assert "without signal" in problem.message
    assert sorted(b.master.kind for b in result.built) == ["bias", "flat"]
    flat = next(b for b in result.built if b.master.kind == "flat")
    assert flat.master.frame_count == 5
    [recorded] = bench.rows(FrameProblem)
    assert "without signal" in recorded.reason
    assert bench.calibrator.run().problems == []  # reported once


def test_a_master_on_command_of_frames_that_do_not_belong_together_is_refused(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor)
    bench.series(FrameKind.DARK, 2, exposure=60, seed=2)
    small = Sensor(rows=32, cols=48)
    odd = write_series(bench.capture, small, FrameKind.DARK, 1, exposure=60, seed=5)
    bench.ingestor.ingest(odd[0].path, "watch", final=True)
    ids = [f.id for f in bench.rows(Frame)]
    result = bench.calibrator.build_from(ids, PassResult())
    [problem] = result.problems
    assert problem.kind == "master_failed" and odd[0].path.name in problem.message and "size" in problem.message
    assert bench.rows(Master) == []

    result = bench.calibrator.build_from(ids[:2], PassResult())  # two frames on command: below min_frames is fine
    assert result.problems == [] and result.built[0].master.frame_count == 2


def test_a_truncated_raw_frame_is_left_out_and_the_group_waits(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor)
    paths = bench.series(FrameKind.BIAS, 5, exposure=0, seed=1)
    with bench.repository.sessions() as session:
        stored = session.scalar(select(Frame).where(Frame.source_path == str(paths[2])))
    stored_path = repository.root / stored.path
    stored_path.unlink()  # the repository's copy damaged after it was registered
    stored_path.write_bytes(paths[2].read_bytes()[:4000])
    result = bench.calibrator.run()
    [problem] = result.problems
    assert problem.kind == "frame_unusable" and stored_path.name in problem.message and "truncated" in problem.message
    assert result.built == []  # four good frames are fewer than min_frames
    assert bench.calibrator.run().problems == []


def test_calibrated_path_mirrors_the_lights_layout():
    frame = Frame(path="lights/2026-12-01/M_42/Red/Light_001.fit")
    assert calibrated_path(frame).as_posix() == "calibrated/2026-12-01/M_42/Red/Light_001.fits"


@pytest.mark.long(seconds=40)
@pytest.mark.timeout(900)  # CPU-bound: on a loaded 2-core machine it has taken over 300 s
def test_the_calibrate_command_builds_masters_and_calibrates_an_imported_archive(tmp_path, sensor):
    import subprocess
    import sys

    import yaml

    from obsy_imaging.main import main as obsy_imaging_main
    from tests.support.commands import run_command

    archive = tmp_path / "archive"
    archive.mkdir()
    for kind, exposure, seed, extra in (
        (FrameKind.BIAS, 0, 1, {}),
        (FrameKind.DARK, 60, 2, {}),
        (FrameKind.FLAT, 2, 3, {"filter": "Red", "level": 20000}),
        (FrameKind.LIGHT, 60, 4, {"filter": "Red", "level": 800}),
    ):
        write_series(archive, sensor, kind, 3, exposure=exposure, seed=seed, **extra)
    config = tmp_path / "obsy.yaml"
    config.write_text(yaml.safe_dump({"site": {"latitude": 50.0, "longitude": 8.0}, "data_dir": str(tmp_path / "d")}))

    def obsy_imaging(*args: str) -> subprocess.CompletedProcess[str]:
        """A real ``obsy-imaging`` process, for the entry point: the import."""
        command = [sys.executable, "-m", "obsy_imaging", *args, "-c", str(config)]
        return subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    def in_process(*args: str) -> subprocess.CompletedProcess[str]:
        """The same command line in this process, through the console script's own dispatch: what the command
        does, without a process start each."""
        return run_command(obsy_imaging_main, *args, "-c", str(config))

    assert obsy_imaging("import", "--no-progress", str(archive)).returncode == 0
    waiting = in_process("calibrate")  # groups of 3 are below min_frames (5): nothing to build
    assert waiting.returncode == 0, waiting.stderr
    assert "0 master(s) built, 0 light(s) calibrated, 3 waiting" in waiting.stdout
    assert "dark: no match" in waiting.stdout

    done = in_process("calibrate", "--min-frames", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("master ") == 3 and "3 light(s) calibrated, 0 waiting" in done.stdout
    calibrated = list((tmp_path / "d" / "imaging" / "repository" / "calibrated").rglob("*.fits"))
    assert len(calibrated) == 3

    refused = in_process("calibrate", "--frames", "999")
    assert refused.returncode == 1 and "no frames with ids [999]" in refused.stderr

    # Pins from the command line: list, pin, unpin; an unknown master named, a missing id refused.
    listed = in_process("masters")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3 and "pinned" not in listed.stdout
    dark_id = next(line.split()[0] for line in listed.stdout.splitlines() if line.split()[1] == "dark")
    pinned = in_process("masters", "pin", dark_id)
    assert pinned.returncode == 0 and f"pinned dark {dark_id}" in pinned.stdout, pinned.stderr
    assert next(line for line in in_process("masters").stdout.splitlines() if dark_id in line).endswith(" pinned")
    unknown = in_process("masters", "pin", "dark-nothere")
    assert unknown.returncode == 1 and "no master 'dark-nothere' in the calibration library" in unknown.stderr
    assert in_process("masters", "unpin").returncode == 2
    assert in_process("masters", "unpin", dark_id).returncode == 0
    assert "pinned" not in in_process("masters").stdout


def test_a_ready_group_is_built_once_no_frame_joined_it_for_a_while(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor, quiet_time=30, quiet_exposures=2)
    bench.series(FrameKind.DARK, 5, exposure=60, seed=2)
    registered = max(frame.ingested_at for frame in bench.rows(Frame)).replace(tzinfo=UTC)
    soon = bench.calibrator.run(now=registered + timedelta(seconds=100))  # < 30 s + 2 × 60 s
    assert soon.built == [] and soon.due_later
    assert any("may still be arriving" in text for text in soon.waiting_groups)
    later = bench.calibrator.run(now=registered + timedelta(seconds=151))
    assert [b.master.kind for b in later.built] == ["dark"]


def test_a_frame_ingested_while_a_pass_groups_is_grouped_in_the_next_pass(tmp_path, repository, sensor):
    """The watcher ingests on its own thread: a flat registered while a pass is grouping (which may
    not have seen it) must make the next pass group again, or a group one frame short stays unbuilt."""
    bench = Bench(tmp_path, repository, sensor)
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1)
    flats = write_series(bench.capture, sensor, FrameKind.FLAT, 5, exposure=2, seed=3, filter="Red", level=20000)
    for flat in flats[:4]:
        bench.ingestor.ingest(flat.path, "watch", final=True)
    grouping = bench.calibrator.build_due

    def build_due_while_the_fifth_arrives(*args, **kwargs):
        result = grouping(*args, **kwargs)  # saw four flats: no flat group yet
        bench.ingestor.ingest(flats[4].path, "watch", final=True)  # the watcher's thread, meanwhile
        return result

    bench.calibrator.build_due = build_due_while_the_fifth_arrives
    first = bench.calibrator.run()
    assert [b.master.kind for b in first.built] == ["bias"]
    bench.calibrator.build_due = grouping
    second = bench.calibrator.run()
    assert [b.master.kind for b in second.built] == ["flat"]


# --- pins, optical trains, lights calibrated again -------------------------------------------------


def recent_start() -> datetime:
    """Frames of the last night (lights are calibrated again within ``recalibrate_nights`` of now)."""
    return (datetime.now(UTC) - timedelta(hours=12)).replace(minute=0, second=0, microsecond=0)


def masters_of(bench: Bench, kind: str) -> list[Master]:
    return sorted((m for m in bench.rows(Master) if m.kind == kind), key=lambda m: m.id)


def direct_calibration(root: Path, raw: Path, dark: Master, flat: Master) -> np.ndarray:
    """(light − dark) / flat from the files, in float64: what a light calibrated with these masters must hold."""
    light = fits.getdata(raw).astype(np.float64)
    flat_data = fits.getdata(root / flat.path).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (light - fits.getdata(root / dark.path).astype(np.float64)) / flat_data
    expected[~(flat_data > 0.05)] = np.nan
    return expected


def assert_calibrated_with(bench: Bench, row: Calibration, raw: Path, dark: Master, flat: Master) -> None:
    assert (row.dark_id, row.flat_id, row.bias_id) == (dark.id, flat.id, None)
    with fits.open(bench.repository.root / row.path) as hdul:
        got = hdul[0].data.astype(np.float64)
        assert hdul[0].header["CALDARK"] == Path(dark.path).name and hdul[0].header["CALFLAT"] == Path(flat.path).name
    expected = direct_calibration(bench.repository.root, raw, dark, flat)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    good = np.isfinite(expected)
    np.testing.assert_allclose(got[good], expected[good], rtol=1e-5, atol=1e-3)


def last_night(bench: Bench, lights: int = 2) -> list[Path]:
    """Bias, darks and a flat of last night, and its lights calibrated with them."""
    start = recent_start()
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1, start=start - timedelta(hours=1))
    bench.series(FrameKind.DARK, 5, exposure=60, seed=2, start=start - timedelta(hours=1))
    bench.series(FrameKind.FLAT, 5, exposure=2, seed=3, filter="Red", start=start - timedelta(hours=1))
    written = bench.series(FrameKind.LIGHT, lights, exposure=60, seed=4, filter="Red", level=800, start=start)
    first = bench.calibrator.run()
    assert len(first.calibrated) == lights and first.recalibrated == [] and first.problems == []
    return written


def test_a_pinned_master_is_chosen_for_its_group_and_its_lights_are_calibrated_again(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor, bad_pixels=False)
    lights = last_night(bench)
    start = recent_start()
    [dark_a], [flat] = masters_of(bench, "dark"), masters_of(bench, "flat")

    # A second series of darks, later: a newer master of the same group, so the lights are calibrated with it.
    bench.series(FrameKind.DARK, 5, exposure=60, seed=5, start=start + timedelta(hours=8))
    second = bench.calibrator.run()
    dark_b = masters_of(bench, "dark")[1]
    assert [b.master.master_id for b in second.built] == [dark_b.master_id]
    assert sorted(done.frame.id for done in second.recalibrated) == sorted(r.frame_id for r in bench.rows(Calibration))
    for done in second.recalibrated:
        assert done.replaced == {"dark": dark_a.master_id, "flat": flat.master_id}
        assert done.masters == {"dark": dark_b.master_id, "flat": flat.master_id}
    rows = {r.frame_id: r for r in bench.rows(Calibration)}
    frames = {f.path.rsplit("/", 1)[-1]: f.id for f in bench.rows(Frame)}
    for raw in lights:
        row = rows[frames[raw.name]]
        assert_calibrated_with(bench, row, raw, dark_b, flat)
        [earlier] = row.history
        assert earlier["masters"] == {"dark": dark_a.master_id, "flat": flat.master_id}
        assert any(line.startswith(f"dark: {dark_a.master_id}") for line in earlier["explanation"])

    # The user pins the first dark: chosen over the newer one, the lights calibrated again with it, "pinned" said.
    change = bench.calibrator.pin(dark_a.master_id, by="test")
    assert change.pinned and change.unpinned == ()
    pinned = bench.calibrator.run()
    assert len(pinned.recalibrated) == 2 and pinned.built == []
    rows = {r.frame_id: r for r in bench.rows(Calibration)}
    for raw in lights:
        row = rows[frames[raw.name]]
        assert_calibrated_with(bench, row, raw, dark_a, flat)
        dark_line = next(line for line in row.explanation if line.startswith("dark:"))
        assert "pinned by the user" in dark_line and dark_a.master_id in dark_line
        assert len(row.history) == 2
    assert bench.calibrator.pinned() == [dark_a.master_id]

    # Idempotent: nothing changes, nothing is done again, even when asked directly.
    assert bench.calibrator.run().recalibrated == []
    assert bench.calibrator.recalibrate(PassResult()).recalibrated == []

    # Pinning the other dark of the group unpins the first (one pin per group); unpinning: the newest again.
    assert bench.calibrator.pin(str(dark_b.id)).unpinned == (dark_a.master_id,)  # by its number too
    bench.calibrator.unpin(dark_b.master_id)
    assert bench.calibrator.pinned() == []
    unpinned = bench.calibrator.run()
    assert {done.masters["dark"] for done in unpinned.recalibrated} == {dark_b.master_id}


def test_lights_calibrated_again_only_within_the_nights_configured(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor, recalibrate_nights=2)
    last_night(bench, lights=1)
    start = recent_start()
    bench.series(FrameKind.DARK, 5, exposure=60, seed=5, start=start + timedelta(hours=8))
    bench.calibrator.build_due(PassResult(), force=True)
    later = datetime.now(UTC) + timedelta(days=4)  # the light's night is out of the window now
    assert bench.calibrator.recalibrate(PassResult(), now=later).recalibrated == []
    assert len(bench.calibrator.recalibrate(PassResult()).recalibrated) == 1
    off = Calibrator(repository, ImagingCalibrationConfig(recalibrate_nights=0), backend="numpy")
    off.pin(masters_of(bench, "dark")[0].master_id)
    assert off.recalibrate(PassResult()).recalibrated == []


def test_dawn_flats_nearer_in_time_replace_yesterdays_flat(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor, bad_pixels=False)
    start = recent_start()
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1, start=start - timedelta(days=1))
    bench.series(FrameKind.DARK, 5, exposure=60, seed=2, start=start - timedelta(days=1))
    bench.series(FrameKind.FLAT, 5, exposure=2, seed=3, filter="Red", start=start - timedelta(days=1))
    [raw] = bench.series(FrameKind.LIGHT, 1, exposure=60, seed=4, filter="Red", level=800, start=start)
    assert len(bench.calibrator.run().calibrated) == 1
    [yesterday] = masters_of(bench, "flat")

    bench.series(FrameKind.FLAT, 5, exposure=2, seed=6, filter="Red", level=15000, start=start + timedelta(hours=9))
    dawn = bench.calibrator.run()
    [dawn_flat] = [b.master for b in dawn.built]
    [done] = dawn.recalibrated
    assert done.replaced["flat"] == yesterday.master_id and done.masters["flat"] == dawn_flat.master_id
    [row] = bench.rows(Calibration)
    assert_calibrated_with(bench, row, raw, masters_of(bench, "dark")[0], dawn_flat)
    assert any(
        line.startswith(f"flat: {dawn_flat.master_id}") and "9.0 h from the light" in line for line in row.explanation
    )


def test_flats_are_matched_by_optical_train(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor)
    start = recent_start()
    redcat = {"TELESCOP": "RedCat 51", "FOCALLEN": 250.0}
    newton = {"TELESCOP": "Newton 200", "FOCALLEN": 800.0}
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1, start=start - timedelta(hours=2))
    bench.series(FrameKind.DARK, 5, exposure=60, seed=2, start=start - timedelta(hours=2))
    bench.series(FrameKind.FLAT, 5, exposure=2, seed=3, filter="Red", start=start - timedelta(hours=2), cards=redcat)
    bench.series(FrameKind.FLAT, 5, exposure=2, seed=6, filter="Red", start=start, cards=newton)  # nearer in time
    bench.series(FrameKind.LIGHT, 1, exposure=60, seed=4, filter="Red", level=800, start=start, cards=redcat)
    result = bench.calibrator.run()
    flats = {m.optical_train: m for m in masters_of(bench, "flat")}
    assert set(flats) == {"RedCat 51, 250 mm, ZWO CCD ASI294MM Pro", "Newton 200, 800 mm, ZWO CCD ASI294MM Pro"}
    [done] = result.calibrated
    assert done.masters["flat"] == flats["RedCat 51, 250 mm, ZWO CCD ASI294MM Pro"].master_id
    flat_line = next(line for line in done.calibration.explanation if line.startswith("flat:"))
    assert "optical train RedCat 51, 250 mm" in flat_line

    # The train is configurable: without it, the nearer flat of the other telescope would serve.
    by_filter = Calibrator(repository, ImagingCalibrationConfig(optical_train=[]), backend="numpy")
    [light] = [f for f in bench.rows(Frame) if f.frame_type == "light"]
    assert by_filter.optical_train(light) is None and bench.calibrator.optical_train(light).startswith("RedCat 51")
    scope_only = Calibrator(repository, ImagingCalibrationConfig(optical_train=["telescope"]), backend="numpy")
    assert scope_only.optical_train(light) == "RedCat 51"
    # A header without its focal length has no train: such a light takes the nearest flat of its filter.
    bench.series(
        FrameKind.LIGHT, 1, exposure=60, seed=7, filter="Red", level=800, start=start, cards={"TELESCOP": "RedCat 51"}
    )
    [done] = bench.calibrator.run().calibrated
    assert done.masters["flat"] == flats["Newton 200, 800 mm, ZWO CCD ASI294MM Pro"].master_id


def test_pinning_an_unknown_master_is_refused_by_name(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor)
    bench.series(FrameKind.BIAS, 5, exposure=0, seed=1)
    bench.calibrator.run()
    for reference in ("dark-nothere", "9999", ""):
        with pytest.raises(PinError, match=f"no master '{reference}' in the calibration library"):
            bench.calibrator.pin(reference)
        with pytest.raises(PinError, match=f"no master '{reference}'"):
            bench.calibrator.unpin(reference)
    assert bench.calibrator.pinned() == []


@pytest.mark.slow
def test_a_light_that_cannot_be_calibrated_again_keeps_its_calibration(tmp_path, repository, sensor):
    bench = Bench(tmp_path, repository, sensor)
    last_night(bench, lights=1)
    bench.series(FrameKind.DARK, 5, exposure=60, seed=5, start=recent_start() + timedelta(hours=8))
    assert len(bench.calibrator.run().recalibrated) == 1
    [before] = bench.rows(Calibration)
    calibrated_bytes = (repository.root / before.path).read_bytes()
    first_dark = masters_of(bench, "dark")[0]
    (repository.root / first_dark.path).unlink()  # the pinned master's file is gone
    bench.calibrator.pin(first_dark.master_id)
    result = bench.calibrator.run()
    assert result.recalibrated == []
    [problem] = result.problems
    assert problem.kind == "calibration_failed" and "not calibrated again" in problem.message
    assert first_dark.master_id in problem.message
    [after] = bench.rows(Calibration)
    assert (after.status, after.dark_id, after.history) == (CALIBRATED, before.dark_id, before.history)
    assert (repository.root / after.path).read_bytes() == calibrated_bytes
