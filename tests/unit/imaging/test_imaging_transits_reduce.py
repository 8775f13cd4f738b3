"""The transit reduction on sky-simulator frames: a night of a scripted transit host with a
variable star among its candidates, a clouded frame, a frame pointed elsewhere and a corrupt file;
each is dropped with its reason, and the light curve follows the scenario's truth within its errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from obsy.transits.occultation import transit_flux
from obsy_imaging.transits.reduce import NightLightCurve, TransitReductionError, TransitReductionSettings, reduce_night
from obsy_skysim.clouds import Uniform
from obsy_skysim.scenario import SineVariable
from tests.support.transits import MID, POINTING, TransitNight, transit_host, write_transit_night

FRAMES = 48
CLOUDED, ELSEWHERE = 7, 20
#: A 10.9 mag star varying by ±0.05 mag over 1.5 h, in the emptiest spot of the field (24 px to the
#: nearest star), in the host's brightness range.
VARIABLE = SineVariable(
    name="V-comp (test)", ra=349.94, dec=40.07, kind="sine", mag=10.9, amplitude=0.05, period_h=1.5, epoch=MID
)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> TransitNight:
    folder = tmp_path_factory.mktemp("transit-night")
    night = write_transit_night(
        folder,
        seed=3,
        frames=FRAMES,
        extra=(VARIABLE,),
        clouds={CLOUDED: Uniform(kind="veil", value=0.25)},
        pointings={ELSEWHERE: (POINTING[0] + 1.0, POINTING[1])},  # the host half a degree off the chip
    )
    corrupt = folder / "light_corrupt.fits"
    corrupt.write_bytes(b"SIMPLE  =                    T" + b"\x00" * 100)  # a truncated download
    return replace(night, paths=[*night.paths, corrupt])


@pytest.fixture(scope="module")
def reduced(night: TransitNight) -> NightLightCurve:
    settings = TransitReductionSettings(saturation_adu=night.saturation_adu, noise=night.noise)
    return reduce_night(list(reversed(night.paths)), night.host, site=night.site, settings=settings)


def _why(rejected: list[tuple[Path, str]], name: str) -> str:
    reasons = [why for path, why in rejected if path.name == name]
    assert reasons, f"{name} was not rejected: {rejected}"
    return reasons[0]


def test_the_light_curve_follows_the_scripted_transit_within_its_errors(
    night: TransitNight, reduced: NightLightCurve
) -> None:
    lc = reduced.light_curve
    assert len(lc.time) == FRAMES - 2  # the clouded frame and the one pointed elsewhere
    assert np.all(np.diff(lc.time) > 0)  # any order in, time order out
    host = transit_host()
    truth = transit_flux(
        lc.time, tc=night.tc_bjd, period=host.period_h / 24, rp_rs=host.rp_rs, a_rs=host.a_rs, inc=host.inc,
        limb_darkening=(host.u1, host.u2),
    )  # fmt: skip
    # flux = level × truth × a colour-free airmass trend (the same extinction for every star here)
    design = np.column_stack([truth, truth * (lc.airmass - lc.airmass.mean())])
    coef, *_ = np.linalg.lstsq(design, lc.flux, rcond=None)
    z = (lc.flux - design @ coef) / lc.flux_err
    print(f"{len(z)} points: residual/error RMS {np.sqrt(np.mean(z**2)):.2f}, ensemble {len(reduced.ensemble)}")
    assert 0.7 < np.sqrt(np.mean(z**2)) < 1.4  # the errors describe the scatter about the truth
    assert len(reduced.ensemble) >= 4
    assert sum(c.weight for c in reduced.ensemble) == pytest.approx(1.0)
    assert lc.filter == "R" and lc.exposure_s == 60.0
    assert set(lc.regressors) == {"background", "fwhm", "x", "y"}
    assert 2.0 < np.median(lc.regressors["fwhm"]) < 4.5  # 9.3″ at 3.1″ per pixel
    assert all(len(p.comparisons) >= 1 for p in reduced.points)


def test_a_variable_comparison_star_is_dropped(reduced: NightLightCurve) -> None:
    where = SkyCoord(VARIABLE.ra, VARIABLE.dec, unit="deg")

    def is_variable(c) -> bool:
        return where.separation(SkyCoord(c.ra_deg, c.dec_deg, unit="deg")).arcsec < 5

    assert not any(is_variable(c) for c in reduced.ensemble)
    reasons = [why for c, why in reduced.rejected_comparisons if is_variable(c)]
    assert reasons and reasons[0].startswith("variable or noisy"), reduced.rejected_comparisons


def test_a_clouded_frame_is_rejected_with_its_reason(reduced: NightLightCurve) -> None:
    assert _why(reduced.rejected_frames, f"light_{CLOUDED:04d}.fits").startswith("clouds: ")


def test_a_frame_without_the_host_is_rejected(reduced: NightLightCurve) -> None:
    assert _why(reduced.rejected_frames, f"light_{ELSEWHERE:04d}.fits").startswith("host off the frame")


def test_a_corrupt_file_is_rejected_by_name(reduced: NightLightCurve) -> None:
    assert "cannot read light_corrupt.fits" in _why(reduced.rejected_frames, "light_corrupt.fits")


def test_no_usable_frame_raises_one_clear_error(night: TransitNight, tmp_path: Path) -> None:
    elsewhere = SkyCoord(10.0, -20.0, unit="deg")  # a host on none of the frames
    with pytest.raises(TransitReductionError, match=r"nothing usable in \d+ frames.*host off the frame"):
        reduce_night(night.paths, elsewhere, site=night.site)
    with pytest.raises(TransitReductionError, match="nothing usable in 0 frames"):
        reduce_night([], night.host, site=night.site)
