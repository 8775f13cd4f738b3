"""Mono stacks of several filters put on one grid: each stack's stars matched to the reference
stack's (the registration library's triangle matching, similarity transform) and resampled onto
its grid (Lanczos-4; NaN where a stack has no data). Stacks of different nights and framings of
one target differ by dithers, a meridian flip or a small rotation, exactly as lights do."""

from __future__ import annotations

import numpy as np

from obsy_imaging.registration import RegistrationError, Transform, detect_stars, find_transform, warp


class AlignmentError(ValueError):
    """A filter's stack that cannot be put on the reference's grid, named with why."""


def align_stacks(stacks: dict[str, np.ndarray], reference: str) -> tuple[dict[str, np.ndarray], dict[str, Transform]]:
    """Every stack on the grid of ``stacks[reference]``; and each one's transform onto it."""
    if reference not in stacks:
        raise AlignmentError(f"the reference {reference!r} is not among the stacks ({', '.join(stacks)})")
    base = stacks[reference]
    base_stars = detect_stars(np.nan_to_num(base).astype(np.float32))
    if len(base_stars) < 6:
        raise AlignmentError(f"{reference}: {len(base_stars)} stars found, at least 6 are needed to align on it")
    aligned, transforms = {}, {}
    for name, image in stacks.items():
        if name == reference:
            aligned[name], transforms[name] = image.astype(np.float32), Transform.identity()
            continue
        if image.shape != base.shape:
            raise AlignmentError(
                f"{name} is {image.shape[1]}x{image.shape[0]}, {reference} {base.shape[1]}x{base.shape[0]}: "
                "stacks of one camera and binning only"
            )
        try:
            match = find_transform(base_stars, detect_stars(np.nan_to_num(image).astype(np.float32)))
        except RegistrationError as exc:
            raise AlignmentError(f"{name} cannot be aligned onto {reference}: {exc}") from exc
        aligned[name] = warp(image.astype(np.float32), match.transform)
        transforms[name] = match.transform
    return aligned, transforms
