"""The science night's index (``obsy-skysim science-night``): the simulator's frames of both its fields,
as the camera writes them (no WCS), plate-solve against it, where the mount pointed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from astropy.io import fits

from obsy_imaging.astrometry import solve_frame
from obsy_skysim.allsky import Site
from obsy_skysim.config import MainCameraSettings
from obsy_skysim.driver import MainCamera
from obsy_skysim.scenario import load_scenario
from obsy_skysim.science import write_science_night
from tests.integration.skysim.test_skysim_index import separation_arcsec
from tests.support.photometry import write_light
from tests.support.skysim import SITE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("build-astrometry-index") is None or shutil.which("solve-field") is None,
        reason="astrometry.net (Debian package astrometry.net: build-astrometry-index, solve-field) is not installed",
    ),
]

#: A cut of the main camera (26′ × 20′ at 1.55″/px), as the index's own test: cheap to render and solve.
CAMERA = {"sensor": {"width": 1024, "height": 768}, "telescope": {"limiting_magnitude": 15.0}}


def test_frames_of_both_fields_solve_against_the_nights_index(tmp_path) -> None:
    start = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
    place = {"latitude": SITE[0], "longitude": SITE[1], "elevation": SITE[2]}
    camera = MainCameraSettings.model_validate({**CAMERA, "site": place})
    night = write_science_night(tmp_path / "night", Site(*SITE), start, camera)
    assert night.index_dir is not None and list(night.index_dir.glob("index-*.fits"))
    renderer = MainCamera.make_renderer(camera)
    scenario = load_scenario(night.scenario)
    s = renderer.sensor.spec
    for name, pointing in (("transit", night.transit_field), ("variable", night.variable_field)):
        frame = renderer.render(night.transit.mid_utc, pointing, 10.0, 0.0, scenario=scenario, seed=3)
        path = write_light(tmp_path / f"{name}.fits", renderer, frame, with_wcs=False)
        assert "CTYPE1" not in fits.getheader(path)
        # Blind (no hints), as a frame whose pointing is unknown; 120 s: a loaded machine is slow.
        solution = solve_frame(path, None, timeout_s=120, index_dirs=[night.index_dir])
        assert solution.ok, solution.reason
        miss = separation_arcsec(solution.centre(s.width, s.height), pointing)
        print(f"{name} field: solved in {solution.seconds:.1f} s, centre {miss:.2f}″ from the pointing")
        assert miss < 3.0
        assert solution.scale_arcsec_per_px() == pytest.approx(renderer.arcsec_per_pixel, rel=0.005)
