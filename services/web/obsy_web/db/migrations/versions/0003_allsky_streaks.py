"""allsky streaks: the meteors and satellites of allsky/streaks, for a night's gallery

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import obsy_web.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allsky_streaks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("frame_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("snr", sa.Float(), nullable=False),
        sa.Column("length_px", sa.Float(), nullable=False),
        sa.Column("length_deg", sa.Float(), nullable=True),
        sa.Column("crop_url", sa.Text(), nullable=True),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("ix_allsky_streaks_night_time", "allsky_streaks", ["night", "time"], unique=False)
    op.create_index("ix_allsky_streaks_time", "allsky_streaks", ["time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_allsky_streaks_time", table_name="allsky_streaks")
    op.drop_index("ix_allsky_streaks_night_time", table_name="allsky_streaks")
    op.drop_table("allsky_streaks")
