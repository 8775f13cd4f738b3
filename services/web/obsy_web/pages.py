"""The dashboard: server-rendered pages (Jinja2) with a little JavaScript each.

Pages need a login unless ``web.anonymous_read`` is on; they read the same REST API as
scripts do, and the overview listens to ``/api/v1/live`` for changes.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from obsy_web.api.security import current_principal, get_context
from obsy_web.auth.accounts import Principal, Role
from obsy_web.context import WebContext

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


def _pages(context: WebContext) -> dict[str, tuple[str, str]]:
    """The navigation: the Fleet page only where other sites are bridged here (``web.sites``)."""
    if context.config.web.sites:
        return PAGES
    return {name: value for name, value in PAGES.items() if name != "fleet"}


def _render(page: str, request: Request, who: Principal | None, context: WebContext, **extra: object) -> Response:
    if who is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
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
