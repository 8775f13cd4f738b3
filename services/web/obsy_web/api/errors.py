"""Every error as JSON: ``{"detail": "<what is wrong>"}`` with the right status code."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from obsy.messages import EXCERPT_CHARS, excerpt, validation_problems
from obsy_web.targets import TargetError


class ErrorReply(JSONResponse):
    pass


def _short(part: Any) -> str:
    """A location part; a key taken from the request (an unknown field) only as an excerpt."""
    text = str(part)
    return text if len(text) <= EXCERPT_CHARS else excerpt(text)


def _describe(errors: list[dict[str, Any]]) -> str:
    return "invalid request: " + validation_problems(errors, skip=("body",), whole="request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [p if isinstance(p, int) else _short(p) for p in e.get("loc", ())],
                "msg": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors()[:20]
        ]
        return JSONResponse({"detail": _describe(list(exc.errors())), "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}"
        if exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(TargetError)
    async def _target(request: Request, exc: TargetError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)


class RejectNulCharacters:
    """Answers 400 to a URL with a NUL character (``%00``) before any route sees it.

    Postgres cannot store or compare text containing NUL; rejecting it here keeps such a
    request from reaching a query as an internal error, whatever the parameter.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"").lower()
        ):
            reply = JSONResponse({"detail": "the request URL contains a NUL character (%00)"}, status_code=400)
            await reply(scope, receive, send)
            return
        await self.app(scope, receive, send)
