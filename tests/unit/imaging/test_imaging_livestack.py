"""The live stack's pieces: the STF-like autostretch, and the running weighted mean against the batch one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from obsy_imaging.livestack import LiveStacker, _Open
from obsy_imaging.registration import StarList
from obsy_imaging.stretch import autostretch, midtones_transfer, preview_jpeg, stf, stretch_parameters
from obsy_imaging.stretch.jpeg import encode_jpeg


def sky(shape=(400, 600), level=800.0, noise=10.0, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(level, noise, shape).astype(np.float32)
    image[100:104, 200:204] = 60000.0  # a saturated star
    image[300:303, 50:53] = 5000.0
    return image


def test_the_midtones_transfer_function() -> None:
    x = np.linspace(0, 1, 11)
    for m in (0.01, 0.25, 0.5, 0.9):
        y = midtones_transfer(m, x)
        assert y[0] == 0 and y[-1] == pytest.approx(1.0) and np.all(np.diff(y) > 0)
        assert midtones_transfer(m, m) == pytest.approx(0.5)
    assert np.allclose(midtones_transfer(0.5, x), x)  # m = 0.5 leaves the image as it is
    # Its own inverse in the sense the autostretch uses: MTF(MTF(t, x), x) = t.
    assert midtones_transfer(midtones_transfer(0.25, 0.03), 0.03) == pytest.approx(0.25)


def test_the_sky_lands_on_the_target_background_and_the_shadows_are_clipped() -> None:
    image = sky()
    for target in (0.1, 0.25, 0.4):
        stretched = autostretch(image, target_background=target)
        assert stretched.dtype == np.float32 and stretched.min() >= 0 and stretched.max() <= 1
        assert float(np.median(stretched)) == pytest.approx(target, abs=0.01)
    stretched = autostretch(image)
    # Black below median - 2.8 sigma: about 0.26 % of a normal sky.
    assert 0.0005 < float(np.mean(stretched == 0)) < 0.01
    assert stretched[101, 201] == pytest.approx(1.0)  # the star's peak is white
    # Scale and offset do not matter: the stretch comes from the image's own statistics.
    assert np.allclose(autostretch(image * 3 + 100), stretched, atol=2e-3)


def test_a_blank_or_constant_image_and_nan_do_not_break_the_stretch() -> None:
    flat = np.full((50, 60), 7.0, np.float32)
    assert np.all(np.isfinite(autostretch(flat)))
    image = sky()
    image[:, :100] = np.nan  # no frame covered these pixels
    stretched = autostretch(image)
    assert np.all(stretched[:, :100] == 0) and float(np.median(stretched[:, 100:])) == pytest.approx(0.25, abs=0.01)
    assert stretch_parameters(np.full((4, 4), np.nan)).midtones == 0.5


def test_the_preview_is_a_small_grey_jpeg() -> None:
    image = sky((1200, 1800))
    image[:, :30] = np.nan
    jpeg = preview_jpeg(image, max_width=600, quality=80)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (400, 600)
    assert abs(float(np.median(decoded)) / 255 - 0.25) < 0.03
    assert decoded[:, :8].max() < 20  # where there was no data: black


def test_a_full_size_preview_stretched_in_bands_is_the_whole_image_stretched_at_once(monkeypatch) -> None:
    """The sample of a stack (full width) is stretched a band of rows at a time; the bands must not
    show: the same JPEG as the whole image through the stretch at once, bands of any height."""
    image = sky((301, 500))
    image[:40, :25] = np.nan  # no data in a corner
    image[150, 250] = 50_000.0  # a saturated star: the range is the whole image's, not a band's
    whole = encode_jpeg(autostretch(image), 90)
    for band_pixels in (500 * 7, 500 * 64, 10**9):  # 7 rows (the last band short), 64 rows, one band
        monkeypatch.setattr(stf, "STRETCH_BAND_PIXELS", band_pixels)
        assert preview_jpeg(image, max_width=500, quality=90) == whole


def test_the_running_weighted_mean_equals_the_batch_one_with_missing_edges() -> None:
    rng = np.random.default_rng(3)
    shape = (60, 80)
    frames = [rng.normal(100, 5, shape).astype(np.float32) for _ in range(6)]
    weights = [1.0, 0.5, 2.0, 1.3, 0.7, 1.0]
    frames[1][:, :10] = np.nan  # a dithered frame: no data at one edge
    frames[3][50:, :] = np.nan
    opened = _Open(np.zeros(shape, np.float32), np.zeros(shape, np.float32), StarList(*(np.zeros(0),) * 3))
    for frame, weight in zip(frames, weights, strict=True):
        LiveStacker._fold(opened, frame.copy(), weight)
    stack = np.stack(frames)
    w = np.array(weights)[:, None, None] * np.isfinite(stack)
    batch = np.nansum(stack * w, axis=0) / w.sum(0)
    assert np.allclose(opened.mean, batch, rtol=1e-5)
    assert np.allclose(opened.weight, w.sum(0))
    assert opened.weight[0, 0] == pytest.approx(sum(weights) - 0.5)


# --- the stacker on a repository (SQLite, files): which lights, what is left out and why -----------


def simulated(seed: int, east: float = 0.0, north: float = 0.0, position_angle: float = 0.0) -> np.ndarray:
    from tests.support.stacking import offset_pointing, render

    return render(offset_pointing(east, north), position_angle=position_angle, seed=seed).image


@pytest.mark.slow
def test_lights_that_cannot_be_registered_are_left_out_with_the_reason(repository) -> None:
    from obsy.config import ImagingLiveStackConfig
    from obsy_imaging.livestack import Folded, LeftOut
    from obsy_imaging.repository.models import LiveStack, LiveStackFrame
    from tests.support.live_stack import record, write_calibrated

    fog = np.random.default_rng(1).normal(300, 10, (800, 1000))
    elsewhere = simulated(11, east=3 * 3600.0)  # three degrees away: other stars
    small = simulated(12)[:400, :500]
    paths = [
        write_calibrated(repository, "fog.fits", fog),  # cannot start the stack: the next light does
        write_calibrated(repository, "first.fits", simulated(10)),
        write_calibrated(repository, "elsewhere.fits", elsewhere),
        write_calibrated(repository, "small.fits", small),
        write_calibrated(repository, "constant.fits", np.full((800, 1000), 5.0)),
        write_calibrated(repository, "rejected.fits", simulated(13, east=10.0)),
        write_calibrated(repository, "good.fits", simulated(14, east=-15.0, north=8.0)),
    ]
    grades = [None, None, None, None, None, (50.0, 3.0, False), None]
    ids = record(repository, paths, grades=grades)
    stacker = LiveStacker(repository, ImagingLiveStackConfig())
    assert ids[5] not in stacker.pending()  # rejected by grading: never stacked
    results = stacker.run()
    assert stacker.pending() == []
    by_name = {Path(r.frame.path).name: r for r in results}
    assert set(by_name) == {p.name for p in paths} - {"rejected.fits"}
    reasons = {name: r.reason for name, r in by_name.items() if isinstance(r, LeftOut)}
    assert reasons["fog.fits"].startswith("too few stars") and by_name["fog.fits"].stack is None
    assert reasons["elsewhere.fits"].startswith("no matching star pattern")
    assert reasons["small.fits"] == "the frame is 500x400, the stack 1000x800"
    assert "no spread" in reasons["constant.fits"]
    assert isinstance(by_name["first.fits"], Folded) and isinstance(by_name["good.fits"], Folded)
    with repository.sessions() as session:
        stack = session.scalar(select(LiveStack))
        entries = {e.frame_id: e for e in session.scalars(select(LiveStackFrame))}
    assert (stack.frame_count, stack.integration_s, stack.left_out) == (2, 120.0, 3)
    assert stack.reference_frame_id == ids[1]
    assert entries[ids[0]].status == "left_out" and entries[ids[0]].stack_id is None
    assert ids[5] not in entries


@pytest.mark.slow
def test_a_new_stacker_continues_the_stack_from_its_file(repository) -> None:
    from obsy.config import ImagingLiveStackConfig
    from tests.support.live_stack import record, write_calibrated

    images = [simulated(20 + i, east=12.0 * i, north=-7.0 * i) for i in range(4)]
    paths = [write_calibrated(repository, f"l{i}.fits", im) for i, im in enumerate(images)]
    settings = ImagingLiveStackConfig(weighting="equal")
    ids = record(repository, paths[:2])
    first = LiveStacker(repository, settings).run()
    ids += record(repository, paths[2:])
    # One stacker through all four lights, against a "restarted" one after two.
    again = LiveStacker(repository, settings).run()
    assert [d.stack.frame_count for d in first + again] == [1, 2, 3, 4]
    assert len({d.stack.id for d in first + again}) == 1
    with fits.open(repository.root / again[-1].stack.path) as hdus:
        restarted = hdus[0].data.copy()
        assert hdus[0].header["NCOMBINE"] == 4 and hdus[0].header["LIVETIME"] == 240.0
    # The same four lights in one go, in another repository's worth of tables: the same stack.
    with repository.sessions.begin() as session:
        from obsy_imaging.repository.models import LiveStack, LiveStackFrame

        session.query(LiveStackFrame).delete()
        session.query(LiveStack).delete()
    straight = LiveStacker(repository, settings).run()
    assert straight[-1].stack.frame_count == 4
    with fits.open(repository.root / straight[-1].stack.path) as hdus:
        assert np.allclose(hdus[0].data, restarted, rtol=1e-5, atol=1e-3, equal_nan=True)


def test_a_light_counted_but_missing_from_the_file_is_folded_again(repository) -> None:
    """The service stopped after a light's row was committed and before the stack's file was renamed
    into place: the file is a light behind; the next stacker folds that light again from its row."""
    import shutil

    from obsy.config import ImagingLiveStackConfig
    from tests.support.live_stack import record, write_calibrated

    images = [simulated(40 + i, east=-9.0 * i, north=11.0 * i) for i in range(4)]
    paths = [write_calibrated(repository, f"c{i}.fits", im) for i, im in enumerate(images)]
    settings = ImagingLiveStackConfig()
    ids = record(repository, paths, grades=[(80.0 + 5 * i, 3.0, True) for i in range(4)])
    stacker = LiveStacker(repository, settings)
    stacker.fold(ids[0])
    second = stacker.fold(ids[1])
    stack_file = repository.root / second.stack.path
    shutil.copy(stack_file, stack_file.with_suffix(".two"))
    stacker.fold(ids[2])
    straight = LiveStacker(repository, settings).fold(ids[3])  # (reads the file of three lights)
    with fits.open(stack_file) as hdus:
        expected = hdus[0].data.copy()
    # The same, from a file of two lights while the database counts three.
    from obsy_imaging.repository.models import LiveStack, LiveStackFrame

    with repository.sessions.begin() as session:
        session.query(LiveStackFrame).filter(LiveStackFrame.frame_id == ids[3]).delete()
        row = session.get(LiveStack, second.stack.id)
        row.frame_count, row.integration_s = 3, 180.0
    shutil.copy(stack_file.with_suffix(".two"), stack_file)
    caught_up = LiveStacker(repository, settings).fold(ids[3])
    assert caught_up.stack.frame_count == straight.stack.frame_count == 4
    with fits.open(stack_file) as hdus:
        assert hdus[0].header["NCOMBINE"] == 4
        assert np.allclose(hdus[0].data, expected, rtol=1e-5, atol=1e-3, equal_nan=True)


def test_only_recent_nights_are_taken_when_asked(repository) -> None:
    from obsy.config import ImagingLiveStackConfig
    from tests.support.live_stack import record, write_calibrated

    old = record(repository, [write_calibrated(repository, "old.fits", np.ones((8, 8)))], night="2025-11-02")
    new = record(repository, [write_calibrated(repository, "new.fits", np.ones((8, 8)))], night="2026-01-15")
    stacker = LiveStacker(repository, ImagingLiveStackConfig())
    assert stacker.pending(since_night="2026-01-14") == new
    assert stacker.pending() == old + new  # every night
    assert ImagingLiveStackConfig().nights == 2 and ImagingLiveStackConfig(nights=None).nights is None


def test_targets_with_the_same_folder_name_get_stacks_of_their_own(repository) -> None:
    from obsy.config import ImagingLiveStackConfig
    from tests.support.live_stack import record, write_calibrated

    image = simulated(60)
    one = record(repository, [write_calibrated(repository, "a.fits", image)], target="M 42")
    two = record(repository, [write_calibrated(repository, "b.fits", image + 1)], target="M_42")
    done = LiveStacker(repository, ImagingLiveStackConfig()).run()
    assert [d.frame.id for d in done] == one + two
    assert done[0].stack.path.endswith("/M_42/L/live.fits") and done[1].stack.path.endswith("/M_42/L/live-2.fits")
    assert done[0].stack.id != done[1].stack.id


def test_a_light_that_fails_unexpectedly_is_left_out_once(repository) -> None:
    from obsy.config import ImagingLiveStackConfig
    from obsy_imaging.repository.models import LiveStackFrame
    from tests.support.live_stack import record, write_calibrated

    ids = record(repository, [write_calibrated(repository, "x.fits", simulated(61))])
    stacker = LiveStacker(repository, ImagingLiveStackConfig())
    left = stacker.give_up(ids[0], "unexpected error: boom")
    assert left.reason == "unexpected error: boom" and stacker.pending() == []
    with repository.sessions() as session:
        assert session.get(LiveStackFrame, ids[0]).status == "left_out"


def test_lights_calibrated_again_are_folded_again_with_their_new_calibration(repository) -> None:
    """Two of three lights calibrated again (a dark that takes the amplifier glow off, where the first
    left it in): the stack is rebuilt from the files as they are now, and holds what a stack of those
    files holds, not the old glow."""
    from datetime import UTC, datetime, timedelta

    from obsy.config import ImagingLiveStackConfig
    from obsy_imaging.repository.models import Calibration, LiveStack, LiveStackFrame
    from tests.support.live_stack import calibrate_again, record, write_calibrated

    images = [simulated(70 + i, east=10.0 * i, north=-6.0 * i) for i in range(3)]
    rows, cols = images[0].shape
    y, x = np.mgrid[0:rows, 0:cols]
    glow = (400.0 * np.exp(-np.hypot(x, y) / 120.0)).astype(np.float32)  # in the corner at (0, 0)
    paths = [write_calibrated(repository, f"g{i}.fits", image + glow) for i, image in enumerate(images)]
    ids = record(repository, paths)
    settings = ImagingLiveStackConfig()
    stacker = LiveStacker(repository, settings)
    folded = stacker.run()
    stack_id = folded[-1].stack.id
    stack_file = repository.root / folded[-1].stack.path
    old = fits.getdata(stack_file).astype(np.float64)
    assert stacker.stale() == []  # nothing calibrated again yet

    calibrate_again(repository, ids[0], images[0])  # the reference light too
    calibrate_again(repository, ids[2], images[2])
    assert stacker.stale() == [stack_id] and stacker.stale(since_night="2026-01-16") == []
    assert stacker.pending() == []  # folded once: not taken as a new light
    rebuilt = stacker.rebuild(stack_id)
    assert rebuilt.rebuilt == 3 and rebuilt.frame.id == ids[2]
    assert (rebuilt.stack.frame_count, rebuilt.stack.integration_s) == (3, 180.0)
    assert stacker.stale() == []  # rebuilt once
    new = fits.getdata(stack_file).astype(np.float64)
    with fits.open(stack_file) as hdus:
        assert hdus[0].header["NCOMBINE"] == 3

    # The same files stacked from scratch (registered anew, light 0 the reference again): the rebuilt stack's numbers.
    with repository.sessions.begin() as session:
        session.query(LiveStackFrame).delete()
        session.query(LiveStack).delete()
        for order, frame_id in enumerate(ids):  # the first calibrated is stacked first
            row = session.query(Calibration).filter(Calibration.frame_id == frame_id).one()
            row.calibrated_at = datetime(2026, 1, 16, tzinfo=UTC) + timedelta(seconds=order)
    LiveStacker(repository, settings).run()
    straight = fits.getdata(stack_file).astype(np.float64)
    corner, middle = (
        (slice(0, 60), slice(0, 60)),
        (slice(rows // 2 - 30, rows // 2 + 30), slice(cols // 2 - 30, cols // 2 + 30)),
    )

    def glow_in(stack: np.ndarray) -> float:
        return float(np.nanmedian(stack[corner]) - np.nanmedian(stack[middle]))

    # The reference (light 0) carries the stack's level; light 1 still has the glow: a third of it stays.
    assert glow_in(old) > 250.0
    assert glow_in(new) == pytest.approx(glow_in(straight), abs=2.0)
    assert glow_in(new) < glow_in(old) - 150.0
    good = np.isfinite(new) & np.isfinite(straight)
    assert np.median(np.abs(new[good] - straight[good])) < 0.5


def test_a_stack_that_cannot_be_rebuilt_keeps_its_lights_earlier_calibration(repository) -> None:
    from obsy.config import ImagingLiveStackConfig
    from obsy_imaging.repository.models import Calibration
    from tests.support.live_stack import calibrate_again, record, write_calibrated

    images = [simulated(80 + i, east=8.0 * i) for i in range(2)]
    ids = record(repository, [write_calibrated(repository, f"k{i}.fits", image) for i, image in enumerate(images)])
    stacker = LiveStacker(repository, ImagingLiveStackConfig())
    folded = stacker.run()
    stack_file = repository.root / folded[-1].stack.path
    before = fits.getdata(stack_file).copy()
    calibrate_again(repository, ids[1], images[1] + 5.0)
    with repository.sessions() as session:
        gone = repository.root / session.scalar(select(Calibration.path).where(Calibration.frame_id == ids[0]))
    gone.unlink()  # the reference's calibrated file, removed by hand
    [stack_id] = stacker.stale()
    with pytest.raises(OSError):
        stacker.rebuild(stack_id)
    np.testing.assert_array_equal(fits.getdata(stack_file), before)  # nothing half-written
    stacker.keep(stack_id)
    assert stacker.stale() == []
