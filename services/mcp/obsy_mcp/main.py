"""``obsy-mcp``: the service and its commands.

The service's module (the controller, INDI, astropy: about a second of CPU) is imported only to
``run`` it: ``healthcheck``, ``--help``, ``decision`` and the bus commands (``roof``, ``mode``,
``night``) start without it.
"""

from __future__ import annotations

from collections.abc import Sequence

from obsy.runner import run_service
from obsy_mcp.command_cli import THINGS

COMMANDS = {
    "decision": "obsy_mcp.decision_cli:decision_command",
    **dict.fromkeys(THINGS, "obsy_mcp.command_cli:send_command"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_service("mcp", argv, COMMANDS)
