"""Tonight's plan from the scheduler."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select

from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext
from obsy_web.db.models import SchedulerPlanRecord, TargetRecord
from obsy_web.sky import altitude_curves

router = APIRouter(tags=["plan"], dependencies=[Depends(viewer)])


@router.get("/plan/tonight", summary="The scheduler's latest plan for tonight")
def plan_tonight(context: WebContext = Depends(get_context)) -> dict[str, Any]:
    plan = context.latest.get("scheduler/plan")
    if isinstance(plan, dict):
        return plan
    with context.sessions() as db:
        stored = db.scalar(select(SchedulerPlanRecord.plan).order_by(SchedulerPlanRecord.time.desc()).limit(1))
    if stored is None:
        raise HTTPException(404, "no plan yet: the scheduler has not published one")
    return stored


@router.get("/plan/tonight/altitudes", summary="Altitude curves of tonight's planned targets")
def plan_altitudes(context: WebContext = Depends(get_context)) -> dict[str, Any]:
    plan = plan_tonight(context)
    start, end = plan.get("dark_start"), plan.get("dark_end")
    blocks = plan.get("blocks") or []
    if not (start and end) and blocks:
        start, end = min(b["start"] for b in blocks), max(b["end"] for b in blocks)
    if not (start and end):
        raise HTTPException(404, "the plan has no night window to draw")
    wanted = {b["target_id"] for b in blocks}
    with context.sessions() as db:
        rows = db.execute(
            select(TargetRecord.id, TargetRecord.name, TargetRecord.ra_deg, TargetRecord.dec_deg).where(
                TargetRecord.id.in_(wanted)
            )
        ).all()
    try:
        curves = altitude_curves(context.config.site, datetime.fromisoformat(start), datetime.fromisoformat(end), rows)
    except ValueError as exc:
        raise HTTPException(422, f"the plan's night window cannot be drawn: {exc}") from None
    return curves
