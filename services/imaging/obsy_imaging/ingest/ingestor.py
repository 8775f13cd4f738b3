"""One file through inspection into the repository, or into the quarantine with its reason."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from obsy import astro
from obsy.config import SiteConfig
from obsy_imaging.headers.normalise import Site
from obsy_imaging.ingest.inspect import DEFAULT_ACCEPTED_BITPIX, FrameRejectedError, InspectedFrame, inspect_frame
from obsy_imaging.repository.models import Frame, QuarantinedFile
from obsy_imaging.repository.placement import StorageFullError
from obsy_imaging.repository.store import Repository

log = logging.getLogger("obsy.imaging.ingest")


class Outcome(StrEnum):
    KNOWN = "known"  # this path, size and modification time were taken before: not read again
    REGISTERED = "registered"
    DUPLICATE = "duplicate"  # the same bytes are in the repository already
    QUARANTINED = "quarantined"
    ALREADY_QUARANTINED = "already_quarantined"
    WAITING = "waiting"  # may still be written: try again later
    STORAGE_FULL = "storage_full"  # nothing lost: try again when there is space
    VANISHED = "vanished"  # deleted (or renamed) before it could be read


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    path: Path
    frame: Frame | None = None
    inspected: InspectedFrame | None = None
    quarantined: QuarantinedFile | None = None
    problem: str | None = None
    reason: str | None = None


class Ingestor:
    def __init__(
        self,
        repository: Repository,
        site: SiteConfig,
        *,
        accepted_bitpix: tuple[int, ...] = DEFAULT_ACCEPTED_BITPIX,
    ) -> None:
        self.repository = repository
        self.site = site
        self.header_site = Site(site.latitude, site.longitude, site.elevation)
        self.accepted_bitpix = accepted_bitpix

    def ingest(self, path: Path, route: str, *, final: bool) -> Result:  # noqa: PLR0911 - one return per outcome
        """Register ``path``; ``final`` quarantines a file that looks unfinished instead of waiting."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return Result(Outcome.VANISHED, path)
        except OSError as exc:
            return self._quarantine(
                path, "unreadable", f"cannot stat {path.name}: {exc.strerror}", route=route, size=0, mtime_ns=0
            )
        if self.repository.seen(path, stat.st_size, stat.st_mtime_ns):
            # A restart scans capture folders that may hold months of frames: no hashing them again.
            return Result(Outcome.KNOWN, path)
        try:
            frame = inspect_frame(path, site=self.header_site, accepted_bitpix=self.accepted_bitpix)
        except FrameRejectedError as rejected:
            if rejected.problem.may_complete and not final:
                return Result(Outcome.WAITING, path, problem=rejected.problem.value, reason=rejected.reason)
            if not path.exists():
                return Result(Outcome.VANISHED, path)
            return self._quarantine(
                path,
                rejected.problem.value,
                rejected.reason,
                route=route,
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
            )
        assert frame.header.date_obs is not None  # normalise_header requires it
        night = astro.night_of(self.site, frame.header.date_obs).isoformat()
        try:
            registered = self.repository.register(frame, night, route)
        except StorageFullError as exc:
            log.error("%s waits: %s", path, exc, extra={"event": "storage_full"})
            return Result(Outcome.STORAGE_FULL, path, inspected=frame, problem="storage_full", reason=str(exc))
        except FileNotFoundError:
            return Result(Outcome.VANISHED, path)
        outcome = Outcome.REGISTERED if registered.created else Outcome.DUPLICATE
        return Result(outcome, path, frame=registered.frame, inspected=frame)

    def _quarantine(self, path: Path, problem: str, reason: str, *, route: str, size: int, mtime_ns: int) -> Result:
        record = self.repository.quarantine(path, problem, reason, route=route, size=size, mtime_ns=mtime_ns)
        if record is None:
            return Result(Outcome.ALREADY_QUARANTINED, path, problem=problem, reason=reason)
        log.warning("quarantined %s: %s: %s", path, problem, reason, extra={"event": "frame_quarantined"})
        return Result(Outcome.QUARANTINED, path, quarantined=record, problem=problem, reason=reason)
