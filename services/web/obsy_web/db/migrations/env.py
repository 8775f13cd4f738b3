"""Alembic environment: runs on the engine handed over by obsy_web.db.migrate (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from obsy_web.db.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
