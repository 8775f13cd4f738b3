"""Mono stacks of several filters put on one grid: each stack's stars matched to the reference
stack's (the registration library's triangle matching, similarity transform) and resampled onto
its grid (Lanczos-4; NaN where a stack has no data). Stacks of different nights and framings of
one target differ by dithers, a meridian flip or a small rotation, exactly as lights do."""

from __future__ import annotations

import numpy as np

from obsy_imaging.colour.bands import Source, as_reader
from obsy_imaging.registration import RegistrationError, Transform, detect_stars, find_transform, warp


class AlignmentError(ValueError):
    """A filter's stack that cannot be put on the reference's grid, named with why."""


def _stars(source: Source):
    read, (height, width) = as_reader(source)
    image = np.array(read(0, height, 0, width), dtype=np.float32)  # a copy, one stack at a time
    np.nan_to_num(image, copy=False)
    return detect_stars(image)


def transforms_onto(stacks: dict[str, Source], reference: str) -> dict[str, Transform]:
    """Each stack's transform onto the grid of ``stacks[reference]`` (stars read one stack at a time)."""
    if reference not in stacks:
        raise AlignmentError(f"the reference {reference!r} is not among the stacks ({', '.join(stacks)})")
    base_shape = as_reader(stacks[reference])[1]
    base_stars = _stars(stacks[reference])
    if len(base_stars) < 6:
        raise AlignmentError(f"{reference}: {len(base_stars)} stars found, at least 6 are needed to align on it")
    transforms = {}
    for name, source in stacks.items():
        if name == reference:
            transforms[name] = Transform.identity()
            continue
        shape = as_reader(source)[1]
        if shape != base_shape:
            raise AlignmentError(
                f"{name} is {shape[1]}x{shape[0]}, {reference} {base_shape[1]}x{base_shape[0]}: "
                "stacks of one camera and binning only"
            )
        try:
            transforms[name] = find_transform(base_stars, _stars(source)).transform
        except RegistrationError as exc:
            raise AlignmentError(f"{name} cannot be aligned onto {reference}: {exc}") from exc
    return transforms


def align_stacks(stacks: dict[str, np.ndarray], reference: str) -> tuple[dict[str, np.ndarray], dict[str, Transform]]:
    """Every stack (in memory) on the grid of ``stacks[reference]``; and each one's transform onto it."""
    transforms = transforms_onto(stacks, reference)
    aligned = {
        name: image.astype(np.float32) if name == reference else warp(image.astype(np.float32), transforms[name])
        for name, image in stacks.items()
    }
    return aligned, transforms
