"""The shared KStars D-Bus client (obsy.kstars) against a real dbus-daemon with the Ekos stand-in on it,
and its profile and settings writers on files."""

from __future__ import annotations

import configparser
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.kstars.dbus import (
    DBusCallError,
    DBusError,
    DBusTimeoutError,
    KStarsBus,
    WaitTimeoutError,
    open_connection,
    session_address,
    wait_until,
)
from obsy.kstars.paths import (
    CAPTURE,
    CAPTURE_PATH,
    EKOS_PATH,
    KSTARS,
    KSTARS_PATH,
    SCHEDULER,
    SCHEDULER_PATH,
    SchedulerStatus,
)
from obsy.kstars.profile import ProfileError, driver_role, write_profile
from obsy.kstars.settings import kstarsrc, write_settings
from tests.support.ekos_standin import EkosStandIn, dbus_daemon_available

needs_dbus = pytest.mark.skipif(
    not dbus_daemon_available(), reason="dbus-daemon (Debian package dbus) is not installed"
)


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[EkosStandIn]:
    with EkosStandIn(tmp_path / "bus") as ekos:
        yield ekos


@pytest.fixture
def bus(standin: EkosStandIn) -> Iterator[KStarsBus]:
    with KStarsBus(standin.address, timeout=2) as client:
        yield client


@needs_dbus
def test_calls_and_properties_reach_the_service(standin: EkosStandIn, bus: KStarsBus) -> None:
    standin.camera = "Main Cam"
    assert bus.get_property(SCHEDULER_PATH, SCHEDULER, "status") == SchedulerStatus.IDLE
    assert bus.get_property(CAPTURE_PATH, CAPTURE, "camera") == "Main Cam"
    assert bus.call(SCHEDULER_PATH, SCHEDULER, "loadScheduler", "s", "/night.esl") is True
    bus.call(SCHEDULER_PATH, SCHEDULER, "start")
    assert bus.get_property(SCHEDULER_PATH, SCHEDULER, "status") == SchedulerStatus.RUNNING
    bus.set_property(CAPTURE_PATH, CAPTURE, "opticalTrain", "s", "Primary")  # taken, no error
    assert standin.calls == ["Scheduler.loadScheduler", "Scheduler.start"]


@needs_dbus
def test_objects_are_found_by_introspection(bus: KStarsBus) -> None:
    assert bus.has_object(KSTARS_PATH) and bus.has_object(EKOS_PATH) and bus.has_object(SCHEDULER_PATH)
    assert 'node name="Scheduler"' in bus.introspect(EKOS_PATH)
    assert not bus.has_object("/KStars/Ekos/Guide")  # not there (yet)
    assert not bus.has_object("/KStars/Ekos/Guide/Deeper")  # its parent is not there either


@needs_dbus
def test_a_call_without_a_reply_times_out_naming_the_method(standin: EkosStandIn, bus: KStarsBus) -> None:
    standin.unanswered = {"Scheduler.stop"}
    started = time.monotonic()
    with pytest.raises(
        DBusTimeoutError, match=r"org\.kde\.kstars\.Ekos\.Scheduler\.stop on /KStars/Ekos/Scheduler.*1 s"
    ):
        bus.call(SCHEDULER_PATH, SCHEDULER, "stop", timeout=1)
    assert time.monotonic() - started < 5
    # The client opens a fresh connection and goes on.
    assert bus.get_property(SCHEDULER_PATH, SCHEDULER, "status") == SchedulerStatus.IDLE


@needs_dbus
def test_a_missing_object_is_named(bus: KStarsBus) -> None:
    with pytest.raises(
        DBusCallError, match=r"Ekos\.Focus\.start on /KStars/Ekos/Focus .*no object /KStars/Ekos/Focus"
    ) as e:
        bus.call("/KStars/Ekos/Focus", "org.kde.kstars.Ekos.Focus", "start")
    assert e.value.name == "org.freedesktop.DBus.Error.UnknownObject"


@needs_dbus
def test_kstars_not_on_the_bus_is_said(standin: EkosStandIn) -> None:
    with (
        KStarsBus(standin.address, timeout=2, service="org.kde.kstars.nobody") as bus,
        pytest.raises(
            DBusCallError, match=r"org\.kde\.kstars\.location on /KStars .*org\.kde\.kstars\.nobody is not on the bus"
        ),
    ):
        bus.call(KSTARS_PATH, KSTARS, "location")


def test_no_bus_and_no_address_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bus = KStarsBus(f"unix:path={tmp_path / 'no-bus'}", timeout=1)
    with pytest.raises(
        DBusError, match=r"D-Bus call org\.kde\.kstars\.Ekos\.start on /KStars/Ekos failed: cannot connect"
    ):
        bus.call(EKOS_PATH, "org.kde.kstars.Ekos", "start")
    with pytest.raises(DBusError, match="cannot connect to the D-Bus at nonsense"):
        open_connection("nonsense", 1)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    with pytest.raises(DBusError, match=r"set mcp\.ekos\.bus_address or DBUS_SESSION_BUS_ADDRESS"):
        session_address(None, "mcp.ekos.bus_address")
    assert session_address("unix:path=/x") == "unix:path=/x"
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/y")
    assert session_address("") == "unix:path=/y"


@needs_dbus
def test_arguments_that_do_not_fit_the_signature_are_an_error_and_the_connection_stays(bus: KStarsBus) -> None:
    with pytest.raises(DBusError, match="do not fit 's'"):
        bus.call(SCHEDULER_PATH, SCHEDULER, "loadScheduler", "s", 42)
    assert bus.call(SCHEDULER_PATH, SCHEDULER, "loadScheduler", "s", "/night.esl") is True


def test_wait_until_names_what_it_waited_for() -> None:
    answers = iter([DBusError("not yet"), False, True])

    def ready() -> bool:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait_until(ready, 5, "ready", interval=0.01, retry_on=(DBusError,))
    with pytest.raises(WaitTimeoutError, match=r"the scheduler stopped not reached within 0\.1 s") as e:
        wait_until(lambda: False, 0.1, "the scheduler stopped", interval=0.02)
    assert (e.value.what, e.value.timeout) == ("the scheduler stopped", 0.1)
    with pytest.raises(DBusError, match="boom"):  # not in retry_on: it propagates at once
        wait_until(lambda: (_ for _ in ()).throw(DBusError("boom")), 5, "x")


def user_database(path: Path) -> Path:
    """The two tables of KStars 3.6's user database that an Ekos profile lives in (their columns in use)."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE profile (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, host TEXT, port INTEGER,"
            " city TEXT, province TEXT, country TEXT, indiwebmanagerport INTEGER DEFAULT NULL,"
            " autoconnect INTEGER DEFAULT 1, portselector INTEGER DEFAULT 0, guidertype INTEGER DEFAULT 0,"
            " remotedrivers TEXT DEFAULT NULL)"
        )
        db.execute(
            "CREATE TABLE driver (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL, role TEXT NOT NULL,"
            " profile INTEGER NOT NULL)"
        )
    return path


def test_a_profile_is_written_once_and_follows_the_server(tmp_path: Path) -> None:
    database = user_database(tmp_path / "userdb.sqlite")
    write_profile(database, "OBSY test", ("Telescope Simulator", "CCD Simulator", "RollOff Simulator"))
    write_profile(database, "OBSY test", ("Telescope Simulator",), ("127.0.0.1", 7700))
    write_profile(database, "OBSY demo", {"CCD Simulator": "CCD"}, ("localhost", 7624))
    with sqlite3.connect(database) as db:
        profiles = db.execute("SELECT name, host, port, autoconnect, portselector FROM profile ORDER BY id").fetchall()
        drivers = db.execute(
            "SELECT p.name, d.label, d.role FROM driver d JOIN profile p ON p.id = d.profile ORDER BY d.id"
        ).fetchall()
    assert profiles == [("OBSY test", "127.0.0.1", 7700, 1, 0), ("OBSY demo", "localhost", 7624, 1, 0)]
    assert drivers == [
        ("OBSY test", "Telescope Simulator", "Mount"),
        ("OBSY test", "CCD Simulator", "CCD"),
        ("OBSY test", "RollOff Simulator", "Aux1"),
        ("OBSY demo", "CCD Simulator", "CCD"),
    ]
    assert driver_role("Focuser Simulator") == "Focuser"


def test_a_profile_without_kstars_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no KStars user database"):
        write_profile(tmp_path / "missing.sqlite", "OBSY test", ("CCD Simulator",))
    (tmp_path / "empty.sqlite").touch()
    with pytest.raises(ProfileError, match=r"'OBSY test' could not be written into .*empty\.sqlite: no such table"):
        write_profile(tmp_path / "empty.sqlite", "OBSY test", ("CCD Simulator",))


def test_settings_keep_the_other_entries(tmp_path: Path) -> None:
    path = kstarsrc(tmp_path / "home")
    write_settings(path, "DarkLibrary", {"shutterfulCCDs": "CCD Simulator"})
    write_settings(path, "Location", {"CityName": "Vienna", "Latitude": 48.2})
    write_settings(path, "DarkLibrary", {"DarkLibraryDuration": 30})
    rc = configparser.ConfigParser(interpolation=None)
    rc.optionxform = str  # type: ignore[assignment,method-assign]
    rc.read(path)
    assert dict(rc["DarkLibrary"]) == {"shutterfulCCDs": "CCD Simulator", "DarkLibraryDuration": "30"}
    assert (rc["Location"]["CityName"], rc.getfloat("Location", "Latitude")) == ("Vienna", 48.2)
    assert "shutterfulCCDs=CCD Simulator" in path.read_text()  # KConfig style, no spaces around '='
