"""KStars 3.6 on D-Bus: its service name, the object paths and interfaces of KStars and the Ekos
modules, and the values of the status properties OBSY reads."""

from __future__ import annotations

from enum import IntEnum

#: The bus name KStars owns on the session bus.
SERVICE = "org.kde.kstars"

KSTARS_PATH = "/KStars"
#: KStars' own interface at /KStars (location, setGeoLocation, setLocalTime...).
KSTARS = SERVICE
#: KStars' main window at /KStars: its actions ("ekos" once KStars has loaded) and activateAction.
MAIN_WINDOW = "org.kde.KMainWindow"

CLOCK_PATH = "/KStars/SimClock"
CLOCK = "org.kde.kstars.SimClock"

EKOS_PATH = "/KStars/Ekos"
EKOS = "org.kde.kstars.Ekos"
SCHEDULER_PATH = "/KStars/Ekos/Scheduler"
SCHEDULER = "org.kde.kstars.Ekos.Scheduler"
CAPTURE_PATH = "/KStars/Ekos/Capture"
CAPTURE = "org.kde.kstars.Ekos.Capture"

PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"


class Communication(IntEnum):
    """Ekos' CommunicationStatus (its ``ekosStatus`` and ``indiStatus`` properties)."""

    IDLE = 0
    PENDING = 1
    SUCCESS = 2
    ERROR = 3


class SchedulerStatus(IntEnum):
    """The Ekos scheduler's ``status`` property."""

    IDLE = 0
    STARTUP = 1
    RUNNING = 2
    PAUSED = 3
    SHUTDOWN = 4
    ABORTED = 5
    LOADING = 6
