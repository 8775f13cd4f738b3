"""The database engine and the Alembic migrations of the services that keep tables (web, imaging).

Postgres through psycopg 3, or an embedded SQLite file in WAL mode (the default when no
Postgres is configured). Each service keeps its own Alembic scripts in its package (an
``env.py`` that runs on the engine handed over in ``config.attributes["engine"]``; no
alembic.ini) and its own version table, so two services can share one database.
Needs the ``db`` extra of obsy-core (SQLAlchemy, Alembic).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:  # Alembic (and Mako) load only when a migration runs: a quarter second on every start otherwise
    from alembic.config import Config


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10, **kwargs: Any) -> Engine:
    """An engine for ``url``: ``postgresql://`` URLs use psycopg 3 (``pool_size`` and
    ``max_overflow`` apply there), SQLite runs in WAL mode with foreign keys on."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # A dead server must fail a connection attempt quickly so that the caller can retry.
    return create_engine(
        parsed, connect_args={"connect_timeout": 5}, pool_size=pool_size, max_overflow=max_overflow, **kwargs
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writers
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Migrations:
    """One service's Alembic scripts: ``<package>/migrations`` (never generated at install time)."""

    package: str
    version_table: str = "alembic_version"

    def config(self, engine: Engine | None, **attributes: Any) -> Config:
        """Alembic's configuration; ``attributes`` reach the scripts (``op.get_context().config.attributes``)."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(resources.files(self.package).joinpath("migrations")))
        config.attributes["engine"] = engine
        config.attributes.update(attributes)
        return config

    def upgrade(self, engine: Engine, revision: str = "head", **attributes: Any) -> None:
        """Bring the tables to ``revision`` (all migrations by default); safe on every start."""
        from alembic import command

        command.upgrade(self.config(engine, **attributes), revision)

    def downgrade(self, engine: Engine, revision: str, **attributes: Any) -> None:
        from alembic import command

        command.downgrade(self.config(engine, **attributes), revision)

    def current_revision(self, engine: Engine) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as connection:
            opts = {"version_table": self.version_table}
            return MigrationContext.configure(connection, opts=opts).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.config(None)).get_current_head()
