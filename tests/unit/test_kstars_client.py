"""The shared KStars client's parts that need no bus (obsy.kstars): errors without a bus or an
address, waits, the Ekos profile writer and the settings writer. Against a real dbus-daemon:
tests/integration/test_kstars_dbus.py."""

from __future__ import annotations

import configparser
import sqlite3
from pathlib import Path

import pytest

from obsy.kstars.dbus import DBusError, KStarsBus, WaitTimeoutError, open_connection, session_address, wait_until
from obsy.kstars.paths import EKOS_PATH
from obsy.kstars.profile import ProfileError, driver_role, write_profile
from obsy.kstars.settings import kstarsrc, write_settings


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
    """The three tables of KStars 3.6's user database that an Ekos profile lives in (as KStars makes them)."""
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
        db.execute(
            "CREATE TABLE opticaltrains (id INTEGER DEFAULT NULL PRIMARY KEY AUTOINCREMENT,"
            " profile INTEGER DEFAULT NULL, name TEXT DEFAULT NULL, mount TEXT DEFAULT NULL, dustcap TEXT DEFAULT NULL,"
            " lightbox TEXT DEFAULT NULL,"
            " scope TEXT DEFAULT NULL, reducer REAL DEFAULT 1, rotator TEXT DEFAULT NULL, focuser TEXT DEFAULT NULL,"
            " filterwheel TEXT DEFAULT NULL, camera TEXT DEFAULT NULL, guider TEXT DEFAULT NULL)"
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


def test_a_new_profile_comes_with_its_optical_trains_and_keeps_them(tmp_path: Path) -> None:
    database = user_database(tmp_path / "userdb.sqlite")
    trains = {
        "Allsky": {"camera": "SkySim Allsky"},
        "Main": {"mount": "Telescope Simulator", "camera": "SkySim Camera"},
    }
    write_profile(database, "OBSY test", ("Telescope Simulator", "CCD Simulator"), ("127.0.0.1", 7700), trains=trains)
    write_profile(database, "OBSY test", ("Telescope Simulator",), ("127.0.0.1", 7701), trains={"Other": {}})
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT p.name, t.name, t.mount, t.camera, t.filterwheel, t.reducer FROM opticaltrains t"
            " JOIN profile p ON p.id = t.profile ORDER BY t.id"
        ).fetchall()
    assert rows == [
        ("OBSY test", "Allsky", "--", "SkySim Allsky", "--", 1.0),
        ("OBSY test", "Main", "Telescope Simulator", "SkySim Camera", "--", 1.0),
    ]
    with pytest.raises(ProfileError, match=r"optical train devices \['cmaera'\] are not among"):
        write_profile(database, "OBSY other", ("CCD Simulator",), trains={"Main": {"cmaera": "SkySim Camera"}})


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


def test_settings_keep_kstars_own_keys_with_a_colon(tmp_path: Path) -> None:
    """KStars writes keys with ':' in them; a second start of the demo rewrites that file (it crashed on it)."""
    path = kstarsrc(tmp_path / "home")
    path.parent.mkdir(parents=True)
    path.write_text("[MainWindow]\n800x600 screen: Height=768\n800x600 screen: Width=1024\nState=AAAA/wAA==\n")
    write_settings(path, "Location", {"CityName": "Vienna"})
    text = path.read_text()
    assert "800x600 screen: Height=768\n" in text and "800x600 screen: Width=1024\n" in text
    assert "State=AAAA/wAA==\n" in text and "CityName=Vienna\n" in text
