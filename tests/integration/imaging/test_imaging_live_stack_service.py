"""The live stack in the running imaging service: real broker, real watched folder, real SQLite, real files.

Lights from the sky simulator with known dithers (and a meridian flip) arrive in the capture
folder; each is ingested, graded, calibrated, registered onto the first one and folded into the
running stack of its night/target/filter: the stack grows (frames, integration time), its star
fluxes are the simulator's truth, its noise falls as the weights say (1/sqrt(N) for equal ones),
and the stretched preview on the bus is a JPEG of the stack's size. A clouded frame is reported
with the reason and left out; a restart continues the same stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
import sep
from astropy.io import fits
from sqlalchemy import select

from obsy.messages import Event, ImagingLiveStack, ImagingNightStack
from obsy_imaging.repository.models import Grade, LiveStack, LiveStackFrame
from tests.integration.imaging.test_imaging_calibration_service import repository_of
from tests.integration.imaging.test_imaging_service import Running, wait_online
from tests.support.stacking import SENSOR, SimFrame, offset_pointing, render
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

LIVE_STATE = "obsy/imaging/livestack/state"
LIVE_IMAGE = "obsy/imaging/livestack/image"
EVENTS = "obsy/imaging/events"
MASTERS = "obsy/imaging/masters"
SHAPE = (SENSOR.height, SENSOR.width)
PEDESTAL = 1000.0
EXPOSURE = 60.0


def tonight_start() -> datetime:
    """Half an hour ago (only recent nights are stacked live), or just after local noon where the
    frames would straddle it: a night runs from noon to noon at the site (Vienna), so frames on
    both sides of it belong to two nights and two stacks."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    local = start.astimezone(ZoneInfo("Europe/Vienna"))
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    return (noon + timedelta(seconds=1)).astimezone(UTC) if local < noon < local + timedelta(minutes=20) else start


START = tonight_start()
#: (east ", north ", position angle): dithers of up to half a minute of arc, two after a meridian flip.
DITHERS = [(0.0, 0.0, 0.0), (12.0, -20.0, 0.0), (-25.0, 9.0, 180.0), (18.0, 24.0, 0.0), (-8.0, -30.0, 180.0)]


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/#"])
    yield w
    w.close()


@pytest.fixture(scope="module")
def sky() -> list[SimFrame]:
    return [render(offset_pointing(e, n), position_angle=pa, seed=300 + i) for i, (e, n, pa) in enumerate(DITHERS)]


def running(tmp_path: Path, mosquitto) -> Running:
    # A master bias only (the simulator's lights are dark-subtracted and flat already), and
    # grading lets clouded frames through, so that the live stack is the one to refuse them.
    return Running(
        tmp_path,
        mosquitto,
        grading={"min_stars": None, "min_stars_ratio": None, "max_background_ratio": None},
        calibration={"require_dark": False, "require_flat": False, "quiet_time": 0.5, "quiet_exposures": 0},
    )


def write_bias(folder: Path, watcher: Watcher) -> None:
    """Five bias frames (the pedestal and read noise); returns when their master is built."""
    rng = np.random.default_rng(7)
    for index in range(5):
        write_fits(
            folder / "Bias" / f"Bias_{index:03d}.fits", rng.normal(PEDESTAL, 5.0, SHAPE), "Bias Frame", 0.0, index
        )
    watcher.wait_for(lambda msgs: any(m.topic == MASTERS for m in msgs), timeout=120)


def write_light(folder: Path, index: int, image: np.ndarray, taken: float | None = None) -> Path:
    """A light as INDI writes it: uint16 (as int16 with BZERO), the simulator's sky over a pedestal.
    ``taken``: its place in the sequence's time when not its index."""
    return write_fits(
        folder / "M42" / f"Light_M42_L_{index:03d}.fits",
        image + PEDESTAL,
        "Light Frame",
        EXPOSURE,
        index if taken is None else taken,
    )


def write_fits(path: Path, image: np.ndarray, kind: str, exposure: float, index: float) -> Path:
    data = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    header = fits.Header()
    header["IMAGETYP"] = kind
    header["EXPTIME"] = exposure
    header["INSTRUME"] = "Simulated main camera"
    header["XBINNING"], header["YBINNING"] = 1, 1
    header["DATE-OBS"] = (START + timedelta(seconds=index * (EXPOSURE + 5))).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    header["CCD-TEMP"], header["GAIN"], header["OFFSET"] = -10.0, 100, 30
    if kind == "Light Frame":
        header["FILTER"] = "L"
        header["OBJECT"] = "M 42"
    header["FOCALLEN"], header["XPIXSZ"], header["YPIXSZ"] = 500.0, 3.76, 3.76
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".part")
    fits.PrimaryHDU(data, header=header).writeto(temporary)
    temporary.rename(path)
    return path


def stacks(watcher: Watcher) -> list[ImagingLiveStack]:
    return [ImagingLiveStack.model_validate_json(m.payload) for m in watcher.on(LIVE_STATE)]


def events(watcher: Watcher, kind: str) -> list[Event]:
    found = [Event.model_validate_json(m.payload) for m in watcher.on(EVENTS)]
    return [e for e in found if e.kind == kind]


def background_noise(image: np.ndarray) -> float:
    data = np.ascontiguousarray(image, dtype=np.float32)
    residual = data - sep.Background(data, bw=64, bh=64).back()
    return 1.4826 * float(np.median(np.abs(residual - np.median(residual))))


def star_flux_ratios(image: np.ndarray, reference: SimFrame) -> np.ndarray:
    """Aperture sums (8 px) of bright, isolated stars inside every frame, over the simulator's truth."""
    truth = reference.truth
    adu = truth.electrons * reference.adu_per_electron
    x, y = truth.x, truth.y
    inside = (x > 80) & (x < SENSOR.width - 80) & (y > 80) & (y < SENSOR.height - 80)
    distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(distance, np.inf)
    isolated = np.min(np.where(adu[None, :] > 0.002 * adu[:, None], distance, np.inf), axis=1) > 15
    pick = inside & isolated & (adu > 2e4) & (adu < 4e5)
    assert pick.sum() >= 10
    data = np.ascontiguousarray(np.nan_to_num(image), dtype=np.float32)
    flux, _err, _flag = sep.sum_circle(data - sep.Background(data, bw=64, bh=64).back(), x[pick], y[pick], 8.0)
    return flux / adu[pick]


def test_the_live_stack_grows_matches_the_truth_and_leaves_out_a_clouded_frame(tmp_path, mosquitto, watcher, sky):
    with running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        write_bias(run.capture, watcher)
        write_light(run.capture, 0, sky[0].image)  # the first light is the reference: wait for it
        watcher.wait_for(lambda _: len(stacks(watcher)) == 1, timeout=120)
        first = stacks(watcher)[0]
        assert (first.frames, first.integration_s, first.left_out) == (1, EXPOSURE, 0)
        assert first.target == "M 42" and first.filter == "L" and first.weight == 1.0

        clouded = np.random.default_rng(4).normal(300.0, 12.0, sky[0].image.shape)  # fog: sky, no stars
        for index in range(1, len(sky)):
            write_light(run.capture, index, sky[index].image)
            if index == 2:
                write_light(run.capture, 99, clouded, taken=2.5)  # between the third and fourth light
        watcher.wait_for(lambda _: len(stacks(watcher)) == len(sky), timeout=180)
        watcher.wait_for(lambda _: len(events(watcher, "live_stack_left_out")) == 1, timeout=60)

        grown = stacks(watcher)
        assert [s.frames for s in grown] == list(range(1, len(sky) + 1))
        assert [s.integration_s for s in grown] == [EXPOSURE * n for n in range(1, len(sky) + 1)]
        assert len({s.stack_id for s in grown}) == 1
        last = grown[-1]
        # The clouded frame may be taken before or after the last light (the watcher's order under load):
        # the count on the bus never goes down and never passes 1; the database's row says 1 (below).
        left_counts = [s.left_out for s in grown]
        assert left_counts == sorted(left_counts) and set(left_counts) <= {0, 1}
        assert all(0.3 < s.weight < 3.0 for s in grown)

        # The clouded frame: reported with the reason, left out, the stack untouched by it.
        left = events(watcher, "live_stack_left_out")[0]
        assert left.level == "warning" and "too few stars" in left.message and "Light_M42_L_099" in left.message
        assert left.data["stack_id"] == last.stack_id and "too few stars" in left.data["reason"]

        # Registration found the dithers and the flip: a flipped frame is rotated by 180 degrees.
        by_frame = {s.frame_id: s for s in grown}
        flipped = [s for s in grown if abs(abs(s.rotation_deg) - 180.0) < 0.1]
        assert len(flipped) == 2 and len(by_frame) == len(sky)

        # The preview on the bus: the retained JPEG of the last fold, decodable, the stack's shape shrunk.
        jpeg = watcher.on(LIVE_IMAGE)[-1].payload
        preview = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
        assert preview is not None and preview.shape == (800, 1000)  # narrower than preview_width: not shrunk
        assert 0.15 < np.median(preview) / 255 < 0.35  # the sky at the target background (0.25)
        assert (run.repository / last.preview).read_bytes() == jpeg

        # The stack on disk: float32, provenance, the weights' map; the database row says the same.
        with fits.open(run.repository / last.path) as hdus:
            image = hdus[0].data.astype(np.float64)
            header = hdus[0].header
            weight = hdus["WEIGHT"].data
        assert hdus[0].header["BITPIX"] == -32 and header["NCOMBINE"] == len(sky)
        assert header["LIVETIME"] == EXPOSURE * len(sky)
        history = [str(line) for line in header["HISTORY"]]
        assert sum(line.startswith("frame ") for line in history) == len(sky)
        repository = repository_of(run)
        with repository.sessions() as session:
            row = session.scalar(select(LiveStack))
            entries = list(session.scalars(select(LiveStackFrame).order_by(LiveStackFrame.frame_id)))
            grades = {g.frame_id: g for g in session.scalars(select(Grade))}
        repository.engine.dispose()
        assert (row.frame_count, row.integration_s, row.left_out) == (len(sky), EXPOSURE * len(sky), 1)
        folded = [e for e in entries if e.status == "folded"]
        assert len(folded) == len(sky) and [e.status for e in entries].count("left_out") == 1
        weights = np.array([e.weight for e in folded])
        # The weights are the grades' (SNR / FWHM)^2, relative to the reference light's.
        quality = np.array([(grades[e.frame_id].snr / grades[e.frame_id].fwhm_px) ** 2 for e in folded])
        assert row.reference_frame_id == folded[0].frame_id
        assert np.allclose(weights, quality / quality[0], rtol=1e-9) and np.ptp(weights) > 0
        assert weight.max() == pytest.approx(weights.sum(), rel=1e-5)

        # Star fluxes: the simulator's truth (of the reference frame) to 1 %.
        ratio = star_flux_ratios(image, sky[0])
        assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
        assert np.sqrt(np.mean((ratio - 1) ** 2)) < 0.015

        # Noise: down as the weights say, sqrt(sum w^2) / sum w (1/sqrt(N) for equal weights).
        everywhere = weight >= weights.sum() * (1 - 1e-5)
        rows, cols = np.where(everywhere)
        box = (slice(rows.min() + 10, rows.max() - 10), slice(cols.min() + 10, cols.max() - 10))
        single = np.mean([background_noise(s.image[box]) for s in sky])
        expected = np.sqrt(np.sum(weights**2)) / weights.sum()
        assert background_noise(image[box]) / single == pytest.approx(expected, rel=0.15)
        assert expected < 1.05 / np.sqrt(len(sky))


def test_a_restart_continues_the_stack(tmp_path, mosquitto, watcher, sky):
    with running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        write_bias(run.capture, watcher)
        write_light(run.capture, 0, sky[0].image)
        watcher.wait_for(lambda _: len(stacks(watcher)) == 1, timeout=120)
        write_light(run.capture, 1, sky[1].image)
        watcher.wait_for(lambda _: len(stacks(watcher)) == 2, timeout=120)
        before = stacks(watcher)[-1]
    # While the service is down, two more lights arrive; they are stacked after the restart.
    write_light(run.capture, 2, sky[2].image)
    write_light(run.capture, 3, sky[3].image)
    with running(tmp_path, mosquitto):
        watcher.wait_for(lambda _: stacks(watcher)[-1].frames == 4, timeout=180)
        after = stacks(watcher)[-1]
    assert after.stack_id == before.stack_id and after.path == before.path
    assert after.integration_s == 4 * EXPOSURE and after.reference == before.reference
    assert [s.frames for s in stacks(watcher)] == [1, 2, 3, 4]
    with fits.open(run.repository / after.path) as hdus:
        image = hdus[0].data.astype(np.float64)
        assert hdus[0].header["NCOMBINE"] == 4
    ratio = star_flux_ratios(image, sky[0])
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)


@pytest.mark.long(seconds=60)
def test_a_night_that_is_over_is_stacked_again_with_rejection(tmp_path, mosquitto, watcher, sky, monkeypatch):
    """Lights of a night two days ago (a service down at dawn, or an import): stacked live, then, the
    night being over, stacked again with rejection: the stack of record, on imaging/nightstacks."""
    evening = (datetime.now(ZoneInfo("Europe/Vienna")) - timedelta(days=2)).replace(hour=22, minute=0, second=0)
    monkeypatch.setitem(globals(), "START", evening.astimezone(UTC))
    settings = {"min_stars": None, "min_stars_ratio": None, "max_background_ratio": None}
    calibration = {"require_dark": False, "require_flat": False, "quiet_time": 0.5, "quiet_exposures": 0}
    with Running(tmp_path, mosquitto, grading=settings, calibration=calibration, live_stack={"nights": None}) as run:
        wait_online(watcher)
        write_bias(run.capture, watcher)
        write_light(run.capture, 0, sky[0].image)  # the first light is the reference: the truth's grid
        watcher.wait_for(lambda _: len(stacks(watcher)) == 1, timeout=120)
        for index in range(1, len(sky)):
            write_light(run.capture, index, sky[index].image)
        watcher.wait_for(lambda _: any(s.frames == len(sky) for s in night_stacks(watcher)), timeout=300)
    last = night_stacks(watcher)[-1]  # built at 3 lights (or more), built again as the live stack grew
    assert (last.night, last.target, last.filter) == (evening.date().isoformat(), "M 42", "L")
    assert last.frames == len(sky) and last.integration_s == EXPOSURE * len(sky) and last.missing == 0
    assert last.rejection == "winsorized 3/3" and 0 <= last.rejected_fraction < 0.1
    assert len({s.stack_id for s in night_stacks(watcher)}) == 1  # one row, replaced
    built = events(watcher, "night_stack_built")
    assert built and built[-1].data["path"] == last.path
    with fits.open(run.repository / last.path) as hdus:
        image = hdus[0].data.astype(np.float64)
        assert hdus[0].header["NCOMBINE"] == len(sky) and hdus["REJECTED"].data.shape == image.shape
    ratio = star_flux_ratios(image, sky[0])
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)


def night_stacks(watcher: Watcher) -> list[ImagingNightStack]:
    return [ImagingNightStack.model_validate_json(m.payload) for m in watcher.on("obsy/imaging/nightstacks")]


def test_lights_calibrated_again_rebuild_their_live_stack(tmp_path, mosquitto, watcher, sky):
    """An old master bias 20 ADU low, then a new bias series: the lights are calibrated again with the
    newer master and their live stack is rebuilt from the new files: its level drops by those 20 ADU."""
    with running(tmp_path, mosquitto) as run:
        wait_online(watcher)
        rng = np.random.default_rng(8)
        old_bias = PEDESTAL - 20.0
        for index in range(5):  # eight hours before the lights: a group (and master) of its own
            path = run.capture / "Bias" / f"Old_Bias_{index:03d}.fits"
            write_fits(path, rng.normal(old_bias, 5.0, SHAPE), "Bias Frame", 0.0, index - 450)
        watcher.wait_for(lambda msgs: len([m for m in msgs if m.topic == MASTERS]) == 1, timeout=120)
        write_light(run.capture, 0, sky[0].image)
        write_light(run.capture, 1, sky[1].image)
        watcher.wait_for(lambda _: len(stacks(watcher)) == 2, timeout=120)
        before = stacks(watcher)[-1]
        old = fits.getdata(run.repository / before.path).astype(np.float64)

        for index in range(5):  # a new series after the lights: the newest master, chosen for them now
            path = run.capture / "Bias" / f"New_Bias_{index:03d}.fits"
            write_fits(path, rng.normal(PEDESTAL, 5.0, SHAPE), "Bias Frame", 0.0, index + 10)
        watcher.wait_for(lambda _: any(s.rebuilt for s in stacks(watcher)), timeout=180)
        [rebuilt] = [s for s in stacks(watcher) if s.rebuilt]
        new = fits.getdata(run.repository / rebuilt.path).astype(np.float64)
        recalibrated = events(watcher, "lights_recalibrated")
    assert len(recalibrated) == 1 and len(recalibrated[0].data["frame_ids"]) == 2
    assert rebuilt.stack_id == before.stack_id and rebuilt.rebuilt == 2 and rebuilt.frames == 2
    assert rebuilt.frame_id in recalibrated[0].data["frame_ids"]
    level = float(np.nanmedian(old) - np.nanmedian(new))
    print(f"live stack rebuilt after calibrating again: its level dropped by {level:.2f} ADU (the biases differ by 20)")
    assert level == pytest.approx(20.0, abs=1.0)
    # Only the level moved, and the two masters' own noise (5 ADU over 5 frames each, about 3.2 ADU
    # between them, halved in variance by the two dithered lights): the stars are the same.
    rest = (old - level) - new
    assert abs(float(np.nanmean(rest))) < 0.5 and float(np.nanstd(rest)) < 3.0


MCP_EVENTS = "obsy/mcp/events"


def test_tonight_is_stacked_again_as_soon_as_the_mcp_ends_the_night(tmp_path, mosquitto, watcher, sky):
    """Tonight's live stack waits for the calendar's end of the night, unless the MCP says it ended
    (dawn, the schedule done, the operator's ABORT): then its stack of record is built at once. Another
    night's end, or another event, builds nothing."""
    settings = {"min_stars": None, "min_stars_ratio": None, "max_background_ratio": None}
    calibration = {"require_dark": False, "require_flat": False, "quiet_time": 0.5, "quiet_exposures": 0}
    with Running(tmp_path, mosquitto, grading=settings, calibration=calibration) as run:
        wait_online(watcher)
        write_bias(run.capture, watcher)
        for index in range(3):
            write_light(run.capture, index, sky[index].image)
        watcher.wait_for(lambda _: any(s.frames == 3 for s in stacks(watcher)), timeout=180)
        night = stacks(watcher)[-1].night
        other = (date.fromisoformat(night) - timedelta(days=1)).isoformat()
        for kind, data in (("night_started", {"night": night}), ("night_ended", {"night": other})):
            watcher.publish(MCP_EVENTS, Event(service="mcp", kind=kind, message=kind, data=data).model_dump_json())
        time.sleep(3)
        assert night_stacks(watcher) == [], "tonight is not over yet"
        ended = Event(service="mcp", kind="night_ended", message="night ended: ABORT", data={"night": night})
        watcher.publish(MCP_EVENTS, ended.model_dump_json())  # as the MCP says it
        watcher.wait_for(lambda _: bool(night_stacks(watcher)), timeout=120)
    (built,) = night_stacks(watcher)
    assert (built.night, built.frames, built.missing) == (night, 3, 0)
    assert built.rejection == "winsorized 3/3"
    with fits.open(run.repository / built.path) as hdus:
        assert hdus[0].header["NCOMBINE"] == 3
