"""The sky simulator's own astrometry.net index: its main camera's frames of telescope fields, which
no published index can solve (their faint stars are synthetic), solve against it for real.

``obsy-skysim index`` writes the stars the field renderer draws in a region and runs Debian's
``build-astrometry-index`` on them; ``solve-field`` (through the imaging service's solver, with the
folder as its only index path) then solves a rendered light, and the solution must match the
simulator's truth: the header's pointing within a few arcseconds, the plate scale within 0.5 %.
One field is at Orion, the other straddles RA 0h and a declination band's edge, where the
synthetic sky's cells meet (the index must hold every cell's stars the renderer draws there).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from obsy_imaging.astrometry import hints_from_header, solve_frame
from obsy_imaging.headers.normalise import normalise_header
from obsy_imaging.photometry.light import open_light
from obsy_skysim.cli import main as skysim_main
from obsy_skysim.config import MainCameraSettings
from obsy_skysim.driver import MainCamera
from obsy_skysim.index import field_arcmin, quad_scales, region_stars
from tests.support.photometry import write_light
from tests.support.skysim import SITE

pytestmark = pytest.mark.skipif(
    shutil.which("build-astrometry-index") is None or shutil.which("solve-field") is None,
    reason="astrometry.net (Debian package astrometry.net: build-astrometry-index, solve-field) is not installed",
)

SKYSIM = Path(sys.executable).with_name("obsy-skysim")
#: A cut of the main camera's sensor behind a 500 mm telescope: a 26′ × 20′ field at 1.55″/px.
CAMERA = {
    "site": {"latitude": SITE[0], "longitude": SITE[1], "elevation": SITE[2]},
    "sensor": {"width": 1024, "height": 768},
    "telescope": {"focal_length_mm": 500.0, "limiting_magnitude": 15.0},
}
#: Pointings and a night when each is high.
FIELDS = {
    "Orion": ((83.9, -5.3), datetime(2026, 1, 15, 22, 0, tzinfo=UTC)),
    "RA 0h, Dec 20°": ((0.03, 20.02), datetime(2026, 10, 10, 23, 0, tzinfo=UTC)),
}


def separation_arcsec(a: tuple[float, float], b: tuple[float, float]) -> float:
    ra1, dec1, ra2, dec2 = map(math.radians, (*a, *b))
    cos = math.sin(dec1) * math.sin(dec2) + math.cos(dec1) * math.cos(dec2) * math.cos(ra1 - ra2)
    return math.degrees(math.acos(min(1.0, cos))) * 3600.0


@pytest.fixture(scope="module")
def settings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("skysim") / "skysim.yaml"
    path.write_text(yaml.safe_dump({"camera": CAMERA}))
    return path


def index(settings: Path, out: Path, ra: float, dec: float, radius: float | None = 0.6) -> subprocess.CompletedProcess:
    command = [str(SKYSIM), "index", "--ra", str(ra), "--dec", str(dec), "--out", str(out), "--config", str(settings)]
    if radius is not None:
        command += ["--radius-deg", str(radius)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_the_scales_suit_the_main_cameras_field() -> None:
    renderer = MainCamera.make_renderer(MainCameraSettings.model_validate(CAMERA))
    assert field_arcmin(renderer) == pytest.approx(768 * 206.264806 * 3.76 / 500.0 / 60.0)
    # Quads of 0.2 to 0.75 of the 19.9′ side: 4.0′ to 14.9′, scales 1 (2.8′–4′) to 5 (11.3′–16′).
    assert quad_scales(field_arcmin(renderer)) == [1, 2, 3, 4, 5]
    # The whole default sensor (6248 × 4176 at 500 mm: 108′ high) takes quads of 22′ to 81′.
    assert quad_scales(108.0) == [6, 7, 8, 9, 10]
    with pytest.raises(ValueError, match="wider than 0"):
        quad_scales(0.0)


@pytest.mark.parametrize("name", list(FIELDS))
def test_a_rendered_telescope_field_solves_against_the_simulators_index(
    name: str, settings_file: Path, tmp_path: Path
) -> None:
    pointing, night = FIELDS[name]
    out = tmp_path / "indexes"
    built = index(settings_file, out, *pointing)
    assert built.returncode == 0, built.stderr
    print(built.stdout.strip())
    assert len(list(out.glob("index-*.fits"))) == 5, sorted(p.name for p in out.iterdir())

    settings = MainCameraSettings.model_validate(CAMERA)
    renderer = MainCamera.make_renderer(settings)
    frame = renderer.render(night, pointing, 10.0, 0.0, seed=5)
    assert len(frame.truth.x) > 100  # the field is up and its stars are drawn
    # The index holds every star the renderer drew, where it drew it (the same generator, every cell).
    (catalogue,) = out.glob("*-stars.fits")
    table = fits.getdata(catalogue, 1)
    drawn = frame.truth.stars
    in_index = {(round(ra, 9), round(dec, 9)) for ra, dec in zip(table["RA"], table["DEC"], strict=True)}
    assert all((round(ra, 9), round(dec, 9)) in in_index for ra, dec in zip(drawn.ra, drawn.dec, strict=True))
    assert np.all(np.diff(table["MAG"]) >= 0)  # brightest first, as the index builder sorts them

    path = write_light(tmp_path / "light.fits", renderer, frame)
    header = normalise_header(fits.getheader(path))
    s = renderer.sensor.spec
    for hints in (hints_from_header(header), None):
        solution = solve_frame(path, hints, timeout_s=120, index_dirs=[out])  # a loaded machine is slow
        assert solution.ok, solution.reason
        assert solution.source == "astrometry.net"
        miss = separation_arcsec(solution.centre(s.width, s.height), pointing)
        scale = solution.scale_arcsec_per_px()
        print(
            f"{name}, {'hinted' if hints else 'blind'}: solved in {solution.seconds:.1f} s, centre {miss:.2f}″ from "
            f"the pointing, {scale:.5f}″/px (true {renderer.arcsec_per_pixel:.5f})"
        )
        assert miss < 3.0
        assert scale == pytest.approx(renderer.arcsec_per_pixel, rel=0.005)

    # The imaging service's way in (photometry and transits): the light placed with the folder as index path.
    light = open_light(path, solve_timeout_s=120, index_dirs=[out])
    assert light.problem is None and light.solution.source == "astrometry.net", light.problem
    # Without it, the system's indexes (Tycho-2) know too few of these stars.
    elsewhere = solve_frame(path, hints_from_header(header), timeout_s=30)
    assert not elsewhere.ok, elsewhere.source


def test_the_region_holds_the_renderers_stars_to_the_cameras_limit() -> None:
    renderer = MainCamera.make_renderer(MainCameraSettings.model_validate(CAMERA))
    stars = region_stars(renderer, 83.9, -5.3, 0.5)
    assert stars.mag.max() <= 15.0 and np.all(np.diff(stars.mag) >= 0)
    assert stars.catalogued.any()  # Orion's Hipparcos stars are there with the synthetic ones
    # N(<15) = 0.19 · 10^(0.45 · 8.5) per square degree over π · 0.5² square degrees, within Poisson's reach.
    expected = 0.19 * 10 ** (0.45 * 8.5) * math.pi * 0.25
    assert abs(len(stars.ra) - expected) < 5 * math.sqrt(expected), (len(stars.ra), expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ra", "83.9", "--dec", "95"], "is not a sky position"),
        (["--ra", "83.9", "--dec", "-5", "--radius-deg", "0"], "the radius must be above 0°"),
    ],
)
def test_bad_regions_are_refused_naming_the_value(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    # In this process, through the console script's main: the refusal needs no process of its own.
    status = skysim_main(["index", *args, "--out", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert status == 2 and message in stderr, stderr
    assert not (tmp_path / "out").exists()
