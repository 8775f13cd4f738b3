"""``obsy-scheduler``: the service and its commands.

The service's module is imported only to ``run`` it: ``healthcheck`` and ``--help`` start without
astropy (about a second of CPU); ``plan`` and ``transits`` import what they need.
"""

from __future__ import annotations

from collections.abc import Sequence

from obsy.runner import run_service

COMMANDS = {"plan": "obsy_scheduler.cli:plan_command", "transits": "obsy_scheduler.cli:transits_command"}


def main(argv: Sequence[str] | None = None) -> int:
    return run_service("scheduler", argv, COMMANDS)
