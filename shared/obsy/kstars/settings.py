"""KStars' files in a home of its own: the settings it reads at start (``kstarsrc``) and the
environment that runs it headless there.

KStars runs with ``QT_QPA_PLATFORM=offscreen`` and HOME and the XDG directories in ``home``, so
it starts from a clean configuration and never touches the user's (the local demo and the
tests run it so).
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def headless_env(home: Path, runtime_dir: Path) -> dict[str, str]:
    """The environment for a headless KStars in ``home`` (made if missing), its runtime files in
    ``runtime_dir``; the caller adds the bus address and logging rules it needs."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(runtime_dir),
        "QT_QPA_PLATFORM": "offscreen",
        "LC_ALL": "C.UTF-8",
    }


def kstarsrc(home: Path) -> Path:
    """KStars' settings file in ``home`` (as :func:`headless_env` sets XDG_CONFIG_HOME)."""
    return Path(home) / ".config" / "kstarsrc"


def write_settings(path: Path, group: str, values: Mapping[str, Any]) -> None:
    """Entries of one group of KStars' settings file ``path`` (read at start), the other entries kept.

    E.g. ``write_settings(kstarsrc(home), "DarkLibrary", {"shutterfulCCDs": "CCD Simulator"})``: the
    cameras KStars knows to have a shutter (else Ekos asks in a dialog before the first dark frame).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # KConfig separates key and value with '=' only: KStars' own keys hold ':' ("800x600 screen: Height"),
    # which configparser would otherwise split on, reading KStars' file of a previous run as duplicate keys.
    rc = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    rc.optionxform = str  # KConfig keys are case-sensitive
    rc.read(path)
    if not rc.has_section(group):
        rc.add_section(group)
    for key, value in values.items():
        rc.set(group, key, str(value))
    with path.open("w") as handle:
        rc.write(handle, space_around_delimiters=False)
