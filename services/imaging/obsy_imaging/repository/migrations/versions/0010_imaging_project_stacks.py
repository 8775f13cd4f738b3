"""imaging project stacks: a target's lights of every night stacked per filter

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imaging_project_stacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("reference_frame_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("nights", sa.JSON(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("left_out", sa.Integer(), nullable=False),
        sa.Column("integration_s", sa.Float(), nullable=False),
        sa.Column("rejection", sa.String(length=64), nullable=False),
        sa.Column("rejected_fraction", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["reference_frame_id"], ["imaging_frames.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("path"),
    )
    op.create_index("ix_imaging_project_stacks_target", "imaging_project_stacks", ["target", "filter"])
    op.create_table(
        "imaging_project_stack_frames",
        sa.Column("stack_id", sa.Integer(), nullable=False),
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("transform", sa.JSON(), nullable=True),
        sa.Column("pairs", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["stack_id"], ["imaging_project_stacks.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["frame_id"], ["imaging_frames.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("stack_id", "frame_id"),
    )


def downgrade() -> None:
    op.drop_table("imaging_project_stack_frames")
    op.drop_index("ix_imaging_project_stacks_target", table_name="imaging_project_stacks")
    op.drop_table("imaging_project_stacks")
