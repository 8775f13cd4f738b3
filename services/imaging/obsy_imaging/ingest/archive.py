"""Importing an existing archive: every frame file under a folder, resumable, with progress.

Resumable without a journal: a file whose path, size and modification time are already in the
repository (registered or quarantined) is skipped without being read, so an interrupted import
run again continues where it stopped, and a second run over the same archive only reads what
changed. Files are registered exactly as the watcher registers them (same inspection, same
deduplication by content hash), so a frame the watcher took is a duplicate here, not a copy.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from obsy_imaging.ingest.ingestor import Ingestor, Outcome, Result
from obsy_imaging.ingest.watcher import frame_files


@dataclass
class ImportProgress:
    total: int
    done: int = 0
    skipped: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Files read per second (skipped ones excluded)."""
        elapsed = time.monotonic() - self.started
        read = self.done - self.skipped
        return read / elapsed if elapsed > 0 and read > 0 else 0.0

    def summary(self) -> str:
        parts = [f"{self.done}/{self.total} files"]
        if self.skipped:
            parts.append(f"{self.skipped} done before")
        parts += [f"{count} {outcome}" for outcome, count in sorted(self.outcomes.items())]
        return ", ".join(parts)


def import_archive(
    ingestor: Ingestor,
    folder: Path,
    suffixes: Iterable[str],
    *,
    on_progress: Callable[[ImportProgress, Result], None] | None = None,
) -> ImportProgress:
    """Ingest every frame file under ``folder``; unfinished-looking files are quarantined at once."""
    files = list(frame_files(folder, suffixes))
    progress = ImportProgress(total=len(files))
    for path in files:
        result = ingestor.ingest(path, "import", final=True)
        if result.outcome is Outcome.KNOWN:
            progress.skipped += 1
        else:
            progress.outcomes[result.outcome.value] += 1
        progress.done += 1
        if on_progress is not None:
            on_progress(progress, result)
        if result.outcome is Outcome.STORAGE_FULL:
            break  # nothing more fits: stop instead of failing every remaining file the same way
    return progress
