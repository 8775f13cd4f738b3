"""``/fleet``: every site stored here at a glance, and whether each is reachable."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse

from obsy.config import SITE_ID_PATTERN
from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext
from obsy_web.fleet import Fleet, sites_of

router = APIRouter(tags=["fleet"], dependencies=[Depends(viewer)])


def fleet_of(context: WebContext) -> Fleet:
    """The service's fleet; a context built without one (tests) has this site alone."""
    if context.fleet is None:
        context.fleet = Fleet(sites_of(context.config)[:1], context.latest)
    return context.fleet


def site_filter(
    site: str | None = Query(
        None, max_length=64, pattern=SITE_ID_PATTERN, description="a site's id (GET /fleet); default: this site"
    ),
    context: WebContext = Depends(get_context),
) -> str | None:
    """The site whose rows a route shows: ``site``, else this one; None (every row) with no bridged sites.

    With ``web.sites`` empty every row is this site's, so nothing is filtered: as before sites.
    """
    if site is None:
        return context.config.site_id() if context.config.web.sites else None
    known = fleet_of(context)
    if known.get(site) is None:
        raise HTTPException(404, f"no site {site!r} (known: {', '.join(s.id for s in known.sites)})")
    return site


def of_site(column: Any, site: str | None) -> list[Any]:
    """The WHERE clause for ``site_filter``'s answer."""
    return [] if site is None else [column == site]


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
