"""``/fleet``: every site stored here at a glance, and whether each is reachable."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse

from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext
from obsy_web.fleet import Fleet, sites_of

router = APIRouter(tags=["fleet"], dependencies=[Depends(viewer)])


def fleet_of(context: WebContext) -> Fleet:
    """The service's fleet; a context built without one (tests) has this site alone."""
    if context.fleet is None:
        context.fleet = Fleet(sites_of(context.config)[:1], context.latest)
    return context.fleet


@router.get(
    "/fleet",
    summary="Every site: roof, verdict, availability, last frames, and whether it is reachable",
    response_model=dict[str, Any],
)
async def fleet(context: WebContext = Depends(get_context)) -> JSONResponse:
    sites = fleet_of(context).overviews()
    return JSONResponse({"items": sites, "total": len(sites)})


@router.get("/fleet/{site}", summary="One site at a glance", response_model=dict[str, Any])
async def fleet_site(site: str, context: WebContext = Depends(get_context)) -> JSONResponse:
    known = fleet_of(context)
    found = known.get(site)
    if found is None:
        raise HTTPException(404, f"no site {site!r} (known: {', '.join(s.id for s in known.sites)})")
    return JSONResponse(known.overview(found))
