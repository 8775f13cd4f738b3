"""Triangle asterisms and their matching: the first guess of a frame's transform onto the reference.

The method is astroalign's (Beroiz et al. 2020): each of the brightest stars and its four nearest
neighbours make ten triangles; a triangle's invariants, (L3/L2, L2/L1) of its sides L1 <= L2 <= L3,
do not change under shift, rotation (a meridian flip is 180 degrees) and scale; triangles of the
frame whose invariants lie within 0.1 of a reference triangle's are candidate correspondences, with
their vertices in a fixed order (a: between L1 and L2, b: between L2 and L3, c: between L3 and L1);
the transform that most candidates agree with (every vertex within 2 px) wins.

Done here with NumPy over all triangles at once instead of astroalign's loop over each, and the
reference's triangles are made once for all the frames registered onto it (``StarList.asterisms``):
the match was a third of the registration's time. Candidates are tried best-matching invariants
first, so the result is the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from obsy_imaging.registration.transform import Transform

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

CONTROL_POINTS = 50  # the brightest stars the triangles are made of
NEIGHBOURS = 5  # a star and its four nearest neighbours
INVARIANT_RADIUS = 0.1  # how close two triangles' invariants must be to be a candidate
VERTEX_TOLERANCE_PX = 2.0  # a candidate agrees with a transform when all its vertices land this close
MIN_AGREEING_FRACTION = 0.8  # astroalign's: at most 10 agreeing candidates are asked for
MIN_AGREEING_MAX = 10
_TRIPLES = np.array(list(combinations(range(NEIGHBOURS), 3)))


class NoMatchError(ValueError):
    """No transform that enough triangle correspondences agree with."""


@dataclass(frozen=True)
class Asterisms:
    points: np.ndarray  # (n, 2) the control points
    vertices: np.ndarray  # (m, 3) indices into points, in the order (a, b, c)
    invariants: np.ndarray  # (m, 2)
    tree: cKDTree  # over the invariants


def asterisms(xy: np.ndarray) -> Asterisms:
    """The unique triangles of the ``CONTROL_POINTS`` first points (brightest first) and their invariants."""
    points = np.asarray(xy, float)[:CONTROL_POINTS]
    if len(points) < 3:
        raise NoMatchError(f"{len(points)} stars make no triangle")
    k = min(len(points), NEIGHBOURS)
    from scipy.spatial import cKDTree  # here, not at the top: importing the package stays light

    _, near = cKDTree(points).query(points, k)
    triples = near[:, _TRIPLES[np.all(k > _TRIPLES, axis=1)]].reshape(-1, 3)
    triples = np.unique(np.sort(triples, axis=1), axis=0)
    p = points[triples]  # (m, 3, 2)
    # Side i is opposite vertex i: side 0 joins vertices 1 and 2, and so on.
    sides = np.stack(
        [
            np.hypot(*(p[:, 1] - p[:, 2]).T),
            np.hypot(*(p[:, 2] - p[:, 0]).T),
            np.hypot(*(p[:, 0] - p[:, 1]).T),
        ],
        axis=1,
    )
    order = np.argsort(sides, axis=1, kind="stable")  # shortest, middle, longest
    lengths = np.take_along_axis(sides, order, axis=1)
    keep = lengths[:, 0] > 1e-6
    # a is opposite the longest side, b opposite the shortest, c opposite the middle one.
    vertices = np.take_along_axis(triples, order[:, [2, 0, 1]], axis=1)[keep]
    lengths = lengths[keep]
    invariants = np.column_stack([lengths[:, 2] / lengths[:, 1], lengths[:, 1] / lengths[:, 0]])
    return Asterisms(points, vertices, invariants, cKDTree(invariants))


def match(frame: Asterisms, reference: Asterisms) -> Transform:
    """The similarity taking the frame's control points onto the reference's that most triangle
    correspondences agree with; :class:`NoMatchError` when none has enough."""
    found = reference.tree.query_ball_point(frame.invariants, r=INVARIANT_RADIUS)
    counts = np.fromiter((len(f) for f in found), int, len(found))
    if counts.sum() == 0:
        raise NoMatchError("no triangle of the frame matches one of the reference's")
    frame_index = np.repeat(np.arange(len(found)), counts)
    reference_index = np.concatenate([np.asarray(f, int) for f in found if f])
    distance = np.hypot(*(frame.invariants[frame_index] - reference.invariants[reference_index]).T)
    best_first = np.argsort(distance, kind="stable")
    source = frame.points[frame.vertices[frame_index[best_first]]]  # (n, 3, 2)
    target = reference.points[reference.vertices[reference_index[best_first]]]
    needed = max(1, min(MIN_AGREEING_MAX, int(len(source) * MIN_AGREEING_FRACTION)))

    def agreeing(transform: Transform) -> np.ndarray:
        x, y = transform.apply(source[..., 0], source[..., 1])
        return np.hypot(x - target[..., 0], y - target[..., 1]).max(axis=1) < VERTEX_TOLERANCE_PX

    for candidate in range(len(source)):
        guess = Transform.fit(source[candidate], target[candidate], "similarity")
        inliers = agreeing(guess)
        if inliers.sum() - 1 >= needed:  # others than itself
            for _ in range(3):  # refit on every agreeing triangle, as astroalign does
                guess = Transform.fit(source[inliers].reshape(-1, 2), target[inliers].reshape(-1, 2), "similarity")
                inliers = agreeing(guess)
                if not inliers.any():
                    break
            else:
                return guess
    raise NoMatchError("no transform that enough matching triangles agree with")
