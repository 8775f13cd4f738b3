"""Registration on sky-simulator frames: known dithers, rotations and a meridian flip recovered
within 0.05 px and 0.01 degrees; frames that cannot be matched reported with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from obsy_imaging.registration import (
    RegistrationError,
    Transform,
    detect_stars,
    find_transform,
    register_frames,
    warp,
    warp_rows,
)
from tests.support.stacking import SENSOR, offset_pointing, render, true_transform

MAX_ERROR_PX = 0.05
MAX_ERROR_DEG = 0.01


@pytest.fixture(scope="module")
def reference():
    return render(seed=1)


@pytest.mark.parametrize(
    ("east", "north", "position_angle"),
    [
        (20.0, -35.0, 0.0),  # a dither
        (-41.3, 12.7, 0.6),  # a dither and a small field rotation
        (15.0, 25.0, 180.0),  # a meridian flip
        (5.0, -8.0, 179.4),  # a flip that does not land exactly
    ],
    ids=["dither", "rotation", "meridian-flip", "flip-rotated"],
)
def test_known_dithers_rotations_and_flips_are_recovered(reference, east, north, position_angle) -> None:
    frame = render(offset_pointing(east, north), position_angle=position_angle, seed=7)
    match = find_transform(detect_stars(reference.image), detect_stars(frame.image))
    truth = true_transform(frame, reference)
    assert match.transform.max_difference_px(truth, SENSOR.width, SENSOR.height) < MAX_ERROR_PX
    assert abs(match.transform.rotation_deg - truth.rotation_deg) < MAX_ERROR_DEG
    assert match.pairs > 50


def test_an_affine_fit_is_as_good(reference) -> None:
    frame = render(offset_pointing(-30.0, 18.0), position_angle=0.3, seed=3)
    match = find_transform(detect_stars(reference.image), detect_stars(frame.image), "affine")
    assert (
        match.transform.max_difference_px(true_transform(frame, reference), SENSOR.width, SENSOR.height) < MAX_ERROR_PX
    )


@pytest.mark.slow
def test_a_frame_that_cannot_be_matched_is_left_out_with_the_reason(reference) -> None:
    rng = np.random.default_rng(0)
    frames = {
        "ref": reference.image,
        "dither": render(offset_pointing(10.0, 10.0), seed=4).image,
        "starless": rng.normal(100.0, 10.0, reference.image.shape).astype(np.float32),  # fog, a closed roof
    }
    results = {r.name: r for r in register_frames(list(frames), frames.__getitem__, reference="ref")}
    assert results["ref"].registered and results["dither"].registered
    assert not results["starless"].registered
    assert "too few stars" in (results["starless"].reason or "")
    # Stars detected in two worker processes: the same results, in the same order.
    in_workers = register_frames(list(frames), frames.__getitem__, reference="ref", workers=2)
    assert [r.name for r in in_workers] == list(frames)
    for alone, shared in zip(results.values(), in_workers, strict=True):
        assert (alone.stars, alone.pairs, alone.reason) == (shared.stars, shared.pairs, shared.reason)
        if alone.registered:
            assert np.array_equal(alone.transform.matrix, shared.transform.matrix)


def test_a_frame_of_another_field_is_reported_not_matched(reference) -> None:
    elsewhere = render((120.0, 30.0), seed=5)
    with pytest.raises(RegistrationError, match="star"):
        find_transform(detect_stars(reference.image), detect_stars(elsewhere.image))


def test_frames_of_different_sizes_are_refused_by_name(reference) -> None:
    frames = {"a": reference.image, "b": reference.image[:500]}
    with pytest.raises(ValueError, match=r"b is 1000x500, the others 1000x800"):
        register_frames(list(frames), frames.__getitem__)
    with pytest.raises(ValueError, match="empty"):
        register_frames([], frames.__getitem__)


def test_warping_in_bands_of_rows_equals_warping_the_whole_frame(reference) -> None:
    transform = Transform.from_parameters(
        dx=999.0 + 12.3, dy=799.0 - 7.6, rotation_deg=179.2
    )  # a flip about the centre
    whole = warp(reference.image, transform)
    image = reference.image
    bands = [
        warp_rows(lambda r0, r1, c0, c1: image[r0:r1, c0:c1], image.shape, transform, (r, min(800, r + 96)))
        for r in range(0, 800, 96)
    ]
    assert np.allclose(np.vstack(bands), whole, equal_nan=True, atol=1e-3)
    assert np.isnan(whole).any() and np.isfinite(whole[20:780, 20:980]).all()


def test_transforms_fit_invert_and_compose() -> None:
    t = Transform.from_parameters(dx=3.0, dy=-2.0, rotation_deg=30.0, scale=1.01)
    x, y = np.array([0.0, 100.0, 50.0]), np.array([0.0, 20.0, 80.0])
    fitted = Transform.fit(np.column_stack([x, y]), np.column_stack(t.apply(x, y)))
    assert np.allclose(fitted.matrix, t.matrix)
    assert np.allclose(t.compose(t.inverse()).matrix, Transform.identity().matrix)
    assert fitted.rotation_deg == pytest.approx(30.0) and fitted.scale == pytest.approx(1.01)
    with pytest.raises(ValueError, match="at least 3 matched pairs"):
        Transform.fit(np.zeros((2, 2)), np.zeros((2, 2)), "affine")
