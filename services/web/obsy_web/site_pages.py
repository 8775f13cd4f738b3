"""``/sites/{site}``: one site of the fleet on one page (status, weather, allsky, events, closing commands).

The centre's own pages show this site; a bridged site's page reads the same API with
``site=<id>``. An account limited to sites sees the pages of its sites only (403 for others).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from obsy.config import SITE_ID_PATTERN
from obsy_web.api.fleet import fleet_of
from obsy_web.api.security import current_principal, get_context
from obsy_web.auth.accounts import Principal, Role
from obsy_web.context import WebContext
from obsy_web.pages import PAGES, SITE_PAGES, _pages, templates

router = APIRouter(include_in_schema=False)


@router.get("/sites/{site}", response_class=HTMLResponse, name="page_site")
async def site_page(
    request: Request,
    site: str = Path(..., max_length=64, pattern=SITE_ID_PATTERN),
    who: Principal | None = Depends(current_principal),
    context: WebContext = Depends(get_context),
) -> Response:
    if who is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    found = fleet_of(context).get(site)
    if found is None:
        raise HTTPException(404, f"no site {site!r} (known: {', '.join(s.id for s in fleet_of(context).sites)})")
    if not who.sees(site):
        raise HTTPException(403, f"{who.username} may see site(s) {', '.join(sorted(who.sites or []))} only")
    return templates.TemplateResponse(
        request,
        "site.html",
        {
            "page": "fleet",
            "pages": _pages(context),
            "site_name": context.config.site.name,
            "who": who,
            "can_operate": who.can(Role.OPERATOR) and who.via != "anonymous",
            "site": found,
            "site_links": [(path, title) for name, (path, title) in PAGES.items() if name in SITE_PAGES],
        },
    )
