"""imaging photometry: several targets per frame, transformed magnitudes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 16:30:00.000000
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import SAWarning

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: Postgres's name of the primary key 0005 created without one.
OLD_PRIMARY_KEY = "imaging_photometry_pkey"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(OLD_PRIMARY_KEY, "imaging_photometry", type_="primary")
    with warnings.catch_warnings(), op.batch_alter_table("imaging_photometry", recreate="auto") as batch:
        # SQLite's copy of the table is reflected with frame_id alone as its key; SQLAlchemy warns
        # that the new key differs from it, which is the point.
        warnings.simplefilter("ignore", SAWarning)
        batch.add_column(sa.Column("transformed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_primary_key("pk_imaging_photometry", ["frame_id", "target"])


def downgrade() -> None:
    # One row per frame again: a frame's rows of its other targets go.
    op.execute(
        "DELETE FROM imaging_photometry WHERE EXISTS (SELECT 1 FROM imaging_photometry AS other "
        "WHERE other.frame_id = imaging_photometry.frame_id AND other.target < imaging_photometry.target)"
    )
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("pk_imaging_photometry", "imaging_photometry", type_="primary")
    with warnings.catch_warnings(), op.batch_alter_table("imaging_photometry", recreate="auto") as batch:
        warnings.simplefilter("ignore", SAWarning)
        batch.drop_column("transformed")
        batch.create_primary_key(OLD_PRIMARY_KEY, ["frame_id"])
