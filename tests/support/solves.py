"""Counting astrometry.net's runs: a ``solve-field`` ahead of the real one on the PATH notes each
run (its input file) in a log and hands over to the real solver, so the solves stay real."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def count_solves(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The log that gets one line (the frame's path) per run of solve-field from now on."""
    real = shutil.which("solve-field")
    if real is None:
        raise RuntimeError("solve-field is not on the PATH (Debian package astrometry.net)")
    shim = folder / "solve-field-counter"
    shim.mkdir(parents=True)
    log = folder / "solves.log"
    log.touch()
    script = shim / "solve-field"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    return log


def solves(log: Path) -> list[str]:
    """The frames solved so far, one entry per run."""
    return log.read_text().splitlines()
