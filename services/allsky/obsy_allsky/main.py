"""``obsy-allsky``: the service and its commands.

The service's module (the capture pipeline, OpenCV, astropy: about a second of CPU) is imported only
to ``run`` it: ``healthcheck``, ``--help`` and the commands (:mod:`obsy_allsky.cli`: ``darks``, the
products) start without it and import what they need.
"""

from __future__ import annotations

from collections.abc import Sequence

from obsy.runner import run_service
from obsy_allsky.cli import COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    # ``darks`` drives the camera directly or asks the running service (--service).
    return run_service("allsky", argv, COMMANDS)
