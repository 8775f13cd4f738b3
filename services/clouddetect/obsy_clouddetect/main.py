"""``obsy-clouddetect``: the service and its commands.

The service's module (the classifier's runtime, SciPy, astropy: about a second of CPU) is imported
only to ``run`` it: ``healthcheck`` and ``--help`` start without it; ``collect``, ``train`` and
``convert`` (:mod:`obsy_clouddetect.cli`) import what they need.
"""

from __future__ import annotations

from collections.abc import Sequence

from obsy.runner import run_service

COMMANDS = dict.fromkeys(("collect", "train", "convert"), "obsy_clouddetect.cli:main")


def main(argv: Sequence[str] | None = None) -> int:
    return run_service("clouddetect", argv, COMMANDS)
