"""astrometry.net index files of the simulator's own sky, so that its frames plate-solve for real.

The main camera renders the catalogue's stars (real, to 6.5 mag) and, fainter, a synthetic sky
(:func:`obsy_skysim.field.synthetic_cell_stars`): no published index knows those, so frames of an
ordinary telescope field cannot be solved against Tycho-2. An astronomer with a field that no
index covers builds an index from a catalogue of their own; so does this module:

1. the star list of a region: exactly the stars :meth:`FieldRenderer.stars_near` would draw there
   (the catalogue's and every synthetic cell that touches the region, to the camera's limiting
   magnitude), written as a FITS table (``RA``, ``DEC`` in ICRS degrees, ``MAG``, ``BV``);
2. ``build-astrometry-index`` (Debian ``astrometry.net``) on that table, once per quad scale
   the main camera's field needs: quads of about a fifth to three quarters of the field's
   shorter side (``-P`` numbers; scale ``n`` holds quads of 2·√2ⁿ to 2·√2ⁿ⁺¹ arcminutes).

``solve-field`` then solves the simulator's frames of that region with the folder as its only
index path (the imaging service's ``index_dirs``). The stars sit where the renderer put them,
so a solve agrees with the header's pointing to a fraction of a pixel.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy_skysim.field import FieldRenderer, FieldStars, _angular_distance

BUILDER = "build-astrometry-index"
#: Quads a field is solved by, as shares of its shorter side (astrometry.net: about 10 to 100 %).
QUAD_SHARE = (0.2, 0.75)


class IndexBuildError(RuntimeError):
    """An index that could not be built; the message says why (a missing program, bad input)."""


@dataclass(frozen=True)
class BuiltIndex:
    catalogue: Path  # the FITS table of the region's stars
    indexes: list[Path]  # one index file per scale
    scales: list[int]  # their -P numbers
    stars: int


def quad_scales(field_arcmin: float) -> list[int]:
    """The ``-P`` scale numbers whose quads (2·√2ⁿ to 2·√2ⁿ⁺¹ arcminutes) overlap a fifth to three
    quarters of a field ``field_arcmin`` wide (its shorter side)."""
    if not field_arcmin > 0:
        raise ValueError(f"the field must be wider than 0 arcminutes, not {field_arcmin}")
    low, high = QUAD_SHARE[0] * field_arcmin, QUAD_SHARE[1] * field_arcmin
    return [n for n in range(20) if 2.0 * math.sqrt(2.0) ** (n + 1) > low and 2.0 * math.sqrt(2.0) ** n < high]


def field_arcmin(renderer: FieldRenderer) -> float:
    """The shorter side of the main camera's field, arcminutes."""
    s = renderer.sensor.spec
    return min(s.width, s.height) * renderer.arcsec_per_pixel / 60.0


def region_stars(renderer: FieldRenderer, ra: float, dec: float, radius_deg: float) -> FieldStars:
    """The stars the renderer draws within ``radius_deg`` of (``ra``, ``dec``), brightest first."""
    if not 0.0 <= ra < 360.0 or not -90.0 <= dec <= 90.0:
        raise ValueError(f"({ra}, {dec}) is not a sky position (RA 0 to 360°, Dec -90 to 90°)")
    if not 0.0 < radius_deg <= 30.0:
        raise ValueError(f"the radius must be above 0° and at most 30°, not {radius_deg}°")
    stars = renderer.stars_near(ra, dec, radius_deg)
    keep = _angular_distance(stars.ra, stars.dec, ra, dec) <= radius_deg
    order = np.argsort(stars.mag[keep], kind="stable")
    return FieldStars(*(getattr(stars, f)[keep][order] for f in FieldStars.__dataclass_fields__))


def write_catalogue(path: Path, stars: FieldStars) -> Path:
    columns = [
        fits.Column("RA", "D", "deg", array=stars.ra),
        fits.Column("DEC", "D", "deg", array=stars.dec),
        fits.Column("MAG", "E", "mag", array=stars.mag.astype(np.float32)),
        fits.Column("BV", "E", "mag", array=stars.bv.astype(np.float32)),
    ]
    table = fits.BinTableHDU.from_columns(columns, name="STARS")
    table.header["COMMENT"] = "the OBSY sky simulator's stars (catalogue and synthetic), ICRS"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)
    return path


def build_index(
    renderer: FieldRenderer,
    ra: float,
    dec: float,
    radius_deg: float,
    out: Path,
    *,
    scales: list[int] | None = None,
    timeout_s: float = 600.0,
) -> BuiltIndex:
    """The region's star list and its index files in ``out`` (made if missing)."""
    if shutil.which(BUILDER) is None:
        raise IndexBuildError(f"astrometry.net is not installed (no {BUILDER} on the PATH; Debian: astrometry.net)")
    stars = region_stars(renderer, ra, dec, radius_deg)
    if len(stars.ra) < 10:
        raise IndexBuildError(f"only {len(stars.ra)} stars within {radius_deg}° of ({ra}, {dec}): too few for an index")
    scales = scales if scales is not None else quad_scales(field_arcmin(renderer))
    out.mkdir(parents=True, exist_ok=True)
    name = f"skysim-{ra:07.3f}{dec:+07.3f}-r{radius_deg:g}"
    catalogue = write_catalogue(out / f"{name}-stars.fits", stars)
    indexes = []
    for scale in scales:
        index = out / f"index-{name}-{scale:02d}.fits"
        command = [
            BUILDER, "-i", str(catalogue), "-e", "1", "-o", str(index),
            "-P", str(scale), "-S", "MAG", "-A", "RA", "-D", "DEC",
            "-E",  # only the healpixes the region occupies
            "-I", str(_index_id(ra, dec, scale)),
            "-t", str(out),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise IndexBuildError(f"{BUILDER} -P {scale} took more than {timeout_s:g} s") from None
        if done.returncode != 0 or not index.exists():
            tail = "; ".join(line for line in (done.stdout + done.stderr).splitlines()[-3:] if line.strip())
            raise IndexBuildError(f"{BUILDER} -P {scale} failed (exit {done.returncode}): {tail[:300] or 'no output'}")
        indexes.append(index)
    return BuiltIndex(catalogue, indexes, scales, len(stars.ra))


def _index_id(ra: float, dec: float, scale: int) -> int:
    """A unique ID per region and scale (astrometry.net names each index by one in its logs)."""
    return (round(ra) * 181 + round(dec) + 90) * 100 + scale
