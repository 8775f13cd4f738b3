"""Fixtures the web service's integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.watcher import Watcher

#: argon2id at its smallest cost: the same code paths (hash, verify, rehash) for a thousandth
#: of the CPU. The real parameters are checked in tests/unit/web, and the services these tests
#: start as processes (``obsy-web create-admin``, ``obsy-web run``) hash at full cost.
CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


@pytest.fixture(autouse=True, scope="module")
def cheap_password_hashes() -> Iterator[None]:
    """The web services these tests run inside the test process hash passwords cheaply.

    Module-scoped, so that it is in place before a module's own ``web`` fixture adds its users,
    and undone after each module (later tests in the same worker see the real hasher).
    """
    from argon2 import PasswordHasher

    from obsy_web.auth import accounts

    real = accounts._hasher
    accounts._hasher = PasswordHasher(**CHEAP_ARGON2)
    accounts._dummy_hash.cache_clear()
    try:
        yield
    finally:
        accounts._hasher = real
        accounts._dummy_hash.cache_clear()


@pytest.fixture
def bus(web: Any) -> Iterator[Watcher]:
    """Records every message under ``obsy/`` on the broker of the module's ``web`` fixture."""
    watcher = Watcher(web.broker.port, ["obsy/#"])
    yield watcher
    watcher.close()
