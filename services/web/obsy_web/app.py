"""The FastAPI application: the REST API under /api/v1 and the dashboard pages."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from obsy_web.status import StatusBoard


def create_app(board: StatusBoard, site_name: str) -> FastAPI:
    app = FastAPI(title="OBSY", version="1", docs_url="/api/docs", openapi_url="/api/v1/openapi.json")
    page = resources.files("obsy_web").joinpath("static/index.html").read_text(encoding="utf-8")
    page = page.replace("{{site_name}}", site_name.replace("<", "&lt;"))

    @app.get("/api/v1/status", summary="Availability and health of every service")
    def status() -> dict:
        return board.snapshot()

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        return page

    return app
