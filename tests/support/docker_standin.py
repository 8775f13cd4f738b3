"""A stand-in Docker Engine on a unix socket: the two calls the MCP's supervision makes.

There is no Docker engine on the test machines, so the real Docker SDK talks to this
small HTTP server speaking the Engine API (version 1.41): ``GET /containers/{id}/json``
and ``POST /containers/{id}/restart``. It records every request and answers 404 for a
container it does not have, as the engine does.
"""

from __future__ import annotations

import json
import re
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path


class DockerStandIn:
    def __init__(self, socket_path: Path, containers: list[str]) -> None:
        self.socket_path = Path(socket_path)
        self.containers = {name: f"{i:064x}" for i, name in enumerate(containers, start=1)}
        self.requests: list[tuple[str, str]] = []
        self.restarted: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # no client address on a unix socket
                pass

            def _reply(self, status: int, body: dict | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _container(self, pattern: str) -> str | None:
                found = re.fullmatch(pattern, self.path.split("?")[0])
                if not found:
                    return None
                key = found.group(1)
                by_id = {cid: name for name, cid in standin.containers.items()}
                return key if key in standin.containers else by_id.get(key)

            def do_GET(self) -> None:
                standin.requests.append(("GET", self.path))
                name = self._container(r"/v1\.41/containers/([^/]+)/json")
                if name is None:
                    self._reply(404, {"message": f"No such container: {self.path}"})
                    return
                cid = standin.containers[name]
                self._reply(200, {"Id": cid, "Name": f"/{name}", "State": {"Status": "running"}, "Config": {}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                standin.requests.append(("POST", self.path))
                name = self._container(r"/v1\.41/containers/([^/]+)/restart")
                if name is None:
                    self._reply(404, {"message": f"No such container: {self.path}"})
                    return
                standin.restarted.append(name)
                self._reply(204)

        self.server = socketserver.ThreadingUnixStreamServer(str(self.socket_path), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DockerStandIn:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.socket_path.unlink(missing_ok=True)
