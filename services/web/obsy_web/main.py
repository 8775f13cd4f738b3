"""``obsy-web``: the service and its commands.

The service's module (FastAPI, the app's pages and API, astropy for previews: about two seconds
of CPU) is imported only to ``run`` it: ``healthcheck``, ``--help`` and the administration
commands (``create-admin``, ``create-user``, ``migrate``: the database only) start without it.
"""

from __future__ import annotations

from collections.abc import Sequence

from obsy.runner import run_service

COMMANDS = dict.fromkeys(("create-admin", "create-user", "migrate"), "obsy_web.cli:admin_command")


def main(argv: Sequence[str] | None = None) -> int:
    return run_service("web", argv, COMMANDS)
