"""Fixtures shared by every test: real servers on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cpu_report import (  # noqa: F401 (hooks)
    pytest_collection_finish,
    pytest_runtest_protocol,
    pytest_sessionfinish,
    pytest_sessionstart,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh Mosquitto broker for one test."""
    broker = MosquittoBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def watcher(mosquitto: MosquittoBroker) -> Iterator[Watcher]:
    """Records every message under ``obsy/`` on the test's broker (a test may define a narrower one)."""
    w = Watcher(mosquitto.port, ["obsy/#"])
    try:
        yield w
    finally:
        w.close()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config) -> None:
    """Cache the rewritten test modules once, so the workers do not each rewrite them all."""
    from tests.support.rewrite_cache import warm

    warm(config)


def _expected_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("long")
    return float(marker.kwargs.get("seconds", 60)) if marker is not None else 0.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the ``long`` tests (a minute or more: nights with KStars) first, spread over the workers.

    pytest-xdist's worksteal scheduler hands each worker one contiguous slice of the collection
    and steals from a slice's end; so the long tests go to the heads of the slices, longest first,
    each to the slice with the least expected time so far (``long(seconds=...)``: a rough figure
    from ``--durations``, used for this order only). Run last, they would make the suite's tail,
    and its load peak: KStars beside KStars.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    long_tests = sorted((item for item in items if _expected_seconds(item)), key=_expected_seconds, reverse=True)
    if not long_tests:
        return
    others = [item for item in items if not _expected_seconds(item)]
    slices: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for item in long_tests:
        min(slices, key=lambda head: sum(map(_expected_seconds, head))).append(item)
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for index, head in enumerate(slices):  # the sizes the scheduler will cut: remaining // nodes left
        size = remaining // (workers - index)
        remaining -= size
        take = max(0, size - len(head))
        ordered += head + others[:take]
        del others[:take]
    items[:] = ordered + others
