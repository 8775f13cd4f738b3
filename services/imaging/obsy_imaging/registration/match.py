"""Matching a frame's stars to the reference's: triangle asterisms find the correspondence
(astroalign's method, invariant to shift, rotation - a meridian flip is a 180 degree rotation - and
scale; ``triangles.py``), then every star is paired by its nearest neighbour under that first guess and the transform is
refitted by least squares on all pairs, with outlying pairs clipped. The triangles use at most
50 control points; the refit on a few hundred is what brings the error to hundredths of a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obsy_imaging.registration import triangles
from obsy_imaging.registration.stars import StarList
from obsy_imaging.registration.transform import Transform, TransformKind

MIN_STARS = 6
MIN_PAIRS = 6
PAIR_RADIUS_PX = 3.0


class RegistrationError(ValueError):
    """A frame that cannot be registered, with the reason in words."""


@dataclass(frozen=True)
class Match:
    transform: Transform  # frame pixel -> reference pixel
    pairs: int
    rms_px: float  # residual of the pairs about the fitted transform


def find_transform(reference: StarList, frame: StarList, kind: TransformKind = "similarity") -> Match:
    """The transform taking ``frame``'s pixels onto ``reference``'s; :class:`RegistrationError` if none."""
    if len(reference) < MIN_STARS:
        raise RegistrationError(f"the reference has {len(reference)} stars, at least {MIN_STARS} are needed")
    if len(frame) < MIN_STARS:
        raise RegistrationError(f"too few stars: {len(frame)} found, at least {MIN_STARS} are needed")
    try:
        transform = triangles.match(frame.asterisms, reference.asterisms)
    except triangles.NoMatchError:
        raise RegistrationError(
            "no matching star pattern: the frame's triangles match none of the reference's"
        ) from None
    from scipy.spatial import cKDTree  # here, not at the top: importing the package stays light

    tree = cKDTree(reference.xy)
    radius = PAIR_RADIUS_PX
    pairs = rms = 0.0
    for _ in range(4):
        x, y = transform.apply(frame.x, frame.y)
        distance, index = tree.query(np.column_stack([x, y]), distance_upper_bound=radius)
        paired = np.isfinite(distance)
        # Each reference star may pair with one frame star only.
        _, first_use = np.unique(index[paired], return_index=True)
        chosen = np.flatnonzero(paired)[first_use]
        if len(chosen) < MIN_PAIRS:
            raise RegistrationError(
                f"only {len(chosen)} stars pair with the reference within {radius:.1f} px, {MIN_PAIRS} are needed"
            )
        source, target = frame.xy[chosen], reference.xy[index[chosen]]
        transform = Transform.fit(source, target, kind)
        residual = np.hypot(*(np.column_stack(transform.apply(source[:, 0], source[:, 1])) - target).T)
        pairs, rms = len(chosen), float(np.sqrt(np.mean(residual**2)))
        radius = max(0.5, min(PAIR_RADIUS_PX, 4.0 * 1.4826 * float(np.median(residual))))
    return Match(transform, int(pairs), rms)
