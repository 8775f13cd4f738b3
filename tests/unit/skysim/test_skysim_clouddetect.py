"""clouddetect's star-transmission method on skies the simulator renders, against the clouds' known cover.

The analyser starts with nothing: it finds the lens model and the clear-sky zero point on two clear
frames, as it does on a real camera, then judges each sky. The figures are printed (``-s``).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from obsy.skymodel import load_bright_stars
from obsy_clouddetect.transmission.analyser import CLEAR, TransmissionAnalyser
from obsy_skysim.allsky import AllskyRenderer, Site
from obsy_skysim.clouds import make_clouds
from obsy_skysim.sensor import SensorSpec
from tests.support.skysim import LENS, SITE

NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
EXPOSURE, GAIN = 20.0, 50.0
FULL_MOON = datetime(2026, 1, 3, 22, 0, tzinfo=UTC)  # full Moon 61° high
#: Under it, the exposure the allsky service's moon profile aims at (the sky's centre about 20 % of
#: full scale at gain 50): the 20 s of the moonless frames would saturate the whole sky.
MOON_EXPOSURE = 0.65

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def renderer() -> AllskyRenderer:
    return AllskyRenderer(Site(*SITE), SensorSpec(width=1280, height=960, bayer=None), LENS)


@pytest.fixture(scope="module")
def trained(renderer: AllskyRenderer) -> TransmissionAnalyser:
    """An analyser that has seen two clear frames: it knows the lens and the zero point."""
    analyser = TransmissionAnalyser(load_bright_stars(), *SITE)
    for i in range(2):
        when = NIGHT - timedelta(minutes=10 * (i + 1))
        result = analyser.analyse(renderer.render(when, EXPOSURE, GAIN, seed=100 + i).image, when, EXPOSURE, GAIN)
        assert result.label == CLEAR, result.reason
    return analyser


def judge(
    renderer: AllskyRenderer,
    analyser: TransmissionAnalyser,
    kind: str,
    when: datetime = NIGHT,
    exposure: float = EXPOSURE,
    **settings: float,
):
    clouds = make_clouds(kind, **settings)
    frame = renderer.render(when, exposure, GAIN, clouds, seed=7)
    result = copy.deepcopy(analyser).analyse(frame.image, when, exposure, GAIN)
    print(
        f"{kind} {settings} at {when:%d %b %H:%M}, {exposure:g} s: true cover {frame.cloud_cover:.1f} %, "
        f"clouddetect {result.label} "
        f"{result.cover if result.cover is None else round(result.cover, 1)} % "
        f"(transmission {result.transmission and round(result.transmission, 2)})"
    )
    return frame, result


def test_clouddetect_finds_the_simulated_lens(trained: TransmissionAnalyser) -> None:
    model = trained.model
    assert model is not None
    print(f"fitted lens {model}")
    assert abs(model.zenith_x - LENS.zenith_x) < 1.0 and abs(model.zenith_y - LENS.zenith_y) < 1.0
    assert abs(model.rotation - LENS.rotation) < 0.2 and abs(model.scale / LENS.scale - 1) < 0.005
    assert model.projection == LENS.projection


def test_a_clear_sky_reads_clear(renderer, trained) -> None:
    _, result = judge(renderer, trained, "clear")
    assert result.label == CLEAR and result.cover is not None and result.cover < 5


@pytest.mark.parametrize(("kind", "settings"), [("overcast", {}), ("veil", {"veil_transmission": 0.4})])
def test_an_overcast_or_veiled_sky_never_reads_clear(renderer, trained, kind, settings) -> None:
    frame, result = judge(renderer, trained, kind, **settings)
    assert frame.cloud_cover == 100.0
    assert result.label != CLEAR
    assert result.cover is None or result.cover > 80


@pytest.mark.parametrize("cover", [20.0, 40.0, 60.0])
def test_scattered_clouds_read_within_ten_points_of_their_cover(renderer, trained, cover) -> None:
    frame, result = judge(renderer, trained, "scattered", cover_percent=cover, seed=int(cover))
    assert result.cover is not None
    assert abs(result.cover - frame.cloud_cover) <= 10.0


def test_a_bank_on_the_horizon_is_seen_rising(renderer, trained) -> None:
    frame, result = judge(renderer, trained, "bank", bank_top_altitude=40.0)
    assert result.cover is not None
    assert abs(result.cover - frame.cloud_cover) <= 10.0


def test_an_overcast_sky_under_a_full_moon_never_reads_clear(renderer, trained) -> None:
    frame, result = judge(renderer, trained, "overcast", FULL_MOON, MOON_EXPOSURE)
    assert frame.cloud_cover == 100.0
    assert result.label != CLEAR


@pytest.mark.xfail(
    strict=True,
    reason="known: clouddetect's transmission method reads a clear sky under a high full Moon as Overcast "
    "(0.5 to 1 s) or Thin Cloud (2 s): the moonlit sky hides the fainter stars it expects (docs/skysim.md)",
)
def test_a_clear_sky_under_a_full_moon_reads_clear(renderer, trained) -> None:
    _, result = judge(renderer, trained, "clear", FULL_MOON, MOON_EXPOSURE)
    assert result.label == CLEAR
