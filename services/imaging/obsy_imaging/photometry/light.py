"""A light frame on disk, ready to measure: its pixels, its normalised header and its WCS (the
header's, else a plate solve). The photometry of variable stars and the transit reduction both
start here; each says "why not" the same way (``problem``), never by raising for bad input."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from obsy_imaging.astrometry.kept import solve_kept
from obsy_imaging.astrometry.solve import Solution, hints_from_header, solve_frame
from obsy_imaging.headers.model import FrameHeader, HeaderError
from obsy_imaging.headers.normalise import Site, normalise_header


@dataclass
class Light:
    """What could be read of one frame; ``problem`` says what stopped it (then later parts are None)."""

    path: Path
    raw_header: fits.Header | None = None
    image: np.ndarray | None = None
    header: FrameHeader | None = None
    solution: Solution | None = None
    problem: str | None = None


def open_light(
    path: str | Path,
    *,
    site: Site | None = None,
    solve_timeout_s: float = 30.0,
    with_pixels: bool = True,
    index_dirs: list[Path] | None = None,
    keep_solution: bool = False,
) -> Light:
    """Read, normalise and place one frame. ``with_pixels=False`` reads the header only (a night's
    first pass over hundreds of frames); the pixels are then read by :func:`read_pixels`.
    ``index_dirs``: astrometry.net's index folders (else the system's configuration).
    ``keep_solution``: a plate solve is kept beside the file and reused by the next caller
    (:mod:`obsy_imaging.astrometry.kept`: the repository's calibrated lights, which the photometry
    and the transit reduction both read)."""
    path = Path(path)
    light = Light(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)  # a broken file is reported below, by name
            if with_pixels:
                with fits.open(path) as hdul:
                    light.raw_header = hdul[0].header.copy()
                    light.image = read_pixels(hdul)
            else:
                light.raw_header = fits.getheader(path)
    except (OSError, ValueError, TypeError, IndexError) as exc:
        light.problem = f"cannot read {path.name}: {exc}"
        return light
    try:
        light.header = normalise_header(light.raw_header, site=site)
    except HeaderError as exc:
        light.problem = f"header: {exc}"
        return light
    solve = solve_kept if keep_solution else solve_frame
    light.solution = solve(
        path, hints_from_header(light.header), timeout_s=solve_timeout_s, index_dirs=index_dirs or None
    )
    if not light.solution.ok:
        light.problem = f"no WCS: {light.solution.reason}"
    return light


def read_pixels(source: str | Path | fits.HDUList) -> np.ndarray:
    """The primary image as float32; raises ValueError for a file without a 2-D image."""
    if not isinstance(source, fits.HDUList):
        with fits.open(source) as hdul:
            return read_pixels(hdul)
    data = source[0].data
    if data is None or np.ndim(data) != 2:
        raise ValueError(f"no 2-D image in the primary HDU (shape {None if data is None else np.shape(data)})")
    return np.array(data, dtype=np.float32)  # a copy: the file may close
