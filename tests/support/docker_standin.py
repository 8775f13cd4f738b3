"""A stand-in Docker Engine on a unix socket: the calls the MCP's supervision makes.

There is no Docker engine on the test machines, so the real Docker SDK talks to this
small HTTP server speaking the Engine API (version 1.41): ``GET /containers/json`` (with
label filters, as compose labels its containers), ``GET /containers/{id}/json`` and
``POST /containers/{id}/restart``. It records every request and answers 404 for a
container it does not have, as the engine does. ``on_restart`` maps a container name to
a function run when it is restarted (a test restarts the real process it stands for).
"""

from __future__ import annotations

import json
import re
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

COMPOSE_PROJECT = "obsy"


class DockerStandIn:
    """``containers``: plain container names; ``compose``: compose service -> container name (labelled)."""

    def __init__(
        self,
        socket_path: Path,
        containers: list[str] = (),  # type: ignore[assignment]
        *,
        compose: dict[str, str] | None = None,
        on_restart: dict[str, Callable[[], None]] | None = None,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.labels: dict[str, dict[str, str]] = {name: {} for name in containers}
        for service, name in (compose or {}).items():
            self.labels[name] = {"com.docker.compose.project": COMPOSE_PROJECT, "com.docker.compose.service": service}
        self.containers = {name: f"{i:064x}" for i, name in enumerate(self.labels, start=1)}
        self.on_restart = dict(on_restart or {})
        self.requests: list[tuple[str, str]] = []
        self.restarted: list[str] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # no client address on a unix socket
                pass

            def _reply(self, status: int, body: object = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _container(self, pattern: str) -> str | None:
                found = re.fullmatch(pattern, urlsplit(self.path).path)
                if not found:
                    return None
                key = found.group(1)
                by_id = {cid: name for name, cid in standin.containers.items()}
                return key if key in standin.containers else by_id.get(key)

            def do_GET(self) -> None:
                standin.requests.append(("GET", self.path))
                url = urlsplit(self.path)
                if url.path == "/v1.41/containers/json":
                    self._reply(200, standin._list(parse_qs(url.query)))
                    return
                name = self._container(r"/v1\.41/containers/([^/]+)/json")
                if name is None:
                    self._reply(404, {"message": f"No such container: {self.path}"})
                    return
                cid = standin.containers[name]
                config = {"Labels": standin.labels[name]}
                self._reply(200, {"Id": cid, "Name": f"/{name}", "State": {"Status": "running"}, "Config": config})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                standin.requests.append(("POST", self.path))
                name = self._container(r"/v1\.41/containers/([^/]+)/restart")
                if name is None:
                    self._reply(404, {"message": f"No such container: {self.path}"})
                    return
                with standin._lock:  # like the engine: one restart of a container at a time
                    action = standin.on_restart.get(name)
                    if action is not None:
                        action()
                    standin.restarted.append(name)
                self._reply(204)

        self.server = socketserver.ThreadingUnixStreamServer(str(self.socket_path), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _list(self, query: dict[str, list[str]]) -> list[dict[str, object]]:
        """``GET /containers/json``: the containers whose labels match every ``label`` filter."""
        filters = json.loads(query.get("filters", ["{}"])[0])
        wanted = [f.split("=", 1) for f in filters.get("label", [])]
        return [
            {"Id": self.containers[name], "Names": [f"/{name}"], "Labels": labels, "State": "running"}
            for name, labels in self.labels.items()
            if all(key in labels and (not value or labels[key] == value[0]) for key, *value in wanted)
        ]

    def __enter__(self) -> DockerStandIn:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.socket_path.unlink(missing_ok=True)
