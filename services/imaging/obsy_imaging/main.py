"""``obsy-imaging``: the service and its commands.

The service's module (the live stack, photometry, the night and project stacks, their numba
kernels: seconds of CPU on a small computer) is imported only to ``run`` it. ``healthcheck`` and
``--help`` start without it; each command imports what it needs: the repository commands
(:mod:`obsy_imaging.cli`) the repository and calibrator, ``post-capture`` (which runs after every
frame the capture program saves, and Ekos waits for it before the next exposure) only the ingest.
"""

from __future__ import annotations

from collections.abc import Sequence

from obsy.runner import run_service

COMMANDS = {
    "import": "obsy_imaging.cli:import_command",
    "post-capture": "obsy_imaging.ingest.postcapture:post_capture_command",
    "calibrate": "obsy_imaging.cli:calibrate_command",
    "masters": "obsy_imaging.cli:masters_command",
    "warm-up": "obsy_imaging.cli:warm_up_command",
    "report": "obsy_imaging.cli:report_command",
    "transit": "obsy_imaging.cli:transit_command",
    "stack-project": "obsy_imaging.cli:stack_project_command",
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_service("imaging", argv, COMMANDS)
