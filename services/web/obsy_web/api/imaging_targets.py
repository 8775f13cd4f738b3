"""A page's worth per target: its stacks, its integration per filter against the plan, its frames
with their grades, and the files behind them (stacks as FITS, previews drawn on demand).

A target is named as the frames' OBJECT gives it and matched without case or blanks (``M 31``,
``m31``), as the accepted-lights count of the targets' plans is (``obsy_web.targets.name_key``).
Everything comes from the rows stored from the bus (``imaging_frames``, ``live_stack_states``,
``night_stacks``, ``calibrated_lights``) and from the planned targets kept here; files are read from
the imaging repository on the shared data volume (this site's only).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as FastApiPath
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from obsy.filters import same_filter
from obsy.messages import FrameType
from obsy_web.api.common import Page, Paging
from obsy_web.api.fleet import of_site, site_filter
from obsy_web.api.imaging import NIGHT_PATTERN, LiveStackItem, _inside, _stack_item, files_of, is_local
from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext
from obsy_web.db.models import (
    CalibratedLightRecord,
    ImagingFrameRecord,
    LiveStackState,
    NightStackRecord,
    ProjectStackRecord,
    TargetRecord,
)
from obsy_web.previews import MAX_WIDTH, MIN_WIDTH, PreviewCache, PreviewError
from obsy_web.targets import EXPOSURE_TOLERANCE, counted_for, name_key

router = APIRouter(tags=["imaging"])
LIGHT = FrameType.LIGHT.value  # as plans say it
FITS_SUFFIXES = (".fits", ".fit", ".fts")
THUMBNAIL_WIDTH = 256
IS_LIGHT = func.lower(ImagingFrameRecord.frame_type) == "light"  # as the imaging service says it


# --- finding a target's rows ---------------------------------------------------------------------


def _frame_names(session: Session, key: str, site: str | None) -> list[str]:
    """Every OBJECT spelling of the lights that is the target ``key`` (there are few targets: compared here)."""
    names = session.scalars(
        select(ImagingFrameRecord.target).where(IS_LIGHT, *of_site(ImagingFrameRecord.site, site)).distinct()
    ).all()
    return [name for name in names if name is not None and name_key(name) == key]


def _stack_names(session: Session, model: type[LiveStackState] | type[NightStackRecord], key: str, site: str | None):
    names = session.scalars(select(model.target).where(*of_site(model.site, site)).distinct()).all()
    return [name for name in names if name is not None and name_key(name) == key]


def _planned(session: Session, key: str) -> TargetRecord | None:
    return next((t for t in session.scalars(select(TargetRecord)).all() if name_key(t.name) == key), None)


# --- the list of targets -----------------------------------------------------------------------------


class ImagingTargetItem(BaseModel):
    target: str = Field(description="as the newest light's OBJECT gives it")
    nights: int = Field(description="nights with lights of it")
    last_night: str
    lights: int
    accepted: int
    accepted_s: float = Field(description="exposure of the accepted lights, added up (seconds)")
    page: str = Field(description="the target's page on the dashboard")


@router.get("/imaging/targets", response_model=list[ImagingTargetItem], dependencies=[Depends(viewer)])
def imaging_targets(
    site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)
) -> list[ImagingTargetItem]:
    """Every target with lights in the imaging repository, the one observed last first."""
    with context.sessions() as session:
        rows = session.execute(
            select(
                ImagingFrameRecord.target,
                ImagingFrameRecord.night,
                ImagingFrameRecord.accepted,
                ImagingFrameRecord.exposure_s,
                ImagingFrameRecord.time,
            ).where(
                IS_LIGHT,
                ImagingFrameRecord.target.is_not(None),
                *of_site(ImagingFrameRecord.site, site),
            )
        ).all()
    merged: dict[str, dict[str, Any]] = {}
    for name, night, accepted, exposure, time in rows:
        item = merged.setdefault(
            name_key(name), {"name": name, "newest": time, "nights": set(), "lights": 0, "accepted": 0, "seconds": 0.0}
        )
        item["nights"].add(night)
        item["lights"] += 1
        if accepted:
            item["accepted"] += 1
            item["seconds"] += float(exposure or 0.0)
        if time >= item["newest"]:
            item.update(name=name, newest=time)
    items = [
        ImagingTargetItem(
            target=item["name"],
            nights=len(item["nights"]),
            last_night=max(item["nights"]),
            lights=item["lights"],
            accepted=item["accepted"],
            accepted_s=round(item["seconds"], 3),
            page=f"/imaging/targets/{quote(item['name'], safe='')}",
        )
        for item in merged.values()
    ]
    return sorted(items, key=lambda i: (i.last_night, i.target), reverse=True)


# --- one target --------------------------------------------------------------------------------------


class FilterProgress(BaseModel):
    filter: str | None
    exposure_s: float = Field(description="the plan line's exposure, or the lights' where no line plans them")
    planned: int | None = Field(description="lights the plan asks for (null: not in the plan)")
    planned_s: float | None
    accepted: int = Field(description="accepted lights of this filter and exposure, every night")
    accepted_s: float
    rejected: int = Field(description="rejected lights of this filter and exposure, every night")
    night_accepted: int = Field(description="accepted in the night shown")
    night_accepted_s: float


class NightStackItem(BaseModel):
    stack_id: int
    live_stack_id: int
    night: str
    target: str | None
    filter: str | None
    frames: int
    integration_s: float
    rejection: str | None = None
    rejected_fraction: float | None = None
    missing: int | None = None
    time: datetime
    fits: str | None = Field(description="download of the stack (FITS); null where the file is not here")
    preview: str | None = Field(description="a stretched preview drawn from it (add width=, up to 4096, for a sample)")


class ProjectStackItem(BaseModel):
    stack_id: int
    target: str
    filter: str | None
    nights: list[str]
    frames: int
    left_out: int
    integration_s: float
    rejection: str | None = None
    rejected_fraction: float | None = None
    seconds: float | None = Field(default=None, description="how long it took to build")
    time: datetime
    fits: str | None = Field(description="download of the stack (FITS); null where the file is not here")
    preview: str | None = Field(description="a stretched preview drawn from it (add width=, up to 4096, for a sample)")


class ProjectStackProgress(BaseModel):
    """The imaging service's last word on ``imaging/projectstack/state`` about this target."""

    status: str = Field(description="registering, stacking, done or failed")
    filter: str | None
    done: int = Field(description="lights registered, or rows stacked, so far")
    total: int = Field(description="lights to register, or rows to stack")
    stack_id: int | None = None
    reason: str | None = None
    time: datetime | None = Field(default=None, description="when the imaging service said it")


class TargetStack(LiveStackItem):
    fits: str | None = Field(default=None, description="download of the live stack (FITS)")


class TargetOverview(BaseModel):
    target: str
    planned_target_id: str | None = Field(description="the planned target of this name (GET /targets/{id})")
    nights: list[str] = Field(description="nights with lights of it, newest first")
    night: str | None = Field(description="the night shown (live stacks, night_accepted)")
    filters: list[FilterProgress]
    live_stacks: list[TargetStack] = Field(description="the night's live stacks, as their last fold left them")
    night_stacks: list[NightStackItem] = Field(description="stacks of record of every night, newest first")
    project_stacks: list[ProjectStackItem] = Field(
        default_factory=list, description="the newest project stack of each filter (every night's lights)"
    )
    project_progress: ProjectStackProgress | None = Field(
        default=None, description="the project stack of this target in progress, or the last one done or failed"
    )


def _plan_progress(
    planned: TargetRecord | None, frames: list[ImagingFrameRecord], key: str, night: str | None
) -> list[FilterProgress]:
    """Per plan line (lights only), the accepted lights that count for it; then the lights no line plans."""
    counts: dict[str, dict[tuple[str, str], list[tuple[str, float, int]]]] = {
        "accepted": defaultdict(list),
        "rejected": defaultdict(list),
        "night": defaultdict(list),
    }
    seconds: dict[str, dict[tuple[str, float], float]] = {name: defaultdict(float) for name in counts}
    spelled: dict[tuple[str, float], str | None] = {}
    for frame in frames:
        exposure = float(frame.exposure_s or 0.0)
        group = (name_key(frame.filter), round(exposure, 3))
        spelled.setdefault(group, frame.filter)
        kinds = ["accepted"] if frame.accepted else ["rejected"] if frame.accepted is False else []
        if frame.accepted and frame.night == night:
            kinds.append("night")
        for kind in kinds:
            counts[kind][(key, LIGHT)].append((group[0], exposure, 1))
            seconds[kind][group] += exposure
    rows: list[FilterProgress] = []
    planned_groups: set[tuple[str, float]] = set()
    lines = [p for p in (planned.exposure_plans if planned else []) if (p.frame_type or LIGHT) == LIGHT]
    for plan in lines:
        groups = {
            g
            for g in spelled
            if same_filter(g[0], plan.filter) and abs(g[1] - plan.exposure_s) <= EXPOSURE_TOLERANCE * plan.exposure_s
        }
        planned_groups |= groups
        rows.append(
            FilterProgress(
                filter=plan.filter,
                exposure_s=plan.exposure_s,
                planned=plan.count,
                planned_s=plan.count * plan.exposure_s,
                accepted=counted_for(plan, counts["accepted"], key),
                accepted_s=sum(seconds["accepted"][g] for g in groups),
                rejected=counted_for(plan, counts["rejected"], key),
                night_accepted=counted_for(plan, counts["night"], key),
                night_accepted_s=sum(seconds["night"][g] for g in groups),
            )
        )
    for group in sorted(set(spelled) - planned_groups):
        tally = {kind: sum(1 for f, e, _ in counts[kind][(key, LIGHT)] if (f, round(e, 3)) == group) for kind in counts}
        rows.append(
            FilterProgress(
                filter=spelled[group],
                exposure_s=group[1],
                planned=None,
                planned_s=None,
                accepted=tally["accepted"],
                accepted_s=seconds["accepted"][group],
                rejected=tally["rejected"],
                night_accepted=tally["night"],
                night_accepted_s=seconds["night"][group],
            )
        )
    return rows


def _night_stack_item(record: NightStackRecord, repository: Path | None) -> NightStackItem:
    data = record.data or {}
    here = _inside(repository, record.path, FITS_SUFFIXES) is not None
    base = f"/api/v1/imaging/nightstacks/{record.stack_id}"
    return NightStackItem(
        stack_id=record.stack_id,
        live_stack_id=record.live_stack_id,
        night=record.night,
        target=record.target,
        filter=record.filter,
        frames=record.frames,
        integration_s=record.integration_s,
        rejection=data.get("rejection"),
        rejected_fraction=data.get("rejected_fraction"),
        missing=data.get("missing"),
        time=record.time,
        fits=f"{base}/fits" if here else None,
        preview=f"{base}/preview" if here else None,
    )


def _project_stack_item(record: ProjectStackRecord, repository: Path | None) -> ProjectStackItem:
    data = record.data or {}
    here = _inside(repository, record.path, FITS_SUFFIXES) is not None
    base = f"/api/v1/imaging/projectstacks/{record.stack_id}"
    return ProjectStackItem(
        stack_id=record.stack_id,
        target=record.target,
        filter=record.filter,
        nights=data.get("nights") or [],
        frames=record.frames,
        left_out=data.get("left_out") or 0,
        integration_s=record.integration_s,
        rejection=data.get("rejection"),
        rejected_fraction=data.get("rejected_fraction"),
        seconds=data.get("seconds"),
        time=record.time,
        fits=f"{base}/fits" if here else None,
        preview=f"{base}/preview" if here else None,
    )


def _project_stacks(session: Session, key: str, site: str | None, repository: Path | None) -> list[ProjectStackItem]:
    """The newest project stack of each of the target's filters."""
    names = _stack_names(session, ProjectStackRecord, key, site)
    rows = session.scalars(
        select(ProjectStackRecord)
        .where(ProjectStackRecord.target.in_(names), *of_site(ProjectStackRecord.site, site))
        .order_by(ProjectStackRecord.time.desc(), ProjectStackRecord.id.desc())
    ).all()
    newest: dict[str, ProjectStackRecord] = {}
    for row in rows:
        newest.setdefault(name_key(row.filter), row)
    return [_project_stack_item(r, repository) for r in sorted(newest.values(), key=lambda r: name_key(r.filter))]


def _project_progress(context: WebContext, key: str, site: str | None) -> ProjectStackProgress | None:
    """The retained ``imaging/projectstack/state`` as the web last heard it, when it is about this target
    (this site's only: another site's progress is not bridged)."""
    if not is_local(context, site):
        return None
    state = context.latest.get("imaging/projectstack/state")
    if not isinstance(state, dict) or name_key(str(state.get("target") or "")) != key:
        return None
    try:
        return ProjectStackProgress(
            status=state["status"],
            filter=state.get("filter"),
            done=state.get("done", 0),
            total=state.get("total", 0),
            stack_id=state.get("stack_id"),
            reason=state.get("reason"),
            time=state.get("timestamp"),
        )
    except (KeyError, ValueError, TypeError):  # not a state the imaging service sends: none shown
        return None


@router.get("/imaging/targets/{target}", response_model=TargetOverview, dependencies=[Depends(viewer)])
def imaging_target(
    target: str = FastApiPath(..., min_length=1, max_length=200, description="the OBJECT name, any case or blanks"),
    night: str | None = Query(None, pattern=NIGHT_PATTERN, description="the night shown; default: its latest"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> TargetOverview:
    """One target: integration per filter against its plan, its live stacks of a night, its night stacks."""
    key = name_key(target)
    repository = files_of(context, site)
    with context.sessions() as session:
        names = _frame_names(session, key, site)
        live_names = _stack_names(session, LiveStackState, key, site)
        planned = _planned(session, key)
        projects = _project_stacks(session, key, site, repository)
        if not names and not live_names and planned is None and not projects:
            raise HTTPException(404, f"no lights, stacks or plan of a target {target!r}")
        frames = session.scalars(
            select(ImagingFrameRecord).where(
                IS_LIGHT,
                ImagingFrameRecord.target.in_(names),
                *of_site(ImagingFrameRecord.site, site),
            )
        ).all()
        nights = sorted({f.night for f in frames}, reverse=True)
        shown = night or (nights[0] if nights else None)
        newest = (
            select(func.max(LiveStackState.id))
            .where(
                LiveStackState.night == shown,
                LiveStackState.target.in_(live_names),
                *of_site(LiveStackState.site, site),
            )
            .group_by(LiveStackState.stack_id)
        )
        live = session.scalars(
            select(LiveStackState).where(LiveStackState.id.in_(newest)).order_by(LiveStackState.filter)
        ).all()
        stacked = session.scalars(
            select(NightStackRecord)
            .where(
                NightStackRecord.target.in_(_stack_names(session, NightStackRecord, key, site)),
                *of_site(NightStackRecord.site, site),
            )
            .order_by(NightStackRecord.night.desc(), NightStackRecord.time.desc())
        ).all()
        newest_names = sorted(frames, key=lambda f: f.time)
        shown_name = (
            newest_names[-1].target if newest_names else (live_names or [planned.name if planned else target])[0]
        )
        return TargetOverview(
            target=shown_name,
            planned_target_id=planned.id if planned else None,
            nights=nights,
            night=shown,
            filters=_plan_progress(planned, list(frames), key, shown),
            live_stacks=[
                TargetStack(
                    **_stack_item(r).model_dump(),
                    fits=f"/api/v1/imaging/stacks/{r.stack_id}/fits"
                    if _inside(repository, (r.data or {}).get("path"), FITS_SUFFIXES)
                    else None,
                )
                for r in live
            ],
            night_stacks=[_night_stack_item(r, repository) for r in stacked],
            project_stacks=projects,
            project_progress=_project_progress(context, key, site),
        )


class FrameItem(BaseModel):
    frame_id: int
    time: datetime
    date_obs: datetime | None
    night: str
    filter: str | None
    exposure_s: float | None
    accepted: bool | None = Field(description="null: not graded")
    rejected_because: list[str]
    fwhm_px: float | None
    fwhm_arcsec: float | None = None
    background: float | None
    noise: float | None = None
    snr: float | None = None
    stars: int | None = None
    eccentricity: float | None = None
    thumbnail: str | None = Field(description="a small stretched preview of the light (null: its FITS is not here)")
    preview: str | None = Field(description="a larger one (add width=, up to 4096)")


@router.get("/imaging/targets/{target}/frames", response_model=Page[FrameItem], dependencies=[Depends(viewer)])
def imaging_target_frames(
    target: str = FastApiPath(..., min_length=1, max_length=200),
    night: str | None = Query(None, pattern=NIGHT_PATTERN, description="default: the target's latest night"),
    paging: Paging = Depends(),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Page[FrameItem]:
    """The target's lights of a night in the order taken, with their grades (the frame grid, the charts)."""
    here = is_local(context, site)
    repository = files_of(context, site)
    with context.sessions() as session:
        names = _frame_names(session, name_key(target), site)
        in_target = [
            IS_LIGHT,
            ImagingFrameRecord.target.in_(names),
            *of_site(ImagingFrameRecord.site, site),
        ]
        if night is None:
            night = session.scalar(select(func.max(ImagingFrameRecord.night)).where(*in_target))
        query = select(ImagingFrameRecord).where(*in_target, ImagingFrameRecord.night == (night or ""))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        records = session.scalars(
            # In the order taken: the exposure's start, not when the imaging service reported it
            # (lights written together are ingested in any order).
            query.order_by(
                func.coalesce(ImagingFrameRecord.date_obs, ImagingFrameRecord.time), ImagingFrameRecord.frame_id
            )
            .limit(paging.limit)
            .offset(paging.offset)
        ).all()
        sources = _light_sources(session, records, site) if here else {}
        items = []
        for r in records:
            data = r.data or {}
            drawable = _inside(repository, sources.get(r.frame_id), FITS_SUFFIXES) or _inside(
                repository, data.get("path"), FITS_SUFFIXES
            )
            link = f"/api/v1/imaging/frames/{r.frame_id}/preview" if drawable else None
            items.append(
                FrameItem(
                    frame_id=r.frame_id,
                    time=r.time,
                    date_obs=r.date_obs,
                    night=r.night,
                    filter=r.filter,
                    exposure_s=r.exposure_s,
                    accepted=r.accepted,
                    rejected_because=[str(reason) for reason in r.rejected_because or []],
                    fwhm_px=r.fwhm_px,
                    fwhm_arcsec=data.get("fwhm_arcsec"),
                    background=r.background,
                    noise=data.get("noise"),
                    snr=data.get("snr"),
                    stars=data.get("stars"),
                    eccentricity=data.get("eccentricity"),
                    thumbnail=f"{link}?width={THUMBNAIL_WIDTH}" if link else None,
                    preview=link,
                )
            )
    return Page(items=items, total=total, limit=paging.limit, offset=paging.offset)


def _light_sources(session: Session, frames: Sequence[ImagingFrameRecord], site: str | None) -> dict[int, str]:
    """The calibrated FITS of each light (its latest calibration), by frame id: what its preview is drawn from."""
    rows = session.execute(
        select(CalibratedLightRecord.frame_id, CalibratedLightRecord.data)
        .where(CalibratedLightRecord.frame_id.in_([f.frame_id for f in frames]))
        .where(*of_site(CalibratedLightRecord.site, site))
        .order_by(CalibratedLightRecord.id)
    ).all()
    return {frame_id: (data or {}).get("path") for frame_id, data in rows}  # the latest wins


# --- files: previews drawn on demand, FITS downloads ----------------------------------------------------

JPEG_RESPONSES = {200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such file here, or not drawable"}}
FITS_RESPONSES = {200: {"content": {"image/fits": {}}}, 404: {"description": "no such file here"}}
Width = Query(1024, ge=MIN_WIDTH, le=MAX_WIDTH, description="at most this many pixels wide")


def _drawn(context: WebContext, source: Path, width: int) -> Response:
    try:
        if context.previews is None:  # one per service: it keeps the folder's size
            context.previews = PreviewCache(context.data_dir / "web" / "previews")
        jpeg = context.previews.jpeg(source, width)
    except PreviewError as error:
        raise HTTPException(404, f"cannot draw a preview: {error}") from None
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


@router.get(
    "/imaging/frames/{frame_id}/preview",
    response_class=Response,
    responses=JPEG_RESPONSES,
    dependencies=[Depends(viewer)],
)
def frame_preview(
    frame_id: int = FastApiPath(..., ge=0, le=2**62),
    width: int = Width,
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Response:
    """A light stretched (JPEG), from its latest calibration's FITS, else from the raw light."""
    repository = files_of(context, site)
    with context.sessions() as session:
        frame = session.scalars(
            select(ImagingFrameRecord).where(
                ImagingFrameRecord.frame_id == frame_id, *of_site(ImagingFrameRecord.site, site)
            )
        ).first()
        calibrated = session.scalars(
            select(CalibratedLightRecord.data)
            .where(CalibratedLightRecord.frame_id == frame_id, *of_site(CalibratedLightRecord.site, site))
            .order_by(CalibratedLightRecord.id.desc())
            .limit(1)
        ).first()
    if frame is None and calibrated is None:
        raise HTTPException(404, f"no frame {frame_id}")
    candidates = [(calibrated or {}).get("path"), ((frame.data or {}) if frame else {}).get("path")]
    for relative in candidates:
        source = _inside(repository, relative, FITS_SUFFIXES)
        if source is not None:
            return _drawn(context, source, width)
    raise HTTPException(404, f"the FITS of frame {frame_id} is not in the imaging repository")


def _fits_download(path: Path | None, what: str) -> FileResponse:
    if path is None:
        raise HTTPException(404, f"the FITS of {what} is not in the imaging repository")
    return FileResponse(path, media_type="image/fits", filename=path.name)


@router.get(
    "/imaging/stacks/{stack_id}/fits",
    response_class=FileResponse,
    responses=FITS_RESPONSES,
    dependencies=[Depends(viewer)],
)
def live_stack_fits(
    stack_id: int = FastApiPath(..., ge=0, le=2**62),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> FileResponse:
    """The live stack as its last stored fold left it (float32 FITS)."""
    with context.sessions() as session:
        data = session.scalars(
            select(LiveStackState.data)
            .where(LiveStackState.stack_id == stack_id, *of_site(LiveStackState.site, site))
            .order_by(LiveStackState.id.desc())
            .limit(1)
        ).first()
    if data is None:
        raise HTTPException(404, f"no live stack {stack_id}")
    return _fits_download(_inside(files_of(context, site), data.get("path"), FITS_SUFFIXES), f"live stack {stack_id}")


def _stack_file(
    context: WebContext, model: type[NightStackRecord] | type[ProjectStackRecord], stack_id: int, site: str | None
) -> Path:
    what = "night stack" if model is NightStackRecord else "project stack"
    with context.sessions() as session:
        path = session.scalars(
            select(model.path)
            .where(model.stack_id == stack_id, *of_site(model.site, site))
            .order_by(model.id.desc())
            .limit(1)
        ).first()
    if path is None:
        raise HTTPException(404, f"no {what} {stack_id}")
    found = _inside(files_of(context, site), path, FITS_SUFFIXES)
    if found is None:
        raise HTTPException(404, f"the FITS of {what} {stack_id} is not in the imaging repository")
    return found


@router.get(
    "/imaging/nightstacks/{stack_id}/fits",
    response_class=FileResponse,
    responses=FITS_RESPONSES,
    dependencies=[Depends(viewer)],
)
def night_stack_fits(
    stack_id: int = FastApiPath(..., ge=0, le=2**62),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> FileResponse:
    """A night's stack of record (float32 FITS with its REJECTED and COVERAGE maps)."""
    return _fits_download(_stack_file(context, NightStackRecord, stack_id, site), f"night stack {stack_id}")


@router.get(
    "/imaging/nightstacks/{stack_id}/preview",
    response_class=Response,
    responses=JPEG_RESPONSES,
    dependencies=[Depends(viewer)],
)
def night_stack_preview(
    stack_id: int = FastApiPath(..., ge=0, le=2**62),
    width: int = Width,
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Response:
    """A night stack stretched (JPEG); with a large ``width``, the full-size sample image."""
    return _drawn(context, _stack_file(context, NightStackRecord, stack_id, site), width)


@router.get(
    "/imaging/projectstacks/{stack_id}/fits",
    response_class=FileResponse,
    responses=FITS_RESPONSES,
    dependencies=[Depends(viewer)],
)
def project_stack_fits(
    stack_id: int = FastApiPath(..., ge=0, le=2**62),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> FileResponse:
    """A target's project stack (float32 FITS with its REJECTED and COVERAGE maps)."""
    return _fits_download(_stack_file(context, ProjectStackRecord, stack_id, site), f"project stack {stack_id}")


@router.get(
    "/imaging/projectstacks/{stack_id}/preview",
    response_class=Response,
    responses=JPEG_RESPONSES,
    dependencies=[Depends(viewer)],
)
def project_stack_preview(
    stack_id: int = FastApiPath(..., ge=0, le=2**62),
    width: int = Width,
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Response:
    """A project stack stretched (JPEG); with a large ``width``, the full-size sample image."""
    return _drawn(context, _stack_file(context, ProjectStackRecord, stack_id, site), width)
