"""An Ekos profile written into KStars' user database (``userdb.sqlite``, its ``profile`` and
``driver`` tables, KStars 3.6), before Ekos is opened: Ekos reads its profiles when it opens.

With ``indi_server`` the profile is a remote one (host and port set): Ekos connects to that
indiserver and starts none of its own; the drivers then only say which roles the profile has.
Without it, Ekos starts a local indiserver with those drivers. (KStars makes one profile,
"Simulators", on its first run; with exactly one profile Ekos opens a modal wizard that blocks a
headless KStars, so a second profile is also what keeps it usable.)

A new profile may come with its optical trains (the ``opticaltrains`` table): KStars makes trains
itself only for a profile that has none, once, from the devices it knows at that moment, so a
camera that registers a moment later (an allsky camera on the same INDI server) gets none, and
Ekos' capture module can never be put on it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

#: The devices of an optical train (columns of KStars' ``opticaltrains`` table); "--" is none.
TRAIN_DEVICES = ("mount", "dustcap", "lightbox", "rotator", "focuser", "filterwheel", "camera", "guider")

INSERT_TRAIN = (
    f"INSERT INTO opticaltrains (profile, name, reducer, {', '.join(TRAIN_DEVICES)})"
    f" VALUES (?, ?, 1, {', '.join('?' * len(TRAIN_DEVICES))})"
)

#: Ekos roles by a word of the driver's label ("Telescope Simulator" -> Mount); others are Aux1.
ROLES = {"Telescope": "Mount", "CCD": "CCD", "Focuser": "Focuser", "Filter": "Filter", "Weather": "Weather"}


class ProfileError(Exception):
    """The profile could not be written (the file is not KStars' user database, or is locked)."""


def user_db_path(data_home: Path) -> Path:
    """KStars' user database under ``data_home`` (its ``XDG_DATA_HOME``); KStars makes it on its first run."""
    return Path(data_home) / "kstars" / "userdb.sqlite"


def driver_role(label: str) -> str:
    """The Ekos role of the driver with ``label`` ("CCD Simulator" -> "CCD")."""
    return next((role for word, role in ROLES.items() if word in label), "Aux1")


def write_profile(
    database: Path,
    name: str,
    drivers: Iterable[str] | Mapping[str, str],
    indi_server: tuple[str, int] | None = None,
    trains: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """The Ekos profile ``name`` with ``drivers`` (labels of KStars' driver list, e.g. "CCD Simulator";
    roles by :func:`driver_role`, or a mapping label -> role), on ``indi_server`` (host, port) if given,
    and ``trains``: its optical trains, name -> {device kind of :data:`TRAIN_DEVICES`: INDI device name},
    e.g. ``{"Main": {"mount": "Telescope Simulator", "camera": "SkySim Camera"}}``.

    A profile of that name already there keeps its drivers and trains and takes the server given
    (the INDI port may differ from one start to the next)."""
    unknown = sorted({kind for devices in (trains or {}).values() for kind in devices} - set(TRAIN_DEVICES))
    if unknown:
        raise ProfileError(f"optical train devices {unknown} are not among {list(TRAIN_DEVICES)}")
    roles = dict(drivers) if isinstance(drivers, Mapping) else {label: driver_role(label) for label in drivers}
    host, port = indi_server or (None, None)
    if not Path(database).is_file():
        raise ProfileError(f"no KStars user database {database} (KStars makes it on its first start)")
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection, connection as db:
            row = db.execute("SELECT id FROM profile WHERE name = ?", (name,)).fetchone()
            if row is not None:
                db.execute("UPDATE profile SET host = ?, port = ? WHERE id = ?", (host, port, row[0]))
                return
            cursor = db.execute(
                "INSERT INTO profile (name, host, port, autoconnect, portselector) VALUES (?, ?, ?, 1, 0)",
                (name, host, port),
            )
            for label, role in roles.items():
                db.execute(
                    "INSERT INTO driver (label, role, profile) VALUES (?, ?, ?)", (label, role, cursor.lastrowid)
                )
            db.executemany(
                INSERT_TRAIN,
                [
                    (cursor.lastrowid, train, *(devices.get(kind, "--") for kind in TRAIN_DEVICES))
                    for train, devices in (trains or {}).items()
                ],
            )
    except sqlite3.Error as error:
        raise ProfileError(f"the Ekos profile {name!r} could not be written into {database}: {error}") from error
