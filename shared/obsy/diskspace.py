"""The free space of the folders a service writes to: measured, judged, and told once per change.

Each service that writes data names its folders (:meth:`obsy.runner.Service.disk_paths`); the
runner measures them every ``disk.interval`` seconds with :func:`shutil.disk_usage`, puts the
figures in the service's health, publishes a ``disk_warning`` / ``disk_critical`` / ``disk_ok``
event when a folder's level changes (never on every measurement), and tells the service its worst
level (:meth:`obsy.runner.Service.on_disk_level`) so it can stop writing what is optional.

Why in each service and not one watcher: services may run on different hosts (each with its own
disks), and only the writer can hold back its own writes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsy.config import DiskConfig
from obsy.messages import Event, EventKind

GB = 1e9
OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
#: Levels from best to worst (unknown: the folder cannot be measured; it is not judged).
ORDER = (OK, WARNING, CRITICAL)
EVENT_LEVELS = {OK: "info", WARNING: "warning", CRITICAL: "error"}
EVENT_KINDS = {OK: EventKind.DISK_OK, WARNING: EventKind.DISK_WARNING, CRITICAL: EventKind.DISK_CRITICAL}


@dataclass(frozen=True)
class Usage:
    path: str
    total_gb: float
    free_gb: float
    free_percent: float


def measure(path: Path, usage: Callable[[Path], Any] = shutil.disk_usage) -> Usage:
    """Free space of the file system holding ``path`` (its nearest existing folder, for one not made yet)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    total, _used, free = usage(probe)
    return Usage(str(path), total / GB, free / GB, 100.0 * free / total if total else 0.0)


def _below(usage: Usage, free_gb: float, free_percent: float, margin: float) -> bool:
    """True when free space is below either limit (0 = off), each raised by ``margin`` (leaving a level)."""
    factor = 1.0 + margin
    return (free_gb > 0 and usage.free_gb < free_gb * factor) or (
        free_percent > 0 and usage.free_percent < free_percent * factor
    )


def level_of(usage: Usage, settings: DiskConfig, current: str = OK) -> str:
    """``ok``, ``warning`` or ``critical``; a folder at a level stays there until it is clear of its limits
    by ``recovery_margin``."""
    margin = settings.recovery_margin
    held = ORDER.index(current) if current in ORDER else 0
    if _below(usage, settings.critical_free_gb, settings.critical_free_percent, margin if held >= 2 else 0.0):
        return CRITICAL
    if _below(usage, settings.warning_free_gb, settings.warning_free_percent, margin if held >= 1 else 0.0):
        return WARNING
    return OK


class DiskWatch:
    """The named folders of one service, their last figures and levels."""

    def __init__(
        self,
        service: str,
        paths: dict[str, Path],
        settings: DiskConfig,
        *,
        usage: Callable[[Path], Any] = shutil.disk_usage,
    ) -> None:
        self.service = service
        self.paths = paths
        self.settings = settings
        self.usage = usage
        self.figures: dict[str, dict[str, Any]] = {}
        self.levels: dict[str, str] = {}

    @property
    def level(self) -> str:
        """The worst level of the folders measured (``ok`` before the first measurement)."""
        known = [level for level in self.levels.values() if level in ORDER]
        return max(known, key=ORDER.index, default=OK)

    def check(self) -> list[Event]:
        """Measure every folder; an event for each whose level changed (the first measurement: only a problem)."""
        events = []
        for name, path in self.paths.items():
            before = self.levels.get(name)
            try:
                usage = measure(path, self.usage)
            except OSError as exc:
                self.levels[name] = UNKNOWN
                self.figures[name] = {"path": str(path), "level": UNKNOWN, "error": f"{type(exc).__name__}: {exc}"}
                continue
            level = level_of(usage, self.settings, before or OK)
            self.levels[name] = level
            self.figures[name] = {
                "path": usage.path,
                "free_gb": round(usage.free_gb, 2),
                "total_gb": round(usage.total_gb, 2),
                "free_percent": round(usage.free_percent, 2),
                "level": level,
            }
            if level != (before if before in ORDER else OK):
                events.append(self._event(name, usage, level, before))
        return events

    def _event(self, name: str, usage: Usage, level: str, before: str | None) -> Event:
        s = self.settings
        limits = {
            WARNING: f"the warning level ({s.warning_free_gb:g} GB or {s.warning_free_percent:g} %)",
            CRITICAL: f"the critical level ({s.critical_free_gb:g} GB or {s.critical_free_percent:g} %)",
        }
        free = f"{usage.free_gb:.1f} GB free ({usage.free_percent:.1f} %) of {usage.total_gb:.0f} GB"
        if level == OK:
            message = f"{name} ({usage.path}): {free} again"
        else:
            message = f"{name} ({usage.path}): {free}, below {limits[level]}"
        return Event(
            service=self.service,
            kind=EVENT_KINDS[level],
            level=EVENT_LEVELS[level],  # type: ignore[arg-type]
            message=message,
            data={
                "name": name,
                "path": usage.path,
                "free_gb": round(usage.free_gb, 2),
                "free_percent": round(usage.free_percent, 2),
                "level": level,
                "previous": before if before in ORDER else None,
            },
        )

    def health(self) -> dict[str, Any]:
        """For the service's health: the worst level, the least free GB (Home Assistant's sensor), each folder."""
        free = [figures["free_gb"] for figures in self.figures.values() if "free_gb" in figures]
        return {"level": self.level, "free_gb": min(free) if free else None, "paths": dict(self.figures)}
