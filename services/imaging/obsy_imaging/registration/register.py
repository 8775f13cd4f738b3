"""Registering a set of frames (one target, one filter) onto a reference frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from obsy_imaging.registration.match import RegistrationError, find_transform
from obsy_imaging.registration.stars import StarList, detect_stars
from obsy_imaging.registration.transform import Transform, TransformKind


@dataclass(frozen=True)
class Registration:
    """One frame's result: its transform onto the reference, or why it was left out."""

    name: str
    transform: Transform | None
    stars: int
    pairs: int = 0
    rms_px: float | None = None
    reason: str | None = None

    @property
    def registered(self) -> bool:
        return self.transform is not None


def register_frames(
    names: Sequence[str],
    load: Callable[[str], np.ndarray],
    *,
    reference: str | None = None,
    kind: TransformKind = "similarity",
) -> list[Registration]:
    """Transforms of every frame onto the reference (by default the frame with the most stars).

    ``load(name)`` returns a calibrated frame; each is loaded once and only its star list kept,
    so memory holds one frame at a time. A frame that cannot be matched is reported with the
    reason and no transform; the rest go on.
    """
    if not names:
        raise ValueError("nothing to register: the list of frames is empty")
    if reference is not None and reference not in names:
        raise ValueError(f"the reference {reference!r} is not among the frames to register")
    stars: dict[str, StarList] = {}
    shape: tuple[int, int] | None = None
    for name in names:
        image = load(name)
        if shape is None:
            shape = image.shape
        elif image.shape != shape:
            raise ValueError(f"{name} is {image.shape[1]}x{image.shape[0]}, the others {shape[1]}x{shape[0]}")
        stars[name] = detect_stars(image)
        del image
    reference = reference or max(names, key=lambda n: len(stars[n]))
    results = []
    for name in names:
        if name == reference:
            results.append(Registration(name, Transform.identity(), len(stars[name]), len(stars[name]), 0.0))
            continue
        try:
            match = find_transform(stars[reference], stars[name], kind)
        except RegistrationError as error:
            results.append(Registration(name, None, len(stars[name]), reason=str(error)))
            continue
        results.append(Registration(name, match.transform, len(stars[name]), match.pairs, match.rms_px))
    return results
