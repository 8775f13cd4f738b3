"""Tonight's plan from the scheduler."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select

from obsy import astro
from obsy.messages import Target
from obsy_web.api.fleet import fleet_of, of_site, site_filter
from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext
from obsy_web.db.models import SchedulerPlanRecord, TargetRecord
from obsy_web.sky import altitude_curves

router = APIRouter(tags=["plan"], dependencies=[Depends(viewer)])


@router.get("/plan/tonight", summary="The scheduler's latest plan for tonight")
def plan_tonight(site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)) -> dict[str, Any]:
    latest = context.latest if site in (None, context.config.site_id()) else fleet_of(context).latest[site]
    plan = latest.get("scheduler/plan")
    if isinstance(plan, dict):
        return plan
    p = SchedulerPlanRecord
    with context.sessions() as db:
        stored = db.scalar(select(p.plan).where(*of_site(p.site, site)).order_by(p.time.desc()).limit(1))
    if stored is None:
        raise HTTPException(404, "no plan yet: the scheduler has not published one")
    return stored


@router.get(
    "/plan/tonight/altitudes",
    summary="Altitude curves of tonight's planned targets",
    description="With site=, a bridged site's plan, seen from that site: its position from its plan (the "
    "scheduler names it) or from web.sites, its targets from its retained target list (web/targets).",
)
def plan_altitudes(
    site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)
) -> dict[str, Any]:
    plan = plan_tonight(site, context)
    start, end = plan.get("dark_start"), plan.get("dark_end")
    blocks = plan.get("blocks") or []
    if not (start and end) and blocks:
        start, end = min(b["start"] for b in blocks), max(b["end"] for b in blocks)
    if not (start and end):
        raise HTTPException(404, "the plan has no night window to draw")
    wanted = {b["target_id"] for b in blocks}
    if site in (None, context.config.site_id()):
        where: astro.SiteLike = context.config.site
        with context.sessions() as db:
            rows = db.execute(
                select(TargetRecord.id, TargetRecord.name, TargetRecord.ra_deg, TargetRecord.dec_deg).where(
                    TargetRecord.id.in_(wanted)
                )
            ).all()
    else:
        where, rows = _bridged_site_plan(context, site, wanted)
    try:
        curves = altitude_curves(where, datetime.fromisoformat(start), datetime.fromisoformat(end), rows)
    except ValueError as exc:
        raise HTTPException(422, f"the plan's night window cannot be drawn: {exc}") from None
    return curves


def _bridged_site_plan(
    context: WebContext, site_id: str, wanted: set[str]
) -> tuple[astro.SiteLike, list[tuple[str, str, float, float]]]:
    """A bridged site's position (its plan's, else ``web.sites``') and its planned targets (its target list)."""
    fleet = fleet_of(context)
    site = fleet.get(site_id)
    assert site is not None  # site_filter checked it
    where, _zone = fleet.place(site)
    if where is None:
        raise HTTPException(
            422,
            f"site {site_id}'s position is not known here: its plan names none (a scheduler older than the "
            "plan's site field) and web.sites gives it no latitude and longitude",
        )
    listed = fleet.latest[site_id].get("web/targets")
    targets = listed.get("targets") if isinstance(listed, dict) else None
    rows = []
    for target in targets if isinstance(targets, list) else []:
        try:
            known = Target.model_validate(target)
        except ValidationError:
            continue  # the site's own web service published it; a bad one is left out, not drawn wrong
        if known.id in wanted:
            rows.append((known.id, known.name, known.ra_deg, known.dec_deg))
    return where, rows


#: The Ekos files a plan names: its schedule and its jobs' sequences (small XML files).
EKOS_SUFFIXES = (".esl", ".esq")


@router.get(
    "/plan/tonight/files.zip",
    summary="The Ekos files of tonight's plan (schedule and sequences) as a zip",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, 404: {"description": "no plan, or its files are not here"}},
)
def plan_files(context: WebContext = Depends(get_context)) -> Response:
    """The schedule (.esl) and the sequences (.esq) the scheduler wrote for the latest plan,
    under ``<night>/<run>/`` as on the scheduler's disk. Served only from the data directory
    (where the scheduler writes them by default, ``<data_dir>/ekos``): the web and the
    scheduler share it in the compose setup. The schedule names its sequences by their paths
    on the scheduler's host; ``obsy-scheduler plan --out DIR`` writes a set for another place."""
    plan = plan_tonight(site_filter(None, context), context)
    paths = [p for p in [plan.get("ekos_schedule_path"), *(plan.get("sequence_paths") or [])] if p]
    if not paths:
        raise HTTPException(404, "the latest plan has no Ekos files (nothing was planned)")
    root = context.data_dir
    files: list[tuple[Path, str]] = []
    for name in paths:
        path = Path(name)
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise HTTPException(
                404, f"the plan's file {path.name} is not on this host (it was written at {name})"
            ) from None
        if not real.is_relative_to(root) or real.suffix not in EKOS_SUFFIXES or not real.is_file():
            raise HTTPException(404, f"the plan's file {path.name} is outside the data directory: not served")
        files.append((real, "/".join(real.parts[-3:])))  # <night>/<run>/<file>
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for real, arcname in files:
            archive.write(real, arcname)
    night = plan.get("night") or "plan"
    headers = {"Content-Disposition": f'attachment; filename="obsy-ekos-{night}.zip"'}
    return Response(buffer.getvalue(), media_type="application/zip", headers=headers)
