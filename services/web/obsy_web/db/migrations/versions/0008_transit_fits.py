"""transit fits: the imaging service's exoplanet transit nights (imaging/transits)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import obsy_web.db.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    site = op.get_context().config.attributes.get("site_id") or "obsy"
    op.create_table(
        "transit_fits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False, server_default=site),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("time", obsy_web.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("night", sa.String(length=10), nullable=False),
        sa.Column("planet", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tc", sa.Float(), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("plot", sa.Text(), nullable=True),
        sa.Column("points", sa.Text(), nullable=True),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("ix_transit_fits_planet_night", "transit_fits", ["planet", "night"], unique=False)
    op.create_index("ix_transit_fits_time", "transit_fits", ["time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_transit_fits_time", table_name="transit_fits")
    op.drop_index("ix_transit_fits_planet_night", table_name="transit_fits")
    op.drop_table("transit_fits")
