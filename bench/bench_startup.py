"""What starting each console script costs before it does anything: CPU seconds of ``<script> --help``.

Every service, command and driver start pays its imports first (the test suite starts them
hundreds of times, a Raspberry Pi on every restart). Each script runs ``--help`` a few times
(default 3; BENCH_STARTUP_RUNS=n) and the least CPU (user + system, of the child) is printed:
the others carry the noise of a busy machine. ``python -X importtime <script> --help`` then
shows which imports are the cost.

Run from the repository root with the virtual environment: ``.venv/bin/python -m bench bench_startup``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

SCRIPTS = (
    "obsy-imaging",
    "obsy-web",
    "obsy-mcp",
    "obsy-scheduler",
    "obsy-allsky",
    "obsy-clouddetect",
    "obsy-weather",
    "obsy-skysim",
    "obsy-alpaca",
    "indi_obsy_camera",
    "indi_obsy_allsky",
)


def cpu_seconds(command: list[str]) -> float:
    """User + system CPU seconds of one run of ``command`` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, capture_output=True, check=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    runs = int(os.environ.get("BENCH_STARTUP_RUNS", "3"))
    bin_dir = Path(sys.executable).parent
    for script in SCRIPTS:
        path = bin_dir / script
        if not path.exists():
            print(f"{script:18s} not installed ({path})")
            continue
        best = min(cpu_seconds([str(path), "--help"]) for _ in range(runs))
        print(f"{script:18s} {best:5.2f} CPU s (--help, least of {runs})", flush=True)


if __name__ == "__main__":
    main()
