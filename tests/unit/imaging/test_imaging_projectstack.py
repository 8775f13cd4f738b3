"""The project stack: a target's lights of three nights, each night framed otherwise (pointing,
dithers, a meridian flip), registered onto one reference and stacked. The stars keep the
simulator's true light; the noise falls as 1/sqrt(N) against one night's stack."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import func, select

from obsy.config import ImagingLiveStackConfig, ImagingProjectStackConfig
from obsy_imaging.colour import ColourError
from obsy_imaging.livestack import LiveStacker
from obsy_imaging.projectstack import (
    LEFT_OUT,
    REGISTERING,
    STACKED,
    STACKING,
    ProjectBuilt,
    ProjectSkipped,
    ProjectStacker,
)
from obsy_imaging.registration import Transform, detect_stars, find_transform
from obsy_imaging.repository.models import LiveStack, ProjectStack, ProjectStackFrame
from obsy_imaging.stacking import Rejection, StackFrame, StackOptions, array_reader, stack
from tests.support.live_stack import record, write_calibrated
from tests.support.stacking import background_noise, flux_over_truth, offset_pointing, render, true_transform

#: Per night: the night's pointing offset (east, north, arcsec) and position angle, then its dithers.
NIGHTS = {
    "2026-01-15": ((0.0, 0.0, 0.0), [(0, 0), (9, -6), (-7, 11), (5, 8)]),
    "2026-01-18": ((35.0, -28.0, 180.0), [(0, 0), (-8, 5), (10, 9), (-4, -10)]),
    "2026-01-23": ((-30.0, 22.0, 0.3), [(0, 0), (6, 12), (-11, -3), (8, -7)]),
}
PER_NIGHT = 4


@pytest.fixture(scope="module")
def nights():
    """{night: [SimFrame]} of the three nights (seeds differ: every light has its own noise)."""
    out, seed = {}, 700
    for night, ((east, north, angle), dithers) in NIGHTS.items():
        out[night] = []
        for de, dn in dithers:
            out[night].append(render(offset_pointing(east + de, north + dn), position_angle=angle, seed=seed))
            seed += 1
    return out


def record_nights(repository, nights, best: tuple[str, int]) -> dict[tuple[str, int], int]:
    """The lights as calibrated and accepted; the light ``best`` (night, index) has the best grade."""
    ids = {}
    for night, frames in nights.items():
        paths = [write_calibrated(repository, f"{night}-{i}.fits", f.image) for i, f in enumerate(frames)]
        grades = [(120.0 if (night, i) == best else 90.0, 3.0, True) for i in range(len(frames))]
        for i, frame_id in enumerate(record(repository, paths, night=night, grades=grades)):
            ids[(night, i)] = frame_id
    return ids


def read(path):
    with fits.open(path) as hdus:
        return hdus[0].data.astype(np.float64), hdus[0].header, {h.name: h.data for h in hdus[1:]}


def night_stack(frames) -> np.ndarray:
    """One night's lights stacked on its first light's grid, as the night stack does."""
    stars = detect_stars(frames[0].image)
    stack_frames = [
        StackFrame(
            f"f{i}",
            array_reader(f.image),
            f.image.shape,
            *([find_transform(stars, detect_stars(f.image)).transform] if i else []),
        )
        for i, f in enumerate(frames)
    ]
    return stack(stack_frames, StackOptions(Rejection("winsorized"))).image


@pytest.mark.slow
def test_three_nights_make_one_project_stack_with_true_fluxes_and_less_noise(repository, nights) -> None:
    best = ("2026-01-18", 1)  # a light after the meridian flip is the reference: the other nights turn 180°
    ids = record_nights(repository, nights, best)
    steps: list[tuple[str, int, int]] = []
    stacker = ProjectStacker(repository, ImagingProjectStackConfig())
    assert stacker.filters("M 42") == ["L"]
    built = stacker.build("M 42", "L", progress=lambda *step: steps.append(step))
    assert isinstance(built, ProjectBuilt), built
    row = built.row
    assert row.frame_count == 3 * PER_NIGHT and row.left_out == 0 and row.nights == list(NIGHTS)
    assert row.reference_frame_id == ids[best] and row.integration_s == 60.0 * 3 * PER_NIGHT
    assert row.path == "stacks/project/M_42/L/stack.fits"

    # Progress: every light registered, then every row stacked, counted up to the total.
    registering = [s for s in steps if s[0] == REGISTERING]
    stacking = [s for s in steps if s[0] == STACKING]
    assert [s[1] for s in registering] == list(range(1, 3 * PER_NIGHT + 1))
    assert all(total == 3 * PER_NIGHT for _, _, total in registering)
    assert stacking[0][1] == 0 and stacking[-1][1:] == (800, 800) and len(stacking) >= 2
    assert steps.index(registering[-1]) < steps.index(stacking[0])

    image, header, maps = read(repository.root / row.path)
    assert header["NCOMBINE"] == 12 and header["NIGHTS"] == 3 and header["OBJECT"] == "M 42"
    assert maps["COVERAGE"].max() == 12

    # The stars' light against the simulator's truth, on the reference light's grid.
    ratio = flux_over_truth(image, nights[best[0]][best[1]])
    assert len(ratio) >= 10
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    assert np.sqrt(np.mean((ratio - 1) ** 2)) < 0.015

    # Noise: 12 lights against one night's 4, where all 12 cover (the middle of the frame).
    one_night = night_stack(nights["2026-01-15"])
    covered = maps["COVERAGE"] == 12
    rows, cols = np.nonzero(covered)
    middle = (slice(rows.min() + 10, rows.max() - 10), slice(cols.min() + 10, cols.max() - 10))
    assert covered[middle].all() and covered[middle].size > 0.7 * covered.size
    ratio = background_noise(image[middle]) / background_noise(one_night[middle])
    assert ratio == pytest.approx(np.sqrt(PER_NIGHT / (3 * PER_NIGHT)), rel=0.15)

    # The sample and the thumbnail: stretched JPEGs of the stack, full size and small.
    sample = cv2.imread(str(repository.root / built.sample), cv2.IMREAD_UNCHANGED)
    thumbnail = cv2.imread(str(repository.root / built.thumbnail), cv2.IMREAD_UNCHANGED)
    assert sample.shape == (800, 1000) and thumbnail.shape == (320, 400)
    assert float(np.median(sample)) == pytest.approx(0.25 * 255, abs=8)  # the sky where the STF puts it

    with repository.sessions() as session:
        entries = session.scalars(select(ProjectStackFrame).where(ProjectStackFrame.stack_id == row.id)).all()
        assert len(entries) == 12 and {e.status for e in entries} == {STACKED}


@pytest.mark.slow
def test_a_new_night_keeps_the_reference_and_the_registrations_and_a_foggy_light_is_left_out(
    repository, nights
) -> None:
    first_two = {n: nights[n] for n in list(NIGHTS)[:2]}
    ids = record_nights(repository, first_two, ("2026-01-15", 2))
    stacker = ProjectStacker(repository, ImagingProjectStackConfig(rejection="sigma"))
    first = stacker.build("M 42", "L")
    assert isinstance(first, ProjectBuilt) and first.row.frame_count == 8
    assert first.row.reference_frame_id == ids[("2026-01-15", 2)]
    with repository.sessions() as session:
        before = {
            e.frame_id: e.transform
            for e in session.scalars(select(ProjectStackFrame).where(ProjectStackFrame.stack_id == first.row.id))
        }

    # The third night, with a better light (not taken as the reference: the registrations stay) and fog.
    third = "2026-01-23"
    paths = [write_calibrated(repository, f"{third}-{i}.fits", f.image) for i, f in enumerate(nights[third])]
    rng = np.random.default_rng(3)
    paths.append(write_calibrated(repository, f"{third}-fog.fits", rng.normal(900.0, 12.0, (800, 1000))))
    broken = write_calibrated(repository, f"{third}-broken.fits", nights[third][0].image)
    paths.append(broken)
    record(repository, paths, night=third, grades=[(150.0, 3.0, True)] * len(paths))
    broken.write_bytes(broken.read_bytes()[:5000])  # cut short after it was recorded (a disk error)
    (repository.root / "calibrated" / "2026-01-18-3.fits").unlink()  # a light of a stack before, gone since
    steps = []
    again = stacker.build("M 42", "L", progress=lambda *step: steps.append(step))
    assert isinstance(again, ProjectBuilt)
    assert again.row.id == first.row.id and again.row.path == first.row.path  # replaced, not added
    assert again.row.reference_frame_id == ids[("2026-01-15", 2)]
    assert again.row.frame_count == 11 and again.row.left_out == 3 and len(again.row.nights) == 3
    said = "\n".join(again.left_out)
    assert len(again.left_out) == 3 and "fog.fits: too few stars" in said
    assert "broken.fits: " in said and "2026-01-18-3.fits: cannot be read" in said
    with repository.sessions() as session:
        entries = {
            e.frame_id: e
            for e in session.scalars(select(ProjectStackFrame).where(ProjectStackFrame.stack_id == again.row.id))
        }
        assert len(session.scalars(select(ProjectStack)).all()) == 1
    gone = ids[("2026-01-18", 3)]
    assert all(entries[i].transform == transform for i, transform in before.items() if i != gone)
    assert entries[gone].status == LEFT_OUT and [e.status for e in entries.values()].count(LEFT_OUT) == 3
    image, header, _ = read(repository.root / again.row.path)
    assert header["REJECT"] == "sigma 3/3"
    ratio = flux_over_truth(image, nights["2026-01-15"][2])
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)


def test_too_few_lights_or_an_unknown_target_is_said_not_stacked(repository, nights) -> None:
    night = "2026-01-15"
    paths = [write_calibrated(repository, f"{night}-{i}.fits", f.image) for i, f in enumerate(nights[night][:2])]
    record(repository, paths, night=night, grades=[(90.0, 3.0, True), (90.0, 3.0, False)])  # one rejected by grading
    stacker = ProjectStacker(repository, ImagingProjectStackConfig(min_frames=2))
    skipped = stacker.build("M 42", "L")
    assert isinstance(skipped, ProjectSkipped)
    assert skipped.reason == "1 accepted, calibrated light(s), at least 2 are needed"
    assert isinstance(stacker.build("M 31", None), ProjectSkipped)
    assert stacker.filters("M 31") == []


@pytest.mark.slow
def test_the_colour_image_of_a_targets_filter_stacks(repository, nights) -> None:
    """Two lights a filter (R, G, B: the stars' light in the ratio 1 : 0.8 : 0.5, skies apart), each
    filter framed otherwise: the project stacks, then the RGB image beside them."""
    shares, skies = {"R": 1.0, "G": 0.8, "B": 0.5}, {"R": 300.0, "G": 150.0, "B": 420.0}
    lights = {"R": nights["2026-01-18"][:2], "G": nights["2026-01-15"][:2], "B": nights["2026-01-23"][:2]}
    for filter_name, frames in lights.items():
        images = [(f.image - np.median(f.image)) * shares[filter_name] + skies[filter_name] for f in frames]
        paths = [write_calibrated(repository, f"{filter_name}-{i}.fits", im) for i, im in enumerate(images)]
        record(repository, paths, filter_name=filter_name, grades=[(90.0, 3.0, True)] * len(paths))
    stacker = ProjectStacker(repository, ImagingProjectStackConfig(min_frames=2))
    for filter_name in stacker.filters("M 42"):
        assert isinstance(stacker.build("M 42", filter_name), ProjectBuilt)
    assert stacker.palettes("M 42") == ["rgb"]
    with pytest.raises(ColourError, match="palette sho needs a stack of SII, Ha, OIII; there are stacks of B, G, R"):
        stacker.colour("M 42", "sho")

    made = stacker.colour("M 42", "rgb", white="none")
    assert made.path == "stacks/project/M_42/colour/rgb.fits" and made.filters == {"R": "R", "G": "G", "B": "B"}
    with fits.open(repository.root / made.path) as hdus:
        cube, header = hdus[0].data, hdus[0].header
    assert cube.shape == (3, 800, 1000) and header["PALETTE"] == "rgb"
    # On the green stack's grid (its first light's): the stars' colour is the filters' shares.
    reference = lights["G"][0]
    ratios = [np.median(flux_over_truth(cube[i], reference)) for i in range(3)]
    assert ratios[0] / ratios[1] == pytest.approx(1.0 / 0.8, rel=0.02)
    assert ratios[2] / ratios[1] == pytest.approx(0.5 / 0.8, rel=0.02)
    sample = cv2.imread(str(repository.root / made.sample), cv2.IMREAD_UNCHANGED)
    thumbnail = cv2.imread(str(repository.root / made.thumbnail), cv2.IMREAD_UNCHANGED)
    assert sample.shape == (800, 1000, 3) and thumbnail.shape == (320, 400, 3)
    sky = np.median(sample.reshape(-1, 3), axis=0)
    assert np.ptp(sky) <= 3 and float(np.mean(sky)) == pytest.approx(0.25 * 255, abs=8)  # a grey sky at 0.25


@pytest.mark.slow
def test_lights_of_a_live_stack_are_registered_through_their_nights_reference(repository, nights) -> None:
    """Lights the live stack registered: their transform onto the night's first light, composed with
    that light's onto the project's reference (one star match a night), is the true one."""
    ids = record_nights(repository, nights, ("2026-01-23", 2))
    LiveStacker(repository, ImagingLiveStackConfig()).run()  # every night's live stack, as the service did
    with repository.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LiveStack)) == 3
    built = ProjectStacker(repository, ImagingProjectStackConfig()).build("M 42", "L")
    assert isinstance(built, ProjectBuilt) and built.row.frame_count == 12
    reference = nights["2026-01-23"][2]
    with repository.sessions() as session:
        entries = {
            e.frame_id: e
            for e in session.scalars(select(ProjectStackFrame).where(ProjectStackFrame.stack_id == built.row.id))
        }
    for (night, index), frame_id in ids.items():
        stored = Transform(np.asarray(entries[frame_id].transform).reshape(2, 3))
        truth = true_transform(nights[night][index], reference)
        assert stored.max_difference_px(truth, 1000, 800) < 0.05, (night, index)
    # The lights of a night other than the reference's share their night reference's star pairs.
    first_night = [entries[ids[("2026-01-15", i)]].pairs for i in range(PER_NIGHT)]
    assert len(set(first_night)) == 1 and first_night[0] > 20
    image, _, _ = read(repository.root / built.row.path)
    assert np.median(flux_over_truth(image, reference)) == pytest.approx(1.0, abs=0.01)
