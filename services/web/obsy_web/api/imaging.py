"""The imaging service's results, as the web stored them from the bus: live stacks, calibration
masters, variable-star light curves, exoplanet transit fits; and the operators' "build masters now" and pins.

Previews, AAVSO reports and the transit nights' reports, plots and points are files of the imaging
repository, which the web service reads on the shared data volume (``imaging.repository``, by
default ``<data_dir>/imaging/repository``).
A live stack's preview is served from there; when the file cannot be read, the JPEG retained on
``<p>/imaging/livestack/image`` stands in for the stack updated last (the only one it shows).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as FastApiPath
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import and_, func, select

from obsy.messages import ImagingMastersCommand
from obsy_web.api.common import Page, Paging
from obsy_web.api.fleet import fleet_of, of_site, site_filter
from obsy_web.api.security import get_context, operator, viewer
from obsy_web.auth.accounts import Principal
from obsy_web.commands import NoAnswerError, web_origin
from obsy_web.context import WebContext
from obsy_web.db.models import (
    CalibratedLightRecord,
    CalibrationMasterRecord,
    LiveStackState,
    PhotometryPoint,
    TransitFitRecord,
)
from obsy_web.uploads import SITES_FOLDER

router = APIRouter(tags=["imaging"])
NIGHT_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
NO_CACHE = {"Cache-Control": "no-cache"}


# --- state ------------------------------------------------------------------------------


class ImagingStatus(BaseModel):
    imaging: dict[str, Any] | None = Field(
        description="the imaging service's retained state (counts tonight, calibration queue, waiting_for)"
    )
    masters: dict[str, Any] | None = Field(description="the answer to the last masters command (imaging/masters/state)")


@router.get("/imaging/state", response_model=ImagingStatus, dependencies=[Depends(viewer)])
def imaging_state(site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)) -> ImagingStatus:
    """What the imaging service said last: tonight's counts, the lights waiting for masters and why
    (a bridged site's: as its last messages said)."""
    latest = context.latest if is_local(context, site) else fleet_of(context).latest[site]

    def as_dict(value: Any) -> dict[str, Any] | None:
        return value if isinstance(value, dict) else None

    return ImagingStatus(
        imaging=as_dict(latest.get("imaging/state")),
        masters=as_dict(latest.get("imaging/masters/state")),
    )


# --- live stacks --------------------------------------------------------------------------


class LiveStackItem(BaseModel):
    stack_id: int
    night: str
    target: str | None
    filter: str | None
    frames: int
    integration_s: float
    left_out: int
    last_fold: datetime = Field(description="when the last frame was folded in")
    fold_s: float | None = None
    frame_id: int | None = None
    weight: float | None = None
    shift_px: list[float] | None = None
    rotation_deg: float | None = None
    preview: str = Field(description="the preview JPEG, as this service serves it (changes with every fold)")


def _stack_item(record: LiveStackState) -> LiveStackItem:
    data = record.data or {}
    return LiveStackItem(
        stack_id=record.stack_id,
        night=record.night,
        target=record.target,
        filter=record.filter,
        frames=record.frames,
        integration_s=record.integration_s,
        left_out=record.left_out,
        last_fold=record.time,
        fold_s=data.get("fold_s"),
        frame_id=data.get("frame_id"),
        weight=data.get("weight"),
        shift_px=data.get("shift_px"),
        rotation_deg=data.get("rotation_deg"),
        preview=f"/api/v1/imaging/stacks/{record.stack_id}/preview?frames={record.frames}",
    )


@router.get("/imaging/stacks", response_model=list[LiveStackItem], dependencies=[Depends(viewer)])
def live_stacks(
    night: str | None = Query(None, pattern=NIGHT_PATTERN, description="observing night; default: the latest"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> list[LiveStackItem]:
    """Each live stack of a night (one per target and filter) as its last fold left it, newest first."""
    here = of_site(LiveStackState.site, site)
    with context.sessions() as session:
        if night is None:
            night = session.scalar(select(func.max(LiveStackState.night)).where(*here))
            if night is None:
                return []
        newest = (
            select(func.max(LiveStackState.id))
            .where(LiveStackState.night == night, *here)
            .group_by(LiveStackState.stack_id)
        )
        records = session.scalars(
            select(LiveStackState).where(LiveStackState.id.in_(newest)).order_by(LiveStackState.time.desc())
        ).all()
        return [_stack_item(record) for record in records]


def is_local(context: WebContext, site: str | None) -> bool:
    """Whether ``site`` (``site_filter``'s answer) is this site, whose imaging repository and bus state are here."""
    return site is None or site == context.config.site_id()


def files_of(context: WebContext, site: str | None) -> Path | None:
    """The imaging repository holding ``site``'s files: only this site's are here (another site's files stay
    at that site; only their metadata crosses the bridge)."""
    return context.imaging_repository if is_local(context, site) else None


def arrived_repository(context: WebContext, site: str | None) -> Path | None:
    """Where a bridged site's uploader sends its live stack previews (obsy.upload): its repository at the
    default place under its data directory, kept here under ``sites/<site>/``; None for this site."""
    if is_local(context, site):
        return None
    return context.data_dir / SITES_FOLDER / str(site) / "imaging" / "repository"


def _inside(root: Path | None, relative: str | None, suffixes: tuple[str, ...]) -> Path | None:
    """``root/relative`` when it is a file inside ``root`` with one of ``suffixes``; otherwise None."""
    if root is None or not relative or relative.startswith("/") or "\\" in relative:
        return None
    try:
        root = root.resolve()
        path = (root / relative).resolve()
    except (OSError, ValueError, RuntimeError):
        return None
    if not path.is_relative_to(root) or path.suffix.lower() not in suffixes or not path.is_file():
        return None
    return path


@router.get(
    "/imaging/stacks/{stack_id}/preview",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no preview for this stack"}},
    dependencies=[Depends(viewer)],
)
def live_stack_preview(
    stack_id: int = FastApiPath(..., ge=0, le=2**62),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Response:
    """The stack's stretched preview (JPEG): the repository's file, or the retained bus JPEG (this site's)."""
    latest = context.latest.get("imaging/livestack/state") if is_local(context, site) else None
    latest_is_it = isinstance(latest, dict) and latest.get("stack_id") == stack_id
    preview = latest.get("preview") if latest_is_it else None  # the newest, perhaps not stored yet
    if not isinstance(preview, str):
        with context.sessions() as session:
            preview = session.scalars(
                select(LiveStackState.preview)
                .where(LiveStackState.stack_id == stack_id, *of_site(LiveStackState.site, site))
                .order_by(LiveStackState.id.desc())
                .limit(1)
            ).first()
        if preview is None:
            raise HTTPException(404, f"no live stack {stack_id}")
    path = _inside(files_of(context, site) or arrived_repository(context, site), preview, (".jpg", ".jpeg"))
    if path is not None:
        return FileResponse(path, media_type="image/jpeg", headers=NO_CACHE)
    jpeg = context.latest.raw("imaging/livestack/image")
    if latest_is_it and jpeg and jpeg[:2] == b"\xff\xd8":
        return Response(jpeg, media_type="image/jpeg", headers=NO_CACHE)
    raise HTTPException(404, f"the preview of live stack {stack_id} is not in the imaging repository")


# --- calibration masters --------------------------------------------------------------------


class MasterItem(BaseModel):
    master_id: str
    time: datetime
    kind: str
    frames: int
    exposure_s: float
    temperature_c: float | None
    gain: float | None
    binning: str | None
    filter: str | None
    replaces: str | None
    camera: str | None = None
    offset: float | None = None
    method: str | None = None
    path: str | None = None
    hot_pixels: int | None = None
    pinned: bool = Field(default=False, description="pinned by a user: chosen over newer masters of its group")


@router.get("/imaging/masters", response_model=Page[MasterItem], dependencies=[Depends(viewer)])
def masters(
    kind: str | None = Query(None, max_length=16, description="bias, dark, flat, darkflat"),
    paging: Paging = Depends(),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Page[MasterItem]:
    """Masters built into the calibration library, newest first; ``pinned`` as this site's imaging service said last."""
    last_answer = context.latest.get("imaging/masters/state") if is_local(context, site) else None
    pinned = set(last_answer.get("pinned") or []) if isinstance(last_answer, dict) else set()
    query = select(CalibrationMasterRecord).where(*of_site(CalibrationMasterRecord.site, site))
    if kind:
        query = query.where(CalibrationMasterRecord.kind == kind)
    with context.sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        records = session.scalars(
            query.order_by(CalibrationMasterRecord.time.desc(), CalibrationMasterRecord.id.desc())
            .limit(paging.limit)
            .offset(paging.offset)
        ).all()
        items = [
            MasterItem(
                master_id=r.master_id,
                time=r.time,
                kind=r.kind,
                frames=r.frames,
                exposure_s=r.exposure_s,
                temperature_c=r.temperature_c,
                gain=r.gain,
                binning=r.binning,
                filter=r.filter,
                replaces=r.replaces,
                camera=(r.data or {}).get("camera"),
                offset=(r.data or {}).get("offset"),
                method=(r.data or {}).get("method"),
                path=(r.data or {}).get("path"),
                hot_pixels=(r.data or {}).get("hot_pixels"),
                pinned=r.master_id in pinned,
            )
            for r in records
        ]
    return Page(items=items, total=total, limit=paging.limit, offset=paging.offset)


class CalibratedLight(BaseModel):
    time: datetime
    night: str
    frame_id: int
    light: str | None = Field(description="the raw light, relative to the imaging repository")
    target: str | None
    filter: str | None
    bias: str | None = None
    dark: str | None = None
    flat: str | None = None
    dark_scale: float | None = None
    explanation: list[str] = Field(default_factory=list, description="why each master, one line per kind")
    nan_pixels: int | None = None
    waited_s: float | None = Field(default=None, description="how long the light waited for its masters")
    recalibrated: bool = Field(default=False, description="calibrated again with masters built or pinned since")
    replaces: dict[str, str] | None = Field(default=None, description="the masters of the calibration it replaced")


@router.get("/imaging/calibrated", response_model=Page[CalibratedLight], dependencies=[Depends(viewer)])
def calibrated_lights(
    night: str | None = Query(None, pattern=NIGHT_PATTERN, description="observing night; default: the latest"),
    paging: Paging = Depends(),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Page[CalibratedLight]:
    """Lights calibrated in a night, newest first, with the masters applied and why (a light calibrated
    again: its latest calibration only)."""
    with context.sessions() as session:
        here = of_site(CalibratedLightRecord.site, site)
        if night is None:
            night = session.scalar(select(func.max(CalibratedLightRecord.night)).where(*here))
        in_night = and_(CalibratedLightRecord.night == (night or ""), *here)
        latest = (
            select(func.max(CalibratedLightRecord.id))
            .where(in_night)
            .group_by(CalibratedLightRecord.site, CalibratedLightRecord.frame_id)
        )
        query = select(CalibratedLightRecord).where(in_night, CalibratedLightRecord.id.in_(latest))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        records = session.scalars(
            query.order_by(CalibratedLightRecord.time.desc(), CalibratedLightRecord.id.desc())
            .limit(paging.limit)
            .offset(paging.offset)
        ).all()
        items = []
        for r in records:
            data = r.data or {}
            items.append(
                CalibratedLight(
                    time=r.time,
                    night=r.night,
                    frame_id=r.frame_id,
                    light=data.get("light"),
                    target=r.target,
                    filter=r.filter,
                    bias=data.get("bias"),
                    dark=data.get("dark"),
                    flat=data.get("flat"),
                    dark_scale=data.get("dark_scale"),
                    explanation=[str(line) for line in data.get("explanation") or []],
                    nan_pixels=data.get("nan_pixels"),
                    waited_s=data.get("waited_s"),
                    recalibrated=bool(data.get("recalibrated")),
                    replaces=data.get("replaces") if isinstance(data.get("replaces"), dict) else None,
                )
            )
    return Page(items=items, total=total, limit=paging.limit, offset=paging.offset)


class MastersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["build", "pin", "unpin"] = Field(
        default="build", description="build masters now, or pin / unpin the master ``master_id``"
    )
    master_id: str | None = Field(default=None, min_length=1, max_length=64, description="pin, unpin: the master")
    min_frames: int | None = Field(
        default=None, ge=1, le=1000, description="build: frames a group needs; empty: imaging.calibration.min_frames"
    )

    @model_validator(mode="after")
    def _master_for_pins(self) -> MastersRequest:
        if self.action != "build" and not self.master_id:
            raise ValueError(f"{self.action} needs master_id (the master's id, e.g. dark-1a2b3c)")
        return self


class MastersReply(BaseModel):
    request_id: str | None
    status: str = Field(
        description="the imaging service's answer: running, done or failed; queued: accepted, not yet started"
    )
    built: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    pinned: list[str] = Field(default_factory=list, description="every master pinned after the command")


@router.post(
    "/commands/imaging/masters",
    response_model=MastersReply,
    responses={
        409: {"description": "the imaging service refused the command (too many waiting)"},
        504: {"description": "the imaging service did not answer in time"},
    },
    tags=["commands"],
    summary="Build calibration masters now, or pin or unpin one",
)
def build_masters(
    request: MastersRequest, who: Principal = Depends(operator), context: WebContext = Depends(get_context)
) -> MastersReply:
    """Publish ``imaging/masters/set``; returns the imaging service's first answer (``running`` for a build,
    ``done`` or ``failed`` for a pin)."""
    if context.masters is None:
        raise HTTPException(503, "this web service sends no imaging commands")
    command = ImagingMastersCommand(action=request.action, master_id=request.master_id, min_frames=request.min_frames)
    if request.action == "build":
        what = "build" + (f" min_frames={request.min_frames}" if request.min_frames is not None else "")
    else:
        what = f"{request.action} {request.master_id}"
    try:
        reply = context.masters.send("masters", command, web_origin(who.username, who.role.value), what=what)
    except NoAnswerError as exc:
        raise HTTPException(504, str(exc)) from None
    if reply.accepted is False:
        raise HTTPException(409, "the imaging service refused the masters command: " + "; ".join(reply.reasons))
    if reply.accepted is True:  # accepted, and its state did not come in time: the worker is busy
        data = reply.payload.get("data") or {}
        return MastersReply(request_id=data.get("request_id"), status="queued")
    answer = reply.payload
    return MastersReply(
        request_id=answer.get("request_id"),
        status=str(answer.get("status", "")),
        built=[str(b) for b in answer.get("built") or []],
        errors=[str(e) for e in answer.get("errors") or []],
        pinned=[str(p) for p in answer.get("pinned") or []],
    )


# --- light curves -------------------------------------------------------------------------------


class PhotometryTarget(BaseModel):
    target: str
    nights: list[str] = Field(description="nights with measurements, newest first")
    points: int = Field(description="lights measured with a magnitude")


class LightCurvePoint(BaseModel):
    time: datetime
    jd: float | None
    magnitude: float | None
    error: float | None
    filter: str | None
    band: str | None
    check: str | None = None
    check_magnitude: float | None
    check_residual: float | None
    airmass: float | None = None
    frame_id: int
    night: str
    reasons: list[str] = Field(default_factory=list, description="why there is no magnitude")


class LightCurve(BaseModel):
    target: str
    night: str | None
    points: list[LightCurvePoint]
    reports: dict[str, str] = Field(
        default_factory=dict, description="night: where this service serves that night's AAVSO report"
    )


@router.get("/photometry", response_model=list[PhotometryTarget], dependencies=[Depends(viewer)])
def photometry_targets(
    site: str | None = Depends(site_filter), context: WebContext = Depends(get_context)
) -> list[PhotometryTarget]:
    """Targets with photometry, and their nights."""
    with context.sessions() as session:
        rows = session.execute(
            select(
                PhotometryPoint.target,
                PhotometryPoint.night,
                func.count(PhotometryPoint.magnitude),
            )
            .where(*of_site(PhotometryPoint.site, site))
            .group_by(PhotometryPoint.target, PhotometryPoint.night)
            .order_by(PhotometryPoint.target, PhotometryPoint.night.desc())
        ).all()
    targets: dict[str, PhotometryTarget] = {}
    for target, night, count in rows:
        item = targets.setdefault(target, PhotometryTarget(target=target, nights=[], points=0))
        item.nights.append(night)
        item.points += count
    return list(targets.values())


def _curve(
    context: WebContext, target: str, night: str | None, band: str | None = None, site: str | None = None
) -> LightCurve:
    query = select(PhotometryPoint).where(PhotometryPoint.target == target, *of_site(PhotometryPoint.site, site))
    if night is not None:
        query = query.where(PhotometryPoint.night == night)
    if band is not None:
        query = query.where(PhotometryPoint.filter == band)
    with context.sessions() as session:
        records = session.scalars(query.order_by(PhotometryPoint.jd, PhotometryPoint.time).limit(100_000)).all()
    points: list[LightCurvePoint] = []
    reports: dict[str, str] = {}
    for r in records:
        data = r.data or {}
        points.append(
            LightCurvePoint(
                time=r.time,
                jd=r.jd,
                magnitude=r.magnitude,
                error=r.error,
                filter=r.filter,
                band=r.band,
                check=data.get("check"),
                check_magnitude=r.check_magnitude,
                check_residual=r.check_residual,
                airmass=data.get("airmass"),
                frame_id=r.frame_id,
                night=r.night,
                reasons=[str(reason) for reason in data.get("reasons") or []],
            )
        )
        if r.report and _inside(files_of(context, site), r.report, (".txt",)) is not None:
            reports[r.night] = f"/api/v1/photometry/{quote(target, safe='')}/report?night={r.night}"
    return LightCurve(target=target, night=night, points=points, reports=reports)


_CSV_COLUMNS = ("jd", "magnitude", "error", "filter", "band", "check", "check_magnitude", "check_residual")


@router.get(
    "/photometry/{target}",
    response_model=LightCurve,
    responses={200: {"content": {"text/csv": {}}}},
    dependencies=[Depends(viewer)],
)
def light_curve(
    target: str = FastApiPath(..., min_length=1, max_length=200),
    *,
    night: str | None = Query(None, pattern=NIGHT_PATTERN, description="observing night; default: every night"),
    filter: str | None = Query(None, max_length=100, description="only this filter (as the frames name it)"),
    format: str = Query("json", pattern="^(json|csv)$", description="json, or csv for a spreadsheet"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Any:
    """A target's light curve: JD, magnitude, error, filter and the check star's residual, in time order."""
    curve = _curve(context, target, night, filter, site)
    if format == "json":
        return curve
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("night", "time", *_CSV_COLUMNS, "airmass", "frame_id"))
    for p in curve.points:
        if p.magnitude is None:
            continue
        values = [getattr(p, column) for column in _CSV_COLUMNS]
        writer.writerow(
            (p.night, p.time.isoformat(), *["" if v is None else v for v in values], p.airmass or "", p.frame_id)
        )
    name = "-".join(part for part in (target, night, filter) if part)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get(
    "/photometry/{target}/report",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 404: {"description": "no report for that night"}},
    dependencies=[Depends(viewer)],
)
def aavso_report(
    target: str = FastApiPath(..., min_length=1, max_length=200),
    night: str = Query(..., pattern=NIGHT_PATTERN),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Response:
    """The night's AAVSO Extended report for the target, as the imaging service wrote it."""
    with context.sessions() as session:
        reports = session.scalars(
            select(PhotometryPoint.report)
            .where(
                PhotometryPoint.target == target,
                PhotometryPoint.night == night,
                PhotometryPoint.report.is_not(None),
                *of_site(PhotometryPoint.site, site),
            )
            .order_by(PhotometryPoint.id.desc())
            .limit(1)
        ).all()
    path = _inside(files_of(context, site), reports[0], (".txt",)) if reports else None
    if path is None:
        raise HTTPException(404, f"no AAVSO report of {target} for {night} in the imaging repository")
    return FileResponse(path, media_type="text/plain", filename=path.name)


# --- exoplanet transits ---------------------------------------------------------------------------------


class TransitItem(BaseModel):
    time: datetime = Field(description="when the imaging service fitted it (or gave up)")
    night: str
    planet: str
    target: str | None = None
    status: str = Field(description="fitted, or failed (reason says why)")
    reason: str | None = None
    filter: str | None = None
    epoch: int | None = None
    tc: float | None = Field(default=None, description="mid-transit, BJD_TDB")
    tc_err: float | None = None
    predicted_tc: float | None = None
    o_minus_c_min: float | None = None
    o_minus_c_err_min: float | None = None
    rp_rs: float | None = None
    rp_rs_err: float | None = None
    a_rs: float | None = None
    a_rs_err: float | None = None
    inc: float | None = None
    inc_err: float | None = None
    depth: float | None = None
    depth_err: float | None = None
    duration_h: float | None = None
    duration_err_h: float | None = None
    partial: bool | None = None
    contact: str | None = None
    points_used: int = 0
    points_rejected: int = 0
    ensemble_size: int | None = None
    chi2_reduced: float | None = None
    red_noise_beta: float | None = None
    report: str | None = Field(default=None, description="where this service serves the Exoplanet Watch report")
    plot: str | None = Field(default=None, description="where this service serves the light-curve plot (PNG)")
    csv: str | None = Field(default=None, description="where this service serves the light-curve points (CSV)")


class TransitPoint(BaseModel):
    frame_id: int | None
    bjd_tdb: float | None
    flux: float | None
    error: float | None
    airmass: float | None
    model: float | None = Field(description="the fitted transit × systematics at this point")
    residual: float | None
    used: bool
    reason: str | None = Field(description="why the light is not in the light curve")


class TransitNight(TransitItem):
    points: list[TransitPoint] = Field(default_factory=list, description="every light of the night, in time order")


def _transit_item(context: WebContext, record: TransitFitRecord, site: str | None) -> TransitItem:
    data = {k: v for k, v in (record.data or {}).items() if k in TransitItem.model_fields}
    base = f"/api/v1/transits/{quote(record.planet, safe='')}"
    night = f"?night={record.night}"
    root = files_of(context, site)
    urls = {
        "report": f"{base}/report{night}" if _inside(root, record.report, (".txt",)) else None,
        "plot": f"{base}/plot{night}" if _inside(root, record.plot, (".png",)) else None,
        "csv": f"{base}{night}&format=csv" if _inside(root, record.points, (".csv",)) else None,
    }
    return TransitItem(**{**data, "time": record.time, "night": record.night, "planet": record.planet, **urls})


def _newest_transits(
    context: WebContext, site: str | None, planet: str | None = None, night: str | None = None
) -> list[TransitFitRecord]:
    newest = (
        select(func.max(TransitFitRecord.id))
        .where(*of_site(TransitFitRecord.site, site))
        .group_by(TransitFitRecord.site, TransitFitRecord.night, TransitFitRecord.planet)
    )
    if planet is not None:
        newest = newest.where(TransitFitRecord.planet == planet)
    if night is not None:
        newest = newest.where(TransitFitRecord.night == night)
    with context.sessions() as session:
        return list(
            session.scalars(
                select(TransitFitRecord)
                .where(TransitFitRecord.id.in_(newest))
                .order_by(TransitFitRecord.night.desc(), TransitFitRecord.planet)
                .limit(1000)
            ).all()
        )


@router.get("/transits", response_model=list[TransitItem], dependencies=[Depends(viewer)])
def transits(
    planet: str | None = Query(None, max_length=200, description="only this planet (pl_name)"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> list[TransitItem]:
    """Each transit night's result (the newest the imaging service sent), newest night first."""
    return [_transit_item(context, record, site) for record in _newest_transits(context, site, planet)]


def _transit_record(context: WebContext, planet: str, night: str, site: str | None) -> TransitFitRecord:
    records = _newest_transits(context, site, planet, night)
    if not records:
        raise HTTPException(404, f"no transit fit of {planet} for {night}")
    return records[0]


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _points(path: Path) -> list[TransitPoint]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.DictReader(handle))[:100_000]
    return [
        TransitPoint(
            frame_id=int(row["frame_id"]) if (row.get("frame_id") or "").isdigit() else None,
            bjd_tdb=_number(row.get("bjd_tdb")),
            flux=_number(row.get("flux")),
            error=_number(row.get("error")),
            airmass=_number(row.get("airmass")),
            model=_number(row.get("model")),
            residual=_number(row.get("residual")),
            used=row.get("used") == "yes",
            reason=row.get("reason") or None,
        )
        for row in rows
    ]


@router.get(
    "/transits/{planet}",
    response_model=TransitNight,
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "no fit of that planet that night"}},
    dependencies=[Depends(viewer)],
)
def transit_night(
    planet: str = FastApiPath(..., min_length=1, max_length=200),
    night: str = Query(..., pattern=NIGHT_PATTERN),
    format: str = Query("json", pattern="^(json|csv)$", description="json, or csv: the points as written"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Any:
    """A planet's transit night: the fit's numbers and every light's flux, model and residual (or why not used)."""
    record = _transit_record(context, planet, night, site)
    path = _inside(files_of(context, site), record.points, (".csv",))
    if format == "csv":
        if path is None:
            raise HTTPException(404, f"the points of {planet} for {night} are not in the imaging repository")
        return FileResponse(path, media_type="text/csv", filename=path.name)
    item = _transit_item(context, record, site)
    return TransitNight(**item.model_dump(), points=_points(path) if path is not None else [])


def _transit_file(context: WebContext, planet: str, night: str, site: str | None, *, kind: str, suffix: str) -> Path:
    record = _transit_record(context, planet, night, site)
    path = _inside(files_of(context, site), getattr(record, kind), (suffix,))
    if path is None:
        raise HTTPException(404, f"no transit {kind} of {planet} for {night} in the imaging repository")
    return path


@router.get(
    "/transits/{planet}/report",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 404: {"description": "no report for that night"}},
    dependencies=[Depends(viewer)],
)
def transit_report(
    planet: str = FastApiPath(..., min_length=1, max_length=200),
    night: str = Query(..., pattern=NIGHT_PATTERN),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Response:
    """The night's Exoplanet Watch report (``#TYPE=EXOPLANET``), as the imaging service wrote it."""
    path = _transit_file(context, planet, night, site, kind="report", suffix=".txt")
    return FileResponse(path, media_type="text/plain", filename=path.name)


@router.get(
    "/transits/{planet}/plot",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "no plot for that night"}},
    dependencies=[Depends(viewer)],
)
def transit_plot(
    planet: str = FastApiPath(..., min_length=1, max_length=200),
    night: str = Query(..., pattern=NIGHT_PATTERN),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> Response:
    """The night's light curve with the model and residuals (PNG), as the imaging service drew it."""
    path = _transit_file(context, planet, night, site, kind="plot", suffix=".png")
    return FileResponse(path, media_type="image/png", headers=NO_CACHE)
