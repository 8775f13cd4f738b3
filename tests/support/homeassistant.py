"""A real Home Assistant, headless, on a free loopback port, with its MQTT integration on the test's broker.

Home Assistant lives in its own virtual environment (``scripts/homeassistant-env.sh`` makes
``.venv-homeassistant``; ``OBSY_HOMEASSISTANT_PYTHON`` names another one's interpreter): it pins
its own aiohttp, pydantic and paho-mqtt, which OBSY's environment cannot share.

Each instance gets a fresh config folder with a minimal ``configuration.yaml`` (no
``default_config``: only the HTTP API, onboarding and the config-entry API), is started with
``--skip-pip`` (everything it needs is installed beforehand; a test never reaches the
network), onboarded through its REST API (the first user, then the OAuth code flow for an
access token), and given an MQTT config entry through the same config flow the UI uses,
against the test's own Mosquitto. Its log stays in the folder (``home-assistant.log``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.mosquitto import MosquittoBroker
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
_DEFAULT_PYTHON = REPO / ".venv-homeassistant" / "bin" / "python"
HOMEASSISTANT_PYTHON = os.environ.get("OBSY_HOMEASSISTANT_PYTHON") or str(_DEFAULT_PYTHON)
SETUP = "run scripts/homeassistant-env.sh or set OBSY_HOMEASSISTANT_PYTHON"

CLIENT_ID_PATH = "/"  # any URL on Home Assistant's own origin is a valid OAuth client id
USER = "obsy-test"
PASSWORD = "obsy-test-password"  # a throwaway instance on loopback, gone with the test folder


def available() -> bool:
    """Whether a Home Assistant environment is there to run."""
    return os.access(HOMEASSISTANT_PYTHON, os.X_OK)


def version() -> str:
    done = subprocess.run(
        [HOMEASSISTANT_PYTHON, "-c", "from homeassistant.const import __version__; print(__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


CONFIGURATION = """\
homeassistant:
  name: {site_name}
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: CH
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
"""


class HomeAssistant:
    """One Home Assistant process; :meth:`start` returns once the API answers and MQTT is set up."""

    def __init__(self, workdir: Path, broker: MosquittoBroker, site_name: str = "OBSY test") -> None:
        self.workdir = workdir
        self.config_dir = workdir / "config"
        self.log_path = self.config_dir / "home-assistant.log"
        self.broker = broker
        self.site_name = site_name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""
        self._console = workdir / "home-assistant.console"

    # --- process ---------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> HomeAssistant:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            CONFIGURATION.format(site_name=self.site_name, port=self.port)
        )
        with self._console.open("wb") as console:
            self.process = subprocess.Popen(
                [
                    # Niced: it shares the cores with the services under test.
                    "nice",
                    "-n",
                    "5",
                    HOMEASSISTANT_PYTHON,
                    "-m",
                    "homeassistant",
                    "--config",
                    str(self.config_dir),
                    "--skip-pip",
                    "--log-file",
                    str(self.log_path),
                ],
                stdout=console,
                stderr=subprocess.STDOUT,
            )
        try:
            self.wait_until(lambda: self._get_status("/api/onboarding") is not None, timeout, "its HTTP API")
            self._onboard()
            self.wait_until(lambda: self._get_status("/api/") == 200, 60, "its REST API")
            self._add_mqtt()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> HomeAssistant:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        """Its log (and console), for a failing assertion's message."""
        parts = [p.read_text(errors="replace") for p in (self._console, self.log_path) if p.exists()]
        return "\n".join(parts)[-6000:]

    def discovery_errors(self) -> list[str]:
        """The discovery configs its MQTT integration refused (it logs them and drops the entity)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if "when processing MQTT discovery message" in line]

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Home Assistant exited ({self.process.returncode}):\n{self.log()}")
            if self.log_path.exists() and "Activating recovery mode" in self.log_path.read_text(errors="replace"):
                raise RuntimeError(f"Home Assistant started in recovery mode (a package missing?):\n{self.log()}")
            if condition():
                return
            time.sleep(0.5)
        raise TimeoutError(f"Home Assistant: still no {what} after {timeout:.0f} s:\n{self.log()}")

    def _get_status(self, path: str) -> int | None:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.url + path, headers=self._auth(), timeout=5).status_code
        return None

    # --- onboarding and MQTT ---------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _onboard(self) -> None:
        client_id = self.url + CLIENT_ID_PATH
        answer = httpx.post(
            self.url + "/api/onboarding/users",
            json={"client_id": client_id, "name": "OBSY", "username": USER, "password": PASSWORD, "language": "en"},
            timeout=30,
        )
        answer.raise_for_status()
        token = httpx.post(
            self.url + "/auth/token",
            data={"grant_type": "authorization_code", "code": answer.json()["auth_code"], "client_id": client_id},
            timeout=30,
        )
        token.raise_for_status()
        self.token = token.json()["access_token"]

    def _add_mqtt(self) -> None:
        """The MQTT config entry, through the UI's config flow: broker and port; discovery keeps its defaults."""
        flow = self.post("/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        assert flow["type"] == "form" and flow["step_id"] == "broker", flow
        done = self.post(
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"broker": self.broker.host, "port": self.broker.port},
        )
        assert done["type"] == "create_entry", done
        self.wait_until(lambda: self.mqtt_state() == "loaded", 60, "MQTT config entry loaded")

    def mqtt_state(self) -> str | None:
        for entry in self.get("/api/config/config_entries/entry"):
            if entry["domain"] == "mqtt":
                return entry["state"]
        return None

    # --- REST API --------------------------------------------------------------------

    def get(self, path: str) -> Any:
        answer = httpx.get(self.url + path, headers=self._auth(), timeout=30)
        answer.raise_for_status()
        return answer.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        answer = httpx.post(self.url + path, json=body, headers=self._auth(), timeout=30)
        if answer.is_error:
            raise AssertionError(f"POST {path} {body}: {answer.status_code} {answer.text}")
        return answer.json()

    def states(self) -> dict[str, dict[str, Any]]:
        """Every entity's state object (``/api/states``), by entity id."""
        return {s["entity_id"]: s for s in self.get("/api/states")}

    def state(self, entity_id: str) -> dict[str, Any] | None:
        answer = httpx.get(f"{self.url}/api/states/{entity_id}", headers=self._auth(), timeout=30)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()

    def call(self, domain: str, service: str, **data: Any) -> Any:
        """A service call, as an automation or the UI makes it."""
        return self.post(f"/api/services/{domain}/{service}", data)

    def wait_state(
        self, entity_id: str, predicate: Callable[[dict[str, Any] | None], bool], timeout: float = 30.0
    ) -> dict[str, Any] | None:
        """Polls ``/api/states/<entity_id>`` until ``predicate`` holds; the last state object is returned."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.state(entity_id)
            if predicate(last):
                return last
            time.sleep(0.3)
        raise AssertionError(f"{entity_id}: state still {last} after {timeout:.0f} s")
