"""A frame's world coordinate system: the one already in its header (Ekos writes one after its own
solve), else astrometry.net's ``solve-field`` run offline on the installed index files.

The header's pointing and the plate scale (pixel size over focal length) are passed as hints:
with both, a solve searches a few square degrees at one scale and takes about a second; without
them it is blind. Every failure comes back as a :class:`Solution` with a reason, within the
time limit: the solver's process group is killed when it runs over.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from obsy_imaging.headers.model import FrameHeader

SOLVER = "solve-field"
ARCSEC_PER_RAD = 206264.806
NO_INDEXES = "no astrometry.net index files are installed"


@dataclass(frozen=True)
class SolveHints:
    """Where to look and at what scale. Each part is optional: missing parts widen the search."""

    ra_deg: float | None = None
    dec_deg: float | None = None
    radius_deg: float = 5.0
    scale_arcsec_per_px: float | None = None
    scale_tolerance: float = 0.1  # the focal length of a reducer or a focuser's travel: ±10 %


@dataclass(frozen=True)
class Solution:
    """A WCS and where it came from, or why there is none."""

    wcs: WCS | None
    source: str  # "header", "astrometry.net" or "none"
    seconds: float = 0.0
    reason: str | None = None
    #: astrometry.net searched the file for a match (a failure is then its answer for this content,
    #: worth keeping), rather than stopping before (not installed, no index files, file unreadable).
    attempted: bool = False
    #: Kept from an earlier solve of the same file content (:mod:`obsy_imaging.astrometry.kept`).
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.wcs is not None

    def centre(self, width: int, height: int) -> tuple[float, float]:
        """ICRS right ascension and declination (degrees) of the image centre."""
        if self.wcs is None:
            raise ValueError(f"no solution: {self.reason}")
        ra, dec = self.wcs.all_pix2world((width - 1) / 2.0, (height - 1) / 2.0, 0)
        return float(ra) % 360.0, float(dec)

    def scale_arcsec_per_px(self) -> float:
        if self.wcs is None:
            raise ValueError(f"no solution: {self.reason}")
        return math.sqrt(abs(_determinant(self.wcs))) * 3600.0


def _determinant(wcs: WCS) -> float:
    m = wcs.celestial.pixel_scale_matrix
    return float(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])


def hints_from_header(header: FrameHeader, *, field_radius_deg: float | None = None) -> SolveHints:
    """Pointing and plate scale from the normalised header (binning included)."""
    scale = None
    if header.pixel_size_um and header.focal_length_mm:
        scale = ARCSEC_PER_RAD * header.pixel_size_um * 1e-3 * header.binning_x / header.focal_length_mm
    radius = 5.0
    if field_radius_deg is not None:
        radius = max(1.0, 2.0 * field_radius_deg)  # a pointing model's error is a fraction of the field
    return SolveHints(header.ra_deg, header.dec_deg, radius, scale)


def header_wcs(header: Mapping[str, Any] | fits.Header) -> WCS | None:
    """The header's celestial WCS when it has a usable one (two celestial axes, a pixel scale)."""
    if not isinstance(header, fits.Header):
        header = fits.Header({k: v for k, v in header.items() if isinstance(k, str) and len(k) <= 8})
    if not str(header.get("CTYPE1", "")).startswith("RA---") or not str(header.get("CTYPE2", "")).startswith("DEC--"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception:
            return None
    if not wcs.has_celestial or not math.isfinite(_determinant(wcs)) or _determinant(wcs) == 0:
        return None
    return wcs


def solve_frame(
    path: str | Path,
    hints: SolveHints | None = None,
    *,
    timeout_s: float = 30.0,
    reuse_header_wcs: bool = True,
    index_dirs: list[Path] | None = None,
) -> Solution:
    """The frame's WCS: the header's if it has one (and ``reuse_header_wcs``), else astrometry.net's."""
    started = time.monotonic()
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
    except (OSError, ValueError) as exc:
        return Solution(None, "none", 0.0, f"cannot read {path.name}: {exc}")
    if reuse_header_wcs and (wcs := header_wcs(header)) is not None:
        return Solution(wcs, "header", time.monotonic() - started)
    if shutil.which(SOLVER) is None:
        return Solution(None, "none", 0.0, "astrometry.net is not installed (no solve-field on the PATH)")
    size = int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0))
    return _run_solver(
        path, hints or SolveHints(), size=size, timeout_s=timeout_s, index_dirs=index_dirs, started=started
    )


def _run_solver(
    path: Path,
    hints: SolveHints,
    *,
    size: tuple[int, int],
    timeout_s: float,
    index_dirs: list[Path] | None,
    started: float,
) -> Solution:
    with tempfile.TemporaryDirectory(prefix="obsy-solve-") as work:
        command = _command(path, hints, Path(work), size=size, timeout_s=timeout_s, index_dirs=index_dirs)
        try:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
        except OSError as exc:
            return Solution(None, "none", 0.0, f"cannot run {SOLVER}: {exc}")
        try:
            output, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # solve-field's children (image2xy, the engine) too
            process.communicate()
            return Solution(
                None, "none", time.monotonic() - started, f"no solution within {timeout_s:g} s", attempted=True
            )
        seconds = time.monotonic() - started
        solved = Path(work) / "frame.wcs"
        if process.returncode != 0 or not solved.exists():
            reason = _failure_reason(output, hints, process.returncode)
            return Solution(None, "none", seconds, reason, attempted=not reason.startswith(NO_INDEXES))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(fits.getheader(solved), naxis=2)
        return Solution(wcs, "astrometry.net", seconds, attempted=True)


def _command(
    path: Path,
    hints: SolveHints,
    work: Path,
    *,
    size: tuple[int, int],
    timeout_s: float,
    index_dirs: list[Path] | None,
) -> list[str]:
    command = [
        SOLVER,
        str(path),
        "--dir", str(work), "--out", "frame",
        # Its temporary files too, not the shared /tmp: a solve there once lost its star list while the
        # photometry's and the transits' workers solved side by side ("tabsort: Failed to open input file").
        "--temp-dir", str(work),
        "--overwrite", "--no-plots", "--no-remove-lines", "--no-verify-uniformize",
        "--new-fits", "none", "--rdls", "none", "--corr", "none", "--match", "none", "--index-xyls", "none",
        "--crpix-center",
        "--cpulimit", str(max(1, int(timeout_s) - 2)),
        "--objs", "60",
    ]  # fmt: skip
    if _plain_fits(path):  # no file-type probe, no PNM for plots not drawn: the same stars, 0.1 CPU s less
        command.append("--fits-image")
    if max(size) > 2000:  # finding stars in a 60 MP frame takes longer than the solve
        command += ["--downsample", str(math.ceil(max(size) / 2000))]
    if hints.scale_arcsec_per_px:
        low = hints.scale_arcsec_per_px * (1 - hints.scale_tolerance)
        high = hints.scale_arcsec_per_px * (1 + hints.scale_tolerance)
        command += ["--scale-units", "arcsecperpix", "--scale-low", f"{low:.4f}", "--scale-high", f"{high:.4f}"]
    if hints.ra_deg is not None and hints.dec_deg is not None:
        command += ["--ra", f"{hints.ra_deg:.6f}", "--dec", f"{hints.dec_deg:.6f}", "--radius", f"{hints.radius_deg:g}"]
    if index_dirs:
        config = work / "astrometry.cfg"
        config.write_text("".join(f"add_path {d}\n" for d in index_dirs) + "autoindex\ninparallel\n")
        command += ["--config", str(config)]
    return command


def _plain_fits(path: Path) -> bool:
    """An uncompressed FITS file, which solve-field can read as it is (a gzipped one it must unpack)."""
    try:
        with path.open("rb") as file:
            return file.read(6) == b"SIMPLE"
    except OSError:
        return False


def _failure_reason(output: str, hints: SolveHints, returncode: int) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if any("You must list at least one index" in line or "No index files" in line for line in lines):
        return f"{NO_INDEXES} (Debian: astrometry-data-tycho2)"
    if any("Did not solve" in line or "did not solve" in line for line in lines):
        scale = f" at {hints.scale_arcsec_per_px:.2f}″/px" if hints.scale_arcsec_per_px else ""
        where = f" within {hints.radius_deg:g}° of the header's pointing" if hints.ra_deg is not None else ""
        return f"astrometry.net found no match{scale}{where} (too few stars, or a field narrower than the indexes)"
    tail = "; ".join(lines[-2:])[:200]
    return f"solve-field failed (exit {returncode}): {tail or 'no output'}"
