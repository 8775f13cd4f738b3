"""A night summed up: ``GET /nights/{night}/summary`` (the end-of-night notification's content)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as FastApiPath
from sqlalchemy import select

from obsy_web.api.fleet import fleet_of, site_filter
from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext
from obsy_web.db.models import NightSummaryRecord
from obsy_web.nights import night_link, night_summary

router = APIRouter(tags=["nights"])


@router.get("/nights/{night}/summary", dependencies=[Depends(viewer)], summary="One night summed up")
def summary_of_night(
    night: str = FastApiPath(..., pattern=r"^\d{4}-\d{2}-\d{2}$", description="the evening's date"),
    site: str | None = Depends(site_filter),
    context: WebContext = Depends(get_context),
) -> dict[str, Any]:
    """This site's night (the evening's date) from what the web stored: the roof's open spans and why each
    closed, lights per target and filter (taken, accepted, rejected, integration), calibration frames, live
    stacks, photometry and AAVSO reports, allsky frames and streaks; ``ended`` and ``ended_because`` once the
    MCP said the night ended (until then: the night so far), ``sent_at`` once its notification went out.
    With ``site=``, a bridged site's night from its rows stored here (the night turns at its local noon: its
    time zone from its plan or ``web.sites``, else UTC); ``sent_at`` stays null (its own web service notifies)."""
    config = context.config
    local = context.fleet.local.id if context.fleet is not None else config.site_id()
    base = config.web.public_url or config.homeassistant.configuration_url
    link = night_link(base, night)
    zone = ZoneInfo(config.site.timezone)
    if site is not None and site != local:
        fleet = fleet_of(context)
        _position, zone = fleet.place(fleet.get(site))  # type: ignore[arg-type]  # site_filter checked it
        link = f"{link}{'&' if '?' in link else '?'}site={quote(site)}" if link else link
    else:
        site = local
    with context.sessions() as session:
        try:
            summary = night_summary(session, site=site, night=night, zone=zone, link=link)
        except (ValueError, OverflowError) as exc:  # no date (2026-02-30), or at the calendar's ends (9999-12-31)
            raise HTTPException(422, f"night {night} is not a date this service can sum up: {exc}") from None
        sent = session.scalar(
            select(NightSummaryRecord.sent_at).where(NightSummaryRecord.site == site, NightSummaryRecord.night == night)
        )
    summary["sent_at"] = sent.isoformat() if sent else None
    return summary
