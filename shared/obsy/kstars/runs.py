"""The run folders of Ekos files the scheduler writes, and the marker that keeps one all night.

The scheduler writes every plan as a new run folder (``<output_dir>/<night>/<run>/``: an .esl
and its .esq files) and removes the night's older runs that nobody can be running. A run whose
folder holds :data:`KEEP_MARKER` is kept until its night goes (``ekos.keep_nights``): the
scheduler marks every run it writes in answer to a plan request (the MCP loads those), and the
MCP marks the run of every schedule it has Ekos load (a fallback may load another one), so a
run Ekos may be running is never removed, whichever service restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

#: The file in a run folder that keeps it all night: one line per reason.
KEEP_MARKER = "obsy-keep.txt"


def keep_run(schedule: str | Path, why: str, now: datetime | None = None) -> Path:
    """Mark the run folder of ``schedule`` (an .esl) as one to keep; returns the marker.

    Appends a line (UTC time and ``why``), so the marker says every reason. Raises
    :class:`OSError` when the folder cannot be written.
    """
    marker = Path(schedule).parent / KEEP_MARKER
    moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    with marker.open("a", encoding="utf-8") as handle:
        handle.write(f"{moment} {why}\n")
    return marker


def is_kept(run: Path) -> bool:
    """Whether the run folder ``run`` holds the marker that keeps it."""
    return (run / KEEP_MARKER).is_file()
