"""The web service's database engine: obsy.database's, with a larger pool for the API and the ingestor."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from obsy.database import make_engine as _make_engine
from obsy.database import session_factory


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; ``postgresql://`` URLs use psycopg 3, SQLite runs in WAL mode."""
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return _make_engine(url, **kwargs)


__all__ = ["make_engine", "session_factory"]
