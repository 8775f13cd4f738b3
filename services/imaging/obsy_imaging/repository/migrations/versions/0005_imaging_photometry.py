"""imaging photometry

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 10:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imaging_photometry",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("band", sa.String(length=8), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("jd", sa.Float(precision=53), nullable=True),
        sa.Column("hjd", sa.Float(precision=53), nullable=True),
        sa.Column("bjd_tdb", sa.Float(precision=53), nullable=True),
        sa.Column("magnitude", sa.Float(), nullable=True),
        sa.Column("error", sa.Float(), nullable=True),
        sa.Column("check_label", sa.String(length=100), nullable=True),
        sa.Column("check_instrumental", sa.Float(), nullable=True),
        sa.Column("check_magnitude", sa.Float(), nullable=True),
        sa.Column("check_residual", sa.Float(), nullable=True),
        sa.Column("airmass", sa.Float(), nullable=True),
        sa.Column("comparisons", sa.JSON(), nullable=False),
        sa.Column("chart_id", sa.String(length=20), nullable=True),
        sa.Column("wcs_source", sa.String(length=32), nullable=True),
        sa.Column("fwhm_px", sa.Float(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["frame_id"], ["imaging_frames.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    with op.batch_alter_table("imaging_photometry", schema=None) as batch_op:
        batch_op.create_index("ix_imaging_photometry_night_target", ["night", "target"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("imaging_photometry", schema=None) as batch_op:
        batch_op.drop_index("ix_imaging_photometry_night_target")
    op.drop_table("imaging_photometry")
