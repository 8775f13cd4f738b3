"""Deleting time series older than the configured retention (``web.retention``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete

from obsy_web.config import WebRetentionConfig
from obsy_web.db import models

log = logging.getLogger("obsy.web.retention")


def tables_by_setting() -> dict[str, list[type[models.Base]]]:
    return {
        "weather_days": [models.WeatherReading],
        "states_days": [
            models.SafetyVerdictRecord,
            models.CloudResult,
            models.McpStateRecord,
            models.AvailabilityChange,
            models.LiveStackState,
            models.CalibratedLightRecord,
            models.ImagingFrameRecord,
        ],
        "events_days": [models.EventRecord],
        "allsky_days": [models.AllskyFrameRecord, models.AllskyStreakRecord],
        "plans_days": [models.SchedulerPlanRecord],
    }


def apply_retention(engine: Engine, retention: WebRetentionConfig, now: datetime | None = None) -> dict[str, int]:
    """Delete rows past their retention; returns how many rows went, by table."""
    now = now or datetime.now(UTC)
    deleted: dict[str, int] = {}
    with engine.begin() as connection:
        for setting, tables in tables_by_setting().items():
            days = getattr(retention, setting)
            if days <= 0:
                continue
            cutoff = now - timedelta(days=days)
            for model in tables:
                result = connection.execute(delete(model).where(model.time < cutoff))
                deleted[model.__tablename__] = result.rowcount
    removed = {table: count for table, count in deleted.items() if count}
    if removed:
        log.info("retention removed old rows: %s", removed, extra={"event": "retention", "deleted": removed})
    return deleted
