"""The night stack: a live stack stacked again with rejection once its night is over.

Simulated lights of one field (dithered, one flipped) go through the live stacker; one of them
carries a satellite trail. The running mean keeps the trail; the night stack, on the same
registrations and reference, rejects it and keeps the stars' light.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import sep
from astropy.io import fits
from sqlalchemy import select

from obsy.config import ImagingLiveStackConfig, ImagingNightStackConfig
from obsy_imaging.livestack import LiveStacker
from obsy_imaging.nightstack import Built, NightStacker, Skipped
from obsy_imaging.repository.models import LiveStack, NightStack
from tests.support.live_stack import record, write_calibrated
from tests.support.stacking import offset_pointing, render

NIGHT = "2026-01-15"
DITHERS = [(0.0, 0.0, 0.0), (14.0, -9.0, 0.0), (-11.0, 17.0, 180.0), (8.0, 12.0, 0.0), (-16.0, -6.0, 0.0)]
TRAIL_ROW = 420  # in the light that carries it


@pytest.fixture(scope="module")
def lights() -> list[np.ndarray]:
    images = [
        render(offset_pointing(e, n), position_angle=pa, seed=500 + i).image for i, (e, n, pa) in enumerate(DITHERS)
    ]
    trail = images[3].copy()
    sky_noise = float(np.std(trail[:50, :50]))
    trail[TRAIL_ROW - 1 : TRAIL_ROW + 2, :] += 40 * sky_noise  # a satellite across the whole frame
    images[3] = trail
    return images


def live_stacked(repository, lights) -> LiveStack:
    paths = [write_calibrated(repository, f"light{i}.fits", image) for i, image in enumerate(lights)]
    record(repository, paths, night=NIGHT, grades=[(90.0, 3.0, True)] * len(paths))
    LiveStacker(repository, ImagingLiveStackConfig()).run()
    with repository.sessions() as session:
        return session.scalar(select(LiveStack))


def read(path) -> tuple[np.ndarray, fits.Header, dict[str, np.ndarray]]:
    with fits.open(path) as hdus:
        return hdus[0].data.astype(np.float64), hdus[0].header, {h.name: h.data for h in hdus[1:]}


@pytest.mark.slow
def test_the_night_stack_rejects_the_trail_the_live_stack_keeps(repository, lights) -> None:
    live = live_stacked(repository, lights)
    assert live.frame_count == len(lights)
    stacker = NightStacker(repository, ImagingNightStackConfig())
    assert stacker.due(tonight=NIGHT) == []  # its night is not over
    assert stacker.due(tonight="2026-01-16") == [live.id]

    built = stacker.build(live.id)
    assert isinstance(built, Built) and built.missing == []
    night, header, maps = read(repository.root / built.row.path)
    live_image, _, _ = read(repository.root / live.path)
    assert header["NCOMBINE"] == len(lights) and header["LIVETIME"] == 60.0 * len(lights)
    assert header["REJECT"] == "winsorized 3/3" and sum(str(h).startswith("frame ") for h in header["HISTORY"]) == 5
    stack_file = repository.root / built.row.path  # its stretched sample and thumbnail beside it
    sample = cv2.imread(str(stack_file.with_suffix(".jpg")), cv2.IMREAD_UNCHANGED)
    thumbnail = cv2.imread(str(stack_file.with_suffix(".thumb.jpg")), cv2.IMREAD_UNCHANGED)
    assert sample.shape == night.shape and thumbnail.shape == (320, 400)

    # The trail, on the reference grid: where the live stack is brightest along a row, off the stars.
    background = np.nanmedian(live_image)
    noise = 1.4826 * np.nanmedian(np.abs(live_image - background))
    excess = np.nanmedian(live_image - background, axis=1)  # a row's median: stars do not move it, a trail does
    trail_row = int(np.nanargmax(excess))
    assert excess[trail_row] > 3 * noise, "the running mean keeps the trail"
    night_excess = np.nanmedian(night[trail_row] - np.nanmedian(night))
    assert abs(night_excess) < noise, "the night stack rejected it"
    assert np.count_nonzero(maps["REJECTED"][trail_row]) > 0.5 * night.shape[1]
    assert 0 < built.row.rejected_fraction < 0.1  # 5.6 % here: star cores differ more than 3 sigma between 5 lights

    # The stars keep their light: the brightest ones' fluxes agree with the running mean's within 1 %.
    valid = np.nan_to_num(live_image - background).astype(np.float32)
    stars = sep.extract(valid, 8.0, err=noise)
    stars = stars[(stars["flag"] == 0) & (np.abs(stars["y"] - trail_row) > 15)]
    brightest = stars[np.argsort(stars["flux"])[-20:]]
    fluxes = []
    for image in (live_image, night):
        data = np.nan_to_num(image - np.nanmedian(image)).astype(np.float32)
        flux, _, _ = sep.sum_circle(data, brightest["x"], brightest["y"], 6.0)
        fluxes.append(flux)
    assert np.median(fluxes[1] / fluxes[0]) == pytest.approx(1.0, abs=0.01)

    # Stacked once: not due again, until the live stack grows or the rejection changes.
    assert stacker.due(tonight="2026-01-16") == []
    changed = NightStacker(repository, ImagingNightStackConfig(rejection="sigma", low=2.5, high=2.5))
    assert changed.due(tonight="2026-01-16") == [live.id]
    again = changed.build(live.id)
    assert isinstance(again, Built) and again.row.id == built.row.id  # the same row, replaced
    with repository.sessions() as session:
        assert session.scalar(select(NightStack.rejection)) == "sigma 2.5/2.5"


def test_missing_lights_are_left_out_and_too_few_are_not_stacked(repository, lights) -> None:
    live = live_stacked(repository, lights[:4])
    (repository.root / "calibrated" / "light1.fits").unlink()
    built = NightStacker(repository, ImagingNightStackConfig()).build(live.id)
    assert isinstance(built, Built) and built.row.frame_count == 3 and built.row.source_frames == 4
    assert len(built.missing) == 1 and "light1.fits" in built.missing[0]

    (repository.root / "calibrated" / "light2.fits").unlink()
    skipped = NightStacker(repository, ImagingNightStackConfig()).build(live.id)
    assert isinstance(skipped, Skipped)
    assert skipped.reason.startswith("2 light(s) to stack, at least 3 are needed (2 could not be read:")
    assert NightStacker(repository, ImagingNightStackConfig()).build(9999).reason == "no such live stack"
