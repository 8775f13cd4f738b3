"""``/status``: what every service says about itself, and the observatory at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

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


@router.get(
    "/status",
    summary="Availability and health of every service, and the observatory's current state",
    response_model=dict[str, Any],
)
async def status(context: WebContext = Depends(get_context)) -> JSONResponse:
    snapshot = context.board.snapshot()
    snapshot["observatory"] = observatory(context)
    if context.ingestor is not None:
        snapshot["ingest"] = context.ingestor.health()
    # Plain JSON values already: skip FastAPI's generic (and slow) encoder on this hot path.
    return JSONResponse(snapshot)
