"""``/status``: what every service says about itself, and the observatory at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse

from obsy_web.api.fleet import fleet_of, requested_site
from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext

router = APIRouter(tags=["status"], dependencies=[Depends(viewer)])


def observatory(context: WebContext) -> dict[str, Any]:
    """The latest state of each part, straight from the bus (retained topics)."""
    latest = context.latest
    return {
        "mcp": latest.get("mcp/state"),
        "safety": latest.get("weather/safety"),
        "weather": latest.get("weather/state"),
        "clouds": latest.get("clouddetect/state"),
        "allsky": latest.get("allsky/frames"),
        "plan": latest.get("scheduler/plan"),
        "sky": context.sky.current(),
    }


def other_site(context: WebContext, site_id: str) -> dict[str, Any]:
    """A bridged site's state as its messages last said, or ``unreachable since ...`` and nothing stale."""
    fleet = fleet_of(context)
    site = fleet.get(site_id)
    if site is None:
        raise HTTPException(404, f"no site {site_id!r} (known: {', '.join(s.id for s in fleet.sites)})")
    overview = fleet.overview(site)
    latest = fleet.latest[site.id]
    reachable = overview["reachable"]
    return {
        "site": overview,
        "observatory": {
            "mcp": latest.get("mcp/state") if reachable else None,
            "safety": latest.get("weather/safety") if reachable else None,
            "weather": latest.get("weather/state") if reachable else None,
            "clouds": latest.get("clouddetect/state") if reachable else None,
            "allsky": latest.get("allsky/frames"),
            "plan": latest.get("scheduler/plan"),
        },
    }


@router.get(
    "/status",
    summary="Availability and health of every service, and the observatory's current state",
    response_model=dict[str, Any],
)
async def status(
    context: WebContext = Depends(get_context),
    site: str | None = Depends(requested_site),
) -> JSONResponse:
    if site is not None and site != context.config.site_id():
        return JSONResponse(other_site(context, site))
    snapshot = context.board.snapshot()
    snapshot["observatory"] = observatory(context)
    if context.ingestor is not None:
        snapshot["ingest"] = context.ingestor.health()
    # Plain JSON values already: skip FastAPI's generic (and slow) encoder on this hot path.
    return JSONResponse(snapshot)
