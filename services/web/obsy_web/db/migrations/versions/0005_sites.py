"""sites: a site column in every table written from the bus, and in its unique keys

Rows stored before this migration belong to the local site: its id is handed over by the
service (``site_id``, from ``site.id`` or the broker prefix), ``obsy`` when none is. The
column's database default stays that id, so a row written without a site is the local one.

Revision ID: 0005
Revises: 0004_imaging
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004_imaging"
branch_labels = None
depends_on = None

#: Tables written by the ingestor: (table, old unique constraint, its columns after the site).
KEYED = [
    ("weather_readings", "uq_weather_readings_quantity_source_time", ["quantity", "source", "time"]),
    ("safety_verdicts", "uq_safety_verdicts_time", ["time"]),
    ("cloud_results", "uq_cloud_results_time", ["time"]),
    ("mcp_states", "uq_mcp_states_time", ["time"]),
    ("scheduler_plans", "uq_scheduler_plans_time", ["time"]),
    ("live_stack_states", "uq_live_stack_states_stack_time", ["stack_id", "time"]),
]
#: Tables whose key (the message's fingerprint: topic and payload) already tells sites apart.
UNKEYED = ["events", "allsky_streaks", "availability_changes", "calibrated_lights", "photometry_points"]
#: Tables whose single column was unique without a name: (table, column).
UNNAMED = [("allsky_frames", "frame_id"), ("calibration_masters", "master_id")]
#: Indexes for one site's rows in time order (the API's ``site=`` filter).
INDEXES = [
    ("ix_events_site_time", "events", ["site", "time"]),
    ("ix_allsky_frames_site_time", "allsky_frames", ["site", "time"]),
    ("ix_allsky_streaks_site_night", "allsky_streaks", ["site", "night"]),
    ("ix_availability_changes_site_service_time", "availability_changes", ["site", "service", "time"]),
]
#: SQLite's copy of allsky_frames names its unnamed unique constraint with this convention.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _new_name(table: str, columns: list[str]) -> str:
    return f"uq_{table}_site_{'_'.join(columns)}"


def _site_column(site: str) -> sa.Column:
    return sa.Column("site", sa.String(length=64), nullable=False, server_default=site)


def upgrade() -> None:
    site = op.get_context().config.attributes.get("site_id") or "obsy"
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, old, columns in KEYED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_site_column(site))
            batch.drop_constraint(old, type_="unique")
            batch.create_unique_constraint(_new_name(table, columns), ["site", *columns])
    for table, column in UNNAMED:
        old = f"uq_{table}_{column}" if sqlite else f"{table}_{column}_key"
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.add_column(_site_column(site))
            batch.drop_constraint(old, type_="unique")
            batch.create_unique_constraint(f"uq_{table}_site_{column}", ["site", column])
    for table in UNKEYED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_site_column(site))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    """Back to one site: rows of other sites (not ``site_id``, default ``obsy``) would break the old keys: deleted."""
    site = op.get_context().config.attributes.get("site_id") or "obsy"
    for table in [*(entry[0] for entry in KEYED), *(entry[0] for entry in UNNAMED), *UNKEYED]:
        op.execute(sa.text(f"DELETE FROM {table} WHERE site <> :site").bindparams(site=site))
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    for table in UNKEYED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("site")
    for table, column in UNNAMED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_site_{column}", type_="unique")
            batch.drop_column("site")
            batch.create_unique_constraint(f"{table}_{column}_key", [column])
    for table, old, columns in KEYED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_new_name(table, columns), type_="unique")
            batch.drop_column("site")
            batch.create_unique_constraint(old, columns)
