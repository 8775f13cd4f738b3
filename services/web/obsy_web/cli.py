"""Administration commands of ``obsy-web``: accounts and migrations.

    obsy-web create-admin NAME           the first administrator (asks for the password twice)
    obsy-web create-user NAME --role operator [--sites north,south]
    obsy-web migrate                      bring the database schema up to date

The password is never a default: it is typed (twice), or read from ``--password-file``
or standard input (``--password-stdin``) for scripts.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from obsy.config import ConfigError, load_config
from obsy_web.auth import accounts
from obsy_web.auth.accounts import AccountError, Role
from obsy_web.db import make_engine, session_factory
from obsy_web.db.migrate import upgrade


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obsy-web", description="OBSY web service administration")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, role_help in (("create-admin", None), ("create-user", "viewer, operator or admin")):
        command = sub.add_parser(name, help=f"add {'an administrator' if role_help is None else 'a user'}")
        command.add_argument("username")
        if role_help:
            command.add_argument("--role", choices=[r.value for r in Role], default="viewer", help=role_help)
            command.add_argument(
                "--sites", help="limit the account to these sites of a fleet (ids, comma-separated); default: all"
            )
        source = command.add_mutually_exclusive_group()
        source.add_argument("--password-file", type=Path, help="read the password from this file (first line)")
        source.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        command.add_argument("-c", "--config", help="YAML config file")
    migrate = sub.add_parser("migrate", help="apply the database migrations")
    migrate.add_argument("-c", "--config", help="YAML config file")
    return parser


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        return (
            args.password_file.read_text(encoding="utf-8").splitlines()[0] if args.password_file.stat().st_size else ""
        )
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def admin_command(argv: list[str]) -> int:
    """Accounts and database: create-admin NAME, create-user NAME --role ROLE, migrate."""
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-web"), file=sys.stderr)
        return 2
    engine = make_engine(config.database_url())
    try:
        upgrade(engine)
        if args.command == "migrate":
            print("obsy-web: the database schema is up to date")
            return 0
        role = Role.ADMIN if args.command == "create-admin" else Role(args.role)
        try:
            password = _password(args)
            with session_factory(engine).begin() as db:
                sites = [s.strip() for s in args.sites.split(",")] if getattr(args, "sites", None) else None
                accounts.create_user(db, args.username, password, role, sites)
        except (AccountError, OSError, IndexError) as exc:
            print(f"obsy-web: {exc}", file=sys.stderr)
            return 1
        print(f"obsy-web: created {role.value} {args.username!r}")
        return 0
    finally:
        engine.dispose()
