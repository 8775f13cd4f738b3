"""One plate solve per file: the first consumer that needs a frame's WCS solves it and keeps the
answer beside the file; the others reuse it.

The photometry and the transit reduction both read the same calibrated lights (a transit field
holding a variable), on their own threads, possibly at the same moment. :func:`solve_kept` takes
an exclusive lock on the light itself (``flock``: advisory, only these solves take it) while it looks
for a kept answer and, without one, solves; a second consumer waits for the first and then reads
its answer instead of running astrometry.net again.

The answer lives in ``<stem>.solution.json`` beside the light: the WCS (its FITS cards), where it
came from, how long the solve took, or why there is none, and which file content it belongs to
(inode, size, modification time in ns: the calibrator replaces a calibrated light by renaming a
new file onto it, so a light calibrated again is a new inode and is solved again). A failure of
astrometry.net itself (no match, over the time limit) is kept with its reason and reused for
the same solver settings (index folders, hints) when the time limit is not longer than the one
that failed; a missing solver or an unreadable file is not kept (nothing was spent, and
installing astrometry.net should take effect at once).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from obsy.files import write_atomic
from obsy_imaging.astrometry.solve import Solution, SolveHints, solve_frame

log = logging.getLogger(__name__)

SUFFIX = ".solution.json"
FORMAT = 1


def kept_path(path: str | Path) -> Path:
    """Where the answer for ``path`` is kept: ``x.fits`` → ``x.solution.json`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}{SUFFIX}")


def solve_kept(
    path: str | Path,
    hints: SolveHints | None = None,
    *,
    timeout_s: float = 30.0,
    index_dirs: list[Path] | None = None,
) -> Solution:
    """:func:`~obsy_imaging.astrometry.solve.solve_frame`, once per file content: a kept answer
    for this content comes back with ``reused=True``; otherwise the frame is solved (under the
    file's lock, so a concurrent caller waits for this solve) and the answer kept.
    """
    path = Path(path)
    hints = hints or SolveHints()
    solver = _solver(hints, index_dirs)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - held open for its lock
    except OSError:
        return solve_frame(path, hints, timeout_s=timeout_s, index_dirs=index_dirs)  # says why
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the handle closes
        identity = _identity(os.fstat(handle.fileno()))
        kept = _read(kept_path(path), identity, solver, timeout_s)
        if kept is not None:
            return kept
        solution = solve_frame(path, hints, timeout_s=timeout_s, index_dirs=index_dirs)
        if solution.attempted:
            _write(kept_path(path), identity, solver, timeout_s, solution)
        return solution


def _identity(stat: os.stat_result) -> dict[str, int]:
    return {"inode": stat.st_ino, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _solver(hints: SolveHints, index_dirs: list[Path] | None) -> dict[str, Any]:
    """The settings a failure depends on (a success does not: a WCS is a WCS)."""
    return {"hints": asdict(hints), "index_dirs": sorted(str(Path(d).resolve()) for d in index_dirs or [])}


def _read(where: Path, identity: dict[str, int], solver: dict[str, Any], timeout_s: float) -> Solution | None:
    try:
        kept = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable, solving again (%s)", where.name, exc)
        return None
    if not isinstance(kept, dict) or kept.get("format") != FORMAT or kept.get("file") != identity:
        return None  # another file content (calibrated again), or another format
    if kept.get("wcs"):
        wcs = _wcs(where, kept["wcs"])
        source, seconds = kept.get("source") or "astrometry.net", kept.get("seconds", 0.0)
        return None if wcs is None else Solution(wcs, source, seconds, attempted=True, reused=True)
    if kept.get("solver") != solver or float(kept.get("timeout_s", 0.0)) < timeout_s:
        return None  # failed with other indexes or hints, or with less time than this caller gives it
    return Solution(None, "none", kept.get("seconds", 0.0), kept.get("reason"), attempted=True, reused=True)


def _wcs(where: Path, cards: str) -> WCS | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            return WCS(fits.Header.fromstring(cards), naxis=2)
        except Exception as exc:  # a damaged file: solve again rather than fail
            log.warning("%s: unusable WCS, solving again (%s)", where.name, exc)
            return None


def _write(where: Path, identity: dict[str, int], solver: dict[str, Any], timeout_s: float, solution: Solution) -> None:
    kept = {
        "format": FORMAT,
        "file": identity,
        "solver": solver,
        "timeout_s": timeout_s,
        "source": solution.source,
        "seconds": round(solution.seconds, 3),
        "reason": solution.reason,
        "wcs": solution.wcs.to_header(relax=True).tostring() if solution.wcs is not None else None,
    }
    try:
        write_atomic(where, json.dumps(kept, ensure_ascii=False, indent=1))
    except OSError as exc:  # a read-only folder: the answer still serves this caller
        log.warning("%s: the plate solution was not kept (%s)", where.name, exc)
