"""Applying the Alembic migrations kept in ``obsy_web/db/migrations`` (never generated at install time)."""

from __future__ import annotations

from obsy.database import Migrations

MIGRATIONS = Migrations("obsy_web.db")

alembic_config = MIGRATIONS.config
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade
current_revision = MIGRATIONS.current_revision
head_revision = MIGRATIONS.head_revision
