"""night summaries: the imaging service's frames (imaging/frames) and the end-of-night summaries sent

``imaging_frames`` keeps each frame's night, target, filter, exposure and grade, which the
end-of-night summary counts; ``night_summaries`` records each summary and when it was sent, so
it goes once per night across restarts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import obsy_web.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _site() -> sa.Column:
    # As migration 0005: the database default is the local site's id at the time of the migration.
    site = op.get_context().config.attributes.get("site_id") or "obsy"
    return sa.Column("site", sa.String(length=64), nullable=False, server_default=site)


def upgrade() -> None:
    op.create_table(
        "imaging_frames",
        _id(),
        _site(),
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("frame_type", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("exposure_s", sa.Float(), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.Column("rejected_because", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site", "frame_id", name="uq_imaging_frames_site_frame_id"),
    )
    op.create_index("ix_imaging_frames_site_night", "imaging_frames", ["site", "night"], unique=False)
    op.create_index("ix_imaging_frames_time", "imaging_frames", ["time"], unique=False)
    op.create_table(
        "night_summaries",
        _id(),
        _site(),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("ended_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("summary", _json(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("sent_at", obsy_web.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site", "night", name="uq_night_summaries_site_night"),
    )


def downgrade() -> None:
    op.drop_table("night_summaries")
    op.drop_index("ix_imaging_frames_time", table_name="imaging_frames")
    op.drop_index("ix_imaging_frames_site_night", table_name="imaging_frames")
    op.drop_table("imaging_frames")
