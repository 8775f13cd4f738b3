"""Who is asking, and may they: sessions, API tokens, roles and CSRF.

- ``Authorization: Bearer <token>``: an API token (scripts); no CSRF check.
- The ``obsy_session`` cookie: a login from the dashboard. Requests that change something
  must carry the session's CSRF token in the ``X-CSRF-Token`` header (the pages send it).
- Neither: an anonymous visitor, allowed to read only when ``web.anonymous_read`` is on.

Lookups are cached for a few seconds (the status page is polled often); logging out,
deleting a token or changing a user clears the cache.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from obsy_web.auth import accounts
from obsy_web.auth.accounts import Principal, Role
from obsy_web.context import WebContext

SESSION_COOKIE = "obsy_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CACHE_TTL_S = 5.0


def context_of(request: Request) -> WebContext:
    return request.app.state.context


async def get_context(request: Request) -> WebContext:
    """The dependency form of :func:`context_of` (async: FastAPI runs plain functions in a thread)."""
    return request.app.state.context


class PrincipalCache:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[Principal | None, float]] = {}

    def get(self, key: tuple[str, str]) -> tuple[bool, Principal | None]:
        entry = self._entries.get(key)
        if entry is None or entry[1] < time.monotonic():
            return False, None
        return True, entry[0]

    def put(self, key: tuple[str, str], principal: Principal | None) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (principal, time.monotonic() + _CACHE_TTL_S)

    def clear(self) -> None:
        self._entries.clear()


def principal_cache(request: Request) -> PrincipalCache:
    return request.app.state.principals


async def _lookup(request: Request, kind: str, secret: str) -> Principal | None:
    cache = principal_cache(request)
    key = (kind, accounts.digest(secret))
    hit, principal = cache.get(key)
    if hit:
        return principal
    context = context_of(request)

    def find() -> Principal | None:
        with context.sessions.begin() as db:
            if kind == "token":
                return accounts.principal_for_token(db, secret)
            return accounts.principal_for_session(db, secret)

    principal = await run_in_threadpool(find)
    cache.put(key, principal)
    return principal


async def current_principal(request: Request) -> Principal | None:
    """The caller, or None when nobody is logged in and anonymous reading is off."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise HTTPException(401, "use 'Authorization: Bearer <API token>'", headers={"WWW-Authenticate": "Bearer"})
        principal = await _lookup(request, "token", secret.strip())
        if principal is None:
            raise HTTPException(401, "the API token is not valid (revoked, or its user disabled)")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal = await _lookup(request, "session", cookie)
        if principal is not None:
            return principal
    if context_of(request).config.web.anonymous_read:
        return Principal(None, "anonymous", Role.VIEWER, "anonymous")
    return None


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through callers with at least ``role`` (and a CSRF token for changes)."""

    async def check(request: Request, principal: Principal | None = Depends(current_principal)) -> Principal:
        changing = request.method not in SAFE_METHODS
        if principal is None or (principal.via == "anonymous" and changing):
            raise HTTPException(401, "log in, or send an API token as 'Authorization: Bearer <token>'")
        if not principal.can(role):
            who = f"{principal.username} is a {principal.role.value}"
            raise HTTPException(403, f"this needs the {role.value} role; {who}")
        if changing and principal.via == "session":
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not secrets.compare_digest(sent, principal.csrf_token or ""):
                raise HTTPException(403, f"missing or wrong CSRF token (send the session's token in {CSRF_HEADER})")
        return principal

    return check


viewer = require(Role.VIEWER)
operator = require(Role.OPERATOR)
admin = require(Role.ADMIN)
