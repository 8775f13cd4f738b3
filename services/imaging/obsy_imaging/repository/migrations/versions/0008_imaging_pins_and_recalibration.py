"""imaging pinned masters and recalibration history

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("imaging_masters") as batch:
        batch.add_column(sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("pinned_by", sa.String(length=200), nullable=True))
    with op.batch_alter_table("imaging_calibrated") as batch:
        batch.add_column(sa.Column("history", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("imaging_calibrated") as batch:
        batch.drop_column("history")
    with op.batch_alter_table("imaging_masters") as batch:
        batch.drop_column("pinned_by")
        batch.drop_column("pinned_at")
