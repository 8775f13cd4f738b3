"""imaging night stacks

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imaging_night_stacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("live_stack_id", sa.Integer(), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("source_frames", sa.Integer(), nullable=False),
        sa.Column("integration_s", sa.Float(), nullable=False),
        sa.Column("rejection", sa.String(length=64), nullable=False),
        sa.Column("rejected_fraction", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["live_stack_id"], ["imaging_live_stacks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("live_stack_id"),
        sa.UniqueConstraint("path"),
    )


def downgrade() -> None:
    op.drop_table("imaging_night_stacks")
