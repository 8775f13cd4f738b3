"""Alembic environment: runs on the engine handed over by obsy_imaging.repository.database (no alembic.ini).

Only the ``imaging_*`` tables are this service's: others in a shared database (the web's) are ignored.
"""

from __future__ import annotations

from alembic import context

from obsy_imaging.repository.models import VERSION_TABLE, Base


def _ours(obj, name, type_, reflected, compare_to):
    return type_ != "table" or (name or "").startswith("imaging_")


engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_object=_ours,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
