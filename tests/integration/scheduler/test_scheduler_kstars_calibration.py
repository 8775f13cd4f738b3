"""Calibration frames in the real KStars 3.6 (Ekos with the INDI simulators): taken without a person.

The .esq carries the calibration source of ``scheduler.ekos.calibration``. KStars is told
once, in its own settings, that the CCD simulator has a shutter (its list of cameras with
a shutter, which Ekos otherwise fills by asking before the first dark). Then a job of darks,
bias and a light runs unattended, and a job of flats from the Light Panel Simulator (Ekos
turns its light on first), also with an exposure Ekos finds for a target ADU. The frames are
read back from their FITS headers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import astropy.units as u
import pytest
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time

from obsy.config import SchedulerCalibrationConfig, SchedulerEkosConfig
from obsy.messages import ExposurePlan, FrameType, Target
from obsy_scheduler.ekos import EkosFiles, write_plan
from obsy_scheduler.planner import Plan
from tests.support.ekos_plans import VIENNA, one_block_plan, run_now_settings, zenith_ra
from tests.support.indiserver import CCD, IndiServer, module_server
from tests.support.kstars import (
    SCHEDULER,
    SCHEDULER_PATH,
    KStars,
    KStarsError,
    ekos_running,
    requires_kstars,
    written_frames,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.long(seconds=45),
    requires_kstars,
]

DRIVERS = ("indi_simulator_telescope", "indi_simulator_ccd", "indi_simulator_lightpanel")
PANEL = "Light Panel Simulator"  # indi_simulator_lightpanel: an INDI light box
CAPTURE_PATH = "/KStars/Ekos/Capture"
CAPTURE = "org.kde.kstars.Ekos.Capture"


def said(kstars: KStars, path: str, interface: str, lines: int = 20) -> str:
    """What an Ekos module showed its user, oldest first (or why it cannot be read)."""
    try:
        return "\n".join(reversed(kstars.module_log(path, interface)[:lines]))
    except KStarsError as error:
        return f"({error})"


#: Our own indiserver on a free port, which Ekos uses (a remote profile), as in test_scheduler_ekos_night.
indi = module_server(DRIVERS)


@pytest.fixture(scope="module")
def kstars_running(tmp_path_factory: pytest.TempPathFactory, indi: IndiServer) -> Iterator[KStars]:
    """KStars told that the CCD simulator has a shutter (else Ekos asks before the first dark)."""
    devices = ("Telescope Simulator", "CCD Simulator", PANEL)
    shutter = {("DarkLibrary", "shutterfulCCDs"): CCD}
    with ekos_running(tmp_path_factory.mktemp("kstars"), devices, indi=indi, settings=shutter) as ks:
        yield ks


@pytest.fixture
def kstars(kstars_running: KStars) -> KStars:
    kstars_running.reconnect_ekos()  # a schedule that finishes ends with Ekos stopping INDI
    return kstars_running


def one_job_plan(name: str, plans: list[ExposurePlan]) -> Plan:
    """One job of ``plans`` at the zenith, now."""
    now = datetime.now(UTC)
    target = Target(id=name, name=name, ra_deg=zenith_ra(now), dec_deg=VIENNA.latitude, exposure_plans=plans)
    return one_block_plan(target, [(p, p.count) for p in plans], now, now + timedelta(minutes=5))


def ekos_config(**calibration: object) -> SchedulerEkosConfig:
    return run_now_settings(profile="OBSY test", calibration=SchedulerCalibrationConfig(**calibration))


def frames(files: EkosFiles) -> Counter:
    """(IMAGETYP, EXPTIME) of every frame Ekos wrote for the run."""
    found: Counter = Counter()
    for _path, header in written_frames(files.fits_dir):  # one Ekos is still writing is counted on the next look
        found[(header.get("IMAGETYP"), round(float(header["EXPTIME"]), 3))] += 1
    return found


def run(
    kstars: KStars, files: EkosFiles, expected: Counter, timeout: float = 240, watch: Callable[[], object] | None = None
) -> int:
    """Load and start the run; wait until its frames are there and its job is complete."""
    mark = len(kstars.log_text())
    assert kstars.load_schedule(files.schedule)
    kstars.start_scheduler()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and frames(files) != expected:
            if watch is not None:
                watch()
            time.sleep(0.5)
        assert frames(files) == expected, (
            f"Ekos wrote {dict(frames(files))}; the scheduler said:\n{said(kstars, SCHEDULER_PATH, SCHEDULER)}"
            f"\nthe capture module said:\n{said(kstars, CAPTURE_PATH, CAPTURE)}"
            f"\nKStars' log:\n{kstars.log_tail(60)}"
        )
        kstars.wait_for_log(rf"Job '{files.jobs[0].name}' is complete", timeout=60, after=mark)
    finally:
        kstars.stop_scheduler()
    return mark


def test_darks_and_bias_with_a_shutter_camera_are_taken_unattended(kstars, tmp_path):
    plans = [
        ExposurePlan(filter="Red", exposure_s=2, count=2, frame_type=FrameType.DARK),
        ExposurePlan(filter="Red", exposure_s=0.1, count=2, frame_type=FrameType.BIAS),
        ExposurePlan(filter="Red", exposure_s=1, count=1),  # and the job goes on with a light
    ]
    files = write_plan(
        one_job_plan("Darks", plans), ekos_config(camera_shutter=True), tmp_path / "ekos", tmp_path / "frames", "UTC"
    )
    # the simulator records a bias at its own shortest exposure (0.01 s), whatever Ekos asks for (0.1 s)
    mark = run(kstars, files, Counter({("Dark Frame", 2.0): 2, ("Bias Frame", 0.01): 2, ("Light Frame", 1.0): 1}))
    log = kstars.log_text()[mark:]
    assert "Cover the telescope" not in log and "have a shutter" not in log


def panel_light(indi: IndiServer, on: bool | None = None) -> str:
    """The Light Panel Simulator's light ("On"/"Off"), switched first when ``on`` is given."""
    prop = f"{PANEL}.FLAT_LIGHT_CONTROL"
    if on is not None:
        indi.setprop(f"{prop}.{'FLAT_LIGHT_ON' if on else 'FLAT_LIGHT_OFF'}=On")
        time.sleep(1)
    return indi.getprop(f"{prop}.FLAT_LIGHT_ON").get("FLAT_LIGHT_ON") or "?"


def test_flats_from_a_flat_panel_are_taken_unattended(kstars, indi, tmp_path):
    """Ekos turns the panel's light on for the flats, and off again before the light frame that follows."""
    plans = [
        ExposurePlan(filter="Red", exposure_s=3, count=2, frame_type=FrameType.FLAT),
        ExposurePlan(filter="Red", exposure_s=1, count=1),
    ]
    files = write_plan(
        one_job_plan("Flats", plans), ekos_config(flat_source="panel"), tmp_path / "ekos", tmp_path / "frames", "UTC"
    )
    assert panel_light(indi, on=False) == "Off"
    states: list[str] = []
    mark = run(
        kstars,
        files,
        Counter({("Flat Frame", 3.0): 2, ("Light Frame", 1.0): 1}),
        watch=lambda: states.append(panel_light(indi)),
    )
    assert "On" in states, states  # the panel lit for the flats (Ekos 3.6.2 does not log it)
    assert panel_light(indi) == "Off"  # and dark again for the light frame
    assert "evenly illuminated" not in kstars.log_text()[mark:]  # nobody was asked for a light source


def test_flats_by_target_adu_find_their_exposure(kstars, indi, tmp_path):
    """With ``flat_adu`` Ekos tries exposures until the mean is within the tolerance, then takes the planned flats."""
    plans = [ExposurePlan(filter="Red", exposure_s=1, count=2, frame_type=FrameType.FLAT)]
    config = ekos_config(flat_source="panel", flat_adu=20000, flat_adu_tolerance=2000)
    files = write_plan(one_job_plan("AduFlats", plans), config, tmp_path / "ekos", tmp_path / "frames", "UTC")
    panel_light(indi, on=False)
    deadline = time.monotonic() + 240
    mark = len(kstars.log_text())
    assert kstars.load_schedule(files.schedule)
    kstars.start_scheduler()
    try:
        while time.monotonic() < deadline and sum(frames(files).values()) < 2:
            time.sleep(1)
        kstars.wait_for_log(r"Job 'AduFlats' is complete", timeout=60, after=mark)
    finally:
        kstars.stop_scheduler()
    paths = sorted(files.fits_dir.rglob("*.fits"))
    assert len(paths) == 2  # Ekos' trial exposures are not saved
    for path in paths:
        with fits.open(path) as hdul:
            assert hdul[0].header["IMAGETYP"] == "Flat Frame"
            assert float(hdul[0].header["EXPTIME"]) != 1.0  # Ekos' exposure, not the plan's
            assert abs(float(hdul[0].data.mean()) - 20000) <= 2000


def mount_alt_az(kstars: KStars, indi: IndiServer) -> tuple[float, float] | None:
    """The Telescope Simulator's (azimuth, altitude) now, at KStars' location, or None when unread."""
    values = {key: float(value) for key, value in indi.getprop("Telescope Simulator.EQUATORIAL_EOD_COORD.*").items()}
    if "RA" not in values or "DEC" not in values:
        return None
    place = kstars.location()
    site = EarthLocation(lat=place["latitude"] * u.deg, lon=place["longitude"] * u.deg)
    # the simulator's coordinates are of the date; as J2000 they are off by a fraction of a degree
    horizontal = SkyCoord(ra=values["RA"] * 15 * u.deg, dec=values["DEC"] * u.deg).transform_to(
        AltAz(obstime=Time.now(), location=site)
    )
    return float(horizontal.az.deg), float(horizontal.alt.deg)


def test_wall_flats_are_taken_with_the_mount_at_the_wall(kstars, indi, tmp_path):
    plans = [ExposurePlan(filter="Red", exposure_s=2, count=2, frame_type=FrameType.FLAT)]
    config = ekos_config(flat_source="wall", wall_az=180, wall_alt=30)
    files = write_plan(one_job_plan("WallFlats", plans), config, tmp_path / "ekos", tmp_path / "frames", "UTC")
    at_frame: dict[int, tuple[float, float] | None] = {}

    def watch() -> None:
        taken = sum(frames(files).values())
        if taken and taken not in at_frame:
            at_frame[taken] = mount_alt_az(kstars, indi)

    run(kstars, files, Counter({("Flat Frame", 2.0): 2}), watch=watch)
    assert at_frame, "no position read while the flats were taken"
    for position in at_frame.values():
        assert position is not None
        azimuth, altitude = position
        assert abs(azimuth - 180) < 1.5 and abs(altitude - 30) < 1.5, at_frame


def mount_parked(indi: IndiServer) -> str:
    return indi.getprop("Telescope Simulator.TELESCOPE_PARK.PARK").get("PARK") or "?"


def test_the_mount_is_parked_before_flats_with_park_mount(kstars, indi, tmp_path):
    plans = [ExposurePlan(filter="Red", exposure_s=2, count=2, frame_type=FrameType.FLAT)]
    config = ekos_config(flat_source="panel", park_mount=True)
    files = write_plan(one_job_plan("ParkFlats", plans), config, tmp_path / "ekos", tmp_path / "frames", "UTC")
    indi.setprop("Telescope Simulator.TELESCOPE_PARK.UNPARK=On")
    time.sleep(2)
    assert mount_parked(indi) == "Off"
    states: dict[int, str] = {}

    def watch() -> None:
        taken = sum(frames(files).values())
        if taken:
            states.setdefault(taken, mount_parked(indi))

    run(kstars, files, Counter({("Flat Frame", 2.0): 2}), watch=watch)
    assert states and all(parked == "On" for parked in states.values()), states  # Ekos parked it first


def test_every_calibration_source_loads(kstars, tmp_path):
    """Wall flats with a target ADU and parking, a dust cap: KStars accepts every job of these files."""
    plans = [
        ExposurePlan(filter="Red", exposure_s=1, count=1),
        ExposurePlan(filter="Red", exposure_s=1, count=1, frame_type=FrameType.DARK),
        ExposurePlan(filter="Red", exposure_s=1, count=1, frame_type=FrameType.FLAT),
    ]
    variants = {
        "Wall": ekos_config(flat_source="wall", wall_az=90, wall_alt=10, flat_adu=20000, dust_cap=True),
        "Panel": ekos_config(flat_source="panel", dust_cap=True, flat_adu=30000, park_mount=True, park_dome=True),
    }
    for name, config in variants.items():
        files = write_plan(one_job_plan(name, plans), config, tmp_path / name, tmp_path / "frames", "UTC")
        mark = len(kstars.log_text())
        assert kstars.load_schedule(files.schedule)
        kstars.wait_for_log(rf"Job '{name}' at row #1 was saved", timeout=30, after=mark)
        kstars.call(SCHEDULER_PATH, SCHEDULER, "removeAllJobs")
