"""The sky simulator's science night (``obsy_skysim.science``): a variable and a transit tonight, with the
files OBSY's services need to observe them, checked against what those services read.

* the scenario is one the main camera loads, the variable changes within ten minutes, the transit
  happens between the contacts the truth gives, and only there;
* the ephemeris reads back through ``obsy.transits.ephemeris`` and the scheduler's prediction of
  tonight's transit (``obsy.transits.predict`` at the site, as the scheduler calls it) is the scenario's
  mid-time to a second; the imaging service's fit recovers that mid-time from the scenario's light curve;
* the comparison stars lie in both fields, away from every other star the simulator draws there, with
  the magnitudes it draws them at; the photometry target is one the imaging service accepts;
* the targets are ones the web API accepts; bad settings are refused naming the setting;
* a night moved later (a test's, once its observatory is up) moves its transit in the scenario, the
  ephemeris and the truth, and the variable's window, and nothing else; the main camera renders the
  moved transit without a restart.
"""

from __future__ import annotations

import io
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.time import Time

from obsy import astro
from obsy.messages import TimeSeries
from obsy.transits.ephemeris import read_archive_csv, transit_duration
from obsy.transits.predict import bjd_tdb, transits_between
from obsy_imaging.config import PhotometryTargetConfig
from obsy_imaging.transits.fit import McmcSettings, fit_transit
from obsy_imaging.transits.lightcurve import LightCurve
from obsy_scheduler.transits import site_location
from obsy_skysim.allsky import Site
from obsy_skysim.cli import main
from obsy_skysim.config import MainCameraSettings
from obsy_skysim.driver import MainCamera
from obsy_skysim.indi_xml import Writer
from obsy_skysim.scenario import SineVariable, TransitHost, load_scenario
from obsy_skysim.science import (
    PLANET_NAME,
    TRANSIT_COMPARISONS,
    ScienceNightError,
    ScienceNightSettings,
    host_field,
    lst_deg,
    move_transit,
    transit_geometry,
    write_science_night,
)
from obsy_web.targets import TargetInput
from tests.support.skysim import SITE

START = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
#: The local demo's cut of the main camera: 1600 × 1200 at 1.55″/px (41′ × 31′).
CAMERA = MainCameraSettings.model_validate({"sensor": {"width": 1600, "height": 1200}})


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    return write_science_night(tmp_path_factory.mktemp("night"), Site(*SITE), START, CAMERA, index=False)


def test_the_scenario_holds_a_quick_variable_and_a_transit_soon_after_the_start(night) -> None:
    scenario = load_scenario(night.scenario)
    variable, host = scenario.variables
    assert isinstance(variable, SineVariable) and isinstance(host, TransitHost) and host.physical
    assert 20 <= variable.period_h * 60 <= 30 and 10 <= variable.mag <= 11 and variable.amplitude == 0.3
    # Ten minutes of real time show the variable change by more than its photometry's error.
    mags = [variable.magnitude(START + timedelta(minutes=m)) for m in range(11)]
    assert max(mags) - min(mags) > 0.2
    t = night.transit
    assert t.mid_utc == START + timedelta(minutes=6)
    assert (t.egress_utc - t.ingress_utc) == timedelta(minutes=4)
    # The flux drops between the contacts and only there; 2–3 % deep at mid-transit (limb darkening).
    second = timedelta(seconds=1)
    assert host.flux_fraction(t.ingress_utc - second) == 1.0 and host.flux_fraction(t.egress_utc + second) == 1.0
    assert host.flux_fraction(t.ingress_utc + 10 * second) < 1.0 and host.flux_fraction(t.egress_utc - 10 * second) < 1
    assert 0.02 < 1 - host.flux_fraction(t.mid_utc) < 0.035
    assert 1 - host.flux_fraction(START) == 0.0 and 1 - host.flux_fraction(START + timedelta(minutes=12)) == 0.0
    # The field is past the meridian and high: no meridian flip during the transit.
    site = Site(*SITE)
    hour_angle = (astro_lst(site, t.mid_utc) - t.ra + 180) % 360 - 180
    assert 0 < hour_angle < 10
    assert altitude(site, t.ra, t.dec, t.mid_utc) > 75


def astro_lst(site: Site, when: datetime) -> float:
    import astropy.units as u

    return float(Time(when).sidereal_time("apparent", longitude=site.longitude * u.deg).deg)


def altitude(site: Site, ra: float, dec: float, when: datetime) -> float:
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord

    frame = AltAz(obstime=Time(when), location=astro.location(site))
    return float(SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame).alt.deg)


def test_the_ephemeris_reads_back_and_predicts_the_scenarios_transit_to_a_second(night) -> None:
    table = read_archive_csv(night.ephemeris)
    assert list(table) == [PLANET_NAME] and not table.skipped
    eph, t = table[PLANET_NAME], night.transit
    assert (eph.ra, eph.dec, eph.host) == (t.ra, t.dec, t.host)
    assert eph.period == pytest.approx(t.period_h / 24.0, abs=1e-9)
    assert eph.geometry() == pytest.approx((t.rp_rs, t.a_rs, t.inc), rel=1e-5)
    assert eph.model_duration() * 1440 == pytest.approx(4.0, abs=1e-3)
    # The scheduler's prediction at the site (its location, the window it plans with).
    where = site_location(Site(*SITE))
    windows = transits_between(eph, Time(START), Time(START + timedelta(hours=1)), where, baseline_days=2 / 1440)
    assert len(windows) == 1
    (window,) = windows
    assert window.epoch == 10 and window.complete
    assert abs((window.tc_utc.to_datetime(UTC) - t.mid_utc).total_seconds()) < 1.0
    assert abs((window.ingress_utc.to_datetime(UTC) - t.ingress_utc).total_seconds()) < 1.0
    assert abs((window.egress_utc.to_datetime(UTC) - t.egress_utc).total_seconds()) < 1.0
    assert window.tc_bjd == pytest.approx(t.mid_bjd_tdb, abs=1 / 86400)


@pytest.mark.slow
def test_the_imaging_fit_recovers_the_mid_time_from_the_scenarios_light_curve(night) -> None:
    """10 s frames every 15 s for 12 min, 0.4 % photometric noise: the fit that takes the period from
    the ephemeris finds the scenario's mid-time within its error."""
    host = load_scenario(night.scenario).variables[1]
    eph = read_archive_csv(night.ephemeris)[PLANET_NAME]
    where = astro.location(Site(*SITE))
    times = [START + timedelta(seconds=15 * i + 5) for i in range(48)]
    rng = np.random.default_rng(4)
    flux = np.array([host.flux_fraction(when) for when in times]) * (1 + rng.normal(0, 0.004, len(times)))
    lc = LightCurve(
        time=np.array([bjd_tdb(Time(when), host.ra, host.dec, where) for when in times]),
        flux=flux,
        flux_err=np.full(len(times), 0.004),
        airmass=np.array([1 / math.sin(math.radians(altitude(Site(*SITE), host.ra, host.dec, w))) for w in times]),
        exposure_s=10.0,
    )
    fit = fit_transit(lc, eph, mcmc=McmcSettings(steps=600, burn=200, seed=1))
    assert not fit.partial
    error = fit.tc.value - night.transit.mid_bjd_tdb
    print(f"Tc {error * 86400:+.1f} ± {fit.tc.error * 86400:.1f} s, depth {fit.depth.value:.4f}")
    assert abs(error) < 3 * fit.tc.error and fit.tc.error < 30 / 86400


def test_the_comparison_stars_are_in_both_fields_isolated_and_at_their_drawn_magnitudes(night) -> None:
    renderer = MainCamera.make_renderer(CAMERA.model_copy(update={"site": CAMERA.site.model_validate(
        {"latitude": SITE[0], "longitude": SITE[1], "elevation": SITE[2]})}))  # fmt: skip
    assert len(night.comparisons) == 7 and night.comparisons[-1].label == "K"
    s = renderer.sensor.spec
    for pointing in (night.transit_field, night.variable_field):
        frame = renderer.render(START, pointing, 10.0, 0.0, scenario=load_scenario(night.scenario), seed=1)
        truth = frame.truth
        x, y, mag = truth.x, truth.y, truth.stars.mag
        assert set(truth.variables) == {"SIM-V1", "SIM-T1"}  # both scripted stars in both fields
        for star in night.comparisons:
            cx, cy = renderer.to_pixels(np.array([star.ra]), np.array([star.dec]), *pointing)
            assert 50 < cx[0] < s.width - 50 and 50 < cy[0] < s.height - 50, star
            distance = np.hypot(x - cx[0], y - cy[0])
            me = int(np.argmin(distance))
            assert distance[me] < 0.01 and mag[me] == pytest.approx(star.mag, abs=1e-3)  # drawn there, so bright
            # No other star (scripted ones too) within 25″ that gives it more than 1 % of its light.
            others = np.arange(len(x)) != me
            close = others & (distance * renderer.arcsec_per_pixel < 25.0)
            assert np.all(10 ** (-0.4 * (mag[close] - star.mag)) <= 0.01), star
            assert 9.5 <= star.mag <= 12.5
    target = PhotometryTargetConfig.model_validate(yaml.safe_load(night.photometry.read_text()))
    assert target.name == "SIM-V1" and target.check == "K" and target.fields == [PLANET_NAME]
    assert [c.mag for c in target.comparisons] == [c.mag for c in night.comparisons]
    assert night.config["imaging"]["photometry"]["targets"] == [yaml.safe_load(night.photometry.read_text())]


def test_a_sparse_transit_field_moves_north_or_south_to_one_with_stars_to_compare_the_host_with(tmp_path) -> None:
    """A night the full suite observed once: at its nominal place (Dec +14.4°, Hawaii, 09:01 UTC) the end-to-end
    test's small field (800 × 600 px) held no isolated star near the host's magnitude, and the transit could not
    be reduced ("only 1 comparison candidates"). The night's field is now one that holds them."""
    site, start = Site(19.416944, -155.0, 453.85), datetime(2026, 12, 7, 9, 1, 22, tzinfo=UTC)
    small = MainCameraSettings.model_validate(
        {"sensor": {"width": 800, "height": 600}, "telescope": {"focal_length_mm": 500.0, "limiting_magnitude": 15.0}}
    )
    renderer = MainCamera.make_renderer(small.model_copy(update={"site": small.site.model_validate(
        {"latitude": site.latitude, "longitude": site.longitude, "elevation": site.elevation})}))  # fmt: skip
    settings = ScienceNightSettings()
    nominal_ra = (lst_deg(site, start) - settings.hour_angle_min / 4.0) % 360.0
    nominal = (nominal_ra, site.latitude - 5.0)
    assert host_field(renderer, nominal, settings.host_mag)[0] < TRANSIT_COMPARISONS

    night = write_science_night(tmp_path, site, start, small, settings=settings, index=False)
    ra, dec = night.transit_field
    assert ra == pytest.approx(nominal_ra, abs=0.1) and 0.4 < abs(dec - nominal[1]) <= 2.01  # moved in Dec only
    assert host_field(renderer, (ra, dec), settings.host_mag)[0] >= TRANSIT_COMPARISONS


def test_the_targets_are_what_the_web_api_takes_and_the_manifest_names_it_all(night) -> None:
    transit, series, nebula = (TargetInput.model_validate(t) for t in night.targets)
    assert transit.name == PLANET_NAME and (transit.ra_deg, transit.dec_deg) == night.transit_field
    assert series.time_series == TimeSeries(
        cadence_min=2.0, window_start=START, window_end=START + timedelta(hours=1), frames_per_visit=3
    )
    assert [p.filter for p in nebula.exposure_plans] == ["L", "R", "G", "B"]
    lst = astro_lst(Site(*SITE), START)
    assert altitude(Site(*SITE), nebula.ra_deg, nebula.dec_deg, START) > 80 and (nebula.ra_deg - lst) % 360 < 10
    manifest = yaml.safe_load(night.manifest.read_text())
    assert manifest["targets"] == night.targets
    assert Path(manifest["files"]["scenario"]) == night.scenario and manifest["files"]["index_dir"] is None
    assert manifest["config"]["scheduler"]["transits"] == {"ephemeris_file": str(night.ephemeris), "baseline_min": 2.0}
    assert manifest["truth"]["transit"]["mid_utc"] == "2026-12-06T22:06:00Z"
    assert manifest["truth"]["transit"]["mid_bjd_tdb"] == night.transit.mid_bjd_tdb


def test_a_night_moved_later_moves_its_transit_and_the_variables_window_only(tmp_path) -> None:
    night = write_science_night(tmp_path, Site(*SITE), START, CAMERA, index=False)
    camera = MainCamera(CAMERA.model_copy(update={"scenario": str(night.scenario)}), Writer(io.BytesIO()))
    assert camera.current_scenario().variables[1].flux_fraction(night.transit.mid_utc) < 1.0
    by = timedelta(minutes=10)  # more than the 4 min transit: the old mid-time is out of it
    moved = move_transit(night, by)
    t = moved.transit
    assert t.mid_utc == night.transit.mid_utc + by and t.ingress_utc == night.transit.ingress_utc + by
    assert t.mid_bjd_tdb == pytest.approx(night.transit.mid_bjd_tdb + by.total_seconds() / 86400, abs=0.1 / 86400)
    assert (t.ra, t.dec, t.depth) == (night.transit.ra, night.transit.dec, night.transit.depth)
    assert moved.variable == night.variable and moved.comparisons == night.comparisons
    variable, host = load_scenario(night.scenario).variables
    assert host.mid == t.mid_utc and variable.epoch == night.variable.epoch
    (eph,) = read_archive_csv(night.ephemeris).values()
    (window,) = transits_between(
        eph, Time(START), Time(START + timedelta(hours=1)), site_location(Site(*SITE)), baseline_days=0
    )
    assert abs((window.tc_utc.to_datetime(UTC) - t.mid_utc).total_seconds()) < 1.0
    series, was = moved.targets[1]["time_series"], night.targets[1]["time_series"]
    for key in ("window_start", "window_end"):
        assert datetime.fromisoformat(series[key]) == datetime.fromisoformat(was[key]) + by
    TargetInput.model_validate(moved.targets[1])
    # The camera reads its scenario again: out of transit at the old mid-time, in transit at the new one.
    host_now = camera.current_scenario().variables[1]
    assert host_now.flux_fraction(night.transit.mid_utc) == 1.0 and host_now.flux_fraction(t.mid_utc) < 1.0
    written = yaml.safe_load(night.manifest.read_text())["truth"]["transit"]["mid_utc"]
    assert written.startswith(f"{t.mid_utc:%Y-%m-%dT%H:%M:%S}")


def test_a_longer_later_transit_keeps_its_duration_and_depth(tmp_path) -> None:
    settings = replace(ScienceNightSettings(), transit_mid_min=25, transit_duration_min=10, transit_depth=0.02)
    night = write_science_night(tmp_path, Site(-30.0, -70.0, 2000.0), START, CAMERA, settings=settings, index=False)
    t = night.transit
    assert t.mid_utc == START + timedelta(minutes=25) and t.depth == pytest.approx(0.02)
    assert transit_duration(t.period_h / 24, t.rp_rs, t.a_rs, t.inc) * 1440 == pytest.approx(10.0, rel=1e-9)
    assert night.transit_field[1] == pytest.approx(-25.0, abs=0.2)  # south: 5° from the zenith towards the equator


def test_the_geometry_gives_the_duration_asked_for() -> None:
    for duration, depth, impact, period in [(4, 0.025, 0.3, 12), (120, 0.01, 0.0, 72), (30, 0.05, 0.5, 24)]:
        k, a_rs, inc = transit_geometry(duration, depth, impact, period)
        assert k == pytest.approx(math.sqrt(depth))
        assert a_rs * math.cos(math.radians(inc)) == pytest.approx(impact, abs=1e-9)
        assert transit_duration(period / 24, k, a_rs, inc) * 1440 == pytest.approx(duration, rel=1e-9)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transit_depth": 0.3}, "transit_depth must be a fraction"),
        ({"transit_impact": 0.9}, "transit_impact must be 0 or more"),
        ({"transit_period_h": 0.2}, "transit_period_h 0.2 is too short"),
        ({"comparison_mags": (12.0, 11.0)}, "comparison_mags"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(change, message, tmp_path) -> None:
    with pytest.raises(ScienceNightError, match=message):
        write_science_night(tmp_path, Site(*SITE), START, CAMERA, settings=replace(ScienceNightSettings(), **change))
    with pytest.raises(ScienceNightError, match="needs a time zone"):
        write_science_night(tmp_path, Site(*SITE), START.replace(tzinfo=None), CAMERA, index=False)


def test_the_command_writes_the_night_and_refuses_bad_values(tmp_path, capsys) -> None:
    settings = tmp_path / "skysim.yaml"
    settings.write_text(yaml.safe_dump({"camera": {"sensor": {"width": 1600, "height": 1200}}}))
    args = ["science-night", "--out", str(tmp_path / "night"), "--config", str(settings), "--no-index"]
    place = ["--latitude", str(SITE[0]), "--longitude", str(SITE[1]), "--start", "2026-12-06T22:00:00Z"]
    assert main([*args, *place, "--transit-mid-min", "8"]) == 0
    out = capsys.readouterr().out
    assert "mid 22:08:00" in out and "index left out" in out
    manifest = yaml.safe_load((tmp_path / "night" / "manifest.yaml").read_text())
    assert manifest["site"]["latitude"] == SITE[0] and manifest["truth"]["transit"]["mid_utc"] == "2026-12-06T22:08:00Z"
    assert main([*args, *place, "--transit-depth", "0.5"]) == 2
    assert "transit_depth must be a fraction" in capsys.readouterr().err
