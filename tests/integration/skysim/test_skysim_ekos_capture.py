"""Ekos captures stars with the sky simulator's main camera (``indi_obsy_camera``), headless.

One indiserver runs INDI's telescope simulator and the sky simulator's main camera, which
follows the telescope's pointing (it snoops ``EQUATORIAL_EOD_COORD``). Headless KStars/Ekos
connects to that server (a remote profile) and runs a one-job schedule written by OBSY's
scheduler for a field near the zenith: Ekos unparks the mount, slews and tracks, and its
Capture module takes the light frames with ``SkySim Camera``. The frames Ekos writes are
measured as the imaging service's grader measures them (``sep``) and their stars compared
with the simulator's own truth for that pointing and time (``FieldRenderer``).

A second test loads a capture queue of bias, dark and flat jobs (written by the scheduler's
``sequence_xml``) into Ekos' Capture module over D-Bus: the frames come back with the right
IMAGETYP and average to the simulator's known masters. KStars is told once, in its own
settings, that the camera has a shutter (else Ekos asks in a dialog before the first dark).

The site is a KStars city where it is night now (``tests/support/e2e_site.py``), so Ekos'
twilight and altitude checks pass on the real clock.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.time import Time

from obsy import astro
from obsy.config import SchedulerCalibrationConfig, SchedulerConfig, SchedulerEkosConfig, SiteConfig
from obsy.messages import ExposurePlan, FrameType, Target
from obsy_imaging.grading.measure import extract_stars, measure
from obsy_scheduler.ekos import sequence_xml, write_plan
from obsy_scheduler.planner import Planner
from obsy_skysim.config import MainCameraSettings, _main_sensor
from obsy_skysim.field import FieldRenderer
from obsy_skysim.sensor import Sensor
from tests.support.e2e_site import dark_site
from tests.support.ekos_plans import run_now_settings
from tests.support.indiserver import TELESCOPE, IndiServer, require_indi
from tests.support.kstars import KStars, ekos_running, requires_kstars, written_frames

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    requires_kstars,
]

CAMERA_DRIVER = Path(sys.executable).with_name("indi_obsy_camera")
TELESCOPE_DRIVER = "indi_simulator_telescope"
CAMERA = "SkySim Camera"
FRAMES = 3
EXPOSURE_S = 5.0
#: The simulator's cooled main-camera sensor, cut small so that Ekos' frames are quick to send and save.
SENSOR = {**_main_sensor().model_dump(), "width": 1024, "height": 768}
#: Rendered stars at least this bright (and alone within 12 px) must each be found in every frame; in a sparse
#: field (the zenith's sky changes with the hour: once only 3 such stars at Dec 19°) the brightest ``BRIGHT_COUNT``
#: alone, none fainter than ``FAINTEST_MAG`` (the telescope's limit is 15).
BRIGHT_MAG = 12.5
BRIGHT_COUNT = 8
FAINTEST_MAG = 14.0
TELESCOPE_SETTINGS = {"focal_length_mm": 500.0, "limiting_magnitude": 15.0}


def camera_settings(site: SiteConfig) -> dict:
    return {
        "device": CAMERA,
        "site": {"latitude": site.latitude, "longitude": site.longitude, "elevation": site.elevation},
        "sensor": SENSOR,
        "telescope": TELESCOPE_SETTINGS,
        "mount_device": TELESCOPE,
    }


@pytest.fixture
def observatory(tmp_path: Path) -> Iterator[tuple[KStars, IndiServer, SiteConfig]]:
    require_indi([TELESCOPE_DRIVER])
    if not CAMERA_DRIVER.exists():
        pytest.skip("the sky simulator is not installed (pip install -e services/skysim)")
    site_found = dark_site()
    site = SiteConfig.model_validate(site_found.site_config())
    settings = tmp_path / "skysim.yaml"
    settings.write_text(yaml.safe_dump({"camera": camera_settings(site)}))
    environment = {"OBSY_SKYSIM_CONFIG": str(settings)}
    with (
        IndiServer(tmp_path / "indi", [TELESCOPE_DRIVER, str(CAMERA_DRIVER)], env=environment) as indi,
        ekos_running(
            tmp_path / "kstars",
            (TELESCOPE, "CCD Simulator"),
            indi=indi,
            city=(site_found.city, site_found.province, site_found.country),
            # Ekos asks whether a camera it does not know has a shutter before its first dark (a dialog
            # nobody answers headless): this one has, as a real camera would be set up once.
            settings={("DarkLibrary", "shutterfulCCDs"): CAMERA},
            devices=(TELESCOPE, CAMERA),
        ) as ks,
    ):
        yield ks, indi, site


def zenith_field(site: SiteConfig) -> Target:
    sidereal = Time(datetime.now(UTC) + timedelta(minutes=3)).sidereal_time(
        "apparent", longitude=site.longitude * u.deg
    )
    return Target(
        id="zenith",
        name="Zenith field",
        ra_deg=round(float(sidereal.to(u.deg).value) % 360, 4),
        dec_deg=round(min(site.latitude, 85.0), 4),
        priority=8,
        exposure_plans=[ExposurePlan(filter=None, exposure_s=EXPOSURE_S, count=FRAMES)],
    )


@pytest.mark.long(seconds=60)
def test_ekos_captures_stars_with_the_simulators_main_camera(observatory, tmp_path: Path) -> None:
    kstars, _indi, site = observatory
    settings = SchedulerConfig(
        grid_step_s=30,
        switch_gap_s=0,
        switch_overhead_s=10,
        constraints={"min_altitude": 20, "twilight": "astronomical", "min_time_on_target_min": 1},
        ekos=run_now_settings(profile="OBSY test", camera=CAMERA, filter_wheel=None),
    )
    now = datetime.now(UTC)
    plan = Planner(site, settings).plan([zenith_field(site)], astro.night_of(site, now), now=now)
    assert plan.blocks, plan.excluded
    files = write_plan(plan, settings.ekos, tmp_path / "ekos", tmp_path / "frames", site.timezone)
    assert kstars.load_schedule(files.schedule)
    started = time.monotonic()
    kstars.start_scheduler()
    deadline = time.monotonic() + 240
    while len(frames := [path for path, _header in written_frames(files.fits_dir)]) < FRAMES:
        assert time.monotonic() < deadline, f"Ekos wrote {len(frames)} frames; KStars log:\n{kstars.log_tail(60)}"
        time.sleep(1)
    print(f"Ekos wrote {len(frames)} frames in {time.monotonic() - started:.0f} s")

    camera = MainCameraSettings.model_validate(camera_settings(site))
    renderer = FieldRenderer(camera.site.site(), camera.sensor.spec(), camera.telescope.optics())
    for path in frames[:FRAMES]:
        with fits.open(path) as hdul:
            header = hdul[0].header
            data = hdul[0].data.astype(np.float32)
        assert header["IMAGETYP"].startswith("Light"), header["IMAGETYP"]
        assert data.shape == (SENSOR["height"], SENSOR["width"])
        quality = measure(data, saturation=60000)
        found = extract_stars(data, saturation=60000).sources
        when = datetime.fromisoformat(header["DATE-OBS"]).replace(tzinfo=UTC)
        truth = renderer.render(when, (header["RA"], header["DEC"]), EXPOSURE_S, 0.0, seed=0).truth
        assert truth is not None
        distance = np.hypot(found["x"][:, None] - truth.x[None, :], found["y"][:, None] - truth.y[None, :])
        precision = float((distance.min(axis=1) < 2.0).mean()) if len(found) else 0.0
        h, w = data.shape
        inside = (truth.x > 15) & (truth.x < w - 15) & (truth.y > 15) & (truth.y < h - 15)
        apart = np.hypot(truth.x[:, None] - truth.x[None, :], truth.y[:, None] - truth.y[None, :])
        alone = np.sort(apart, axis=1)[:, 1] > 12 if len(truth.x) > 1 else np.ones(len(truth.x), bool)
        candidates = np.flatnonzero(inside & alone)
        brightest = candidates[np.argsort(truth.stars.mag[candidates])][:BRIGHT_COUNT]
        bright = inside & alone & (truth.stars.mag < BRIGHT_MAG)
        bright[brightest[truth.stars.mag[brightest] < FAINTEST_MAG]] = True
        faintest = float(truth.stars.mag[bright].max(initial=-np.inf))
        recall = float((distance[:, bright].min(axis=0) < 2.0).mean()) if len(found) and bright.any() else 0.0
        print(
            f"{path.name}: {quality.stars} stars measured (HFR {quality.hfr_px:.2f} px), "
            f"{header['SIMSTARS']} rendered; of {int(bright.sum())} alone, to mag {faintest:.1f}, "
            f"{recall:.0%} found, {precision:.0%} of the detections on a rendered star; "
            f"pointing RA {header['RA']:.3f} Dec {header['DEC']:.3f}"
        )
        assert quality.stars >= 10, quality
        assert quality.hfr_px is not None and 0.5 < quality.hfr_px < 5.0, quality
        assert bright.sum() >= 5 and recall >= 0.9
        assert precision >= 0.8


CAPTURE_PATH = "/KStars/Ekos/Capture"
CAPTURE = "org.kde.kstars.Ekos.Capture"
#: Calibration jobs: (Ekos' frame type, exposure, count, the IMAGETYP the driver writes).
CALIBRATION = [("Bias", 0.001, 2, "Bias Frame"), ("Dark", 2.0, 2, "Dark Frame"), ("Flat", 1.0, 2, "Flat Frame")]


def calibration_queue(directory: Path) -> bytes:
    """The capture queue as OBSY's scheduler writes it: one job per frame type, no filter wheel."""
    ekos = SchedulerEkosConfig(
        camera=CAMERA, filter_wheel=None, calibration=SchedulerCalibrationConfig(camera_shutter=True)
    )
    plans = [
        (ExposurePlan(exposure_s=exposure, count=count, frame_type=FrameType(kind)), count)
        for kind, exposure, count, _ in CALIBRATION
    ]
    return sequence_xml("Calibration", plans, directory, ekos)


@pytest.mark.long(seconds=80)
def test_ekos_takes_calibration_frames_with_the_simulators_main_camera(observatory, tmp_path: Path) -> None:
    kstars, _indi, site = observatory
    queue = tmp_path / "calibration.esq"
    frames_dir = tmp_path / "calibration"
    queue.write_bytes(calibration_queue(frames_dir))
    kstars.call(CAPTURE_PATH, CAPTURE, "loadSequenceQueue", "s", str(queue))
    kstars.call(CAPTURE_PATH, CAPTURE, "start")
    wanted = sum(count for _, _, count, _ in CALIBRATION)
    deadline = time.monotonic() + 120
    while len(frames := [path for path, _header in written_frames(frames_dir)]) < wanted:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Ekos wrote {[str(f.relative_to(frames_dir)) for f in frames]}; "
                f"capture log: {kstars.module_log(CAPTURE_PATH, CAPTURE)[:10]}\n{kstars.log_tail(40)}"
            )
        time.sleep(1)
    camera = MainCameraSettings.model_validate(camera_settings(site))
    sensor = Sensor(camera.sensor.spec())
    flat_truth = FieldRenderer(camera.site.site(), camera.sensor.spec(), camera.telescope.optics()).flat_field(1)
    for kind, exposure, count, imagetyp in CALIBRATION:
        paths = sorted((frames_dir / kind).glob("*.fits"))
        assert len(paths) == count, (kind, paths)
        headers = [fits.getheader(path) for path in paths]
        assert [h["IMAGETYP"] for h in headers] == [imagetyp] * count
        assert all(abs(h["EXPTIME"] - exposure) < 1e-6 for h in headers), [h["EXPTIME"] for h in headers]
        mean = np.mean([fits.getdata(path).astype(np.float32) for path in paths], axis=0)
        if kind in ("Bias", "Dark"):  # the known master: offset, column pattern, dark current, hot pixels
            master = sensor.master(exposure, 0.0, dark=kind == "Dark")
            residual = float(np.abs(mean - master).mean())
            columns = float(np.corrcoef(mean.mean(axis=0), master.mean(axis=0))[0, 1])
            print(f"{kind}: {count} frames, |mean - master| {residual:.2f} ADU, column pattern r = {columns:.3f}")
            assert residual < 2.0 and columns > 0.9
        else:  # the flat field: vignetting and dust, through the same fixed pattern
            bias = sensor.master(exposure, 0.0, dark=True)
            light = (mean - bias)[::8, ::8].ravel()
            truth = flat_truth[::8, ::8].ravel()
            match = float(np.corrcoef(light, truth)[0, 1])
            print(f"Flat: {count} frames, level {np.median(light):.0f} ADU, against the flat field r = {match:.3f}")
            assert match > 0.9
