"""imaging: live stack states, calibration masters, calibrated lights and photometry points

Revision ID: 0004_imaging
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import obsy_web.db.types

revision = "0004_imaging"
down_revision = "0003"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _time() -> sa.Column:
    return sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False)


def _data() -> sa.Column:
    return sa.Column(
        "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "live_stack_states",
        _id(),
        _time(),
        sa.Column("stack_id", sa.BigInteger(), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("integration_s", sa.Float(), nullable=False),
        sa.Column("left_out", sa.Integer(), nullable=False),
        sa.Column("preview", sa.Text(), nullable=False),
        _data(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stack_id", "time", name="uq_live_stack_states_stack_time"),
    )
    op.create_index("ix_live_stack_states_night_time", "live_stack_states", ["night", "time"], unique=False)
    op.create_index("ix_live_stack_states_time", "live_stack_states", ["time"], unique=False)
    op.create_table(
        "calibration_masters",
        _id(),
        sa.Column("master_id", sa.String(length=128), nullable=False),
        _time(),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("exposure_s", sa.Float(), nullable=False),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("gain", sa.Float(), nullable=True),
        sa.Column("binning", sa.String(length=16), nullable=True),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("replaces", sa.String(length=128), nullable=True),
        _data(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("master_id"),
    )
    op.create_index("ix_calibration_masters_time", "calibration_masters", ["time"], unique=False)
    op.create_table(
        "calibrated_lights",
        _id(),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        _time(),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("filter", sa.String(length=100), nullable=True),
        _data(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("ix_calibrated_lights_night_time", "calibrated_lights", ["night", "time"], unique=False)
    op.create_index("ix_calibrated_lights_time", "calibrated_lights", ["time"], unique=False)
    op.create_table(
        "photometry_points",
        _id(),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        _time(),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("band", sa.String(length=16), nullable=True),
        sa.Column("jd", sa.Float(), nullable=True),
        sa.Column("magnitude", sa.Float(), nullable=True),
        sa.Column("error", sa.Float(), nullable=True),
        sa.Column("check_magnitude", sa.Float(), nullable=True),
        sa.Column("check_residual", sa.Float(), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        _data(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("ix_photometry_points_target_night", "photometry_points", ["target", "night"], unique=False)
    op.create_index("ix_photometry_points_time", "photometry_points", ["time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_photometry_points_time", table_name="photometry_points")
    op.drop_index("ix_photometry_points_target_night", table_name="photometry_points")
    op.drop_table("photometry_points")
    op.drop_index("ix_calibrated_lights_time", table_name="calibrated_lights")
    op.drop_index("ix_calibrated_lights_night_time", table_name="calibrated_lights")
    op.drop_table("calibrated_lights")
    op.drop_index("ix_calibration_masters_time", table_name="calibration_masters")
    op.drop_table("calibration_masters")
    op.drop_index("ix_live_stack_states_time", table_name="live_stack_states")
    op.drop_index("ix_live_stack_states_night_time", table_name="live_stack_states")
    op.drop_table("live_stack_states")
