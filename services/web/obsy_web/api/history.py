"""Weather history with downsampling, safety verdict history, the event log."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import BigInteger, ColumnElement, Integer, cast, func, or_, select
from sqlalchemy.orm import Session

from obsy.messages import CommandOrigin
from obsy_web.api.common import Page, Paging, TimeRange
from obsy_web.api.fleet import of_site, site_filter
from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext
from obsy_web.db.models import EventRecord, SafetyVerdictRecord, WeatherReading
from obsy_web.targets import NO_CONTROL_CHARACTERS

router = APIRouter(dependencies=[Depends(viewer)])

LEVELS = ("debug", "info", "warning", "error", "critical")


class WeatherPoint(BaseModel):
    time: datetime
    mean: float | None
    min: float | None
    max: float | None
    count: int


class WeatherSeries(BaseModel):
    quantity: str
    unit: str
    points: list[WeatherPoint]


class WeatherHistory(BaseModel):
    start: datetime
    end: datetime
    bucket_s: int
    series: list[WeatherSeries]


class SafetyRecord(BaseModel):
    time: datetime
    safe: bool
    since: datetime | None
    reasons: list[dict[str, Any]]


class EventItem(BaseModel):
    id: int
    time: datetime
    service: str
    kind: str
    level: str
    message: str
    data: dict[str, Any]
    origin: str | None = Field(
        default=None,
        description="who sent the command the event answers or records (data.origin, in words); null for others",
    )


def origin_of(data: dict[str, Any]) -> str | None:
    """``data.origin`` of a stored event in words ('web user ada, role operator'); None without a readable one."""
    raw = data.get("origin")
    if not isinstance(raw, dict):
        return None
    try:
        return CommandOrigin.model_validate(raw).describe()
    except ValidationError:
        return None


def _bucket(db: Session, seconds: int) -> ColumnElement[int]:
    """Which ``seconds``-wide bucket a reading's time falls in: floor(epoch / width)."""
    if db.get_bind().dialect.name == "postgresql":
        epoch = cast(func.floor(func.extract("epoch", WeatherReading.time)), BigInteger)
    else:
        epoch = cast(func.strftime("%s", WeatherReading.time), Integer)
    return epoch // seconds


@router.get("/weather/quantities", tags=["weather"], summary="Quantities with stored readings")
def weather_quantities(
    site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)
) -> list[str]:
    with context.sessions() as db:
        query = select(WeatherReading.quantity).where(*of_site(WeatherReading.site, site)).distinct()
        return list(db.scalars(query.order_by(WeatherReading.quantity)))


@router.get("/weather/history", tags=["weather"], response_model=WeatherHistory, summary="Weather readings over time")
def weather_history(
    window: TimeRange = Depends(),
    quantity: list[str] | None = Query(None, max_length=50, description="repeat for several; default: all"),
    points: int = Query(500, ge=1, le=5000, description="at most this many points per quantity (downsampled)"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> WeatherHistory:
    span = (window.end - window.start).total_seconds()
    bucket_s = max(1, math.ceil(span / points))
    with context.sessions() as db:
        bucket = _bucket(db, bucket_s).label("bucket")
        query = (
            select(
                WeatherReading.quantity,
                bucket,
                func.avg(WeatherReading.value),
                func.min(WeatherReading.value),
                func.max(WeatherReading.value),
                func.count(),
                func.max(WeatherReading.unit),
            )
            .where(WeatherReading.time >= window.start, WeatherReading.time < window.end)
            .where(*of_site(WeatherReading.site, site))
            .group_by(WeatherReading.quantity, bucket)
            .order_by(WeatherReading.quantity, bucket)
        )
        if quantity:
            query = query.where(WeatherReading.quantity.in_(quantity))
        rows = db.execute(query).all()
    series: dict[str, WeatherSeries] = {}
    for name, index, mean, low, high, count, unit in rows:
        entry = series.setdefault(name, WeatherSeries(quantity=name, unit=unit or "", points=[]))
        entry.points.append(
            WeatherPoint(
                time=datetime.fromtimestamp(int(index) * bucket_s, UTC),
                mean=None if mean is None else float(mean),
                min=None if low is None else float(low),
                max=None if high is None else float(high),
                count=count,
            )
        )
    return WeatherHistory(start=window.start, end=window.end, bucket_s=bucket_s, series=list(series.values()))


@router.get("/safety/history", tags=["weather"], response_model=Page[SafetyRecord], summary="Safety verdict changes")
def safety_history(
    window: TimeRange = Depends(),
    paging: Paging = Depends(),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Page[SafetyRecord]:
    where = (
        SafetyVerdictRecord.time >= window.start,
        SafetyVerdictRecord.time < window.end,
        *of_site(SafetyVerdictRecord.site, site),
    )
    with context.sessions() as db:
        total = db.scalar(select(func.count()).select_from(SafetyVerdictRecord).where(*where)) or 0
        rows = db.scalars(
            select(SafetyVerdictRecord)
            .where(*where)
            .order_by(SafetyVerdictRecord.time.desc())
            .limit(paging.limit)
            .offset(paging.offset)
        )
        items = [SafetyRecord(time=r.time, safe=r.safe, since=r.since, reasons=r.reasons) for r in rows]
    return Page(items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.get("/events", tags=["events"], response_model=Page[EventItem], summary="The event log, newest first")
def events(
    *,
    window: TimeRange = Depends(),
    paging: Paging = Depends(),
    service: str | None = Query(None, max_length=64, pattern=NO_CONTROL_CHARACTERS),
    kind: str | None = Query(None, max_length=64, pattern=NO_CONTROL_CHARACTERS),
    level: Literal["debug", "info", "warning", "error", "critical"] | None = Query(
        None, description="this level and above"
    ),
    text: str | None = Query(None, max_length=200, pattern=NO_CONTROL_CHARACTERS, description="words in the message"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Page[EventItem]:
    where: list[Any] = [EventRecord.time >= window.start, EventRecord.time < window.end]
    where += of_site(EventRecord.site, site)
    if service:
        where.append(EventRecord.service == service)
    if kind:
        where.append(EventRecord.kind == kind)
    if level:
        where.append(or_(*(EventRecord.level == name for name in LEVELS[LEVELS.index(level) :])))
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(EventRecord.message.ilike(f"%{escaped}%", escape="\\"))
    with context.sessions() as db:
        total = db.scalar(select(func.count()).select_from(EventRecord).where(*where)) or 0
        rows = db.scalars(
            select(EventRecord)
            .where(*where)
            .order_by(EventRecord.time.desc(), EventRecord.id.desc())
            .limit(paging.limit)
            .offset(paging.offset)
        )
        items = [
            EventItem(
                id=r.id,
                time=r.time,
                service=r.service,
                kind=r.kind,
                level=r.level,
                message=r.message,
                data=r.data,
                origin=origin_of(r.data),
            )
            for r in rows
        ]
    return Page(items=items, total=total, limit=paging.limit, offset=paging.offset)
