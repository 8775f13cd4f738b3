"""KStars/Ekos for the demo: headless, on a private D-Bus session, using the demo's indiserver.

The launcher runs ``dbus-daemon`` on a socket in the run directory (so the address is
known before anything starts and goes into the MCP's config) and KStars with
``QT_QPA_PLATFORM=offscreen``, its HOME and XDG directories in the run directory (a clean
configuration, never the user's). Once KStars is up, :func:`prepare_ekos` adds an Ekos
profile that connects to a relay indiserver (a remote profile: host and port set, so Ekos
starts no indiserver of its own) and opens Ekos; the MCP then starts that profile and
tonight's schedule through D-Bus, as it would on an observatory. The relay (indiserver's
``device@host:port`` chaining) offers Ekos only the mount, the main camera and its filter wheel: given the
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

import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from obsy.config import SiteConfig
from obsy.kstars.dbus import DBusError, KStarsBus, wait_until
from obsy.kstars.paths import EKOS, EKOS_PATH, KSTARS_PATH, MAIN_WINDOW
from obsy.kstars.profile import ProfileError, user_db_path, write_profile
from obsy.kstars.settings import headless_env, kstarsrc
from obsy.kstars.settings import write_settings as write_kstarsrc

log = logging.getLogger("obsy_local.demo.kstars")

PROFILE = "OBSY demo"
#: The demo profile's drivers (labels of KStars' driver list) and their roles. The profile is a
#: remote one: these only say which roles it has; the devices are those the relay offers.
PROFILE_DRIVERS = {"Telescope Simulator": "Mount", "CCD Simulator": "CCD", "Filter Simulator": "Filter"}


def kstars_available() -> str | None:
    """Why KStars cannot run here, or None when it can."""
    missing = [name for name in ("kstars", "dbus-daemon") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian packages kstars, dbus)"
    return None


def bus_address(run_dir: Path) -> str:
    return f"unix:path={run_dir / 'kstars-bus'}"


def dbus_argv(run_dir: Path) -> list[str]:
    return ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={bus_address(run_dir)}"]


def kstars_home(run_dir: Path) -> Path:
    return run_dir / "kstars-home"


def kstars_env(run_dir: Path) -> dict[str, str]:
    return {**headless_env(kstars_home(run_dir), run_dir), "DBUS_SESSION_BUS_ADDRESS": bus_address(run_dir)}


def write_settings(run_dir: Path, group: str, values: dict[str, Any]) -> None:
    """Entries of one group of KStars' settings (``kstarsrc``, read at start), others kept."""
    write_kstarsrc(kstarsrc(kstars_home(run_dir)), group, values)


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


def add_profile(user_db: Path, indi_host: str, indi_port: int) -> None:
    """The demo's Ekos profile: a mount and a camera, on the demo's (relay) indiserver."""
    write_profile(user_db, PROFILE, PROFILE_DRIVERS, (indi_host, indi_port))


def prepare_ekos(run_dir: Path, indi_host: str, indi_port: int, timeout: float = 300.0) -> None:
    """Wait for KStars on its bus, add the demo's profile and open Ekos (after every KStars start)."""
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(deadline - time.monotonic(), 10)

    with KStarsBus(bus_address(run_dir)) as bus:

        def loaded() -> bool:  # /KStars is on the bus long before KStars has loaded; then it lists "ekos"
            return "ekos" in bus.call(KSTARS_PATH, MAIN_WINDOW, "actions")

        try:
            wait_until(loaded, timeout, "KStars loaded", interval=1.0, retry_on=(DBusError,))
            user_db = user_db_path(Path(kstars_env(run_dir)["XDG_DATA_HOME"]))
            wait_until(user_db.exists, left(), f"the user database {user_db}", interval=1.0)
            add_profile(user_db, indi_host, indi_port)
            bus.call(KSTARS_PATH, MAIN_WINDOW, "activateAction", "s", "ekos")
            wait_until(
                lambda: PROFILE in bus.call(EKOS_PATH, EKOS, "getProfiles"),
                left(),
                f"Ekos listing the profile {PROFILE!r}",
                interval=1.0,
                retry_on=(DBusError,),
            )
            log.info("KStars is up; Ekos is open with the profile %r on %s:%s", PROFILE, indi_host, indi_port)
        except (DBusError, ProfileError) as error:  # a WaitTimeoutError is a DBusError
            log.error("KStars/Ekos not ready: %s (the MCP reports Ekos unavailable; the roof still works)", error)
