"""imaging live stacks

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imaging_live_stacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("reference_frame_id", sa.Integer(), nullable=False),
        sa.Column("reference_location", sa.Float(), nullable=False),
        sa.Column("reference_scale", sa.Float(), nullable=False),
        sa.Column("reference_quality", sa.Float(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("preview_path", sa.String(length=1024), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("integration_s", sa.Float(), nullable=False),
        sa.Column("left_out", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["reference_frame_id"], ["imaging_frames.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("path"),
    )
    with op.batch_alter_table("imaging_live_stacks", schema=None) as batch_op:
        batch_op.create_index("ix_imaging_live_stacks_night_target_filter", ["night", "target", "filter"], unique=False)

    op.create_table(
        "imaging_live_stack_frames",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("stack_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("transform", sa.JSON(), nullable=True),
        sa.Column("pairs", sa.Integer(), nullable=True),
        sa.Column("rms_px", sa.Float(), nullable=True),
        sa.Column("exposure_s", sa.Float(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["frame_id"], ["imaging_frames.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stack_id"], ["imaging_live_stacks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    with op.batch_alter_table("imaging_live_stack_frames", schema=None) as batch_op:
        batch_op.create_index("ix_imaging_live_stack_frames_stack", ["stack_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("imaging_live_stack_frames", schema=None) as batch_op:
        batch_op.drop_index("ix_imaging_live_stack_frames_stack")
    op.drop_table("imaging_live_stack_frames")
    with op.batch_alter_table("imaging_live_stacks", schema=None) as batch_op:
        batch_op.drop_index("ix_imaging_live_stacks_night_target_filter")
    op.drop_table("imaging_live_stacks")
