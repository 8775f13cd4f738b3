"""obsy.astro against PyEphem, an independent ephemeris (its own libastro theories, ΔT and rise/set search).

Dates cover 2026 at latitudes from the equator to 78° N and at a 4200 m site. Positions
are compared with refraction off on both sides (ephem: pressure = 0).
"""

from __future__ import annotations

import logging
import math
import warnings
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import cache
from zoneinfo import ZoneInfo

import astropy.units as u
import ephem
import numpy as np
import pytest
from astropy.time import Time
from astropy.utils import iers

from obsy import astro
from obsy.config import SiteConfig

SITES = {
    "equator": SiteConfig(latitude=0.0, longitude=36.8, elevation=1700, timezone="Africa/Nairobi"),
    "35S": SiteConfig(latitude=-35.3, longitude=149.0, elevation=600, timezone="Australia/Sydney"),
    "48N": SiteConfig(latitude=48.1, longitude=11.6, elevation=520, timezone="Europe/Berlin"),
    "64N": SiteConfig(latitude=64.1, longitude=-21.9, elevation=30, timezone="Atlantic/Reykjavik"),
    "78N": SiteConfig(latitude=78.2, longitude=15.6, elevation=10, timezone="Arctic/Longyearbyen"),
    "mauna_kea": SiteConfig(latitude=19.82, longitude=-155.47, elevation=4205, timezone="Pacific/Honolulu"),
}

# Every 5th day of 2026, at times of day that drift through the whole day.
TIMES = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=5 * i, minutes=397 * i) for i in range(73)]
# Every 7th night of 2026 for twilight.
NIGHTS = [date(2026, 1, 1) + timedelta(days=7 * i) for i in range(53)]

# (dusk field, dawn field, altitude of the Sun's centre, the same for ephem)
EVENTS = [
    ("sunset", "sunrise", astro.SUNRISE_SUNSET, "-0:50"),
    ("civil_dusk", "civil_dawn", astro.CIVIL, "-6"),
    ("nautical_dusk", "nautical_dawn", astro.NAUTICAL, "-12"),
    ("astronomical_dusk", "astronomical_dawn", astro.ASTRONOMICAL, "-18"),
]


def observer(site: SiteConfig, horizon: str = "0") -> ephem.Observer:
    obs = ephem.Observer()
    obs.lat = str(site.latitude)
    obs.lon = str(site.longitude)
    obs.elevation = site.elevation  # metres; ephem uses it for the topocentric parallax too
    obs.pressure = 0  # no refraction, like obsy.astro by default
    obs.horizon = horizon
    return obs


def ephem_date(when: datetime) -> ephem.Date:
    return ephem.Date(when.astimezone(UTC).replace(tzinfo=None))


def from_ephem(value: ephem.Date) -> datetime:
    return value.datetime().replace(tzinfo=UTC)


def ephem_altaz(site: SiteConfig, body: ephem.Body, times: list[datetime]) -> tuple[np.ndarray, np.ndarray]:
    obs = observer(site)
    alt, az = [], []
    for when in times:
        obs.date = obs.epoch = ephem_date(when)  # alt/az are of date; the epoch only affects ra/dec
        body.compute(obs)
        alt.append(math.degrees(body.alt))
        az.append(math.degrees(body.az))
    return np.array(alt), np.array(az)


def window(site: SiteConfig, night: date) -> tuple[datetime, datetime]:
    zone = ZoneInfo(site.timezone)
    start = datetime.combine(night, dtime(12), tzinfo=zone)
    end = datetime.combine(night + timedelta(days=1), dtime(12), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def ephem_event(
    obs: ephem.Observer, rising: bool, start: datetime, end: datetime, use_center: bool = True
) -> datetime | None:
    """ephem's next rising/setting after ``start``, None if there is none before ``end``."""
    search = obs.next_rising if rising else obs.next_setting
    try:
        found = from_ephem(search(ephem.Sun(), start=ephem_date(start), use_center=use_center))
    except (ephem.AlwaysUpError, ephem.NeverUpError):
        return None
    return found if found <= end else None


def ephem_sun_alt(site: SiteConfig, when: datetime) -> float:
    obs = observer(site)
    obs.date = ephem_date(when)
    return math.degrees(ephem.Sun(obs).alt)


@cache
def nights_of(site_name: str) -> tuple[astro.NightTimes, ...]:
    return tuple(astro.twilight(SITES[site_name], NIGHTS))


def off_by(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest difference of two angles in degrees."""
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


# --------------------------------------------------------------------------- positions


@pytest.mark.parametrize("site_name", SITES)
def test_sun_and_moon_altaz_match_pyephem(site_name: str) -> None:
    site = SITES[site_name]
    for ours, body in ((astro.sun_altaz(site, TIMES), ephem.Sun()), (astro.moon_altaz(site, TIMES), ephem.Moon())):
        alt, az = ephem_altaz(site, body, TIMES)
        assert ours.alt.shape == ours.az.shape == (len(TIMES),)
        assert np.max(np.abs(ours.alt - alt)) < 0.1
        # Azimuth is undefined at the zenith: compare it as an arc on the sky, and plainly below 85°.
        assert np.max(off_by(ours.az, az) * np.cos(np.radians(alt))) < 0.1
        low = alt < 85
        assert np.max(off_by(ours.az[low], az[low])) < 0.1
        assert np.all((ours.az >= 0) & (ours.az < 360))


def test_moon_illumination_matches_pyephem() -> None:
    ours = astro.moon_illumination(TIMES)
    theirs = np.array([ephem.Moon(ephem_date(when)).moon_phase for when in TIMES])
    assert np.max(np.abs(ours - theirs)) < 0.01
    assert np.all((ours >= 0) & (ours <= 1))
    # The phase angle is the same quantity in degrees: 0 at full, 180 at new Moon.
    angle = astro.moon_phase_angle(TIMES)
    np.testing.assert_allclose((1 + np.cos(np.radians(angle))) / 2, ours, atol=1e-9)


def test_moon_phase_names_at_pyephem_principal_phases() -> None:
    principal = [
        (ephem.next_new_moon, "new", 0.0, 0.0),
        (ephem.next_first_quarter_moon, "first quarter", 90.0, 0.5),
        (ephem.next_full_moon, "full", 180.0, 1.0),
        (ephem.next_last_quarter_moon, "last quarter", 270.0, 0.5),
    ]
    for search, name, elongation, illumination in principal:
        instants = [from_ephem(search(ephem_date(datetime(2026, month, 1, tzinfo=UTC)))) for month in range(1, 13)]
        phase = astro.moon_phase(instants)
        assert list(phase.name) == [name] * len(instants)
        assert np.max(off_by(phase.elongation, np.full(len(instants), elongation))) < 1.0
        assert np.max(np.abs(phase.illumination - illumination)) < 0.03
        # A day later the Moon is waxing in the first half of its cycle only, with the same name.
        later = astro.moon_phase([when + timedelta(days=1) for when in instants])
        assert list(later.waxing) == [elongation < 180.0] * len(instants)
        assert list(later.name) == [name] * len(instants)  # a day is well inside the 45° sector


def test_moon_phase_of_one_time_is_plain_python() -> None:
    phase = astro.moon_phase(datetime(2026, 5, 1, 3, tzinfo=UTC))
    assert isinstance(phase.name, str)
    assert isinstance(phase.waxing, bool)
    assert isinstance(phase.illumination, float)
    assert phase.name in {
        "new",
        "waxing crescent",
        "first quarter",
        "waxing gibbous",
        "full",
        "waning gibbous",
        "last quarter",
        "waning crescent",
    }


def test_refraction_is_optional_and_standard() -> None:
    site = SITES["48N"]
    times = [datetime(2026, 3, 20, 3, tzinfo=UTC) + timedelta(minutes=10 * i) for i in range(80)]
    geometric = astro.sun_altaz(site, times)
    refracted = astro.sun_altaz(site, times, refraction=True)
    np.testing.assert_array_equal(refracted.az, geometric.az)
    lift = refracted.alt - geometric.alt
    assert np.all(lift >= 0)
    # ephem with the same pressure and temperature, where its model applies (above the horizon).
    pressure, temperature = astro._standard_atmosphere(site.elevation)
    obs = observer(site)
    obs.pressure, obs.temp = pressure, temperature
    theirs = []
    for when in times:
        obs.date = ephem_date(when)
        theirs.append(math.degrees(ephem.Sun(obs).alt))
    visible = geometric.alt > 0.5
    assert np.max(np.abs(refracted.alt[visible] - np.array(theirs)[visible])) < 0.01
    # About half a degree at the horizon, an arcminute around 45°, less at a high site.
    near_horizon = astro._refraction(np.array([0.0]), pressure, temperature)[0]
    assert 0.4 < near_horizon < 0.55
    assert 0.5 / 60 < astro._refraction(np.array([45.0]), pressure, temperature)[0] < 1.5 / 60
    high = astro._refraction(np.array([0.0]), *astro._standard_atmosphere(4205))[0]
    assert high < near_horizon


# --------------------------------------------------------------------------- twilight


@pytest.mark.parametrize("site_name", SITES)
def test_twilight_matches_pyephem(site_name: str) -> None:
    site = SITES[site_name]
    nights = nights_of(site_name)
    assert [n.night for n in nights] == NIGHTS
    for times in nights:
        start, end = window(site, times.night)
        for dusk_name, dawn_name, altitude, horizon in EVENTS:
            obs = observer(site, horizon)
            dusk = ephem_event(obs, False, start, end)
            dawn = ephem_event(obs, True, dusk or start, end)
            for name, ours, theirs, rising in (
                (dusk_name, getattr(times, dusk_name), dusk, False),
                (dawn_name, getattr(times, dawn_name), dawn, True),
            ):
                where = f"{site_name} {times.night} {name}"
                if theirs is not None:
                    assert ours is not None, f"{where}: ephem has {theirs}"
                    assert abs((ours - theirs).total_seconds()) < 60, f"{where}: {ours} vs ephem {theirs}"
                elif ours is not None:
                    # ephem refuses days the Sun never crosses at its transit (NeverUpError),
                    # even when a crossing follows before the next local noon. Then its own
                    # altitudes must confirm ours.
                    assert start <= ours <= end, where
                    before = ephem_sun_alt(site, ours - timedelta(minutes=1)) - altitude
                    after = ephem_sun_alt(site, ours + timedelta(minutes=1)) - altitude
                    assert (before < 0 < after) if rising else (before > 0 > after), f"{where}: not confirmed"
        if abs(site.latitude) < 66:
            # ephem's own convention for sunrise and sunset: upper limb at -34', no refraction.
            # Same event up to the variation of the Sun's semi-diameter (±0.3').
            obs = observer(site, "-0:34")
            sunset = ephem_event(obs, False, start, end, use_center=False)
            sunrise = ephem_event(obs, True, sunset or start, end, use_center=False)
            assert times.sunset is not None and sunset is not None
            assert times.sunrise is not None and sunrise is not None
            assert abs((times.sunset - sunset).total_seconds()) < 60
            assert abs((times.sunrise - sunrise).total_seconds()) < 60


@pytest.mark.parametrize("site_name", ["48N", "78N"])
def test_twilight_crossings_are_refined_below_a_second(site_name: str) -> None:
    site = SITES[site_name]
    events, horizons = [], []
    for times in nights_of(site_name):
        for dusk_name, dawn_name, altitude, _ in EVENTS:
            for name in (dusk_name, dawn_name):
                if getattr(times, name) is not None:
                    events.append(getattr(times, name))
                    horizons.append(altitude)
    assert len(events) > 100
    alt = astro.sun_altaz(site, events).alt
    rate = astro.sun_altaz(site, [when + timedelta(seconds=1) for when in events]).alt - alt  # deg/s
    assert np.max(np.abs((alt - np.array(horizons)) / rate)) < 0.5


def test_twilight_sees_a_dip_of_about_a_minute() -> None:
    """Where the Sun only just reaches -12° at midnight, the short nautical night is still found."""
    arctic = SITES["78N"]
    around_midnight = [datetime(2026, 3, 19, 22, tzinfo=UTC) + timedelta(seconds=10 * i) for i in range(720)]
    lowest = float(np.min(astro.sun_altaz(arctic, around_midnight).alt))
    # At lower culmination the altitude is latitude + declination - 90°: move the site north
    # until the Sun dips only 0.0001° below -12°.
    dips = arctic.model_copy(update={"latitude": arctic.latitude + astro.NAUTICAL - lowest - 1e-4})
    times = astro.twilight(dips, date(2026, 3, 19))
    assert times.nautical_dusk is not None and times.nautical_dawn is not None
    length = (times.nautical_dawn - times.nautical_dusk).total_seconds()
    assert 20 < length < 180
    dense = [times.nautical_dusk + timedelta(seconds=s) for s in range(-5, int(length) + 6)]
    below = np.array(dense)[astro.sun_altaz(dips, dense).alt < astro.NAUTICAL]
    assert abs((below[0] - times.nautical_dusk).total_seconds()) <= 1
    assert abs((below[-1] - times.nautical_dawn).total_seconds()) <= 1
    # 0.0002° further north it stays above -12°.
    stays = arctic.model_copy(update={"latitude": dips.latitude + 2e-4})
    assert astro.twilight(stays, date(2026, 3, 19)).nautical_dusk is None


def test_twilight_events_are_in_order_and_on_the_right_evening() -> None:
    site = SITES["48N"]
    zone = ZoneInfo(site.timezone)
    for times in nights_of("48N"):
        sequence = [
            times.sunset,
            times.civil_dusk,
            times.nautical_dusk,
            times.astronomical_dusk,
            times.astronomical_dawn,
            times.nautical_dawn,
            times.civil_dawn,
            times.sunrise,
        ]
        present = [when for when in sequence if when is not None]
        assert present == sorted(present)
        assert all(when.tzinfo is not None and when.utcoffset() == timedelta(0) for when in present)
        assert times.sunset.astimezone(zone).date() == times.night
        assert times.sunrise.astimezone(zone).date() == times.night + timedelta(days=1)
        # Near midsummer the Sun does not reach -18° at 48° N.
        if times.astronomical_dusk is None:
            assert times.astronomical_dawn is None
            assert date(2026, 5, 20) < times.night < date(2026, 7, 25)


def test_polar_day_and_night() -> None:
    arctic = SITES["78N"]
    summer = astro.twilight(arctic, date(2026, 6, 21))
    assert all(getattr(summer, name) is None for event in EVENTS for name in event[:2])
    with pytest.raises(ephem.AlwaysUpError):
        observer(arctic, "-0:50").next_setting(ephem.Sun(), start=ephem_date(datetime(2026, 6, 21, 12, tzinfo=UTC)))

    winter = astro.twilight(arctic, date(2026, 12, 21))
    # The Sun peaks near -11.6°: no sunrise, no civil twilight, but it does cross -12° and -18°.
    for name in ("sunset", "sunrise", "civil_dusk", "civil_dawn"):
        assert getattr(winter, name) is None
    for name in ("nautical_dusk", "nautical_dawn", "astronomical_dusk", "astronomical_dawn"):
        assert getattr(winter, name) is not None
    for horizon in ("-0:50", "-6"):
        with pytest.raises(ephem.NeverUpError):
            observer(arctic, horizon).next_rising(
                ephem.Sun(), start=ephem_date(datetime(2026, 12, 21, 11, tzinfo=UTC)), use_center=True
            )

    # White nights at 64° N: sunset and civil twilight, but never nautically dark.
    iceland = astro.twilight(SITES["64N"], date(2026, 6, 21))
    assert iceland.sunset is not None and iceland.sunrise is not None
    assert iceland.nautical_dusk is None and iceland.astronomical_dusk is None
    assert iceland.nautical_dawn is None and iceland.astronomical_dawn is None


def test_twilight_of_one_night_defaults_and_rejects_datetimes() -> None:
    site = SITES["48N"]
    one = astro.twilight(site, NIGHTS[3])
    assert one == nights_of("48N")[3]
    assert astro.twilight(site).night == astro.night_of(site, datetime.now(UTC))
    assert astro.twilight(site, []) == []
    with pytest.raises(TypeError):
        astro.twilight(site, datetime(2026, 1, 1, tzinfo=UTC))


# --------------------------------------------------------------------------- times


def test_naive_datetimes_are_rejected() -> None:
    site = SITES["48N"]
    naive = datetime(2026, 1, 1, 22)
    for call in (
        lambda: astro.sun_altaz(site, naive),
        lambda: astro.moon_altaz(site, [datetime(2026, 1, 1, tzinfo=UTC), naive]),
        lambda: astro.moon_illumination(naive),
        lambda: astro.moon_phase([naive]),
        lambda: astro.night_of(site, naive),
        lambda: astro.time_grid(naive, datetime(2026, 1, 2, tzinfo=UTC), 60),
        lambda: astro.sun_altaz(site, np.array(["2026-01-01T22:00"], dtype="datetime64[s]")),
    ):
        with pytest.raises(ValueError, match="time zone"):
            call()


def test_scalars_arrays_and_time_zones() -> None:
    site = SITES["48N"]
    when = datetime(2026, 7, 1, 20, 30, tzinfo=UTC)
    scalar = astro.sun_altaz(site, when)
    assert isinstance(scalar.alt, float) and isinstance(scalar.az, float)
    # The same instant in another zone, or as astropy Time, gives the same answer.
    berlin = when.astimezone(ZoneInfo("Europe/Berlin"))
    assert astro.sun_altaz(site, berlin).alt == pytest.approx(scalar.alt, abs=1e-9)
    assert astro.sun_altaz(site, Time(when)).alt == pytest.approx(scalar.alt, abs=1e-9)
    grid = Time(when) + np.arange(6).reshape(2, 3) * 3600 * u.s
    shaped = astro.moon_altaz(site, grid)
    assert shaped.alt.shape == (2, 3)
    assert shaped.alt[0, 0] == pytest.approx(astro.moon_altaz(site, when).alt, abs=1e-9)
    assert astro.moon_illumination([when, berlin]).shape == (2,)
    assert isinstance(astro.moon_illumination(when), float)
    assert isinstance(astro.sun_altitude_now(site), float)
    assert -90 <= astro.sun_altitude_now(site) <= 90


def test_time_grid() -> None:
    start = datetime(2026, 3, 1, 18, tzinfo=UTC)
    grid = astro.time_grid(start, start + timedelta(hours=1), 600)
    assert len(grid) == 7
    assert grid[0].to_datetime(timezone=UTC) == start
    assert grid[-1].to_datetime(timezone=UTC) == start + timedelta(hours=1)
    assert len(astro.time_grid(start, start + timedelta(seconds=1199), 600)) == 2
    assert len(astro.time_grid(Time(start), Time(start), 60)) == 1
    with pytest.raises(ValueError):
        astro.time_grid(start, start - timedelta(seconds=1), 60)
    with pytest.raises(ValueError):
        astro.time_grid(start, start, 0)


def test_night_of() -> None:
    berlin = SITES["48N"]
    zone = ZoneInfo(berlin.timezone)
    assert astro.night_of(berlin, datetime(2026, 3, 28, 23, tzinfo=zone)) == date(2026, 3, 28)
    # The clocks go forward that night; before local noon still belongs to the evening before.
    assert astro.night_of(berlin, datetime(2026, 3, 29, 11, 59, tzinfo=zone)) == date(2026, 3, 28)
    assert astro.night_of(berlin, datetime(2026, 3, 29, 12, 0, tzinfo=zone)) == date(2026, 3, 29)
    # 05:00 UTC is the evening before in Hawaii, and after noon in Sydney.
    early = datetime(2026, 1, 2, 5, tzinfo=UTC)
    assert astro.night_of(SITES["mauna_kea"], early) == date(2026, 1, 1)
    assert astro.night_of(SITES["35S"], early) == date(2026, 1, 2)
    assert astro.night_of(berlin, Time(early)) == date(2026, 1, 1)
    assert astro.night_of(berlin, [early, early + timedelta(hours=12)]) == [date(2026, 1, 1), date(2026, 1, 2)]
    # Every twilight event belongs to the night it was computed for.
    for times in nights_of("48N")[:10]:
        assert astro.night_of(berlin, times.sunset) == times.night
        assert astro.night_of(berlin, times.sunrise) == times.night


def test_location_is_cached() -> None:
    site = SITES["mauna_kea"]
    loc = astro.location(site)
    assert astro.location(site) is loc
    assert loc.lat.deg == pytest.approx(site.latitude)
    assert loc.lon.deg == pytest.approx(site.longitude)
    assert loc.height.to_value(u.m) == pytest.approx(site.elevation)


# --------------------------------------------------------------------------- offline


def test_offline_and_quiet_past_the_iers_predictions(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert iers.conf.auto_download is False
    site = SITES["48N"]
    later = [datetime(2029 + i // 12, 1 + i % 12, 3, 21, tzinfo=UTC) for i in range(24)]
    monkeypatch.setattr(astro, "_warned_beyond_iers", False)
    with caplog.at_level(logging.INFO, logger="obsy.astro"), warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = astro.sun_altaz(site, later)
        moon = astro.moon_altaz(site, later)
        phase = astro.moon_phase(later)
        night = astro.twilight(site, date(2030, 6, 1))
    sun_alt, _ = ephem_altaz(site, ephem.Sun(), later)
    moon_alt, _ = ephem_altaz(site, ephem.Moon(), later)
    assert np.max(np.abs(ours.alt - sun_alt)) < 0.1
    assert np.max(np.abs(moon.alt - moon_alt)) < 0.1
    assert phase.illumination.shape == (24,)
    assert night.sunset is not None and night.sunrise is not None
    # Instead of warnings, one log line that says what to do.
    assert [r.levelno for r in caplog.records if "refresh_iers" in r.getMessage()] == [logging.INFO]


def test_refresh_iers_installs_the_downloaded_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import astropy.time
    import astropy.utils.data

    downloads = []

    def download(url: str, **kwargs: object) -> str:
        downloads.append((url, kwargs.get("cache")))
        return str(iers.IERS_A_FILE)  # stands in for the fresh file

    monkeypatch.setattr(astropy.utils.data, "download_file", download)
    monkeypatch.setattr(astropy.time, "update_leap_seconds", lambda *args: 0)
    before, cached = iers.earth_orientation_table.get(), iers.IERS_Auto.iers_table
    try:
        last = astro.refresh_iers(timeout=5)
        table = iers.earth_orientation_table.get()
        assert table is not before
        assert downloads == [(iers.conf.iers_auto_url, "update")]
        assert last == Time(table["MJD"][-1].value, format="mjd").to_datetime().date()
        assert astro.sun_altaz(SITES["48N"], datetime(2026, 6, 1, tzinfo=UTC)).alt == pytest.approx(
            astro.sun_altaz(SITES["48N"], Time("2026-06-01T00:00:00", scale="utc")).alt
        )
    finally:
        iers.IERS_Auto.iers_table = cached
        iers.earth_orientation_table.set(before)


def test_refresh_iers_reports_a_failed_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import astropy.utils.data

    def offline(*args: object, **kwargs: object) -> str:
        raise OSError("network is unreachable")

    before = iers.earth_orientation_table.get()
    monkeypatch.setattr(astropy.utils.data, "download_file", offline)
    with pytest.raises(RuntimeError, match="network is unreachable"):
        astro.refresh_iers()
    assert iers.earth_orientation_table.get() is before
