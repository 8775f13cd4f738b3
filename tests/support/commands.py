"""A service's command run in the test's own process, answered as ``subprocess.run`` would.

Each ``obsy-<service>`` process start imports the service (numba, astropy, the database): seconds of
CPU. A test that checks what a command does, not how it is started, runs all but one of its command
lines here; the one it keeps as a real process checks the entry point.
"""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
from collections.abc import Callable


def run_command(command: Callable[[list[str]], int], *argv: str) -> subprocess.CompletedProcess[str]:
    """``command`` (a console script's ``main``, or a command function, which takes the command's name as
    ``argv[0]``) with ``argv``: its exit status (argparse's usage errors are SystemExit), standard output
    and error. The root logger's handlers and level are restored after, as a command may call
    ``logging.basicConfig``."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = command(list(argv))
            except SystemExit as exc:
                status = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return subprocess.CompletedProcess(list(argv), status, out.getvalue(), err.getvalue())
