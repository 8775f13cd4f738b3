"""Targets and exposure plans (CRUD), and the catalogue lookup."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel

from obsy_web import catalogue
from obsy_web.api.security import get_context, operator, viewer
from obsy_web.context import WebContext
from obsy_web.targets import TargetInput, TargetView

router = APIRouter(tags=["targets"])


class CatalogueMatch(BaseModel):
    catalogue_id: str
    name: str
    ra_deg: float
    dec_deg: float
    kind: str
    magnitude: float | None
    common_names: list[str]


@router.get("/catalogue/lookup", response_model=CatalogueMatch, dependencies=[Depends(viewer)])
def catalogue_lookup(
    name: str = Query(..., min_length=1, max_length=100, description="e.g. M 31, NGC 7000, IC 434, Vega"),
) -> CatalogueMatch:
    """Find an object by name in OpenNGC (NGC, IC, Messier, common names) or the bright stars."""
    entry = catalogue.lookup(name)
    if entry is None:
        raise HTTPException(404, f"{name!r} is not in the catalogues (OpenNGC, bright stars)")
    return CatalogueMatch(
        catalogue_id=entry.catalogue_id,
        name=entry.name,
        ra_deg=entry.ra_deg,
        dec_deg=entry.dec_deg,
        kind=entry.kind,
        magnitude=entry.magnitude,
        common_names=list(entry.common_names),
    )


@router.get("/targets", response_model=list[TargetView], dependencies=[Depends(viewer)])
def list_targets(context: WebContext = Depends(get_context)) -> list[TargetView]:
    return context.targets.list()


@router.post("/targets", response_model=TargetView, status_code=201, dependencies=[Depends(operator)])
def create_target(data: TargetInput, context: WebContext = Depends(get_context)) -> TargetView:
    return context.targets.create(data)


@router.get("/targets/{target_id}", response_model=TargetView, dependencies=[Depends(viewer)])
def get_target(target_id: str, context: WebContext = Depends(get_context)) -> TargetView:
    return context.targets.get(target_id)


@router.put("/targets/{target_id}", response_model=TargetView, dependencies=[Depends(operator)])
def update_target(target_id: str, data: TargetInput, context: WebContext = Depends(get_context)) -> TargetView:
    return context.targets.update(target_id, data)


@router.delete("/targets/{target_id}", status_code=204, dependencies=[Depends(operator)])
def delete_target(target_id: str, context: WebContext = Depends(get_context)) -> Response:
    context.targets.delete(target_id)
    return Response(status_code=204)
