"""Logging in and out, API tokens, and user administration."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from obsy_web.api.security import SESSION_COOKIE, admin, every_site, get_context, principal_cache, viewer
from obsy_web.auth import accounts
from obsy_web.auth.accounts import AccountError, Principal, Role
from obsy_web.context import WebContext
from obsy_web.db.models import ApiToken, SessionRecord, User
from obsy_web.targets import NO_CONTROL_CHARACTERS

router = APIRouter(tags=["accounts"], dependencies=[Depends(every_site)])


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, pattern=NO_CONTROL_CHARACTERS)
    password: str = Field(min_length=1, max_length=1024)


SITES_FIELD = Field(
    default=None,
    max_length=1000,
    description="the sites (ids) the account may see and act on; null: every site",
)


class Me(BaseModel):
    username: str
    role: Role
    via: str
    csrf_token: str | None = None
    sites: list[str] | None = SITES_FIELD


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=NO_CONTROL_CHARACTERS)


class TokenInfo(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None


class NewToken(TokenInfo):
    token: str = Field(description="shown only now; send it as 'Authorization: Bearer <token>'")


class UserInfo(BaseModel):
    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    sites: list[str] | None = SITES_FIELD


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, pattern=NO_CONTROL_CHARACTERS)
    password: str = Field(min_length=1, max_length=1024)
    role: Role = Role.VIEWER
    sites: list[str] | None = SITES_FIELD


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    sites: list[str] | None = Field(
        default=None, max_length=1000, description="limit the account to these sites; null: every site again"
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/auth/login", response_model=Me, summary="Log in; sets the session cookie")
def login(credentials: Credentials, request: Request, response: Response, context: WebContext = Depends(get_context)):
    keys = (f"ip:{_client(request)}", f"user:{credentials.username.lower()}")
    wait = context.limiter.retry_after(*keys)
    if wait > 0:
        raise HTTPException(
            429,
            f"too many failed logins; try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    settings = context.config.web
    with context.sessions.begin() as db:
        user = accounts.authenticate(db, credentials.username, credentials.password)
        if user is None:
            context.limiter.failed(*keys)
            raise HTTPException(401, "wrong username or password")
        token, record = accounts.start_session(db, user, timedelta(hours=settings.session_hours))
        me = Me(
            username=user.username, role=Role(user.role), via="session", csrf_token=record.csrf_token, sites=user.sites
        )
    context.limiter.succeeded(keys[1])
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )
    return me


@router.post("/auth/logout", status_code=204, summary="End this session")
def logout(request: Request, who: Principal = Depends(viewer), context: WebContext = Depends(get_context)) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with context.sessions.begin() as db:
            accounts.end_session(db, cookie)
        principal_cache(request).clear()
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/auth/me", response_model=Me, summary="Who is logged in")
def me(who: Principal = Depends(viewer)) -> Me:
    sites = None if who.sites is None else sorted(who.sites)
    return Me(username=who.username, role=who.role, via=who.via, csrf_token=who.csrf_token, sites=sites)


def _own_user(db, who: Principal) -> User:
    if who.user_id is None:
        raise HTTPException(401, "log in to manage API tokens")
    user = db.get(User, who.user_id)
    if user is None:
        raise HTTPException(401, "this account no longer exists")
    return user


@router.get("/auth/tokens", response_model=list[TokenInfo], summary="Your API tokens")
def list_tokens(who: Principal = Depends(viewer), context: WebContext = Depends(get_context)) -> list[TokenInfo]:
    with context.sessions() as db:
        user = _own_user(db, who)
        rows = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
        return [TokenInfo.model_validate(t, from_attributes=True) for t in rows]


@router.post("/auth/tokens", response_model=NewToken, status_code=201, summary="Create an API token for scripts")
def create_token(
    request: TokenRequest, who: Principal = Depends(viewer), context: WebContext = Depends(get_context)
) -> NewToken:
    with context.sessions.begin() as db:
        user = _own_user(db, who)
        secret, token = accounts.create_token(db, user, request.name)
        return NewToken(id=token.id, name=token.name, created_at=token.created_at, last_used_at=None, token=secret)


@router.delete("/auth/tokens/{token_id}", status_code=204, summary="Revoke one of your API tokens")
def delete_token(
    token_id: int, request: Request, who: Principal = Depends(viewer), context: WebContext = Depends(get_context)
) -> Response:
    with context.sessions.begin() as db:
        user = _own_user(db, who)
        token = db.get(ApiToken, token_id)
        if token is None or (token.user_id != user.id and not who.can(Role.ADMIN)):
            raise HTTPException(404, f"no API token {token_id} of yours")
        db.delete(token)
    principal_cache(request).clear()
    return Response(status_code=204)


@router.get("/users", response_model=list[UserInfo], dependencies=[Depends(admin)], summary="Every account")
def list_users(context: WebContext = Depends(get_context)) -> list[UserInfo]:
    with context.sessions() as db:
        return [UserInfo.model_validate(u, from_attributes=True) for u in db.scalars(select(User).order_by(User.id))]


@router.post("/users", response_model=UserInfo, status_code=201, dependencies=[Depends(admin)], summary="Add a user")
def create_user(data: NewUser, context: WebContext = Depends(get_context)) -> UserInfo:
    try:
        with context.sessions.begin() as db:
            user = accounts.create_user(db, data.username, data.password, data.role, data.sites)
            return UserInfo.model_validate(user, from_attributes=True)
    except AccountError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from None


@router.patch("/users/{user_id}", response_model=UserInfo, summary="Change a user's role, password or access")
def change_user(
    user_id: int,
    change: UserChange,
    request: Request,
    who: Principal = Depends(admin),
    context: WebContext = Depends(get_context),
) -> UserInfo:
    with context.sessions.begin() as db:
        user = db.get(User, user_id)
        if user is None:
            raise HTTPException(404, f"no user {user_id}")
        if user.id == who.user_id and (change.disabled or (change.role and change.role != Role.ADMIN)):
            raise HTTPException(409, "you cannot disable yourself or take away your own admin role")
        if change.role is not None:
            user.role = change.role.value
        if change.disabled is not None:
            user.disabled = change.disabled
            if change.disabled:
                db.query(SessionRecord).filter(SessionRecord.user_id == user.id).delete()
        try:
            if "sites" in change.model_fields_set:  # given as null: every site again
                accounts.set_sites(user, change.sites)
            if change.password is not None:
                accounts.set_password(db, user, change.password)
        except AccountError as exc:
            raise HTTPException(422, str(exc)) from None
        info = UserInfo.model_validate(user, from_attributes=True)
    principal_cache(request).clear()
    return info


@router.delete("/users/{user_id}", status_code=204, summary="Remove a user")
def delete_user(
    user_id: int, request: Request, who: Principal = Depends(admin), context: WebContext = Depends(get_context)
) -> Response:
    if user_id == who.user_id:
        raise HTTPException(409, "you cannot remove yourself")
    with context.sessions.begin() as db:
        user = db.get(User, user_id)
        if user is None:
            raise HTTPException(404, f"no user {user_id}")
        db.delete(user)
    principal_cache(request).clear()
    return Response(status_code=204)
