"""The FastAPI application: the REST API under /api/v1 and the dashboard pages."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from obsy_web import pages, site_pages
from obsy_web.api import (
    auth,
    commands,
    files,
    fleet,
    history,
    imaging,
    imaging_targets,
    live,
    nights,
    plan,
    status,
    targets,
    uploads,
)
from obsy_web.api.errors import RejectNulCharacters, install_error_handlers
from obsy_web.api.security import PrincipalCache
from obsy_web.context import WebContext

API_PREFIX = "/api/v1"


def create_app(context: WebContext) -> FastAPI:
    app = FastAPI(
        title="OBSY",
        version="1",
        description="The observatory's REST API: status, history, allsky, imaging, events, targets, plan, commands.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.context = context
    app.state.principals = PrincipalCache()
    install_error_handlers(app)
    app.add_middleware(RejectNulCharacters)
    for module in (
        status,
        fleet,
        history,
        files,
        imaging,
        imaging_targets,
        nights,
        targets,
        plan,
        commands,
        auth,
        live,
        uploads,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(pages.router)
    app.include_router(site_pages.router)
    static = resources.files("obsy_web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"ok": True}

    return app
