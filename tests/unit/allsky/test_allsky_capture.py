"""Exposure control (moon mode included) and frame storage of the allsky service (a full disk on a real, tiny tmpfs)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from obsy.config import AllskyConfig, AllskyExposureConfig, AllskyMoonConfig, SiteConfig
from obsy_allsky.capture.exposure import AutoExposure, Sky, measure_brightness
from obsy_allsky.storage import FrameStore, StorageError, encode_jpeg

NIGHT = date(2026, 11, 21)


def simulated_brightness(exposure_s: float, gain: float, sky_rate: float) -> float:
    """A linear camera: fraction of full scale for a sky of ``sky_rate`` (fraction per second at gain 0)."""
    return min(1.0, sky_rate * exposure_s * 10 ** (gain / 200))


def run_loop(auto: AutoExposure, sky_rate: float, sun_altitude: float, frames: int) -> list[float]:
    exposures, measured, exposure = [], None, 0.05
    for _ in range(frames):
        setting = auto.next(measured, exposure, sun_altitude)
        exposure = setting.exposure_s
        measured = simulated_brightness(exposure, setting.gain, sky_rate)
        exposures.append(exposure)
    return exposures


def test_auto_exposure_converges_on_the_target_without_oscillating():
    config = AllskyExposureConfig()
    auto = AutoExposure(config)
    sky_rate = config.night.target_brightness / (10.0 * 10 ** (config.night.gain / 200))  # target at 10 s
    exposures = run_loop(auto, sky_rate=sky_rate, sun_altitude=-30, frames=25)
    final = simulated_brightness(exposures[-1], config.night.gain, sky_rate)
    assert final == pytest.approx(config.night.target_brightness, rel=0.02)
    steps = np.sign(np.diff(np.log(exposures)))
    assert np.all(steps[steps != 0] == steps[steps != 0][0])  # one direction: no overshoot, no ringing
    ratios = np.exp(np.abs(np.diff(np.log(exposures))))
    assert ratios.max() <= config.max_step + 1e-9


def test_a_sudden_bright_frame_moves_the_exposure_only_partly():
    config = AllskyExposureConfig(damping=0.5, max_step=4)
    auto = AutoExposure(config)
    setting = auto.next(0.9, 10.0, -30)  # a car's headlights: 4.5x the target
    assert 10.0 / 4 <= setting.exposure_s < 10.0 / 2


def test_day_night_and_twilight_settings_follow_the_sun():
    config = AllskyExposureConfig()
    auto = AutoExposure(config)
    night = auto.next(None, 10.0, -20)
    day = auto.next(None, 10.0, 10)
    twilight = auto.next(None, 0.01, -7.5)
    assert (night.mode, night.gain, night.exposure_s) == ("night", config.night.gain, 10.0)
    assert (day.mode, day.gain, day.exposure_s) == ("day", config.day.gain, config.day.max_exposure_s)
    assert twilight.mode == "twilight"
    assert config.day.gain < twilight.gain < config.night.gain  # the gain ramps through twilight
    assert twilight.gain == pytest.approx((config.day.gain + config.night.gain) / 2)


# Moon mode at a fixed site (Vienna) and fixed times, positions from obsy.astro.
VIENNA = SiteConfig(latitude=48.2, longitude=16.4)
FULL_MOON = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)  # 100 % lit, 68 deg up


def setting_at(auto: AutoExposure, when: datetime):
    return auto.next(None, 1.0, Sky.at(VIENNA, when))


def test_moon_mode_under_a_bright_moon_only():
    config = AllskyExposureConfig()
    moon = config.moon.profile
    full = setting_at(AutoExposure(config), FULL_MOON)
    assert (full.mode, full.gain) == ("moon", moon.gain)
    assert moon.min_exposure_s <= full.exposure_s <= moon.max_exposure_s
    new = setting_at(AutoExposure(config), datetime(2026, 11, 9, 23, 0, tzinfo=UTC))  # new moon, below
    assert (new.mode, new.gain) == ("night", config.night.gain)
    crescent = setting_at(AutoExposure(config), datetime(2026, 11, 14, 17, 30, tzinfo=UTC))  # 9 deg up, 25 % lit
    assert Sky.at(VIENNA, datetime(2026, 11, 14, 17, 30, tzinfo=UTC)).moon_altitude > config.moon.min_altitude
    assert crescent.mode == "night"  # up, but too thin to matter
    off = setting_at(AutoExposure(config.model_copy(update={"moon": AllskyMoonConfig(enabled=False)})), FULL_MOON)
    assert off.mode == "night"


def test_the_moon_blends_with_day_in_twilight():
    config = AllskyExposureConfig()
    dusk = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # sun -8.7 deg, full moon 12 deg up in the east
    setting = setting_at(AutoExposure(config), dusk)
    assert setting.mode == "twilight"
    assert config.day.gain < setting.gain < config.moon.profile.gain  # the ramp goes towards the moon gain


@pytest.mark.long(seconds=70)
def test_moon_mode_switches_at_the_altitude_limit_with_hysteresis():
    """A setting Moon (65 % lit) on 2026-11-18: on above 5 deg, off only below 4 deg."""
    config = AllskyExposureConfig()
    auto = AutoExposure(config)
    start = datetime(2026, 11, 18, 22, 0, tzinfo=UTC)
    skies = [Sky.at(VIENNA, start + timedelta(minutes=m)) for m in range(0, 100, 2)]  # each once: astropy's Moon
    modes = [auto.next(None, 1.0, sky).mode for sky in skies]
    altitudes = [sky.moon_altitude for sky in skies]
    assert modes[0] == "moon" and modes[-1] == "night"
    switch = modes.index("night")
    assert "moon" not in modes[switch:]  # one switch, no flapping
    assert altitudes[switch] < config.moon.min_altitude - config.moon.hysteresis_deg <= altitudes[switch - 1]
    kept = [a for a, m in zip(altitudes, modes, strict=True) if m == "moon" and a < config.moon.min_altitude]
    assert kept  # below the entry limit, still in moon mode: the hysteresis

    rising = AutoExposure(config)  # the same altitudes backwards: a rising Moon enters at 5 deg, not 4
    back = [rising.next(None, 1.0, sky).mode for sky in reversed(skies)]
    enter = back.index("moon")
    assert altitudes[::-1][enter] >= config.moon.min_altitude > altitudes[::-1][enter - 1]


def test_fixed_exposure_when_auto_is_off():
    auto = AutoExposure(AllskyExposureConfig(auto=False, fixed_exposure_s=5))
    assert auto.next(0.9, 1.0, -30).exposure_s == 5


def test_exposure_settings_that_contradict_each_other_are_named():
    with pytest.raises(ValidationError, match=r"night_altitude -3\.0 must be below day_altitude -12\.0"):
        AllskyConfig.model_validate({"exposure": {"night_altitude": -3, "day_altitude": -12}})
    with pytest.raises(ValidationError, match=r"min_exposure_s 5\.0 is above max_exposure_s 1\.0"):
        AllskyConfig.model_validate({"exposure": {"day": {"min_exposure_s": 5, "max_exposure_s": 1}}})


def test_brightness_is_measured_inside_the_circle_only():
    raw = np.full((100, 100), 60000, np.uint16)
    yy, xx = np.mgrid[0:100, 0:100]
    inside = (yy - 50) ** 2 + (xx - 50) ** 2 < 40**2
    raw[inside] = 6553
    assert measure_brightness(raw, 65535, inside) == pytest.approx(0.1, abs=1e-3)


# --- storage ---------------------------------------------------------------------------


def test_frames_are_stored_by_night_whole_and_readable(tmp_path):
    store = FrameStore(tmp_path)
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :, 0] = 200  # red
    taken = datetime(2026, 11, 21, 22, 15, 3, 250000, tzinfo=UTC)
    stored = store.save(NIGHT, taken, encode_jpeg(image), fits_bytes=b"SIMPLE  =" + b" " * 2871)
    assert stored.image_path == tmp_path / "allsky" / "2026-11-21" / "20261121T221503250Z.jpg"
    assert stored.url == stored.image_path.resolve().as_uri()
    decoded = cv2.cvtColor(cv2.imread(str(stored.image_path)), cv2.COLOR_BGR2RGB)
    assert decoded[30, 40, 0] > 190 and decoded[30, 40, 2] < 10
    assert stored.fits_path.read_bytes().startswith(b"SIMPLE")
    assert sorted(p.name for p in stored.image_path.parent.iterdir()) == [
        "20261121T221503250Z.fits",
        "20261121T221503250Z.jpg",
    ]


def test_jpeg_for_the_retained_topic_is_shrunk():
    image = np.zeros((1000, 2000, 3), np.uint8)
    small = cv2.imdecode(np.frombuffer(encode_jpeg(image, max_width=640), np.uint8), cv2.IMREAD_COLOR)
    assert small.shape == (320, 640, 3)


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A real 256 KiB tmpfs: writes fail with ENOSPC as on a full SD card."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_is_reported_and_keeps_what_was_stored(tiny_disk):
    store = FrameStore(tiny_disk)
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)  # noise does not compress: ~40 KB each
    jpeg = encode_jpeg(noisy, quality=95)
    start = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    stored = []
    with pytest.raises(StorageError, match="No space left on device") as failure:
        for i in range(100):
            stored.append(store.save(NIGHT, start + timedelta(seconds=i), jpeg))
    assert 1 <= len(stored) < 100
    assert str(store.night_dir(NIGHT)) in str(failure.value)
    for frame in stored:  # everything stored before is intact
        assert frame.image_path.read_bytes() == jpeg
    leftovers = [p.name for p in store.night_dir(NIGHT).iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no half-written temporary files
    # Room again (an operator or the retention job deleted something): storing works again.
    stored[0].image_path.unlink()
    stored[1].image_path.unlink()
    assert store.save(NIGHT, start + timedelta(hours=1), jpeg).image_path.exists()
