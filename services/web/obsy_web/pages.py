"""The dashboard: server-rendered pages (Jinja2) with a little JavaScript each.

Pages need a login unless ``web.anonymous_read`` is on; they read the same REST API as
scripts do, and the overview listens to ``/api/v1/live`` for changes.
"""

from __future__ import annotations

import re
from importlib import resources
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from obsy.config import SITE_ID_PATTERN
from obsy_web.api.fleet import fleet_of
from obsy_web.api.security import current_principal, get_context
from obsy_web.auth.accounts import Principal, Role
from obsy_web.context import WebContext
from obsy_web.fleet import Site

templates = Jinja2Templates(directory=str(resources.files("obsy_web").joinpath("templates")))
router = APIRouter(include_in_schema=False)

PAGES = {
    "overview": ("/", "Overview"),
    "weather": ("/weather", "Weather"),
    "allsky": ("/allsky", "Allsky"),
    "imaging": ("/imaging", "Imaging"),
    "targets": ("/targets", "Targets"),
    "plan": ("/plan", "Plan"),
    "events": ("/events", "Events"),
    "fleet": ("/fleet", "Fleet"),
}
#: The pages that can show a bridged site (``?site=<id>``); the others show this site only.
SITE_PAGES = frozenset({"overview", "weather", "allsky", "imaging", "plan", "events", "target"})


def _pages(context: WebContext) -> dict[str, tuple[str, str]]:
    """The navigation: the Fleet page only where other sites are bridged here (``web.sites``)."""
    if context.config.web.sites:
        return PAGES
    return {name: value for name, value in PAGES.items() if name != "fleet"}


def chosen_site(request: Request, who: Principal, context: WebContext) -> Site | None:
    """The bridged site a page shows (``?site=<id>``), else None (this site).

    404 names the known sites for an unknown one; 403 for an account limited to other sites,
    as the API answers (``api/security.py``).
    """
    wanted = request.query_params.get("site")
    local = context.config.site_id()
    if not who.sees(wanted or local):
        allowed = ", ".join(sorted(who.sites or []))
        raise HTTPException(403, f"{who.username} may see site(s) {allowed} only, not {wanted or local}")
    if not wanted or wanted == local:
        return None
    known = fleet_of(context)
    found = known.get(wanted) if re.fullmatch(SITE_ID_PATTERN, wanted) else None
    if found is None:
        raise HTTPException(404, f"no site {wanted[:64]!r} (known: {', '.join(s.id for s in known.sites)})")
    return found


def _render(page: str, request: Request, who: Principal | None, context: WebContext, **extra: object) -> Response:
    if who is None:
        return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
    site = chosen_site(request, who, context) if page in SITE_PAGES else None
    return templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "page": page,
            "pages": _pages(context),
            "site_name": context.config.site.name,
            "who": who,
            "can_operate": who.can(Role.OPERATOR) and who.via != "anonymous",
            "weather_simulation": context.config.setting_of("weather", "allow_simulation", False),
            "shown_site": site,
            "site_pages": SITE_PAGES,
            **extra,
        },
    )


def _page(page: str):
    async def show(
        request: Request,
        who: Principal | None = Depends(current_principal),
        context: WebContext = Depends(get_context),
    ) -> Response:
        return _render(page, request, who, context)

    return show


for _name, (_path, _title) in PAGES.items():
    router.add_api_route(_path, _page(_name), methods=["GET"], response_class=HTMLResponse, name=f"page_{_name}")


@router.get("/imaging/targets/{target}", response_class=HTMLResponse, name="page_imaging_target")
async def imaging_target_page(
    target: str,
    request: Request,
    who: Principal | None = Depends(current_principal),
    context: WebContext = Depends(get_context),
) -> Response:
    """One target's page (under the Imaging page in the navigation): its stacks, plan progress and frames."""
    return _render("target", request, who, context, target=target[:200])


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, context: WebContext = Depends(get_context)) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"page": "login", "pages": _pages(context), "site_name": context.config.site.name, "who": None},
    )
