"""Storage: SQLAlchemy models, the engine for Postgres or SQLite, Alembic migrations."""

from obsy_web.db.engine import make_engine, session_factory

__all__ = ["make_engine", "session_factory"]
