"""project stacks (imaging/projectstacks) for the target page

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import obsy_web.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    site = op.get_context().config.attributes.get("site_id") or "obsy"
    op.create_table(
        "project_stacks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False, server_default=site),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stack_id", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("filter", sa.String(length=100), nullable=True),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("integration_s", sa.Float(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site", "stack_id", "time", name="uq_project_stacks_site_stack_id_time"),
    )
    op.create_index("ix_project_stacks_target", "project_stacks", ["target"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_project_stacks_target", table_name="project_stacks")
    op.drop_table("project_stacks")
