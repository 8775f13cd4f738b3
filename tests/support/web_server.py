"""The whole web service running in the test process against a real broker and database."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from obsy.config import load_config
from obsy.runner import ServiceRunner
from tests.support.configs import write_config
from tests.support.mosquitto import MosquittoBroker
from tests.support.pgcluster import fresh_database
from tests.support.ports import free_port

# The web service (FastAPI, SQLAlchemy, the ORM models: seconds of CPU) is imported when a test
# starts it, not when pytest collects the modules that import this one.
if TYPE_CHECKING:
    from obsy_web.auth.accounts import Role
    from obsy_web.service import WebService

PASSWORD = "correct horse battery"


@cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client: httpx would load the CA bundle anew for each (20 ms of
    CPU), and the tests' clients, speaking plain HTTP on loopback, never use it."""
    return ssl.create_default_context()


class Client(httpx.Client):
    """An httpx client that may be used in a ``with`` block after its first request."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("verify", _tls_context())
        super().__init__(**kwargs)

    def __enter__(self) -> Client:
        return self


class RunningWeb:
    def __init__(
        self,
        workdir: Path,
        broker: MosquittoBroker,
        database_url: str,
        sections: dict[str, Any] | None = None,
        **web: Any,
    ) -> None:
        """``web`` are the web section's settings; ``sections`` other sections of the config (``disk``...)."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        web_settings = {"port": self.port, "heartbeat_interval": 2, **web}
        path = write_config(
            workdir, broker, web=web_settings, database={"url": database_url}, run_dir=str(workdir), **(sections or {})
        )
        self.config = load_config(path)
        self.config_path = path
        self.data_dir = self.config.data_dir.resolve()
        from obsy_web.service import WebService

        self.runner = ServiceRunner(WebService, self.config)
        self.thread = threading.Thread(target=self.runner.run, name="web-under-test", daemon=True)

    def start(self, timeout: float = 30.0) -> RunningWeb:
        """Start the service (unless its thread runs already) and wait until HTTP answers."""
        if not self.thread.is_alive():
            self.thread.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=_tls_context()).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the web service did not start")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        self.runner.request_stop()
        self.thread.join(30)

    @property
    def service(self) -> WebService:
        return self.runner.service  # type: ignore[return-value]

    def add_user(
        self, username: str, role: Role | str, password: str = PASSWORD, sites: list[str] | None = None
    ) -> None:
        from obsy_web.auth import accounts
        from obsy_web.db import make_engine, session_factory

        engine = make_engine(self.database_url)
        try:
            with session_factory(engine).begin() as db:
                accounts.create_user(db, username, password, accounts.Role(role), sites)
        finally:
            engine.dispose()

    def client(self) -> Client:
        return Client(base_url=self.url, timeout=30)

    def login(self, username: str, password: str = PASSWORD) -> Client:
        """A client with the session cookie and the CSRF header a dashboard page would send."""
        client = self.client()
        reply = client.post("/api/v1/auth/login", json={"username": username, "password": password})
        reply.raise_for_status()
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client

    def token_client(self, username: str) -> Client:
        with self.login(username) as session:
            secret = session.post("/api/v1/auth/tokens", json={"name": "tests"}).json()["token"]
        return Client(base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {secret}"})

    def wait_until(self, check, timeout: float = 10.0, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(interval)


class WebProcess:
    """``obsy-web run`` as deployed: its own process, which a test may kill."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        script = Path(sys.executable).with_name("obsy-web")
        argv = [str(script), "run", "--config", str(config_path), "--log-format", "text"]
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no flush, no clean disconnect (the broker publishes the Last Will)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._log.close()

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def web_on(database: str, workdir: Path, users: dict[str, str], **options: Any) -> Iterator[RunningWeb]:
    """A running web service on its own broker (``.broker``) with ``users`` (name: role), on
    ``database`` ``sqlite`` (a file in ``workdir``) or ``postgres`` (a fresh database)."""
    broker = MosquittoBroker(workdir)
    broker.start()
    try:
        if database == "postgres":
            with fresh_database("obsy_web_test") as url, _serving(workdir, broker, url, users, options) as server:
                yield server
        else:
            url = f"sqlite:///{workdir / 'obsy.sqlite3'}"
            with _serving(workdir, broker, url, users, options) as server:
                yield server
    finally:
        broker.stop()


@contextmanager
def _serving(workdir: Path, broker: MosquittoBroker, url: str, users: dict[str, str], options: dict[str, Any]):
    server = RunningWeb(workdir, broker, url, **options).start()
    server.broker = broker
    try:
        for name, role in users.items():
            server.add_user(name, role)
        yield server
    finally:
        server.stop()
