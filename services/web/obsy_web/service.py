"""The web service process: the status board fed from the bus, served over HTTP.

The database, the ingestor and the full dashboard are added by the web issue; this
serves the live status of every service at ``/`` and ``/api/v1/status``.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from obsy.runner import Service, run_service
from obsy_web.app import create_app
from obsy_web.status import StatusBoard


class WebService(Service):
    name = "web"

    def start(self) -> None:
        self.board = StatusBoard(self.bus)
        app = create_app(self.board, self.config.site.name)
        settings = self.config.web
        server_config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(server_config)
        # Bind here, not in uvicorn's thread, so that a busy port is a clear start failure.
        try:
            listener = socket.create_server((settings.host, settings.port), reuse_port=False)
        except OSError as exc:
            raise RuntimeError(
                f"the dashboard cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [listener]}, name="web-http", daemon=True
        )
        self.thread.start()
        self.log.info("dashboard at http://%s:%s/", settings.host, settings.port, extra={"event": "http_listening"})

    def poll(self) -> None:
        if not self.thread.is_alive():
            raise RuntimeError("the HTTP server thread stopped")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def health_details(self) -> dict[str, Any]:
        return {"http": self.thread.is_alive()}


def main() -> int:
    return run_service(WebService)
