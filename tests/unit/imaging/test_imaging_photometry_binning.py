"""Time-binning of a night's observations against the truth: the binned errors shrink as 1/sqrt(n),
the binned magnitudes stay within their errors of the true mean, at the bins' mean time; bins never
mix filters, comparison stars or systems; the report of binned points says how many each holds and
validates. First on many simulated points (the statistics), then on a sky-simulator night through
the whole reduction."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from obsy_imaging.headers.normalise import Site as HeaderSite
from obsy_imaging.photometry.aavso import ENSEMBLE, Observation, ReportHeader, validate_report, write_report
from obsy_imaging.photometry.binning import bin_observations
from obsy_imaging.photometry.reduce import aavso_observation, reduce_frame
from obsy_skysim.allsky import Site
from obsy_skysim.field import FieldRenderer, TelescopeOptics
from obsy_skysim.scenario import Scenario
from tests.support.photometry import noise_of, write_night
from tests.support.skysim import SITE
from tests.unit.imaging.test_imaging_photometry import ACROSS_ZERO, EXPOSURE, GAIN, NIGHT_START, SMALL, VARIABLE

JD0 = 2461330.0
SIGMA = 0.02  # each frame's error, mag


def truth(jd: np.ndarray) -> np.ndarray:
    """A variable of 0.4 mag amplitude and a 0.3-day period."""
    return 12.0 + 0.2 * np.sin(2 * np.pi * (jd - JD0) / 0.3)


def simulated_night(count: int = 2880, seed: int = 7) -> tuple[list[Observation], np.ndarray]:
    """One frame a minute (two nights of 24 hours: enough bins for the statistics) with Gaussian errors
    of SIGMA about the truth."""
    rng = np.random.default_rng(seed)
    jd = JD0 + np.arange(count) / 1440.0
    mags = truth(jd) + rng.normal(0.0, SIGMA, count)
    observations = [
        Observation("V1 TST", float(d), float(m), SIGMA, "V", ENSEMBLE, None, check="K", check_instrumental=-7.5,
                    airmass=1.2 + i / count, chart="X99999TST")
        for i, (d, m) in enumerate(zip(jd, mags, strict=True))
    ]  # fmt: skip
    return observations, jd


@pytest.mark.parametrize("n", [4, 9, 16])
def test_binned_errors_shrink_as_one_over_root_n_and_stay_true(n: int) -> None:
    observations, jd = simulated_night()
    binned = bin_observations(observations, frames=n)
    assert len(binned) == math.ceil(len(observations) / n)
    errors = np.array([b.mag_err for b in binned[:-1]])  # the last bin may hold fewer
    assert errors == pytest.approx(SIGMA / math.sqrt(n), rel=1e-9)  # the propagated error
    z = []
    for i, b in enumerate(binned[:-1]):
        frames = jd[i * n : (i + 1) * n]
        assert b.date == pytest.approx(frames.mean(), abs=1e-9)  # the bin's mid-time: the mean JD
        assert b.notes == {"BINNED": str(n)}
        assert b.airmass == pytest.approx(np.mean([o.airmass for o in observations[i * n : (i + 1) * n]]))
        z.append((b.mag - truth(frames).mean()) / b.mag_err)
    z = np.abs(np.array(z))
    # ... and right: the bins scatter about the truth as their errors say (a Gaussian's 95 % within 2σ).
    assert np.mean(z <= 2) >= 0.9 and np.mean(z <= 3) >= 0.98 and 0.7 <= np.mean(z**2) <= 1.4
    assert validate_report(write_report(ReportHeader("TST01", "test"), binned)) == []


def test_bins_by_time_never_mix_series() -> None:
    observations, _ = simulated_night(count=40)
    # Frames 20-29 against one comparison star (the ensemble lost its others), 30-39 in B.
    single = [
        Observation(**{**o.__dict__, "comparison": "112", "comparison_instrumental": -8.0}) for o in observations[20:30]
    ]
    blue = [Observation(**{**o.__dict__, "filter": "B"}) for o in observations[30:]]
    binned = bin_observations(observations[:20] + single + blue, minutes=7.5)
    # A bin holds the frames within 7.5 minutes of its first: 8 frames one a minute apart.
    counts = [int((b.notes or {}).get("BINNED", 1)) for b in binned]
    assert counts == [8, 8, 4, 8, 2, 8, 2]
    assert [b.filter for b in binned] == ["V"] * 5 + ["B"] * 2
    assert [b.comparison for b in binned] == [ENSEMBLE] * 3 + ["112"] * 2 + [ENSEMBLE] * 2
    assert binned[3].comparison_instrumental == pytest.approx(-8.0)
    assert bin_observations(observations) == observations  # no bins asked: every frame
    with pytest.raises(ValueError, match="at least one frame"):
        bin_observations(observations, frames=0)


@pytest.mark.long(seconds=40)
def test_a_binned_sky_simulator_night_is_within_its_errors(tmp_path: Path) -> None:
    """40 frames of the scripted variable through the reduction, binned by 5: the binned errors are
    about 1/sqrt(5) of a frame's, and each bin is within its errors of the true mean magnitude."""
    renderer = FieldRenderer(Site(*SITE), SMALL, TelescopeOptics(limiting_magnitude=15.0, seeing_fwhm_arcsec=3.5))
    variable = VARIABLE.model_copy(update={"epoch": NIGHT_START})
    times = [NIGHT_START + timedelta(minutes=2 * i) for i in range(40)]
    paths, expected, sequence = write_night(
        renderer, Scenario(variables=[variable]), variable, pointing=ACROSS_ZERO, times=times, folder=tmp_path,
        exposure_s=EXPOSURE, gain=GAIN, seed=4000,
    )  # fmt: skip
    noise = noise_of(renderer, GAIN, EXPOSURE, calibrated=True)
    frames = [reduce_frame(p, sequence, noise, site=HeaderSite(*SITE), saturation_adu=25000.0) for p in paths]
    observations = [aavso_observation(f, sequence, band="V") for f in frames]
    binned = bin_observations(observations, frames=5)
    assert len(binned) == 8
    single_error = np.median([o.mag_err for o in observations])
    binned_error = np.median([b.mag_err for b in binned])
    print(f"frame error {single_error:.4f}, binned by 5 {binned_error:.4f} (ratio {binned_error / single_error:.2f})")
    assert binned_error / single_error == pytest.approx(1 / math.sqrt(5), rel=0.15)
    z = [
        (b.mag - np.mean(expected[i * 5 : (i + 1) * 5])) / b.mag_err for i, b in enumerate(binned)
    ]  # the truth at each frame's mid-exposure, averaged over the bin
    print("binned z:", " ".join(f"{v:+.2f}" for v in z))
    assert sum(abs(v) <= 2 for v in z) >= 7 and all(abs(v) <= 3 for v in z)
    text = write_report(ReportHeader("TST01", "test"), binned)
    assert validate_report(text) == [] and text.count("|BINNED=5") == 8
