"""target page: imaging frames keep their grade's figures and whole message; night stacks (imaging/nightstacks)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import obsy_web.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    site = op.get_context().config.attributes.get("site_id") or "obsy"
    with op.batch_alter_table("imaging_frames") as table:
        table.add_column(sa.Column("date_obs", obsy_web.db.types.UTCDateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("fwhm_px", sa.Float(), nullable=True))
        table.add_column(sa.Column("background", sa.Float(), nullable=True))
        table.add_column(sa.Column("data", JSON, nullable=True))
    op.create_table(
        "night_stacks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False, server_default=site),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stack_id", sa.BigInteger(), nullable=False),
        sa.Column("live_stack_id", sa.BigInteger(), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("integration_s", sa.Float(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site", "stack_id", "time", name="uq_night_stacks_site_stack_id_time"),
    )
    op.create_index("ix_night_stacks_night", "night_stacks", ["night"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_night_stacks_night", table_name="night_stacks")
    op.drop_table("night_stacks")
    with op.batch_alter_table("imaging_frames") as table:
        table.drop_column("data")
        table.drop_column("background")
        table.drop_column("fwhm_px")
        table.drop_column("date_obs")
