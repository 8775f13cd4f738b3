"""KStars/Ekos for the demo: headless, on a private D-Bus session, using the demo's indiserver.

The launcher runs ``dbus-daemon`` on a socket in the run directory (so the address is
known before anything starts and goes into the MCP's config) and KStars with
``QT_QPA_PLATFORM=offscreen``, its HOME and XDG directories in the run directory (a clean
configuration, never the user's). Once KStars is up, :func:`prepare_ekos` adds an Ekos
profile that connects to a relay indiserver (a remote profile: host and port set, so Ekos
starts no indiserver of its own) and opens Ekos; the MCP then starts that profile and
tonight's schedule through D-Bus, as it would on an observatory. The relay (indiserver's
``device@host:port`` chaining) offers Ekos only the mount and the main camera: given the
whole server, Ekos would also take the roof and the weather station and park the roof on
its own, fighting the MCP. The profile names KStars' own simulator drivers for its roles (a
remote profile starts nothing: Ekos takes the devices the server has, here the sky
simulator's camera). KStars is told which camera has a shutter (its ``[DarkLibrary]``
settings), else Ekos would ask in a dialog before the first dark frame, and wait.

KStars runs ``pkill indiserver`` when it exits: the launcher's indiserver runs under
another process name, so it survives. With one profile only, Ekos opens a modal wizard
that blocks headless; the demo's profile is the second one (KStars makes "Simulators").
"""

from __future__ import annotations

import configparser
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from obsy.config import SiteConfig

log = logging.getLogger("obsy_local.demo.kstars")

PROFILE = "OBSY demo"
#: The demo profile's drivers (labels of KStars' driver list) and their roles. The profile is a
#: remote one: these only say which roles it has; the devices are those the relay offers.
PROFILE_DRIVERS = {"Telescope Simulator": "Mount", "CCD Simulator": "CCD"}
KSTARS = "org.kde.kstars"


def kstars_available() -> str | None:
    """Why KStars cannot run here, or None when it can."""
    missing = [name for name in ("kstars", "dbus-daemon") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian packages kstars, dbus)"
    try:
        import jeepney  # noqa: F401  (the D-Bus client the MCP uses too)
    except ImportError:
        return "the jeepney D-Bus library is not installed (it comes with obsy-mcp)"
    return None


def bus_address(run_dir: Path) -> str:
    return f"unix:path={run_dir / 'kstars-bus'}"


def dbus_argv(run_dir: Path) -> list[str]:
    return ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={bus_address(run_dir)}"]


def kstars_env(run_dir: Path) -> dict[str, str]:
    home = run_dir / "kstars-home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(run_dir),
        "QT_QPA_PLATFORM": "offscreen",
        "DBUS_SESSION_BUS_ADDRESS": bus_address(run_dir),
        "LC_ALL": "C.UTF-8",
    }


def write_settings(run_dir: Path, group: str, values: dict[str, Any]) -> None:
    """Entries of one group of KStars' settings (``kstarsrc``, read at start), others kept."""
    config_dir = Path(kstars_env(run_dir)["XDG_CONFIG_HOME"])
    config_dir.mkdir(parents=True, exist_ok=True)
    rc = configparser.ConfigParser(interpolation=None)
    rc.optionxform = str  # KConfig keys are case-sensitive
    path = config_dir / "kstarsrc"
    rc.read(path)
    if not rc.has_section(group):
        rc.add_section(group)
    for key, value in values.items():
        rc.set(group, key, str(value))
    with path.open("w") as handle:
        rc.write(handle, space_around_delimiters=False)


def write_location(run_dir: Path, site: SiteConfig) -> None:
    """KStars' location: the demo's site, so Ekos judges twilight and altitude where the demo
    is, and sets that location on the mount."""
    zone = datetime.now(UTC).astimezone(ZoneInfo(site.timezone)).utcoffset()
    hours = zone.total_seconds() / 3600 if zone is not None else 0.0
    values = {"CityName": site.name, "ProvinceName": "", "CountryName": "OBSY", "Longitude": site.longitude,
              "Latitude": site.latitude, "Elevation": site.elevation, "TimeZone": hours, "DST": "--"}  # fmt: skip
    write_settings(run_dir, "Location", values)


def write_shutterful_camera(run_dir: Path, camera: str) -> None:
    """Tell KStars the camera has a shutter: Ekos then takes darks and bias without asking."""
    write_settings(run_dir, "DarkLibrary", {"shutterfulCCDs": camera})


class _Bus:
    """Just enough D-Bus (jeepney) to wait for KStars and open Ekos."""

    def __init__(self, address: str) -> None:
        from jeepney.io.blocking import open_dbus_connection

        self.connection = open_dbus_connection(bus=address)

    def call(self, path: str, interface: str, method: str, signature: str = "", *args: Any) -> Any:
        from jeepney import DBusAddress, new_method_call

        target = DBusAddress(path, bus_name=KSTARS, interface=interface)
        message = new_method_call(target, method, signature or None, args if signature else None)
        reply = self.connection.send_and_get_reply(message, timeout=30)
        if reply.header.message_type.name == "error":
            raise RuntimeError(f"{interface}.{method} on {path}: {reply.body}")
        return reply.body[0] if len(reply.body) == 1 else reply.body

    def close(self) -> None:
        self.connection.close()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (OSError, RuntimeError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"KStars: {what} within {timeout:.0f} s")
        time.sleep(1.0)


def add_profile(user_db: Path, indi_host: str, indi_port: int) -> None:
    """The demo's Ekos profile: a mount and a camera, on the demo's (relay) indiserver."""
    with sqlite3.connect(user_db, timeout=10) as db:
        row = db.execute("SELECT id FROM profile WHERE name = ?", (PROFILE,)).fetchone()
        if row is not None:
            db.execute("UPDATE profile SET host = ?, port = ? WHERE id = ?", (indi_host, indi_port, row[0]))
            return
        cursor = db.execute(
            "INSERT INTO profile (name, host, port, autoconnect, portselector) VALUES (?, ?, ?, 1, 0)",
            (PROFILE, indi_host, indi_port),
        )
        for label, role in PROFILE_DRIVERS.items():
            db.execute("INSERT INTO driver (label, role, profile) VALUES (?, ?, ?)", (label, role, cursor.lastrowid))


def prepare_ekos(run_dir: Path, indi_host: str, indi_port: int, timeout: float = 300.0) -> None:
    """Wait for KStars on its bus, add the demo's profile and open Ekos (after every KStars start)."""
    bus: _Bus | None = None
    deadline = time.monotonic() + timeout

    def connected() -> bool:
        nonlocal bus
        if bus is None:
            bus = _Bus(bus_address(run_dir))
        return "ekos" in bus.call("/KStars", "org.kde.KMainWindow", "actions")

    try:
        _wait(connected, timeout, "did not finish loading")
        user_db = Path(kstars_env(run_dir)["XDG_DATA_HOME"]) / "kstars" / "userdb.sqlite"
        _wait(user_db.exists, max(deadline - time.monotonic(), 10), f"no user database {user_db}")
        add_profile(user_db, indi_host, indi_port)
        assert bus is not None
        bus.call("/KStars", "org.kde.KMainWindow", "activateAction", "s", "ekos")
        _wait(
            lambda: PROFILE in bus.call("/KStars/Ekos", "org.kde.kstars.Ekos", "getProfiles"),
            max(deadline - time.monotonic(), 10),
            f"Ekos did not list the profile {PROFILE!r}",
        )
        log.info("KStars is up; Ekos is open with the profile %r on %s:%s", PROFILE, indi_host, indi_port)
    except (TimeoutError, OSError, RuntimeError, sqlite3.Error) as error:
        log.error("KStars/Ekos not ready: %s (the MCP reports Ekos unavailable; the roof still works)", error)
    finally:
        if bus is not None:
            bus.close()
