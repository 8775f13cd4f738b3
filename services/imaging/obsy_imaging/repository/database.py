"""Engine and migrations of the imaging tables (Alembic scripts kept in ``migrations/versions``,
their own version table, so they can share the web service's database)."""

from __future__ import annotations

from obsy.database import Migrations, make_engine, session_factory
from obsy_imaging.repository.models import VERSION_TABLE

MIGRATIONS = Migrations("obsy_imaging.repository", VERSION_TABLE)

alembic_config = MIGRATIONS.config
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade
current_revision = MIGRATIONS.current_revision

__all__ = ["MIGRATIONS", "alembic_config", "current_revision", "downgrade", "make_engine", "session_factory", "upgrade"]
