"""Shared query parameters: time ranges and pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from fastapi import HTTPException, Query
from pydantic import BaseModel

T = TypeVar("T")
MAX_SPAN = timedelta(days=400)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Paging:
    def __init__(
        self,
        limit: int = Query(100, ge=1, le=1000, description="at most this many items"),
        offset: int = Query(0, ge=0, le=10_000_000, description="skip this many items"),
    ) -> None:
        self.limit = limit
        self.offset = offset


class TimeRange:
    """``start``/``end`` as ISO 8601 with a zone; defaults to the last 24 hours."""

    def __init__(
        self,
        start: datetime | None = Query(None, description="ISO 8601 with a time zone; default: end - 24 h"),
        end: datetime | None = Query(None, description="ISO 8601 with a time zone; default: now"),
    ) -> None:
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.tzinfo is None:
                raise HTTPException(422, f"{name} needs a time zone (e.g. 2026-11-21T20:00:00Z)")
        try:
            self.end = (end or datetime.now(UTC)).astimezone(UTC)
            self.start = (start or self.end - timedelta(hours=24)).astimezone(UTC)
        except (OverflowError, ValueError):
            raise HTTPException(422, "start or end is out of range") from None
        if self.start >= self.end:
            raise HTTPException(422, "start must be before end")
        if self.end - self.start > MAX_SPAN:
            raise HTTPException(422, f"the time range may span at most {MAX_SPAN.days} days")
