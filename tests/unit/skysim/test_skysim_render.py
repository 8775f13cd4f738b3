"""The sky simulator's renderer against truths computed independently: the catalogue through the lens
model, the Sun's and the Moon's positions, the sensor's settings."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from obsy import astro
from obsy.config import SiteConfig
from obsy_skysim.allsky import AllskyOptics, AllskyRenderer, Site
from obsy_skysim.clouds import Clouds, make_clouds
from obsy_skysim.field import isolated
from obsy_skysim.sensor import Sensor, SensorSpec
from obsy_skysim.sky import SkyBrightness, SkyConditions
from obsy_skysim.stars import add_point_sources, channel_weights
from tests.support.skysim import LENS, SITE, centroids, expected_positions

NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
FULL_MOON = datetime(2026, 1, 3, 22, 0, tzinfo=UTC)  # full Moon high in Gemini
SMALL_MONO = SensorSpec(width=1280, height=960, bayer=None)
SMALL_COLOUR = SensorSpec(width=1280, height=960, bayer="RGGB")


@pytest.fixture(scope="module")
def mono() -> AllskyRenderer:
    return AllskyRenderer(Site(*SITE), SMALL_MONO, LENS)


@pytest.fixture(scope="module")
def colour() -> AllskyRenderer:
    return AllskyRenderer(Site(*SITE), SMALL_COLOUR, LENS)


def site_config() -> SiteConfig:
    return SiteConfig(latitude=SITE[0], longitude=SITE[1], elevation=SITE[2])


# --- stars -------------------------------------------------------------------------------
def test_stars_land_where_the_catalogue_and_the_lens_put_them(mono: AllskyRenderer) -> None:
    frame = mono.render(NIGHT, 10.0, 0.0, seed=3)
    x, y, mag = expected_positions(LENS, NIGHT, mag_range=(1.5, 4.5))
    everyone = expected_positions(LENS, NIGHT, mag_range=(-2.0, 6.5), min_altitude=0.0)
    alone = isolated(x, y, mag, others=everyone, radius=9.0)
    x, y = x[alone], y[alone]
    assert len(x) >= 30, "too few isolated bright stars to judge"
    mx, my = centroids(frame.image, x, y, half=4)
    error = np.hypot(mx - x, my - y)
    print(f"star positions: {len(x)} stars, median error {np.median(error):.3f} px, max {np.max(error):.3f} px")
    assert np.all(np.isfinite(error))
    assert np.max(error) < 0.5
    assert np.median(error) < 0.15


def test_a_star_image_holds_its_light_and_is_centred_on_its_position() -> None:
    image = np.zeros((40, 40), dtype=np.float32)
    add_point_sources(image, np.array([17.3]), np.array([21.8]), np.array([1000.0]), np.array([1.2]))
    yy, xx = np.mgrid[0:40, 0:40]
    assert image.sum() == pytest.approx(1000.0, rel=1e-4)
    assert (image * xx).sum() / image.sum() == pytest.approx(17.3, abs=1e-3)
    assert (image * yy).sum() / image.sum() == pytest.approx(21.8, abs=1e-3)


def test_star_stamps_are_the_gaussian_over_each_pixel_clipped_at_the_edges_and_coloured_per_channel() -> None:
    from scipy.special import ndtr

    x = np.array([1.2, 28.6, 14.1, np.nan, 40.0])  # the left edge, a corner, inside, nowhere, off the image
    y = np.array([3.7, 18.4, 9.9, 5.0, 5.0])
    flux = np.array([1000.0, 500.0, 2000.0, 1e6, 1e6])
    sigma = np.array([0.8, 1.5, 1.1, 1.0, 1.0])
    colour = channel_weights(np.array([1.5, -0.2, 0.6, 0.6, 0.6]))
    channels = Sensor(SensorSpec(width=30, height=20, bayer="RGGB")).channel_map()
    image = np.zeros((20, 30), dtype=np.float32)
    add_point_sources(image, x, y, flux, sigma, channel_map=channels, colour=colour)
    half = math.ceil(4.0 * sigma.max())  # every stamp reaches as far as the widest star's
    expected = np.zeros((20, 30))
    for i in range(3):
        for row, col in itertools.product(range(20), range(30)):
            if abs(col - round(x[i])) <= half and abs(row - round(y[i])) <= half:
                wx = ndtr((col + 0.5 - x[i]) / sigma[i]) - ndtr((col - 0.5 - x[i]) / sigma[i])
                wy = ndtr((row + 0.5 - y[i]) / sigma[i]) - ndtr((row - 0.5 - y[i]) / sigma[i])
                expected[row, col] += flux[i] * wx * wy * colour[i, channels[row, col]]
    assert np.allclose(image, expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="float32"):
        add_point_sources(np.zeros((20, 30)), x, y, flux, sigma)


def test_the_psf_grows_off_axis(mono: AllskyRenderer) -> None:
    sigma = mono.psf_sigma(np.array([90.0, 45.0, 10.0]))
    assert sigma[0] == pytest.approx(mono.optics.psf_sigma)
    assert sigma[0] < sigma[1] < sigma[2]


def test_brighter_stars_give_more_light_by_pogsons_ratio(mono: AllskyRenderer) -> None:
    truth = mono.stars(NIGHT, 10.0, Clouds(), 0.0)
    high = truth.alt > 60  # the same airmass within a few percent
    mag, electrons = truth.mag[high], truth.electrons[high]
    slope = np.polyfit(mag, np.log10(electrons), 1)[0]
    assert slope == pytest.approx(-0.4, abs=0.01)


def test_star_colours_follow_their_temperature() -> None:
    weights = channel_weights(np.array([-0.2, 0.65, 1.6]))  # a hot B star, the Sun, a red giant
    red_to_blue = weights[:, 0] / weights[:, 2]
    assert red_to_blue[0] < 1.0 < red_to_blue[2]
    assert red_to_blue[0] < red_to_blue[1] < red_to_blue[2]


# --- the sky -------------------------------------------------------------------------------
def test_twilight_brightens_the_sky_as_the_sun_rises() -> None:
    sky = SkyBrightness()
    zenith = []
    for sun_alt in (-30.0, -15.0, -9.0, -3.0, 10.0):
        c = SkyConditions(sun_alt, 270.0, -30.0, 0.0, 90.0)
        zenith.append(sum(v for v in sky.components(np.array([90.0]), np.array([0.0]), c).values())[0])
    assert all(a < b for a, b in itertools.pairwise(zenith))
    assert zenith[-1] / zenith[0] > 1e6  # day against night: about 17 magnitudes


def test_the_twilight_sky_is_brighter_towards_the_sun() -> None:
    c = SkyConditions(-8.0, 270.0, -30.0, 0.0, 90.0)
    parts = SkyBrightness().components(np.array([20.0, 20.0]), np.array([270.0, 90.0]), c)
    assert parts["twilight"][0] > 2 * parts["twilight"][1]


def test_the_moon_is_where_astropy_puts_it_with_its_glow_around_it(mono: AllskyRenderer) -> None:
    moon = astro.moon_altaz(site_config(), FULL_MOON, refraction=True)
    assert moon.alt > 30, "the test needs the Moon high"
    frame = mono.render(FULL_MOON, 1.0, 0.0, seed=1)
    mx, my = LENS.altaz_to_pixel(moon.alt, moon.az)
    image = frame.image.astype(float)
    brightest = np.unravel_index(np.argmax(np.where(image >= 65535, 0, image) + (image >= 65535) * 1e6), image.shape)
    assert np.hypot(brightest[1] - mx, brightest[0] - my) < 6  # the disc saturates where the Moon is
    # The glow: the sky 10 degrees from the Moon is brighter than 60 degrees from it.
    near = LENS.altaz_to_pixel(moon.alt - 10.0, moon.az)
    far = LENS.altaz_to_pixel(max(moon.alt - 60.0, 25.0), (moon.az + 180.0) % 360.0)

    def level(p):
        x, y = round(float(p[0])), round(float(p[1]))
        return np.median(image[y - 5 : y + 6, x - 5 : x + 6])

    assert level(near) > 1.5 * level(far)


def krisciunas_schaefer_scattering(rho_deg: float) -> float:
    """The scattering function f(rho) of Krisciunas & Schaefer (1991, PASP 103, 1033, eq. 21): Rayleigh
    plus Mie scattering of moonlight at ``rho_deg`` from the Moon (written here from the paper)."""
    return 10**5.36 * (1.06 + math.cos(math.radians(rho_deg)) ** 2) + 10 ** (6.15 - rho_deg / 40.0)


def test_a_bright_moons_glow_falls_with_distance_as_moonlight_scatters(mono: AllskyRenderer) -> None:
    """A full Moon 61° high: the sky along the Moon's own altitude circle (same airmass, same night sky,
    same pixel size) is brightest beside the Moon and fades with the angle from it, in the ratios the
    Krisciunas & Schaefer scattering function gives, the same on either side of the Moon."""
    moon = astro.moon_altaz(site_config(), FULL_MOON, refraction=True)
    alt, az = float(moon.alt), float(moon.az)
    assert alt > 55 and astro.moon_phase_angle(FULL_MOON) < 20, "the test needs a full Moon high up"
    frame = mono.render(FULL_MOON, 1.0, 50.0, seed=4)
    image = frame.image.astype(float)

    def level(rho: float, side: int) -> float:
        """The sky's median level (ADU) at ``rho`` degrees from the Moon on its altitude circle."""
        cos_daz = (math.cos(math.radians(rho)) - math.sin(math.radians(alt)) ** 2) / math.cos(math.radians(alt)) ** 2
        x, y = LENS.altaz_to_pixel(alt, (az + side * math.degrees(math.acos(cos_daz))) % 360.0)
        x, y = round(float(x)), round(float(y))
        return float(np.median(image[y - 5 : y + 6, x - 5 : x + 6]))

    distances = [6.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0]
    east, west = np.array([level(r, 1) for r in distances]), np.array([level(r, -1) for r in distances])
    np.testing.assert_allclose(east, west, rtol=0.02)  # symmetric about the Moon
    sky = (east + west) / 2 - mono.sensor.spec.offset_adu
    assert sky[0] < 0.8 * 65535, "the sky beside the Moon must not saturate for this test"
    assert np.all(np.diff(sky) < 0), f"the glow does not fall with distance: {sky}"
    assert sky[0] > 3 * sky[-1]  # strong beside the Moon
    # Against the paper: the level is night sky + C f(rho) at a fixed altitude, so differences from
    # the farthest point cancel both the night sky and C.
    f = np.array([krisciunas_schaefer_scattering(r) for r in distances])
    measured = (sky[:-1] - sky[-1]) / (sky[3] - sky[-1])
    expected = (f[:-1] - f[-1]) / (f[3] - f[-1])
    print("glow ratios to 20 deg, measured:", np.round(measured, 3), "Krisciunas & Schaefer:", np.round(expected, 3))
    np.testing.assert_allclose(measured, expected, rtol=0.05)


def test_a_colour_sensor_sees_the_twilight_sky_blue(colour: AllskyRenderer) -> None:
    dusk = datetime(2026, 1, 15, 16, 10, tzinfo=UTC)
    assert -10 < astro.sun_altaz(site_config(), dusk).alt < -4, "the test needs a nautical twilight"
    image = colour.render(dusk, 0.01, 0.0, seed=2).image.astype(float)
    centre = (slice(400, 560), slice(560, 720))
    cell = image[centre]
    red, blue = cell[0::2, 0::2].mean(), cell[1::2, 1::2].mean()
    assert blue > 1.2 * red


def test_a_mono_sensor_has_no_bayer_cell_structure(mono: AllskyRenderer) -> None:
    image = mono.render(NIGHT, 10.0, 0.0, seed=2).image.astype(float)[400:560, 560:720]
    assert image[0::2, 0::2].mean() == pytest.approx(image[1::2, 1::2].mean(), rel=0.02)


def test_clouds_hide_stars_and_brighten_the_night_sky(mono: AllskyRenderer) -> None:
    clear = mono.render(NIGHT, 10.0, 0.0, seed=4)
    overcast = mono.render(NIGHT, 10.0, 0.0, make_clouds("overcast"), seed=4)
    assert clear.cloud_cover == 0.0 and overcast.cloud_cover == 100.0
    x, y, _ = expected_positions(LENS, NIGHT, mag_range=(0.0, 2.5))
    peak_clear = np.array([clear.image[round(b), round(a)] for a, b in zip(x, y, strict=True)], dtype=float)
    peak_cloud = np.array([overcast.image[round(b), round(a)] for a, b in zip(x, y, strict=True)], dtype=float)
    sky_clear, sky_cloud = np.median(clear.image[300:660, 400:880]), np.median(overcast.image[300:660, 400:880])
    assert sky_cloud > sky_clear
    assert np.median(peak_cloud - sky_cloud) < 0.1 * np.median(peak_clear - sky_clear)


# --- the sensor -----------------------------------------------------------------------------
def test_bias_frames_show_the_offset_and_the_read_noise() -> None:
    spec = SensorSpec(width=512, height=256, bayer=None, hot_pixel_share=0.0)
    sensor = Sensor(spec)
    bias = sensor.read_out(None, 0.0, 0.0, seed=1).astype(float)
    adu = spec.adu_per_electron(0.0)
    assert bias.mean() == pytest.approx(spec.offset_adu, abs=0.1)
    assert bias.std() == pytest.approx(spec.read_noise_e * adu, rel=0.05)


def test_dark_current_grows_with_exposure_and_temperature_and_hot_pixels_stay_put() -> None:
    spec = SensorSpec(width=512, height=256, bayer=None, hot_pixel_share=1e-3, dark_current_e_s=0.5)
    sensor = Sensor(spec)
    adu = spec.adu_per_electron(0.0)
    short = sensor.read_out(None, 10.0, 0.0, seed=1).astype(float)
    long = sensor.read_out(None, 100.0, 0.0, seed=2).astype(float)
    warm = sensor.read_out(None, 100.0, 0.0, seed=3, temperature_c=spec.temperature_c + spec.dark_doubling_c)
    hot_index, _ = sensor.hot_pixels
    ordinary = np.ones(spec.width * spec.height, bool)
    ordinary[hot_index] = False
    level = [(f.reshape(-1)[ordinary].mean() - spec.offset_adu) / adu for f in (short, long, warm.astype(float))]
    assert level[0] == pytest.approx(5.0, rel=0.05)
    assert level[1] == pytest.approx(50.0, rel=0.05)
    assert level[2] == pytest.approx(100.0, rel=0.05)
    # The hot pixels are the known truth: the same ones in every frame, well above the rest.
    brightest = np.argsort(long.reshape(-1))[::-1][: len(hot_index) // 2]
    assert np.isin(brightest, hot_index).mean() > 0.95
    assert np.array_equal(Sensor(spec).hot_pixels[0], hot_index)


def test_gain_scales_the_signal_and_saturation_clips_it() -> None:
    spec = SensorSpec(width=64, height=64, bayer=None, hot_pixel_share=0.0, read_noise_e=0.0)
    sensor = Sensor(spec)
    light = np.full((64, 64), 1000.0, dtype=np.float32)
    low = sensor.read_out(light.copy(), 1.0, 0.0, seed=1).astype(float).mean() - spec.offset_adu
    high = sensor.read_out(light.copy(), 1.0, 200.0, seed=1).astype(float).mean() - spec.offset_adu
    assert high / low == pytest.approx(10.0, rel=0.01)
    flooded = sensor.read_out(np.full((64, 64), 1e7, dtype=np.float32), 1.0, 400.0, seed=1)
    assert flooded.min() == 65535
    with pytest.raises(ValueError, match="gain 500 is outside"):
        sensor.read_out(light.copy(), 1.0, 500.0)


def test_render_rejects_bad_requests(mono: AllskyRenderer) -> None:
    with pytest.raises(ValueError, match="exposure must not be negative"):
        mono.render(NIGHT, -1.0, 0.0)
    with pytest.raises(ValueError, match="unknown frame type 'science'"):
        mono.render(NIGHT, 1.0, 0.0, frame_type="science")  # type: ignore[arg-type]


def test_optics_zero_point_sets_the_star_light(mono: AllskyRenderer) -> None:
    brighter = AllskyRenderer(Site(*SITE), SMALL_MONO, LENS, AllskyOptics(zero_point=mono.optics.zero_point + 2.5))
    a = mono.stars(NIGHT, 1.0, Clouds(), 0.0).electrons
    b = brighter.stars(NIGHT, 1.0, Clouds(), 0.0).electrons
    assert np.allclose(b / a, 10.0)


def test_by_day_the_sun_saturates_where_astropy_puts_it(mono: AllskyRenderer) -> None:
    noon = datetime(2026, 6, 15, 11, 0, tzinfo=UTC)
    sun = astro.sun_altaz(site_config(), noon, refraction=True)
    frame = mono.render(noon, 0.0001, 0.0, seed=1)
    assert frame.conditions is not None and frame.conditions.sun_alt > 50
    sx, sy = LENS.altaz_to_pixel(sun.alt, sun.az)
    image = frame.image.astype(float)
    full = SMALL_MONO.full_well_e * SMALL_MONO.adu_per_electron(0.0) + SMALL_MONO.offset_adu
    assert image[round(float(sy)), round(float(sx))] >= full  # saturated at full well
    night = mono.render(NIGHT, 0.0001, 0.0, seed=1).image.astype(float)
    assert np.median(image[400:560, 560:720]) > np.median(night[400:560, 560:720]) + 1000  # a bright day sky


def test_the_command_line_renders_a_frame_with_its_truth(tmp_path, capsys) -> None:
    from astropy.io import fits

    from obsy_skysim.cli import main

    out = tmp_path / "frame.fits"
    config = tmp_path / "skysim.yaml"
    config.write_text("allsky:\n  sensor: {width: 320, height: 240, bayer: MONO}\n")
    assert (
        main(
            [
                "render",
                str(out),
                "--config",
                str(config),
                "--time",
                "2026-01-15T22:00:00Z",
                "--clouds",
                "scattered",
                "--cover",
                "30",
            ]
        )
        == 0
    )
    header = fits.getheader(out)
    assert header["SIMCLOUD"] == "scattered" and header["SIMCOVER"] == pytest.approx(30.0, abs=1.0)
    assert header["DATE-OBS"] == "2026-01-15T22:00:00.000"
    assert main(["render", str(out), "--config", str(config), "--cover", "140"]) == 2
    assert "cover" in capsys.readouterr().err
