"""Variable-star photometry in the running imaging service: real broker, watched folder, SQLite, files.

Sky-simulator lights of a scripted variable (a sine, 11.5 mag, amplitude 0.3, period 3 h) south of
the equator in a field across RA 0h arrive in the capture folder as the camera writes them (with
the WCS a capture program's solve adds); each is ingested, graded, calibrated (a master bias), and
measured against an AAVSO VSP chart written for the test (its comparison stars from the
simulator's catalogue): the magnitudes on ``imaging/photometry`` match the scenario's truth within
their errors, the check star stays flat, and the night's AAVSO report validates. A light in a
filter the chart has no magnitudes for comes out without one, with the reason, and an event. A
second target in the same field (a constant star with the observer's own comparison stars, listing
the variable's OBJECT in its ``fields``) is measured in the same lights, published and reported apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import Angle
from astropy.io import fits
from sqlalchemy import func, select

from obsy.messages import Event, ImagingPhotometry
from obsy_imaging.cli import report_command
from obsy_imaging.photometry.aavso import validate_report
from obsy_imaging.repository.models import PhotometryMeasurement
from obsy_skysim.allsky import Site
from obsy_skysim.field import FieldFrame, FieldRenderer, TelescopeOptics, isolated
from obsy_skysim.fitsfile import FrameDescription, fits_bytes
from obsy_skysim.scenario import Scenario, SineVariable
from obsy_skysim.sensor import SensorSpec
from tests.integration.imaging.test_imaging_calibration_service import repository_of
from tests.integration.imaging.test_imaging_service import Running, wait_online
from tests.support.photometry import calibrate, noise_of, simulator_wcs
from tests.support.skysim import SITE
from tests.support.watcher import Watcher

pytestmark = pytest.mark.integration

PHOTOMETRY = "obsy/imaging/photometry"
EVENTS = "obsy/imaging/events"
MASTERS = "obsy/imaging/masters"
SMALL = SensorSpec(width=1024, height=768, pixel_um=3.76, bayer=None)
GAIN = 0.0
EXPOSURE = 30.0
PEDESTAL = 500.0
EVENING = datetime(2026, 10, 15, 20, 0, tzinfo=UTC)
FIELD = (0.0, -12.0)
VARIABLE = SineVariable(
    name="V1 Psc (test)", ra=359.97, dec=-11.97, kind="sine", mag=11.5, amplitude=0.3, period_h=3.0, epoch=EVENING
)
FRAMES = 12
CHART_ID = "X99999TST"


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/#"])
    yield w
    w.close()


@pytest.fixture(scope="module")
def renderer() -> FieldRenderer:
    return FieldRenderer(Site(*SITE), SMALL, TelescopeOptics(limiting_magnitude=15.0, seeing_fwhm_arcsec=3.5))


@pytest.fixture(scope="module")
def sky(renderer: FieldRenderer) -> tuple[FieldRenderer, list[FieldFrame]]:
    """The renderer and the night's frames of the scripted variable."""
    scenario = Scenario(variables=[VARIABLE])
    times = [EVENING + timedelta(minutes=15 * i) for i in range(FRAMES)]
    frames = [renderer.render(t, FIELD, EXPOSURE, GAIN, scenario=scenario, seed=400 + i) for i, t in enumerate(times)]
    return renderer, frames


def chart_json(renderer: FieldRenderer, frame: FieldFrame) -> tuple[dict, list[str], str]:
    """A VSP chart (as its API writes it) of measurable, isolated catalogue stars near the variable."""
    truth = frame.truth
    s = renderer.sensor.spec
    x, y, mag = truth.x, truth.y, truth.stars.mag
    inside = (x > 40) & (x < s.width - 40) & (y > 40) & (y < s.height - 40)
    alone = isolated(x, y, mag, others=(x, y, mag), radius=20.0, max_share=0.002)
    variable = truth.variables[VARIABLE.name]
    far = np.hypot(x - variable.x, y - variable.y) > 30
    pick = np.flatnonzero(inside & alone & far & (mag >= 10.5) & (mag <= 12.5))
    assert len(pick) >= 4, "the field needs comparison stars"

    def hms(ra: float) -> str:
        return Angle(ra, "deg").to_string(unit="hour", sep=":", precision=3, pad=True)

    def dms(dec: float) -> str:
        return Angle(dec, "deg").to_string(unit="deg", sep=":", precision=2, pad=True, alwayssign=dec < 0)

    photometry = [
        {
            "auid": f"000-TST-{100 + j}",
            "ra": hms(float(truth.stars.ra[i])),
            "dec": dms(float(truth.stars.dec[i])),
            "label": 110 + j if j % 2 else f"C{j}",
            "bands": [{"band": "V", "mag": round(float(mag[i]), 3), "error": None if j == 0 else 0.002}],
            "comments": "",
        }
        for j, i in enumerate(pick[:5])
    ]
    labels = [str(p["label"]) for p in photometry]
    chart = {
        "chartid": CHART_ID,
        "star": "V1 Psc",
        "fov": 26.0,
        "maglimit": 15.0,
        "ra": hms(VARIABLE.ra),
        "dec": dms(VARIABLE.dec),
        "photometry": photometry,
    }
    return chart, labels[:-1], labels[-1]


def write_raw(path: Path, renderer: FieldRenderer, frame: FieldFrame, image: np.ndarray, kind: str, **cards) -> Path:
    """A frame as the simulated main camera writes it (uint16), with extra header cards."""
    spec = renderer.sensor.spec
    description = FrameDescription(
        instrument="SkySim Camera",
        frame_type=kind,
        exposure_s=EXPOSURE if kind == "light" else 0.0,
        gain=GAIN,
        offset_adu=spec.offset_adu,
        temperature_c=spec.temperature_c,
        pixel_um=spec.pixel_um,
        binning=1,
        started=frame.when,
        latitude=SITE[0],
        longitude=SITE[1],
        simulator={
            "RA": (frame.pointing[0], "pointing, ICRS (degrees)"),
            "DEC": (frame.pointing[1], "pointing, ICRS (degrees)"),
            "FOCALLEN": (renderer.optics.focal_length_mm, "focal length (mm)"),
        },
    )
    data = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    with fits.open(_bytes_file(fits_bytes(data, description))) as hdul:
        hdul[0].header.update(cards)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".part")
        hdul.writeto(temporary)
    temporary.rename(path)
    return path


def _bytes_file(content: bytes):
    import io

    return io.BytesIO(content)


def messages(watcher: Watcher) -> list[ImagingPhotometry]:
    return [ImagingPhotometry.model_validate_json(m.payload) for m in watcher.on(PHOTOMETRY)]


def events(watcher: Watcher, kind: str) -> list[Event]:
    return [e for e in (Event.model_validate_json(m.payload) for m in watcher.on(EVENTS)) if e.kind == kind]


def field_target(chart: dict) -> dict:
    """The chart's last star (a constant one) as a target of its own in the variable's field, measured
    against three other chart stars as the observer's own comparisons (the third its check star)."""
    own = chart["photometry"][:3]
    last = chart["photometry"][-1]
    return {
        "name": "Field K",
        "ra": str(last["ra"]),
        "dec": str(last["dec"]),
        "fields": ["V1 Psc"],
        "comparisons": [
            {"label": str(p["label"]), "ra": str(p["ra"]), "dec": str(p["dec"]), "mag": p["bands"][0]["mag"]}
            for p in own
        ],
        "check": str(own[-1]["label"]),
    }


def test_a_scripted_variable_is_measured_stored_published_and_reported(tmp_path, mosquitto, watcher, sky, capsys):
    renderer, night = sky
    chart, comparisons, check = chart_json(renderer, night[0])
    chart_file = tmp_path / "charts" / f"{CHART_ID}.json"
    chart_file.parent.mkdir()
    chart_file.write_text(json.dumps(chart))
    noise = noise_of(renderer, GAIN, EXPOSURE, calibrated=True)
    photometry = {
        "enabled": True,
        "observer_code": "TST01",
        "gain_e_per_adu": noise.gain_e_per_adu,
        "read_noise_e": noise.read_noise_e,
        "dark_current_e_per_s": noise.dark_e_per_px / EXPOSURE,
        "saturation_adu": 25000.0,
        "targets": [
            {"name": "V1 Psc", "chart_file": str(chart_file), "check": check, "use": comparisons},
            field_target(chart),
        ],
    }
    run = Running(
        tmp_path,
        mosquitto,
        grading={"min_stars": None, "min_stars_ratio": None, "max_background_ratio": None, "max_fwhm_ratio": None},
        calibration={"require_dark": False, "require_flat": False, "quiet_time": 0.5, "quiet_exposures": 0},
        live_stack={"enabled": False},
        photometry=photometry,
    )
    wcs = simulator_wcs(renderer, FIELD)
    rng = np.random.default_rng(11)
    with run:
        wait_online(watcher)
        for index in range(5):  # the pedestal: a master bias is all these lights need
            bias = rng.normal(PEDESTAL, 1.0, (SMALL.height, SMALL.width))
            write_raw(run.capture / "Bias" / f"Bias_{index:03d}.fits", renderer, night[0], bias, "bias")
        watcher.wait_for(lambda msgs: any(m.topic == MASTERS for m in msgs), timeout=180)

        for index, frame in enumerate(night):
            image = calibrate(renderer, frame) + PEDESTAL  # dark-free and flat: the bias is what is left
            cards = {"OBJECT": "v1psc", "FILTER": "V", **wcs}
            write_raw(run.capture / "V1Psc" / f"Light_V_{index:03d}.fits", renderer, frame, image, "light", **cards)
        odd = calibrate(renderer, night[1]) + PEDESTAL
        cards = {"OBJECT": "V1 Psc", "FILTER": "Ha", **wcs}
        write_raw(run.capture / "V1Psc" / "Light_Ha_000.fits", renderer, night[1], odd, "light", **cards)

        watcher.wait_for(lambda _: len(messages(watcher)) >= 2 * (FRAMES + 1), timeout=300)
        watcher.wait_for(lambda _: len(events(watcher, "photometry_failed")) >= 1, timeout=30)
        found = messages(watcher)

    ours = [m for m in found if m.target == "V1 Psc"]
    measured = sorted((m for m in ours if m.band == "V"), key=lambda m: m.jd or 0)
    [failed] = [m for m in ours if m.filter == "Ha"]
    assert len(measured) == FRAMES and all(m.magnitude is not None for m in measured), [m.reasons for m in found]
    # H-alpha is an AAVSO filter code, but the chart has no H-alpha magnitudes.
    assert failed.magnitude is None and failed.band == "HA"
    assert failed.reasons == [f"no sequence: {chart_file}: check star {check} has no HA magnitude (it has V)"]
    [event] = events(watcher, "photometry_failed")
    assert event.data["frame_id"] == failed.frame_id and "has no HA magnitude" in event.message

    truth = np.array([VARIABLE.magnitude(f.when + timedelta(seconds=EXPOSURE / 2)) for f in night])
    mags = np.array([m.magnitude for m in measured])
    errors = np.array([m.error for m in measured])
    residual = mags - truth
    within = float(np.mean(np.abs(residual) <= 2 * errors))
    checks = np.array([m.check_residual for m in measured])
    summary = (
        f"service photometry of {FRAMES} frames ({len(comparisons)}-star ensemble): residual RMS "
        f"{np.sqrt(np.mean(residual**2)):.4f} mag (mean {residual.mean():+.4f}), median |residual| "
        f"{np.median(np.abs(residual)):.4f}, median error {np.median(errors):.4f}, within 2σ {within:.0%}, "
        f"check star RMS {np.sqrt(np.mean(checks**2)):.4f}"
    )
    with capsys.disabled():
        print(summary)
    assert np.all(np.abs(residual) <= 4 * errors) and within >= 0.75
    assert np.sqrt(np.mean(residual**2)) < 0.03 and np.corrcoef(mags, truth)[0, 1] > 0.95
    assert np.all(np.abs(checks) < 0.05)
    first = measured[0]
    assert first.target == "V1 Psc" and first.chart == CHART_ID and first.wcs == "header"
    assert first.check == check and [c.label for c in first.comparisons] == comparisons
    assert first.hjd is not None and first.bjd_tdb is not None and first.airmass is not None and first.airmass > 1

    # The night's report, rewritten as the magnitudes came in, is what AAVSO accepts.
    assert measured[-1].report is not None
    report_path = run.repository / measured[-1].report
    text = report_path.read_text()
    assert validate_report(text) == [], text
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(lines) == FRAMES and "#OBSCODE=TST01" in text
    assert all(line.startswith("V1 Psc,") and f",ENSEMBLE,na,{check}," in line and CHART_ID in line for line in lines)

    repository = repository_of(run)
    try:
        with repository.sessions() as session:
            counts = dict(
                session.execute(
                    select(PhotometryMeasurement.status, func.count()).group_by(PhotometryMeasurement.status)
                ).all()
            )
    finally:
        repository.engine.dispose()
    # The field's other target: every light of V1 Psc measured for it too (own stars: H-alpha as well).
    assert counts == {"measured": 2 * FRAMES + 1, "no_sequence": 1}
    field = sorted((m for m in found if m.target == "Field K" and m.band == "V"), key=lambda m: m.jd or 0)
    assert [m.frame_id for m in field] == [m.frame_id for m in measured]
    constant = chart["photometry"][-1]["bands"][0]["mag"]
    off = np.array([m.magnitude - constant for m in field])
    with capsys.disabled():
        rms = np.sqrt(np.mean(off**2))
        print(f"the field's second target: {len(field)} lights, mean {off.mean():+.4f}, RMS {rms:.4f}")
    assert all(abs(m.magnitude - constant) <= 4 * m.error + 0.001 for m in field), [m.magnitude for m in field]
    assert field[-1].report != measured[-1].report and field[-1].chart is None
    field_report = (run.repository / field[-1].report).read_text()
    assert validate_report(field_report) == [] and "|SEQUENCE=observer's own comparison stars" in field_report

    # The command line makes the same report from the database.
    capsys.readouterr()
    argv = ["report", "-c", str(run.config_path), "--night", first.night, "--target", "v1 psc", "--print"]
    assert report_command(argv) == 0
    assert capsys.readouterr().out == text
