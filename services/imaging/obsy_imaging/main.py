"""``obsy-imaging``: the service and its commands.

``post-capture`` runs after every frame the capture program saves, and Ekos waits for it before the
next exposure: it is started without importing the service (numba, astropy, the database: seconds
on a small computer). Everything else goes through the service's runner.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["post-capture"]:
        from obsy_imaging.ingest.postcapture import post_capture_command

        return post_capture_command(args)
    from obsy_imaging.service import main as service_main

    return service_main(argv)
