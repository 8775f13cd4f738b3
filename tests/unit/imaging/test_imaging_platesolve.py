"""Plate solving offline with astrometry.net on sky-simulator frames.

The simulator's catalogue stars are real (Hipparcos to 6.5 mag); its fainter stars are synthetic and
not in any index. So the solve is tested on a wide field (7.8° × 5.9°, 13.8″/px: a 135 mm lens on a
9 µm sensor) rendered with the real stars only, which Tycho-2's wide indexes (Debian package
astrometry-data-tycho2-10-19, quads of 60′ and more) cover. Narrower fields need the narrower
Tycho-2 indexes and a simulator with a deeper real catalogue (docs/imaging-photometry.md).
"""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from astropy.io import fits

from obsy_imaging.astrometry import SolveHints, hints_from_header, solve_frame
from obsy_imaging.headers.normalise import normalise_header
from obsy_skysim.allsky import Site
from obsy_skysim.field import FieldRenderer, TelescopeOptics
from obsy_skysim.sensor import SensorSpec
from tests.support.photometry import write_light
from tests.support.skysim import SITE

INDEXES = Path("/usr/share/astrometry")
pytestmark = pytest.mark.skipif(
    shutil.which("solve-field") is None or not any(INDEXES.glob("index-tycho2-1*.fits")),
    reason="astrometry.net with the Tycho-2 wide indexes (Debian astrometry.net, astrometry-data-tycho2-10-19) "
    "is not installed",
)

NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
ORION = (83.82, -5.39)


def separation_arcsec(a: tuple[float, float], b: tuple[float, float]) -> float:
    ra1, dec1, ra2, dec2 = map(math.radians, (*a, *b))
    cos = math.sin(dec1) * math.sin(dec2) + math.cos(dec1) * math.cos(dec2) * math.cos(ra1 - ra2)
    return math.degrees(math.acos(min(1.0, cos))) * 3600.0


@pytest.fixture(scope="module")
def wide_renderer() -> FieldRenderer:
    sensor = SensorSpec(width=2048, height=1536, pixel_um=9.0, bayer=None)
    return FieldRenderer(
        Site(*SITE), sensor, TelescopeOptics(focal_length_mm=135.0, aperture_mm=35.0, limiting_magnitude=6.5)
    )


@pytest.fixture(scope="module")
def wide_frame(wide_renderer: FieldRenderer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = wide_renderer.render(NIGHT, ORION, 10.0, 0.0, seed=3)
    return write_light(tmp_path_factory.mktemp("solve") / "orion.fits", wide_renderer, frame)


@pytest.mark.slow
@pytest.mark.parametrize("hinted", [True, False], ids=["hints", "blind"])
def test_a_real_field_solves_within_arcseconds_of_the_pointing(
    wide_renderer: FieldRenderer, wide_frame: Path, hinted: bool
) -> None:
    header = normalise_header(fits.getheader(wide_frame))
    hints = hints_from_header(header) if hinted else None
    if hinted:
        assert hints.scale_arcsec_per_px == pytest.approx(wide_renderer.arcsec_per_pixel, rel=1e-6)
        assert (hints.ra_deg, hints.dec_deg) == pytest.approx(ORION)
    solution = solve_frame(wide_frame, hints, timeout_s=30)
    assert solution.ok, solution.reason
    assert solution.source == "astrometry.net"
    s = wide_renderer.sensor.spec
    miss = separation_arcsec(solution.centre(s.width, s.height), ORION)
    scale = solution.scale_arcsec_per_px()
    print(
        f"{'hinted' if hinted else 'blind'} solve in {solution.seconds:.2f} s: centre {miss:.2f}″ from the pointing, "
        f"scale {scale:.4f}″/px (true {wide_renderer.arcsec_per_pixel:.4f})"
    )
    assert miss < 5.0  # a few arcseconds at 13.8″/px: a third of a pixel
    assert scale == pytest.approx(wide_renderer.arcsec_per_pixel, rel=0.002)
    # North up (declination falls down the image, which is top row first) and east left.
    north = solution.wcs.all_pix2world([[s.width / 2, 0.0], [s.width / 2, s.height - 1.0]], 0)
    assert north[0][1] > north[1][1]


@pytest.mark.slow
def test_a_wcs_in_the_header_is_used_without_solving(wide_renderer: FieldRenderer, tmp_path: Path) -> None:
    frame = wide_renderer.render(NIGHT, ORION, 10.0, 0.0, seed=4)
    path = write_light(tmp_path / "with_wcs.fits", wide_renderer, frame, with_wcs=True)
    solution = solve_frame(path, None, timeout_s=30)
    assert solution.source == "header" and solution.seconds < 1.0
    s = wide_renderer.sensor.spec
    assert separation_arcsec(solution.centre(s.width, s.height), ORION) < 0.1
    # Asked not to trust it, the solver agrees with it.
    hints = hints_from_header(normalise_header(fits.getheader(path)))
    solved = solve_frame(path, hints, reuse_header_wcs=False, timeout_s=120)  # a loaded machine is slow to solve
    assert solved.source == "astrometry.net", solved.reason
    assert separation_arcsec(solved.centre(s.width, s.height), solution.centre(s.width, s.height)) < 5.0


@pytest.mark.slow
def test_a_frame_that_cannot_be_solved_says_why_within_the_limit(tmp_path: Path) -> None:
    """A 26′ field of synthetic stars (no index knows them): a reason, not a hang."""
    renderer = FieldRenderer(
        Site(*SITE),
        SensorSpec(width=1024, height=768, pixel_um=3.76, bayer=None),
        TelescopeOptics(limiting_magnitude=14.0),
    )
    path = write_light(tmp_path / "narrow.fits", renderer, renderer.render(NIGHT, (60.0, 30.0), 30.0, 0.0, seed=3))
    hinted = solve_frame(path, hints_from_header(normalise_header(fits.getheader(path))), timeout_s=30)
    assert not hinted.ok and hinted.seconds < 30
    assert "found no match at 1.55″/px within" in hinted.reason
    blind = solve_frame(path, None, timeout_s=4)
    assert not blind.ok and blind.reason == "no solution within 4 s" and blind.seconds < 6


@pytest.mark.slow
def test_missing_indexes_and_unreadable_files_give_reasons(wide_frame: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-indexes"
    empty.mkdir()
    solution = solve_frame(wide_frame, SolveHints(), timeout_s=20, index_dirs=[empty])
    assert not solution.ok and "no astrometry.net index files" in solution.reason
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not a FITS file")
    unreadable = solve_frame(junk, None)
    assert not unreadable.ok and unreadable.reason.startswith("cannot read junk.fits")
