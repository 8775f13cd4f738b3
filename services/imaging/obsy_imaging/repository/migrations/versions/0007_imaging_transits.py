"""imaging transit fits and their points

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 13:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imaging_transit_fits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("planet", sa.String(length=200), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.Column("tc", sa.Float(precision=53), nullable=True),
        sa.Column("tc_err", sa.Float(), nullable=True),
        sa.Column("predicted_tc", sa.Float(precision=53), nullable=True),
        sa.Column("o_minus_c", sa.Float(), nullable=True),
        sa.Column("o_minus_c_err", sa.Float(), nullable=True),
        sa.Column("rp_rs", sa.Float(), nullable=True),
        sa.Column("rp_rs_err", sa.Float(), nullable=True),
        sa.Column("a_rs", sa.Float(), nullable=True),
        sa.Column("a_rs_err", sa.Float(), nullable=True),
        sa.Column("inc", sa.Float(), nullable=True),
        sa.Column("inc_err", sa.Float(), nullable=True),
        sa.Column("depth", sa.Float(), nullable=True),
        sa.Column("depth_err", sa.Float(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("duration_err", sa.Float(), nullable=True),
        sa.Column("partial", sa.Boolean(), nullable=True),
        sa.Column("contact", sa.String(length=16), nullable=True),
        sa.Column("detrending", sa.String(length=16), nullable=True),
        sa.Column("points_used", sa.Integer(), nullable=False),
        sa.Column("points_rejected", sa.Integer(), nullable=False),
        sa.Column("ensemble_size", sa.Integer(), nullable=True),
        sa.Column("chi2_reduced", sa.Float(), nullable=True),
        sa.Column("red_noise_beta", sa.Float(), nullable=True),
        sa.Column("error_scale", sa.Float(), nullable=True),
        sa.Column("lights", sa.Integer(), nullable=False),
        sa.Column("last_frame_id", sa.Integer(), nullable=True),
        sa.Column("report_path", sa.String(length=1024), nullable=True),
        sa.Column("plot_path", sa.String(length=1024), nullable=True),
        sa.Column("points_path", sa.String(length=1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("night", "planet", name="uq_imaging_transit_fits_night_planet"),
    )
    op.create_table(
        "imaging_transit_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fit_id", sa.Integer(), nullable=False),
        sa.Column("frame_id", sa.Integer(), nullable=True),
        sa.Column("bjd_tdb", sa.Float(precision=53), nullable=True),
        sa.Column("flux", sa.Float(), nullable=True),
        sa.Column("error", sa.Float(), nullable=True),
        sa.Column("airmass", sa.Float(), nullable=True),
        sa.Column("background", sa.Float(), nullable=True),
        sa.Column("fwhm", sa.Float(), nullable=True),
        sa.Column("x", sa.Float(), nullable=True),
        sa.Column("y", sa.Float(), nullable=True),
        sa.Column("model", sa.Float(), nullable=True),
        sa.Column("residual", sa.Float(), nullable=True),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["fit_id"], ["imaging_transit_fits.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["frame_id"], ["imaging_frames.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_imaging_transit_points_fit", "imaging_transit_points", ["fit_id"])


def downgrade() -> None:
    op.drop_index("ix_imaging_transit_points_fit", table_name="imaging_transit_points")
    op.drop_table("imaging_transit_points")
    op.drop_table("imaging_transit_fits")
