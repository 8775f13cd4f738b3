"""Fixtures of the imaging service's unit tests: its repository on SQLite and on Postgres.

A test module that needs the repository laid out otherwise defines its own ``repository``
fixture, which takes the place of this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy_imaging.repository import database
from obsy_imaging.repository.store import Repository
from tests.support.pgcluster import fresh_database


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite (the default) and Postgres (compose): the repository must behave the same on both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'imaging.sqlite3'}"
    else:
        with fresh_database("obsy_imaging_test") as url:
            yield url


@pytest.fixture
def repository(tmp_path: Path, database_url: str) -> Iterator[Repository]:
    """The imaging tables, migrated, and a repository root and quarantine in the test's folder."""
    engine = database.make_engine(database_url)
    database.upgrade(engine)
    yield Repository(engine, tmp_path / "repository", tmp_path / "quarantine")
    engine.dispose()
