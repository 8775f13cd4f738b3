"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import obsy_web.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "allsky_frames",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("frame_id", sa.String(length=128), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("exposure_s", sa.Float(), nullable=False),
        sa.Column("gain", sa.Float(), nullable=True),
        sa.Column("stars", sa.Integer(), nullable=True),
        sa.Column("sqm", sa.Float(), nullable=True),
        sa.Column("sun_altitude", sa.Float(), nullable=True),
        sa.Column("moon_altitude", sa.Float(), nullable=True),
        sa.Column("moon_phase", sa.Float(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("fits_url", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("frame_id"),
    )
    op.create_index("ix_allsky_frames_night_time", "allsky_frames", ["night", "time"], unique=False)
    op.create_index("ix_allsky_frames_time", "allsky_frames", ["time"], unique=False)
    op.create_table(
        "availability_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("availability", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_availability_changes_service_time", "availability_changes", ["service", "time"], unique=False)
    op.create_table(
        "cloud_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cloud_cover", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("clear", sa.Boolean(), nullable=True),
        sa.Column(
            "methods", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("frame_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("time", name="uq_cloud_results_time"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("ix_events_service_time", "events", ["service", "time"], unique=False)
    op.create_index("ix_events_time", "events", ["time"], unique=False)
    op.create_table(
        "mcp_states",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("roof", sa.String(length=16), nullable=False),
        sa.Column("safe", sa.Boolean(), nullable=False),
        sa.Column("alarm", sa.Boolean(), nullable=False),
        sa.Column(
            "unsafe_reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("time", name="uq_mcp_states_time"),
    )
    op.create_table(
        "safety_verdicts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("safe", sa.Boolean(), nullable=False),
        sa.Column("since", obsy_web.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "reasons", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("time", name="uq_safety_verdicts_time"),
    )
    op.create_table(
        "scheduler_plans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column(
            "plan", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("time", name="uq_scheduler_plans_time"),
    )
    op.create_index("ix_scheduler_plans_night", "scheduler_plans", ["night"], unique=False)
    op.create_table(
        "targets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("catalogue_id", sa.String(length=64), nullable=True),
        sa.Column("ra_deg", sa.Float(), nullable=False),
        sa.Column("dec_deg", sa.Float(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "constraints", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "weather_readings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("quantity", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("quantity", "source", "time", name="uq_weather_readings_quantity_source_time"),
    )
    op.create_index("ix_weather_readings_time", "weather_readings", ["time"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "exposure_plans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(length=32), nullable=True),
        sa.Column("exposure_s", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("acquired", sa.Integer(), nullable=False),
        sa.Column("binning", sa.Integer(), nullable=False),
        sa.Column("gain", sa.Integer(), nullable=True),
        sa.Column("offset", sa.Integer(), nullable=True),
        sa.Column("frame_type", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["targets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_exposure_plans_target_id"), "exposure_plans", ["target_id"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False)


def downgrade() -> None:

    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_exposure_plans_target_id"), table_name="exposure_plans")
    op.drop_table("exposure_plans")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index("ix_weather_readings_time", table_name="weather_readings")
    op.drop_table("weather_readings")
    op.drop_table("users")
    op.drop_table("targets")
    op.drop_index("ix_scheduler_plans_night", table_name="scheduler_plans")
    op.drop_table("scheduler_plans")
    op.drop_table("safety_verdicts")
    op.drop_table("mcp_states")
    op.drop_index("ix_events_time", table_name="events")
    op.drop_index("ix_events_service_time", table_name="events")
    op.drop_table("events")
    op.drop_table("cloud_results")
    op.drop_index("ix_availability_changes_service_time", table_name="availability_changes")
    op.drop_table("availability_changes")
    op.drop_index("ix_allsky_frames_time", table_name="allsky_frames")
    op.drop_index("ix_allsky_frames_night_time", table_name="allsky_frames")
    op.drop_table("allsky_frames")
