"""Registering a set of frames (one target, one filter) onto a reference frame."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
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


#: ``load`` of the frames the worker processes detect stars in (set before they are forked: a closure
#: cannot be sent to a process, but a forked one inherits it).
_for_workers: dict[str, Callable[[str], np.ndarray]] = {}


def _stars_in_worker(name: str) -> tuple[tuple[int, ...], StarList]:
    image = _for_workers["load"](name)
    return image.shape, detect_stars(image)


def _star_lists(
    names: Sequence[str], load: Callable[[str], np.ndarray], workers: int
) -> Iterator[tuple[str, tuple[int, ...], StarList]]:
    """Each frame's shape and stars, in the order of ``names``; ``workers`` > 1: in that many forked
    processes (sep holds the GIL while it extracts, so threads would not run side by side)."""
    if workers <= 1 or len(names) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for name in names:
            image = load(name)
            yield name, image.shape, detect_stars(image)
            del image
        return
    _for_workers["load"] = load
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(names)), mp_context=context) as pool:
            for name, (shape, stars) in zip(names, pool.map(_stars_in_worker, names), strict=True):
                yield name, shape, stars
    finally:
        _for_workers.clear()


def register_frames(
    names: Sequence[str],
    load: Callable[[str], np.ndarray],
    *,
    reference: str | None = None,
    kind: TransformKind = "similarity",
    workers: int = 1,
) -> list[Registration]:
    """Transforms of every frame onto the reference (by default the frame with the most stars).

    ``load(name)`` returns a calibrated frame; each is loaded once and only its star list kept,
    so memory holds one frame at a time per worker. A frame that cannot be matched is reported
    with the reason and no transform; the rest go on. ``workers`` > 1 detects the stars in that
    many processes forked from this one (from a command or a bench, not from inside a service
    with threads of its own); the results are the same.
    """
    if not names:
        raise ValueError("nothing to register: the list of frames is empty")
    if reference is not None and reference not in names:
        raise ValueError(f"the reference {reference!r} is not among the frames to register")
    stars: dict[str, StarList] = {}
    shape: tuple[int, ...] | None = None
    for name, frame_shape, found in _star_lists(names, load, workers):
        if shape is None:
            shape = frame_shape
        elif frame_shape != shape:
            raise ValueError(f"{name} is {frame_shape[1]}x{frame_shape[0]}, the others {shape[1]}x{shape[0]}")
        stars[name] = found
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
