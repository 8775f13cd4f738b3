"""Write pytest's assertion-rewritten test modules once, before the xdist workers start.

Every worker imports every test module to collect the suite, and pytest rewrites a module's
asserts on import unless its ``__pycache__`` already holds the rewritten copy. In a fresh checkout
(CI) the workers start together, none finds a copy and each rewrites all of them: about 9 CPU s
of start-up per worker instead of under 4. The controller writes the copies here, with pytest's own
rewriting, in a few CPU s once (a tenth of a second when they are already current).

This reaches into pytest's private rewrite module: if that changes, nothing is written and the
workers rewrite as before (slower, never wrong: a stale or foreign copy is ignored by pytest).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest


def _candidates(config: pytest.Config) -> Iterator[Path]:
    """The files the workers' collection will rewrite: test modules and conftest.py under the paths given."""
    patterns = config.getini("python_files")
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        if path.is_file():
            if path.suffix == ".py":
                yield path
            continue
        if not path.is_dir():
            continue
        for file in path.rglob("*.py"):
            if file.name == "conftest.py" or any(fnmatch(file.name, pattern) for pattern in patterns):
                yield file


def warm(config: pytest.Config) -> int:
    """Rewrite and cache the modules without a current cached copy; the number written."""
    if sys.dont_write_bytecode or config.getoption("assertmode") != "rewrite":
        return 0
    try:
        from _pytest.assertion import rewrite
        from _pytest.assertion.rewrite import assertstate_key

        state = config.stash[assertstate_key]
    except (ImportError, AttributeError, KeyError):
        return 0
    written = 0
    for source in _candidates(config):
        try:
            cache_dir = rewrite.get_cache_dir(source)
            pyc = cache_dir / (source.name[:-3] + rewrite.PYC_TAIL)
            if rewrite._read_pyc(source, pyc) is not None:
                continue
            if not rewrite.try_makedirs(cache_dir):
                continue
            source_hash, code = rewrite._rewrite_test(source, config)
            written += bool(rewrite._write_pyc(state, code, source_hash, pyc))
        except (AttributeError, TypeError, SyntaxError, OSError):
            continue  # pytest's internals changed, or the file is broken: the worker reports it
    return written
