"""Postgres for the tests: a fresh database on the shared server, or a private cluster.

``fresh_database`` creates an empty database on the server the tests use (``OBSY_TEST_POSTGRES``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``, the one CI starts) and drops it after.

:class:`PrivateCluster` runs its own ``postgres`` (Debian's initdb and pg_ctl) in a temporary
directory on a free port, so that a test may stop and start it without touching the shared
server. Postgres refuses to run as root; as root the cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port, wait_for_port

SHARED_SERVER = os.environ.get("OBSY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _server_url(database: str) -> str:
    base, _, _ = SHARED_SERVER.rpartition("/")
    return f"{base}/{database}"


def postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(SHARED_SERVER, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def fresh_database(prefix: str = "obsy_test") -> Iterator[str]:
    """An empty database on the shared server; yields its SQLAlchemy URL (psycopg 3)."""
    import psycopg

    if not postgres_available():
        pytest.skip(f"no Postgres answers at {SHARED_SERVER} (set OBSY_TEST_POSTGRES)")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SHARED_SERVER, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _server_url(name).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(SHARED_SERVER, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_binary(name: str) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else shutil.which(name)


class PrivateCluster:
    """One postgres server of our own; ``stop()``/``start()`` keep its data and port."""

    def __init__(self) -> None:
        self.initdb = _pg_binary("initdb")
        self.pg_ctl = _pg_binary("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            pytest.skip("Postgres server binaries (initdb, pg_ctl) are not installed (Debian package postgresql)")
        # Its own directory right under the system's temporary directory, not pytest's: the
        # postgres user must reach it, and pytest makes its base directory private (0700) at
        # the start of every run, which would lock a running server out.
        self.workdir = Path(tempfile.mkdtemp(prefix="obsy-test-pg-"))
        self.datadir = self.workdir / "pgdata"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        if self.user:
            command = ("runuser", "-u", self.user, "--", *command)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")

    def init(self) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self._run(self.initdb, "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            self.pg_ctl, "-D", str(self.datadir), "-l", str(self.workdir / "postgres.log"), "-o", options, "-w", "start"
        )
        wait_for_port(self.port)

    def stop(self, mode: str = "fast") -> None:
        self._run(self.pg_ctl, "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete its files."""
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        path = self.workdir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""
