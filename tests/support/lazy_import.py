"""``pytest.importorskip`` at a test module's top, without importing the module at collection.

Every xdist worker imports every test module to collect the suite; a library only the tests' bodies
use (Playwright: ~0.1-0.2 CPU s) is then imported by each worker whether or not it runs those tests.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

import pytest


def installed(name: str) -> bool:
    """Whether the module can be found, without importing it (its parent packages are imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


class LazyModule:
    """Stands for a module and imports it on first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._module(), attribute)


def importorskip_lazily(name: str) -> Any:
    """Like ``pytest.importorskip(name)`` at a module's top: skips the module when ``name`` is not
    installed, and otherwise gives a stand-in that imports it when the tests first use it."""
    if not installed(name):
        pytest.skip(f"could not import {name!r}: not installed", allow_module_level=True)
    return LazyModule(name)
