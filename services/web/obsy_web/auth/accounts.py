"""Users with argon2 password hashes, login sessions and API tokens, in the database.

Session cookies and API tokens are random secrets shown once; the database keeps only
their SHA-256, so a copy of the database does not let anyone log in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from obsy.config import SITE_ID_PATTERN
from obsy_web.db.models import ApiToken, SessionRecord, User


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 1, "operator": 2, "admin": 3}[self.value]


MIN_PASSWORD_LENGTH = 10
SITE_ID = re.compile(SITE_ID_PATTERN)
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist takes as long as a real check,
    so response times do not tell which usernames exist. Made at the first login, not at import:
    an argon2 hash costs a few tenths of a CPU second and 64 MiB, which every importer of this
    module (the web service's commands, the tests) would pay."""
    return _hasher.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (through a session or a token) or an anonymous visitor."""

    user_id: int | None
    username: str
    role: Role
    via: str  # "session", "token" or "anonymous"
    csrf_token: str | None = None
    #: The sites this caller may see and act on; None: every site (the default for an account).
    sites: frozenset[str] | None = None

    def can(self, role: Role) -> bool:
        return self.role.rank >= role.rank

    def sees(self, site: str) -> bool:
        return self.sites is None or site in self.sites


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def check_sites(sites: Iterable[str] | None) -> list[str] | None:
    """A list of site ids for an account (sorted, without repeats), or None for every site."""
    if sites is None:
        return None
    ids = sorted(set(sites))
    bad = [site for site in ids if not SITE_ID.match(site)]
    if bad:
        raise AccountError(f"not a site id: {', '.join(repr(b) for b in bad)} (lower-case letters, digits, - and _)")
    if not ids:
        raise AccountError("an account limited to sites needs at least one site (or none given: every site)")
    return ids


def set_sites(user: User, sites: Iterable[str] | None) -> None:
    """Limit an account to some sites (ids), or give it every site again (None)."""
    user.sites = check_sites(sites)


def sites_of(user: User) -> frozenset[str] | None:
    return None if user.sites is None else frozenset(user.sites)


def create_user(db: Session, username: str, password: str, role: Role, sites: Iterable[str] | None = None) -> User:
    if not USERNAME_PATTERN.match(username):
        raise AccountError("a username has 1 to 64 letters, digits or . _ @ -")
    check_password_rules(password)
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise AccountError(f"a user named {username!r} exists already")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=Role(role).value,
        created_at=datetime.now(UTC),
        sites=check_sites(sites),
    )
    db.add(user)
    db.flush()
    return user


def set_password(db: Session, user: User, password: str) -> None:
    check_password_rules(password)
    user.password_hash = _hasher.hash(password)
    db.execute(delete(SessionRecord).where(SessionRecord.user_id == user.id))  # log out everywhere


def authenticate(db: Session, username: str, password: str) -> User | None:
    """The user when the password is right and the account enabled, else None."""
    dummy = _dummy_hash()  # before the look-up: the first login costs the same whoever it names
    user = db.scalar(select(User).where(User.username == username))
    try:
        if user is None:
            _hasher.verify(dummy, password)
            return None
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if user.disabled:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def start_session(db: Session, user: User, lifetime: timedelta) -> tuple[str, SessionRecord]:
    """A new login; returns the cookie value (shown once) and the stored record."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    record = SessionRecord(
        token_hash=digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + lifetime,
    )
    db.add(record)
    db.execute(delete(SessionRecord).where(SessionRecord.expires_at < now))
    return token, record


def end_session(db: Session, token: str) -> None:
    db.execute(delete(SessionRecord).where(SessionRecord.token_hash == digest(token)))


def principal_for_session(db: Session, token: str) -> Principal | None:
    record = db.get(SessionRecord, digest(token))
    if record is None or record.expires_at < datetime.now(UTC) or record.user.disabled:
        return None
    user = record.user
    return Principal(user.id, user.username, Role(user.role), "session", record.csrf_token, sites_of(user))


def create_token(db: Session, user: User, name: str) -> tuple[str, ApiToken]:
    secret = "obsy_" + secrets.token_urlsafe(32)
    token = ApiToken(token_hash=digest(secret), user_id=user.id, name=name, created_at=datetime.now(UTC))
    db.add(token)
    db.flush()
    return secret, token


def principal_for_token(db: Session, secret: str) -> Principal | None:
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == digest(secret)))
    if token is None or token.user.disabled:
        return None
    token.last_used_at = datetime.now(UTC)
    user = token.user
    return Principal(user.id, user.username, Role(user.role), "token", sites=sites_of(user))
