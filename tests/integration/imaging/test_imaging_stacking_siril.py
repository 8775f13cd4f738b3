"""OBSY's registration and stack side by side with Siril's on the same small set of lights.

Eight calibrated sky-simulator lights (dithered, one after a meridian flip), registered and
stacked by OBSY (Lanczos, additive+scaling, winsorized 3σ, noise weights) and by Siril 1.0.6
(``register``, ``stack r_light rej w 3 3 -nonorm``). Both stacks are on frame 1's grid, so
the same stars sit at the same places. Why ``-nonorm`` and why the noise is measured in
apertures: tests/support/siril.py. Runs only where ``siril-cli`` is installed (CI installs it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.support.siril import compare_stacks, load_stack, run_siril, siril_available, write_lights

pytestmark = pytest.mark.skipif(not siril_available(), reason="siril-cli is not installed (apt-get install siril)")

FRAMES = 8


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The lights' folder, OBSY's stack and Siril's, made once for the module."""
    from obsy_imaging.registration import register_frames
    from obsy_imaging.stacking import StackFrame, StackOptions, fits_reader, stack

    folder = tmp_path_factory.mktemp("siril")
    names = [str(path) for path in write_lights(folder, FRAMES, (500, 700), flip_every=4)]

    def load(name: str) -> np.ndarray:
        read, (height, width) = fits_reader(Path(name))
        return read(0, height, 0, width)

    registered = [r for r in register_frames(names, load, reference=names[0]) if r.registered]
    assert len(registered) == FRAMES, "OBSY registered every frame, the flipped ones too"
    frames = [StackFrame(r.name, *fits_reader(Path(r.name)), r.transform) for r in registered]
    ours = folder / "obsy_stack.fits"
    fits.PrimaryHDU(stack(frames, StackOptions()).image).writeto(ours)

    run_siril(folder, "link light -out=.\nregister light\nstack r_light rej w 3 3 -nonorm -out=siril_stack\n")
    theirs = next(iter(folder.glob("siril_stack*.fit*")))
    return folder, ours, theirs


def test_both_stacks_hold_the_same_light_at_the_same_places(stacks) -> None:
    _folder, ours, theirs = stacks
    comparison = compare_stacks(load_stack(ours), load_stack(theirs))
    assert abs(comparison.light_ratio - 1.0) < 0.02, comparison.describe()
    assert abs(comparison.background[0] - comparison.background[1]) < 1.0, comparison.describe()


def test_stars_are_no_wider_and_the_aperture_noise_no_higher_than_siril_s(stacks) -> None:
    _folder, ours, theirs = stacks
    comparison = compare_stacks(load_stack(ours), load_stack(theirs))
    obsy_fwhm, siril_fwhm = comparison.fwhm_px
    assert obsy_fwhm <= 1.05 * siril_fwhm, comparison.describe()
    obsy_noise, siril_noise = comparison.aperture_noise
    assert obsy_noise <= 1.05 * siril_noise, comparison.describe()


def test_the_stack_noise_falls_as_the_square_root_of_the_frames(stacks) -> None:
    """Truth for the noise: N equal frames average the noise down by √N (weights are near equal);
    a kernel that smoothed would go below that, one that lost frames would stay above."""
    folder, ours, _theirs = stacks
    from obsy_imaging.grading.measure import measure

    single = measure(load_stack(folder / "frame_00001.fit")).noise
    stacked = measure(load_stack(ours)).noise
    assert stacked == pytest.approx(single / np.sqrt(FRAMES), rel=0.08)
