"""Who is asking, and may they: sessions, API tokens, roles and CSRF.

- ``Authorization: Bearer <token>``: an API token (scripts); no CSRF check.
- The ``obsy_session`` cookie: a login from the dashboard. Requests that change something
  must carry the session's CSRF token in the ``X-CSRF-Token`` header (the pages send it).
- Neither: an anonymous visitor, allowed to read only when ``web.anonymous_read`` is on.

An account may be limited to some sites of a fleet (``users.sites``): it may then use only the
routes about those sites (``site=`` or ``/fleet/{site}/…``), and the routes about this site only
when this site is one of them; the fleet overview lists only its sites.

Lookups are cached for a few seconds (the status page is polled often); logging out,
deleting a token or changing a user clears the cache.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
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


def every_site() -> None:
    """Marks a route about no one site (the fleet overview, one's own account): no site check for it."""


#: How a route picks its site, for the site check (``route_kind``).
EVERY_SITE, CHOSEN_SITE, LOCAL_SITE = "every", "chosen", "local"
SiteChooser = TypeVar("SiteChooser", bound=Callable[..., object])
_SITE_CHOOSERS: set[Callable[..., object]] = set()
_ROUTE_KINDS: dict[object, str] = {}


def chooses_site(dependency: SiteChooser) -> SiteChooser:
    """Registers a dependency that picks the site a route shows (the ``site=`` query filter)."""
    _SITE_CHOOSERS.add(dependency)
    return dependency


def route_kind(route: APIRoute) -> str:
    """A route's kind, by its dependencies (the router's included): ``every_site``, a site it is given, or this site.

    A route given a site has ``{site}`` in its path or depends on a ``chooses_site`` dependency;
    every other route shows this site's data, so an account limited to other sites may not use it.
    """
    kind = _ROUTE_KINDS.get(route.endpoint)
    if kind is None:

        def calls(dependant) -> Iterator[object]:
            for sub in dependant.dependencies:
                yield sub.call
                yield from calls(sub)

        found = set(calls(route.dependant))
        if every_site in found:
            kind = EVERY_SITE
        elif found & _SITE_CHOOSERS or "{site}" in route.path:
            kind = CHOSEN_SITE
        else:
            kind = LOCAL_SITE
        _ROUTE_KINDS[route.endpoint] = kind
    return kind


def addressed_site(request: Request) -> str | None:
    """The site a request is about (None: no one site), for checking an account limited to sites."""
    route = request.scope.get("route")
    kind = route_kind(route) if isinstance(route, APIRoute) else LOCAL_SITE
    if kind == EVERY_SITE:
        return None
    local = context_of(request).config.site_id()
    if kind == CHOSEN_SITE:
        return request.path_params.get("site") or request.query_params.get("site") or local
    return local


def refuse_other_site(request: Request) -> None:
    """422 for ``site=<another site>`` on a route that shows this site only.

    Such a route would otherwise ignore the parameter and answer with this site's data, which a
    page showing a bridged site (``?site=``) would then show as that site's.
    """
    wanted = request.query_params.get("site")
    route = request.scope.get("route")
    if not wanted or not isinstance(route, APIRoute) or route_kind(route) != LOCAL_SITE:
        return
    if wanted != context_of(request).config.site_id():
        raise HTTPException(422, f"{route.path} shows this site only: it takes no site= (asked for {wanted[:64]!r})")


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through callers with at least ``role`` (and a CSRF token for changes)."""

    async def check(request: Request, principal: Principal | None = Depends(current_principal)) -> Principal:
        changing = request.method not in SAFE_METHODS
        if principal is None or (principal.via == "anonymous" and changing):
            raise HTTPException(401, "log in, or send an API token as 'Authorization: Bearer <token>'")
        if not principal.can(role):
            who = f"{principal.username} is a {principal.role.value}"
            raise HTTPException(403, f"this needs the {role.value} role; {who}")
        if principal.sites is not None:
            site = addressed_site(request)
            if site is not None and not principal.sees(site):
                allowed = ", ".join(sorted(principal.sites))
                raise HTTPException(403, f"{principal.username} may see and act on site(s) {allowed} only, not {site}")
        refuse_other_site(request)
        if changing and principal.via == "session":
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not secrets.compare_digest(sent, principal.csrf_token or ""):
                raise HTTPException(403, f"missing or wrong CSRF token (send the session's token in {CSRF_HEADER})")
        return principal

    return check


viewer = require(Role.VIEWER)
operator = require(Role.OPERATOR)
admin = require(Role.ADMIN)
