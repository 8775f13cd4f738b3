"""The scheduler's night planner: positions and windows against PyEphem, constraint edge cases, scoring.

PyEphem (its own libastro theories, precession and nutation) is the independent
computation; refraction is off on both sides (ephem pressure = 0), as the planner's
altitudes are geometric.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import ephem
import numpy as np
import pytest

from obsy.config import SchedulerConfig, SiteConfig
from obsy.messages import ExposurePlan, Target, TargetConstraints
from obsy_scheduler.constraints import evaluate, horizon_altitude, lorentzian_separation, resolve
from obsy_scheduler.planner import Planner
from obsy_scheduler.sky import night_sky

VIENNA = SiteConfig(name="Vienna", latitude=48.2, longitude=16.4, elevation=180, timezone="Europe/Vienna")
NIGHT = date(2026, 11, 21)  # Moon 90 % illuminated, up in the evening


def target(tid: str, ra: float, dec: float, *, priority: int = 5, frames: int = 20, **constraints: object) -> Target:
    return Target(
        id=tid,
        name=tid.upper(),
        ra_deg=ra,
        dec_deg=dec,
        priority=priority,
        exposure_plans=[ExposurePlan(filter="L", exposure_s=300, count=frames)],
        constraints=dict(constraints),
    )


def settings(**overrides: object) -> SchedulerConfig:
    base = {"constraints": TargetConstraints(min_altitude=30, twilight="astronomical", min_time_on_target_min=15)}
    return SchedulerConfig.model_validate({**base, **overrides})


def observer(site: SiteConfig, when: datetime) -> ephem.Observer:
    obs = ephem.Observer()
    obs.lat, obs.lon = str(site.latitude), str(site.longitude)
    obs.elevation = site.elevation
    obs.pressure = 0
    obs.date = ephem.Date(when.astimezone(UTC).replace(tzinfo=None))
    obs.epoch = obs.date
    return obs


def ephem_altaz(site: SiteConfig, ra: float, dec: float, when: datetime) -> tuple[float, float]:
    body = ephem.FixedBody()
    body._ra, body._dec, body._epoch = math.radians(ra), math.radians(dec), ephem.J2000
    body.compute(observer(site, when))
    return math.degrees(body.alt), math.degrees(body.az)


def ephem_sun_alt(site: SiteConfig, when: datetime) -> float:
    sun = ephem.Sun()
    sun.compute(observer(site, when))
    return math.degrees(sun.alt)


# --------------------------------------------------------------------------- positions


@pytest.mark.parametrize(
    ("ra", "dec"),
    [(279.2347, 38.7837), (10.6848, 41.2691), (83.8221, -5.3911), (37.9546, 89.2641), (250.0, -30.0)],
    ids=["Vega", "M31", "M42", "Polaris", "south"],
)
def test_altitudes_and_azimuths_match_pyephem(ra, dec):
    sky = night_sky(VIENNA, NIGHT, 120)
    tracks = sky.targets(np.array([ra]), np.array([dec]))
    for k in range(0, sky.size, 37):
        when = sky.datetime_at(sky.unix[k])
        alt, az = ephem_altaz(VIENNA, ra, dec, when)
        assert tracks.alt[0, k] == pytest.approx(alt, abs=0.01), when
        if abs(alt) < 85:
            assert (tracks.az[0, k] - az + 180) % 360 - 180 == pytest.approx(0, abs=0.02 / math.cos(math.radians(alt)))


def test_sun_and_moon_on_the_grid_match_pyephem():
    sky = night_sky(VIENNA, NIGHT, 120)
    for k in range(0, sky.size, 29):
        when = sky.datetime_at(sky.unix[k])
        obs = observer(VIENNA, when)
        moon = ephem.Moon(obs)
        assert sky.sun_alt[k] == pytest.approx(ephem_sun_alt(VIENNA, when), abs=0.02)
        assert sky.moon_alt[k] == pytest.approx(math.degrees(moon.alt), abs=0.05)


def test_visibility_window_matches_pyephem_rise_above_the_limit_and_twilight():
    """The window of a target is where ephem says: Sun below -18° and target above 30°."""
    vega = target("vega", 279.2347, 38.7837)
    plan = Planner(VIENNA, settings()).plan([vega], NIGHT)
    (start, end), *_ = plan.windows["vega"]
    # Independent: walk the night in 20 s steps with ephem.
    t = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    usable = []
    while t < datetime(2026, 11, 22, 8, 0, tzinfo=UTC):
        if ephem_sun_alt(VIENNA, t) < -18 and ephem_altaz(VIENNA, 279.2347, 38.7837, t)[0] >= 30:
            usable.append(t)
        t += timedelta(seconds=20)
    step = timedelta(seconds=120)
    assert abs(start - usable[0]) <= step
    assert abs(end - usable[-1]) <= step
    # Vega sets below 30° in the evening: the window is one run, starting at astronomical dusk.
    assert len(plan.windows["vega"]) == 1
    assert plan.blocks and plan.blocks[0].start >= start


# --------------------------------------------------------------------------- edge cases


def test_circumpolar_target_is_usable_all_dark_night():
    polaris = target("polaris", 37.9546, 89.2641, frames=500)
    plan = Planner(VIENNA, settings()).plan([polaris], NIGHT)
    (start, end), *rest = plan.windows["polaris"]
    assert not rest
    assert abs(start - plan.dark_start) <= timedelta(seconds=120)
    assert abs(end - plan.dark_end) <= timedelta(seconds=120)
    assert plan.filled_fraction > 0.97


def test_target_that_never_rises_is_excluded_with_the_reason():
    south = target("south", 90.0, -60.0)
    plan = Planner(VIENNA, settings()).plan([south], NIGHT)
    assert plan.blocks == []
    assert "never rises" in plan.excluded["south"]


def test_polar_summer_without_astronomical_darkness():
    oslo = SiteConfig(name="Oslo", latitude=59.9, longitude=10.75, timezone="Europe/Oslo")
    midsummer = date(2026, 6, 21)
    vega = target("vega", 279.2347, 38.7837, min_altitude=20)
    dark_plan = Planner(oslo, settings()).plan([vega], midsummer)
    assert dark_plan.blocks == []
    assert dark_plan.excluded["vega"].startswith("the Sun never goes below -18°")
    assert dark_plan.dark_hours == 0
    civil = target("vega", 279.2347, 38.7837, min_altitude=20, twilight="civil")
    civil_plan = Planner(oslo, settings()).plan([civil], midsummer)
    assert civil_plan.blocks, civil_plan.excluded
    # Independent: the Sun really is below -6° during the planned block and never below -12°.
    block = civil_plan.blocks[0]
    assert ephem_sun_alt(oslo, block.start + (block.end - block.start) / 2) < -6
    assert min(ephem_sun_alt(oslo, block.start + timedelta(minutes=m)) for m in range(0, 120, 5)) > -12


def test_midnight_sun_gives_an_empty_night():
    tromso = SiteConfig(name="Tromsø", latitude=69.65, longitude=18.96, timezone="Europe/Oslo")
    plan = Planner(tromso, settings()).plan([target("vega", 279.2, 38.8, twilight="civil")], date(2026, 6, 21))
    assert plan.blocks == []
    assert "never goes below -6°" in plan.excluded["vega"]


def test_the_moon_crossing_a_target_blocks_it_only_while_close():
    sky = night_sky(VIENNA, NIGHT, 120)
    # Put the target where the Moon is (topocentric, J2000) at the middle of the night.
    middle = sky.datetime_at(sky.unix[sky.size // 2])
    obs = observer(VIENNA, middle)
    obs.epoch = ephem.J2000
    moon = ephem.Moon(obs)
    ra, dec = math.degrees(moon.ra), math.degrees(moon.dec)
    near = target("near", ra, dec, min_altitude=0, moon_separation=10)
    plan = Planner(VIENNA, settings()).plan([near], NIGHT)
    tracks = sky.targets(np.array([ra]), np.array([dec]))
    evaluation = evaluate(sky, tracks, [resolve(settings().constraints, near.constraints)])
    k = sky.size // 2
    # ephem's topocentric separation agrees with the planner's at the crossing
    moon_alt, moon_az = math.degrees(moon.alt), math.degrees(moon.az)
    body_alt, body_az = ephem_altaz(VIENNA, ra, dec, middle)
    expected = math.degrees(
        ephem.separation(
            (math.radians(moon_az), math.radians(moon_alt)), (math.radians(body_az), math.radians(body_alt))
        )
    )
    assert evaluation.moon_separation[0, k] == pytest.approx(expected, abs=0.1)
    assert evaluation.moon_separation[0, k] < 1.0
    assert not evaluation.ok[0, k]
    # The Moon moves ~0.5°/h against the stars: 10° clear a day away, not tonight;
    # but while the Moon is below the horizon the separation does not apply.
    moon_down = sky.moon_alt < 0
    usable = evaluation.ok[0] & evaluation.dark[0]
    assert np.all(usable[~moon_down & (evaluation.moon_separation[0] < 10)] == False)  # noqa: E712
    for block in plan.blocks:
        middle_index = int(np.searchsorted(sky.unix, block.start.timestamp()))
        assert evaluation.moon_separation[0, middle_index] >= 10 or sky.moon_alt[middle_index] < 0


def test_a_target_always_too_close_to_the_moon_is_excluded_with_the_distances():
    sky = night_sky(VIENNA, NIGHT, 120)
    middle = sky.datetime_at(sky.unix[sky.size // 2])
    obs = observer(VIENNA, middle)
    obs.epoch = ephem.J2000
    moon = ephem.Moon(obs)
    near = target(
        "near",
        math.degrees(moon.ra),
        math.degrees(moon.dec),
        min_altitude=0,
        moon_avoidance_distance=120,
        moon_avoidance_width=14,
        moon_avoidance_when_down=True,
    )
    plan = Planner(VIENNA, settings()).plan([near], NIGHT)
    assert plan.blocks == []
    assert plan.excluded["near"].startswith("too close to the Moon")


def test_lorentzian_moon_avoidance_values():
    # ACP / N.I.N.A.: distance / (1 + ((0.5 - age/29.5) / (width/29.5))^2)
    assert lorentzian_separation(14.75, 120, 14) == pytest.approx(120.0)  # full Moon: the whole distance
    assert lorentzian_separation(14.75 - 14, 120, 14) == pytest.approx(60.0)  # width days before: half
    assert lorentzian_separation(14.75 + 14, 120, 14) == pytest.approx(60.0)  # and after
    assert lorentzian_separation(0.0, 120, 14) == pytest.approx(56.8716, abs=1e-3)  # new Moon: 120 / (1 + (14.75/14)²)
    assert lorentzian_separation(0.0, 120, 2) == pytest.approx(2.1664, abs=1e-3)  # 120 / (1 + 7.375²)
    assert lorentzian_separation(10.0, 60, 7) == pytest.approx(41.0830, abs=1e-3)  # 60 / (1 + (4.75/7)²)
    ages = np.linspace(0, 29.5, 60)
    values = lorentzian_separation(ages, 120, 5)
    assert values.max() <= 120 and np.argmax(values) in (29, 30)


def test_meridian_window_keeps_blocks_near_transit():
    m31 = target("m31", 10.6848, 41.2691, frames=200, meridian_window_min=60)
    plan = Planner(VIENNA, settings()).plan([m31], NIGHT)
    assert plan.blocks
    sky = night_sky(VIENNA, NIGHT, 120)
    tracks = sky.targets(np.array([10.6848]), np.array([41.2691]))
    for block in plan.blocks:
        inside = (sky.unix >= block.start.timestamp()) & (sky.unix < block.end.timestamp())
        assert np.abs(tracks.hour_angle[0][inside]).max() <= 15.0 + 0.01
    total = sum((b.end - b.start).total_seconds() for b in plan.blocks)
    assert 100 * 60 <= total <= 120 * 60


def test_custom_horizon_delays_the_start():
    vega_free = target("vega", 279.2347, 38.7837, min_altitude=10)
    wall = target(
        "vega", 279.2347, 38.7837, min_altitude=10, horizon=[(0, 10), (250, 10), (270, 45), (300, 45), (320, 10)]
    )
    free = Planner(VIENNA, settings()).plan([vega_free], NIGHT).windows["vega"]
    walled = Planner(VIENNA, settings()).plan([wall], NIGHT).windows["vega"]
    assert walled[0][1] < free[0][1]  # Vega sets in the west-north-west behind the wall earlier
    square = [(0, 10), (90, 30), (180, 10), (270, 30)]
    assert horizon_altitude(square, np.array([0.0, 45.0, 135.0, 315.0, 360.0])) == pytest.approx([10, 20, 20, 20, 10])


def test_max_airmass_is_a_floor_on_altitude():
    plan = Planner(VIENNA, settings()).plan([target("vega", 279.2347, 38.7837, min_altitude=0, max_airmass=1.5)], NIGHT)
    for block in plan.blocks:
        assert block.min_altitude >= math.degrees(math.asin(1 / 1.5)) - 0.01


# --------------------------------------------------------------------------- planning rules


def test_higher_priority_wins_the_same_sky():
    low = target("low", 10.6848, 41.2691, priority=2, frames=500)
    high = target("high", 10.7, 41.3, priority=9, frames=500)
    plan = Planner(VIENNA, settings()).plan([low, high], NIGHT)
    assert plan.blocks[0].target.id == "high"
    assert "higher-scoring" in plan.excluded["low"]


def test_blocks_do_not_overlap_and_count_frames():
    targets = [target(f"t{i}", ra, 30.0, frames=8) for i, ra in enumerate(range(0, 360, 30))]
    plan = Planner(VIENNA, settings()).plan(targets, NIGHT)
    switches = 0
    for a, b in zip(plan.blocks, plan.blocks[1:], strict=False):
        assert a.end <= b.start
        if a.target.id != b.target.id:  # Ekos' lead time between jobs of different targets
            switches += 1
            assert (b.start - a.end).total_seconds() >= settings().switch_gap_s
    assert switches >= 3
    per_target: dict[str, int] = {}
    for block in plan.blocks:
        per_target[block.target.id] = per_target.get(block.target.id, 0) + block.exposure_count
        assert block.min_altitude >= 30 - 0.01
    assert all(count <= 8 for count in per_target.values())


def test_acquired_frames_are_not_planned_again():
    done = target("done", 10.68, 41.27)
    done.exposure_plans[0].acquired = 20
    half = target("half", 10.68, 41.27)
    half.exposure_plans[0].acquired = 15
    plan = Planner(VIENNA, settings()).plan([done, half], NIGHT)
    assert plan.excluded["done"].startswith("complete")
    assert sum(b.exposure_count for b in plan.blocks if b.target.id == "half") == 5


def test_minimum_time_on_target_excludes_short_windows():
    # Vega is above 30° only for a short time after astronomical dusk in late November.
    vega = target("vega", 279.2347, 38.7837, frames=200, min_time_on_target_min=300)
    plan = Planner(VIENNA, settings()).plan([vega], NIGHT)
    assert plan.blocks == []
    assert "minimum time on target" in plan.excluded["vega"]


def test_bad_constraints_exclude_only_that_target_with_the_key_named():
    bad = target("bad", 10.68, 41.27, min_altitud=20)
    worse = target("worse", 10.68, 41.27, max_airmass="high")
    good = target("good", 10.68, 41.27)
    plan = Planner(VIENNA, settings()).plan([bad, worse, good], NIGHT)
    assert "min_altitud" in plan.excluded["bad"]
    assert "max_airmass" in plan.excluded["worse"]
    assert plan.blocks and plan.blocks[0].target.id == "good"


def test_duplicate_ids_plan_the_first_and_name_the_second():
    first = target("m31", 10.6848, 41.2691)
    second = target("m31", 200.0, -80.0)
    plan = Planner(VIENNA, settings()).plan([first, second], NIGHT)
    assert plan.blocks and all(b.target is first for b in plan.blocks)
    assert "m31" not in plan.excluded
    assert plan.excluded == {"m31 (duplicate 2)": "duplicate target id: only the first is planned"}


def test_disabled_and_planless_targets_are_excluded():
    off = target("off", 10.68, 41.27)
    off.enabled = False
    empty = Target(id="empty", name="Empty", ra_deg=10.68, dec_deg=41.27)
    plan = Planner(VIENNA, settings()).plan([off, empty], NIGHT)
    assert plan.excluded == {"off": "disabled", "empty": "no exposure plans"}


def test_replanning_later_in_the_night_starts_no_block_before_now():
    m31 = target("m31", 10.6848, 41.2691, frames=200)
    first = Planner(VIENNA, settings()).plan([m31], NIGHT)
    now = first.blocks[0].start + timedelta(hours=2, minutes=7)
    later = Planner(VIENNA, settings()).plan([m31], NIGHT, now=now)
    assert later.blocks[0].start >= now
    assert later.blocks[0].start - now <= timedelta(seconds=120)


def test_plan_message_round_trips():
    plan = Planner(VIENNA, settings()).plan([target("m31", 10.6848, 41.2691)], NIGHT)
    message = plan.to_message(trigger="targets", schedule_path="/tmp/x.esl")
    again = type(message).model_validate_json(message.to_json())
    assert again.blocks[0].target_id == "m31"
    assert again.night == "2026-11-21"
    assert 0 < again.filled_fraction <= 1


def test_calibration_frames_are_refused_with_the_reason():
    """Without a configured source a Dark job waits for someone to cover the telescope: the night would stall."""
    from obsy.messages import FrameType

    light = ExposurePlan(filter="Red", exposure_s=300, count=4)
    darks = ExposurePlan(filter="Red", exposure_s=300, count=4, frame_type=FrameType.DARK)
    flats = ExposurePlan(filter="Red", exposure_s=2, count=4, frame_type=FrameType.FLAT)
    darks_taken = darks.model_copy(update={"acquired": 4})
    targets = [
        Target(id="lights", name="Lights", ra_deg=40.0, dec_deg=80.0, exposure_plans=[light]),
        Target(id="mixed", name="Mixed", ra_deg=42.0, dec_deg=80.0, exposure_plans=[light, darks, flats]),
        Target(id="done", name="Done", ra_deg=44.0, dec_deg=80.0, exposure_plans=[light, darks_taken]),
    ]  # fmt: skip
    plan = Planner(VIENNA, SchedulerConfig()).plan(targets, date(2026, 11, 21))
    reason = plan.excluded["mixed"]
    assert reason.startswith("Dark frames need the telescope dark without a person")
    assert "scheduler.ekos.calibration.camera_shutter" in reason and "scheduler.ekos.calibration.dust_cap" in reason
    assert "scheduler.ekos.calibration.flat_source" in reason
    assert {b.target.id for b in plan.blocks} == {"lights", "done"}  # darks already taken do not matter


@pytest.mark.parametrize(
    ("calibration", "planned", "refused"),
    [
        ({"camera_shutter": True}, {"darks", "bias"}, {"flats": "Flat frames need a light source"}),
        ({"dust_cap": True}, {"darks", "bias"}, {"flats": "Flat frames need a light source"}),
        ({"flat_source": "panel"}, {"flats"}, {"darks": "Dark frames need", "bias": "Bias frames need"}),
        ({"flat_source": "wall", "camera_shutter": True}, {"darks", "bias", "flats"}, {}),
    ],
)
def test_calibration_frames_are_planned_where_a_source_is_configured(calibration, planned, refused):
    from obsy.config import SchedulerCalibrationConfig, SchedulerEkosConfig
    from obsy.messages import FrameType

    def only(frame_type):
        return [ExposurePlan(filter="Red", exposure_s=10, count=3, frame_type=frame_type)]

    targets = [
        Target(id="darks", name="Darks", ra_deg=40.0, dec_deg=80.0, exposure_plans=only(FrameType.DARK)),
        Target(id="bias", name="Bias", ra_deg=42.0, dec_deg=80.0, exposure_plans=only(FrameType.BIAS)),
        Target(id="flats", name="Flats", ra_deg=44.0, dec_deg=80.0, exposure_plans=only(FrameType.FLAT)),
    ]  # fmt: skip
    config = SchedulerConfig(ekos=SchedulerEkosConfig(calibration=SchedulerCalibrationConfig(**calibration)))
    plan = Planner(VIENNA, config).plan(targets, date(2026, 11, 21))
    assert {b.target.id for b in plan.blocks} == planned
    assert {k: v for k, v in plan.excluded.items()}.keys() == refused.keys()
    for target_id, start in refused.items():
        assert plan.excluded[target_id].startswith(start)
