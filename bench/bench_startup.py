"""What starting each console script costs before it does anything: CPU seconds of ``<script> --help``.

Every service, command and driver start pays its imports first (a Raspberry Pi on every restart
and every container healthcheck, every 30 s; the tests on each command and driver they start).
Each script, and the sub-commands the tests and people start often, runs ``--help`` a few times
(default 3; BENCH_STARTUP_RUNS=n) and the least CPU (user + system, of the child) is printed:
the others carry the noise of a busy machine. ``python -X importtime <script> --help`` then
shows which imports are the cost.

Measured on the 2-core development machine (busy: load 5), before and after the console scripts
named their service and commands instead of importing them (``obsy_<name>.main``,
``obsy.runner.run_service``), the two interleaved; CPU s, least of 3. ``healthcheck`` costs what
``--help`` does. ``run`` still imports the whole service at start (unchanged):

    obsy-imaging            2.12 -> 0.39     obsy-mcp decision          1.06 -> 0.37
    obsy-web                2.08 -> 0.38     obsy-mcp roof              1.10 -> 0.38
    obsy-mcp                0.92 -> 0.35     obsy-web create-user       2.88 -> 1.26
    obsy-scheduler          1.03 -> 0.37     obsy-imaging import        2.29 -> 1.48
    obsy-allsky             1.17 -> 0.44     obsy-imaging calibrate     2.32 -> 1.48
    obsy-clouddetect        1.32 -> 0.40     obsy-imaging post-capture  0.40 -> 0.40
    obsy-weather            0.47 (unchanged) obsy-weather simulate      0.49 (unchanged)
    obsy-alpaca             0.40 (unchanged) obsy-skysim index          1.13 (unchanged: it renders)
    obsy-skysim             1.15 (unchanged: astropy and numba are its work)
    indi_obsy_camera        1.22, indi_obsy_allsky 1.33 (unchanged: likewise)

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
#: Sub-commands the tests and people start often: each should import what it needs, not the service.
COMMANDS = (
    ("obsy-mcp", "decision"),
    ("obsy-mcp", "roof"),
    ("obsy-web", "create-user"),
    ("obsy-imaging", "import"),
    ("obsy-imaging", "calibrate"),
    ("obsy-imaging", "post-capture"),
    ("obsy-weather", "simulate"),
    ("obsy-skysim", "index"),
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
    for script, *command in [(script,) for script in SCRIPTS] + list(COMMANDS):
        path = bin_dir / script
        if not path.exists():
            print(f"{script:18s} not installed ({path})")
            continue
        best = min(cpu_seconds([str(path), *command, "--help"]) for _ in range(runs))
        name = " ".join([script, *command])
        print(f"{name:32s} {best:5.2f} CPU s (--help, least of {runs})", flush=True)


if __name__ == "__main__":
    main()
