"""The vectorised triangle asterisms against astroalign's own (the reference implementation of the
method), and the match on star lists with a known transform, a flip and outliers."""

from __future__ import annotations

import numpy as np
import pytest

from obsy_imaging.registration.transform import Transform
from obsy_imaging.registration.triangles import CONTROL_POINTS, NoMatchError, asterisms, match


def stars(count: int = 80, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).uniform([0, 0], [3000, 2000], (count, 2))


def test_the_triangles_and_their_vertex_order_are_astroaligns() -> None:
    astroalign = pytest.importorskip("astroalign")
    points = stars()
    ours = asterisms(points)
    theirs_invariants, theirs_vertices = astroalign._generate_invariants(points[:CONTROL_POINTS])
    key = lambda vertices: {tuple(v) for v in vertices.tolist()}  # noqa: E731
    assert key(ours.vertices) == key(theirs_vertices)  # the same triangles, each with the same (a, b, c)
    by_vertices = dict(zip(map(tuple, theirs_vertices.tolist()), theirs_invariants, strict=True))
    for vertices, invariants in zip(ours.vertices.tolist(), ours.invariants, strict=True):
        assert invariants == pytest.approx(by_vertices[tuple(vertices)], rel=1e-12)


@pytest.mark.parametrize("rotation", [0.0, 0.7, 180.0])
def test_a_known_transform_is_found_with_stars_missing_and_added(rotation: float) -> None:
    reference = stars(120)
    truth = Transform.from_parameters(dx=37.25, dy=-12.5, rotation_deg=rotation)
    back = truth.inverse()
    x, y = back.apply(reference[:, 0], reference[:, 1])  # the frame's stars: the reference's seen from it
    frame = np.column_stack([x, y])
    rng = np.random.default_rng(9)
    frame = np.delete(frame, np.arange(3, len(frame), 7), axis=0)  # some stars lost (brightest first still)...
    frame = np.vstack([frame[:20], rng.uniform([0, 0], [3000, 2000], (4, 2)), frame[20:]])  # ...hot pixels
    found = match(asterisms(frame), asterisms(reference))
    assert found.max_difference_px(truth, 3000, 2000) < 1e-6


def test_two_unrelated_fields_do_not_match() -> None:
    with pytest.raises(NoMatchError):
        match(asterisms(stars(60, seed=1)), asterisms(stars(60, seed=2)))
