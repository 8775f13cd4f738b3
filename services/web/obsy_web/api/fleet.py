"""``/fleet``: every site stored here at a glance, and whether each is reachable."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from obsy.config import SITE_ID_PATTERN
from obsy_web.api.commands import CommandReply
from obsy_web.api.security import chooses_site, every_site, get_context, operator, viewer
from obsy_web.auth.accounts import Principal
from obsy_web.commands import NoAnswerError, web_origin
from obsy_web.context import WebContext
from obsy_web.fleet import Fleet, sites_of
from obsy_web.uploads import allsky_picture_url

router = APIRouter(tags=["fleet"], dependencies=[Depends(viewer)])


def fleet_of(context: WebContext) -> Fleet:
    """The service's fleet; a context built without one (tests) has this site alone."""
    if context.fleet is None:
        context.fleet = Fleet(sites_of(context.config)[:1], context.latest)
    return context.fleet


@chooses_site
def requested_site(
    site: str | None = Query(None, max_length=64, pattern=SITE_ID_PATTERN, description="another site's id (web.sites)"),
) -> str | None:
    """The ``site=`` a route was asked for, as given (``site_filter`` checks it against the fleet)."""
    return site


@chooses_site
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


class SiteRoofCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["CLOSE", "STOP"] = Field(description="closing only: opening stays a decision of the site")


class SiteNightCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["ABORT"] = Field(description="ending the night only: starting stays a decision of the site")


def _send_to_site(context: WebContext, site_id: str, thing: str, value: str, who: Principal) -> CommandReply:
    known = fleet_of(context)
    site = known.get(site_id)
    gateway = context.site_commands.get(site_id)
    if site is None or gateway is None:
        bridged = ", ".join(s.id for s in known.sites[1:]) or "none"
        raise HTTPException(404, f"no bridged site {site_id!r} (bridged: {bridged}); this site: POST /commands/{thing}")
    link = known.link(site)
    if not link["reachable"]:
        # The central broker would keep it for the bridge and deliver it whenever the link returns.
        raise HTTPException(409, f"site {site_id} is {link['status']}: a command now would wait for the link")
    try:
        answer = gateway.send(thing, value, web_origin(who.username, who.role.value))
    except NoAnswerError as exc:
        raise HTTPException(504, f"site {site_id}: {exc}") from None
    return CommandReply(
        command=thing, value=value, accepted=answer.accepted, answer_topic=answer.topic, answer=answer.payload
    )


_COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such bridged site"},
    409: {"description": "the site is unreachable"},
    504: {"description": "the site's MCP did not answer in time"},
}


@router.post(
    "/fleet/{site}/commands/roof",
    response_model=CommandReply,
    responses=_COMMAND_RESPONSES,
    summary="Close or stop a bridged site's roof (never open it: that stays the site's decision)",
)
def site_roof(
    site: str, command: SiteRoofCommand, who: Principal = Depends(operator), context: WebContext = Depends(get_context)
) -> CommandReply:
    return _send_to_site(context, site, "roof", command.action, who)


@router.post(
    "/fleet/{site}/commands/night",
    response_model=CommandReply,
    responses=_COMMAND_RESPONSES,
    summary="End a bridged site's night (ABORT: stop, park, close)",
)
def site_night(
    site: str, command: SiteNightCommand, who: Principal = Depends(operator), context: WebContext = Depends(get_context)
) -> CommandReply:
    return _send_to_site(context, site, "night", command.action, who)


@router.get(
    "/fleet",
    summary="Every site (an account limited to sites: those): roof, verdict, availability, last frames, reachability",
    response_model=dict[str, Any],
    dependencies=[Depends(every_site)],
)
async def fleet(who: Principal = Depends(viewer), context: WebContext = Depends(get_context)) -> JSONResponse:
    sites = [_with_picture(site, context) for site in fleet_of(context).overviews() if who.sees(site["id"])]
    return JSONResponse({"items": sites, "total": len(sites)})


@router.get("/fleet/{site}", summary="One site at a glance", response_model=dict[str, Any])
async def fleet_site(site: str, context: WebContext = Depends(get_context)) -> JSONResponse:
    known = fleet_of(context)
    found = known.get(site)
    if found is None:
        raise HTTPException(404, f"no site {site!r} (known: {', '.join(s.id for s in known.sites)})")
    return JSONResponse(_with_picture(known.overview(found), context))


def _with_picture(entry: dict[str, Any], context: WebContext) -> dict[str, Any]:
    """``allsky_picture``: where this service serves the site's newest allsky picture, or None.

    A bridged site's picture is here once its uploader has sent it (``api/uploads.py``).
    """
    frame = fleet_of(context).latest[entry["id"]].get("allsky/frames")
    picture = None
    if isinstance(frame, dict) and isinstance(frame.get("frame_id"), str):
        picture = allsky_picture_url(
            context.data_dir,
            entry["id"],
            local=entry["local"],
            frame_id=frame["frame_id"],
            night=str(frame.get("night", "")),
            url=str(frame.get("url")),
        )
        if entry["local"]:  # the fleet's links always name the site
            picture += f"?site={quote(entry['id'])}"
    return {**entry, "allsky_picture": picture}
