"""One plate solve per calibrated light (obsy_imaging.astrometry.kept): the photometry and the
transit reduction of the same frame, on two threads at once, run astrometry.net once between them;
a light calibrated again (a new file renamed onto it) is solved again; a failure is kept with its
reason and not retried for the same file and solver settings.

The solves are real (a simulator frame against the simulator's own index, ``obsy-skysim index``)
and counted by a ``solve-field`` ahead of the real one on the PATH that notes each run and hands over.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from obsy_imaging.astrometry.kept import kept_path
from obsy_imaging.photometry.light import Light, open_light
from obsy_skysim.config import MainCameraSettings
from obsy_skysim.driver import MainCamera
from tests.integration.skysim.test_skysim_index import CAMERA, FIELDS, index
from tests.support.photometry import write_light
from tests.support.solves import count_solves
from tests.support.solves import solves as solved

pytestmark = [
    pytest.mark.skipif(
        shutil.which("build-astrometry-index") is None or shutil.which("solve-field") is None,
        reason="astrometry.net (Debian package astrometry.net: build-astrometry-index, solve-field) is not installed",
    ),
    pytest.mark.long(seconds=60),
    pytest.mark.timeout(900),
]

POINTING, NIGHT = FIELDS["Orion"]
TIMEOUT_S = 120.0  # a loaded machine is slow to solve


def build(folder: Path, field: str) -> Path:
    settings = folder / "skysim.yaml"
    settings.write_text(yaml.safe_dump({"camera": CAMERA}))
    built = index(settings, folder / "indexes", *FIELDS[field][0])
    assert built.returncode == 0, built.stderr
    return folder / "indexes"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's index of the lights' field."""
    return build(tmp_path_factory.mktemp("kept-solve"), "Orion")


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of another field: astrometry.net searches it and finds no match."""
    return build(tmp_path_factory.mktemp("kept-solve-elsewhere"), "RA 0h, Dec 20°")


@pytest.fixture
def solves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return count_solves(tmp_path, monkeypatch)


def runs(log: Path) -> int:
    return len(solved(log))


def render(path: Path, seed: int) -> Path:
    """A calibrated light without a WCS, replaced by renaming a new file onto it as the calibrator does."""
    renderer = MainCamera.make_renderer(MainCameraSettings.model_validate(CAMERA))
    frame = renderer.render(NIGHT, POINTING, 10.0, 0.0, seed=seed)
    written = write_light(path.with_name(f".{path.name}.tmp"), renderer, frame, calibrated=True)
    os.replace(written, path)
    return path


def test_the_second_consumer_reuses_the_first_solve(indexes: Path, solves: Path, tmp_path: Path) -> None:
    path = render(tmp_path / "light.fits", seed=5)
    opened: dict[str, Light] = {}

    def consumer(name: str, with_pixels: bool) -> None:
        opened[name] = open_light(
            path, solve_timeout_s=TIMEOUT_S, index_dirs=[indexes], with_pixels=with_pixels, keep_solution=True
        )

    # The photometry reads the pixels, the transit reduction's first pass the header only; at once.
    threads = [
        threading.Thread(target=consumer, args=("photometry", True)),
        threading.Thread(target=consumer, args=("transits", False)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert runs(solves) == 1
    first, second = sorted(opened.values(), key=lambda light: light.solution.reused)
    assert first.problem is None and second.problem is None, (first.problem, second.problem)
    assert (first.solution.source, first.solution.reused) == ("astrometry.net", False)
    assert (second.solution.source, second.solution.reused) == ("astrometry.net", True)
    assert second.solution.seconds == pytest.approx(first.solution.seconds, abs=0.001)  # the first's solve
    width, height = first.raw_header["NAXIS1"], first.raw_header["NAXIS2"]
    assert second.solution.centre(width, height) == pytest.approx(first.solution.centre(width, height), abs=1e-9)
    assert kept_path(path).name == "light.solution.json" and kept_path(path).exists()

    # Later, a third reader (a re-run): still one solve. A caller that does not keep solves anew.
    assert open_light(path, solve_timeout_s=TIMEOUT_S, index_dirs=[indexes], keep_solution=True).solution.reused
    assert runs(solves) == 1
    assert not open_light(path, solve_timeout_s=TIMEOUT_S, index_dirs=[indexes]).solution.reused
    assert runs(solves) == 2


def test_a_light_calibrated_again_is_solved_again(indexes: Path, solves: Path, tmp_path: Path) -> None:
    path = render(tmp_path / "light.fits", seed=5)
    before = open_light(path, solve_timeout_s=TIMEOUT_S, index_dirs=[indexes], keep_solution=True)
    assert before.problem is None and runs(solves) == 1
    render(path, seed=6)  # new content, the same name
    after = open_light(path, solve_timeout_s=TIMEOUT_S, index_dirs=[indexes], keep_solution=True)
    assert after.problem is None and not after.solution.reused
    assert runs(solves) == 2
    assert open_light(path, solve_timeout_s=TIMEOUT_S, index_dirs=[indexes], keep_solution=True).solution.reused
    assert runs(solves) == 2


def test_a_failed_solve_is_remembered_with_its_reason(
    indexes: Path, elsewhere: Path, solves: Path, tmp_path: Path
) -> None:
    path = render(tmp_path / "light.fits", seed=5)
    failed = open_light(path, solve_timeout_s=10, index_dirs=[elsewhere], keep_solution=True)
    assert failed.solution is not None and not failed.solution.ok and not failed.solution.reused
    assert failed.problem == f"no WCS: {failed.solution.reason}"
    assert "found no match" in failed.solution.reason or "no solution within" in failed.solution.reason
    assert runs(solves) == 1
    # The other consumer, the same settings: the kept failure and its reason, no second run.
    again = open_light(path, solve_timeout_s=10, index_dirs=[elsewhere], with_pixels=False, keep_solution=True)
    assert again.solution.reused and again.problem == failed.problem
    assert runs(solves) == 1
    # More time, or other indexes, is another try; the right index's success then replaces the failure.
    assert not open_light(path, solve_timeout_s=15, index_dirs=[elsewhere], keep_solution=True).solution.reused
    assert runs(solves) == 2
    solved = open_light(path, solve_timeout_s=TIMEOUT_S, index_dirs=[indexes], keep_solution=True)
    assert solved.problem is None and not solved.solution.reused
    assert runs(solves) == 3
    # A success serves whichever indexes the next consumer is configured with.
    assert open_light(path, solve_timeout_s=10, index_dirs=[elsewhere], keep_solution=True).solution.reused
    assert runs(solves) == 3


def test_what_stops_before_a_search_is_not_kept(solves: Path, tmp_path: Path) -> None:
    """No index files in the folder: a setup problem, not an answer about this file (installing
    indexes takes effect at once)."""
    path = render(tmp_path / "light.fits", seed=5)
    empty = tmp_path / "no-indexes"
    empty.mkdir()
    for _ in range(2):
        light = open_light(path, solve_timeout_s=10, index_dirs=[empty], keep_solution=True)
        assert light.problem is not None and "no astrometry.net index files" in light.problem
        assert not light.solution.reused
    assert runs(solves) == 2 and not kept_path(path).exists()


def test_a_damaged_kept_solution_is_solved_again(indexes: Path, solves: Path, tmp_path: Path) -> None:
    path = render(tmp_path / "light.fits", seed=5)
    kept_path(path).write_text("{not json")
    light = open_light(path, solve_timeout_s=TIMEOUT_S, index_dirs=[indexes], keep_solution=True)
    assert light.problem is None and not light.solution.reused
    assert runs(solves) == 1
