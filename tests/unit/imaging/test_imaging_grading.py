"""Grading of lights: figures measured on star fields of known FWHM and shape, and the verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from obsy.config import ImagingGradingConfig, SiteConfig
from obsy_imaging.grading.grader import Grader
from obsy_imaging.grading.judge import NightMedians, judge, pixel_scale_arcsec
from obsy_imaging.grading.measure import FrameQuality, measure
from obsy_imaging.ingest.ingestor import Ingestor
from obsy_imaging.repository import database
from obsy_imaging.repository.store import Repository
from tests.support.imaging_frames import star_field, write_frame


@pytest.mark.parametrize("fwhm", [2.5, 4.0, 6.0])
def test_fwhm_of_round_stars(fwhm: float) -> None:
    quality = measure(star_field(fwhm_x=fwhm, stars=100, seed=int(fwhm * 10)))
    assert quality.fwhm_px == pytest.approx(fwhm, rel=0.15)  # second moments: a little wide when undersampled
    assert quality.hfr_px == pytest.approx(fwhm / 2, rel=0.2)  # a Gaussian's half-flux radius is FWHM/2
    assert quality.eccentricity < 0.35
    assert 70 <= quality.stars <= 100  # some blend (wide stars more) or fall under the threshold
    assert quality.background == pytest.approx(500, rel=0.01)
    assert quality.noise == pytest.approx(500**0.5, rel=0.1)  # Poisson
    assert quality.snr > 20


def test_elongated_stars_have_a_high_eccentricity() -> None:
    quality = measure(star_field(fwhm_x=6.0, fwhm_y=3.0, seed=3))
    assert quality.eccentricity == pytest.approx((1 - 0.5**2) ** 0.5, abs=0.06)


def test_an_empty_sky_has_no_stars() -> None:
    quality = measure(star_field(stars=0, seed=4))
    assert quality.stars == 0 and quality.fwhm_px is None and quality.snr is None


def good(fwhm: float = 3.0, stars: int = 100, background: float = 500.0) -> FrameQuality:
    return FrameQuality(stars, fwhm, fwhm / 2, 0.2, background, 22.0, 80.0)


LIMITS = ImagingGradingConfig(min_stars=10, max_eccentricity=0.6, max_fwhm_arcsec=4.0)


def test_absolute_limits_give_reasons() -> None:
    assert judge(good(), LIMITS, NightMedians(0), 1.0).accepted
    verdict = judge(FrameQuality(4, 5.0, 2.5, 0.8, 500, 22, 5), LIMITS, NightMedians(0), 1.0)
    assert not verdict.accepted
    assert verdict.reasons == ("4 stars (at least 10)", 'FWHM 5.00" (at most 4")', "eccentricity 0.80 (at most 0.6)")


def test_relative_limits_apply_once_the_night_has_enough_frames() -> None:
    wide = good(fwhm=4.5)
    assert judge(wide, LIMITS, NightMedians(2, 100, 3.0, 500), None).accepted  # too few to compare yet
    verdict = judge(wide, LIMITS, NightMedians(3, 100, 3.0, 500), None)
    assert verdict.reasons == ("FWHM 4.50 px is 1.50× the night's median 3.00 px (at most 1.3×)",)
    cloudy = judge(good(stars=30, background=1500), LIMITS, NightMedians(5, 100, 3.0, 500), None)
    assert cloudy.reasons == (
        "30 stars, 0.30× the night's median 100 (at least 0.5×)",
        "background 1500 is 3.00× the night's median 500 (at most 2×)",
    )


def test_pixel_scale() -> None:
    # 3.76 µm pixels at 550 mm: 1.41"/px; binned 2x2: 2.82"/px.
    assert pixel_scale_arcsec(3.76, 1, 550) == pytest.approx(1.410, abs=1e-3)
    assert pixel_scale_arcsec(3.76, 2, 550) == pytest.approx(2.820, abs=1e-3)
    assert pixel_scale_arcsec(None, 1, 550) is None


def test_lights_are_graded_against_their_own_night_target_and_filter(tmp_path: Path) -> None:
    engine = database.make_engine(f"sqlite:///{tmp_path / 'imaging.sqlite3'}")
    database.upgrade(engine)
    repository = Repository(engine, tmp_path / "repository", tmp_path / "quarantine")
    ingestor = Ingestor(repository, SiteConfig(latitude=48.14, longitude=11.58, timezone="Europe/Berlin"))
    grader = Grader(repository, ImagingGradingConfig(max_eccentricity=0.6))

    def light(name: str, seed: int, **cards) -> object:
        data = star_field(seed=seed, fwhm_x=cards.pop("fwhm", 3.0))
        path = write_frame(tmp_path / "capture" / name, program="nina_light", data=data, **cards)
        return grader.grade(ingestor.ingest(path, "watch", final=False).frame)

    grades = [light(f"ha_{i}.fits", seed=i) for i in range(3)]
    assert all(g.accepted and g.reasons == [] for g in grades)
    assert grades[0].fwhm_arcsec == pytest.approx(3.0 * 1.41, rel=0.12)  # 3.76 µm at 550 mm
    # Another filter's lights start their own comparison: wide stars in OIII are not compared with Ha.
    assert light("oiii_0.fits", seed=10, FILTER="OIII", fwhm=5.0).accepted
    bad = light("ha_wide.fits", seed=11, fwhm=5.0)
    assert not bad.accepted
    assert len(bad.reasons) == 1 and "the night's median" in bad.reasons[0]
    assert repository.grade_of(bad.frame_id).reasons == bad.reasons
    assert repository.counts("2024-01-14", datetime.now(UTC)).accepted_tonight == 4  # 3 Ha and 1 OIII
    engine.dispose()


def test_accepted_lights_are_counted_per_target_filter_and_exposure(tmp_path: Path) -> None:
    engine = database.make_engine(f"sqlite:///{tmp_path / 'imaging.sqlite3'}")
    database.upgrade(engine)
    repository = Repository(engine, tmp_path / "repository", tmp_path / "quarantine")
    ingestor = Ingestor(repository, SiteConfig(latitude=48.14, longitude=11.58, timezone="Europe/Berlin"))
    grader = Grader(repository, ImagingGradingConfig())

    def light(name: str, seed: int, stars: int = 120, **cards) -> bool:
        path = write_frame(tmp_path / "capture" / name, data=star_field(seed=seed, stars=stars), **cards)
        return grader.grade(ingestor.ingest(path, "watch", final=False).frame).accepted

    assert light("a.fits", 1, OBJECT="M42", FILTER="Ha", EXPTIME=300.0)
    assert light("b.fits", 2, OBJECT="M42", FILTER="Ha", EXPTIME=300.0004)  # the same millisecond
    assert not light("c.fits", 3, stars=3, OBJECT="M42", FILTER="Ha", EXPTIME=300.0)  # rejected: not counted
    assert light("d.fits", 4, OBJECT="M42", FILTER="OIII", EXPTIME=300.0)
    assert light("e.fits", 5, OBJECT="M42", FILTER="Ha", EXPTIME=120.0)
    # Calibration frames of the target's job count without grading; one without a target cannot count.
    calibration = [("d1", "Dark Frame", 300.0), ("d2", "Dark Frame", 300.0), ("b1", "Bias Frame", 0.0)]
    for seed, (name, kind, exposure) in enumerate(calibration, start=10):
        path = write_frame(
            tmp_path / "capture" / f"{name}.fits", seed=seed, IMAGETYP=kind, OBJECT="M42", EXPTIME=exposure, FILTER=None
        )
        assert ingestor.ingest(path, "watch", final=False).frame.frame_type in ("dark", "bias")
    path = write_frame(tmp_path / "capture" / "d3.fits", seed=20, IMAGETYP="Dark Frame", EXPTIME=300.0, OBJECT=None)
    assert ingestor.ingest(path, "watch", final=False).frame.target is None
    rows = repository.accepted_lights()
    assert [(f, e, n, k) for _, f, e, n, k in rows] == [
        ("Ha", 120.0, 1, "light"),
        ("Ha", 300.0, 2, "light"),
        ("OIII", 300.0, 1, "light"),
        (None, 0.0, 1, "bias"),
        (None, 300.0, 2, "dark"),
    ]
    assert len({t for t, *_ in rows}) == 1
    engine.dispose()
