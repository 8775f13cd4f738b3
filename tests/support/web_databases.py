"""Database fixtures for the web service's tests: SQLite files and fresh Postgres databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from obsy_web.db import make_engine
from obsy_web.db.migrate import upgrade
from tests.support.pgcluster import fresh_database


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind the web service supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'obsy.sqlite3'}"
    else:
        with fresh_database("obsy_web_test") as url:
            yield url


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """An engine on an empty database brought to the newest schema by the migrations."""
    engine = make_engine(database_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
