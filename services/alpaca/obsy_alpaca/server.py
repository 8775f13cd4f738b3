"""The Alpaca HTTP API (management and device API) and the UDP discovery responder.

Both use the standard library: a threading HTTP server (one thread per request; Alpaca
clients poll a few times a second at most) and one UDP socket. Every request is answered,
whatever it holds: a handler that raises something unexpected is logged and answered with
an Alpaca error, never allowed to end the server.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from obsy.messages import excerpt
from obsy_alpaca.devices import NO_VALUE, AlpacaDevice
from obsy_alpaca.protocol import (
    UNSPECIFIED_ERROR,
    AlpacaError,
    BadRequestError,
    Request,
    TransactionCounter,
    answer,
    error_answer,
)
from obsy_alpaca.watch import Safety

log = logging.getLogger("obsy.alpaca")

API_VERSIONS = [1]
#: The report Debian's indi_weather_safety_proxy (INDI "Weather Safety Proxy") fetches with its "Use url".
SAFETY_PROXY_PATH = "/obsy/weather-safety-proxy.json"
MAX_BODY = 16 * 1024
DISCOVERY_MESSAGE = b"alpacadiscovery1"


class AlpacaApi:
    """Routes a request to the management API or a device member and builds the answer."""

    def __init__(self, devices: list[AlpacaDevice], description: dict[str, str], safety: Callable[[], Safety]) -> None:
        self.devices = {(d.device_type.lower(), d.device_number): d for d in devices}
        self.description = description
        self.safety = safety
        self.transactions = TransactionCounter()

    def handle(self, method: str, path: str, query: str, body: bytes) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for one request."""
        if path == SAFETY_PROXY_PATH:
            return self._safety_proxy_report()
        client_transaction = 0
        try:
            request = Request.parse(method, query, body)
            client_transaction = request.uint32("ClientTransactionID")
            request.uint32("ClientID")
            value = self._route(method, path, request)
            has_value = value is not NO_VALUE
            return self._json(answer(client_transaction, self.transactions.next(), value, has_value=has_value))
        except BadRequestError as error:
            return error.status, "text/plain; charset=utf-8", str(error).encode("utf-8")
        except AlpacaError as error:
            return self._json(error_answer(client_transaction, self.transactions.next(), error))
        except Exception as error:  # a bug must not take the safety monitor down
            log.exception("alpaca request %s %s failed", method, excerpt(path))
            failure = AlpacaError(UNSPECIFIED_ERROR, f"internal error: {type(error).__name__}")
            return self._json(error_answer(client_transaction, self.transactions.next(), failure))

    def _safety_proxy_report(self) -> tuple[int, str, bytes]:
        """``{"roof_status": {"open_ok": 0|1, "reasons": "..."}}``, for INDI's Weather Safety Proxy.

        Always HTTP 200 with valid JSON, even on a bad request: the proxy does not look at the
        HTTP status and ends (the driver process dies) on a body that is not JSON. It is not
        tied to an Alpaca client's Connected: open_ok is the verdict with the same staleness
        rules as IsSafe.
        """
        try:
            safety = self.safety()
        except Exception:  # never let the proxy see anything but a report
            log.exception("weather safety report failed")
            safety = Safety(False, "OBSY alpaca service error")
        report = {"roof_status": {"open_ok": int(safety.safe), "reasons": safety.why}}
        return 200, "application/json", json.dumps(report).encode("utf-8")

    @staticmethod
    def _json(body: dict[str, Any]) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(body).encode("utf-8")

    def _route(self, method: str, path: str, request: Request) -> Any:
        parts = path.strip("/").split("/")
        if parts[0] == "management":
            return self._management(method, parts)
        if parts[0] == "api" and len(parts) == 5:
            return self._device_member(method, parts, request)
        raise BadRequestError(f"not an Alpaca URL: {excerpt(path)}", HTTPStatus.NOT_FOUND)

    def _management(self, method: str, parts: list[str]) -> Any:
        if method != "GET":
            raise BadRequestError("the management API answers GET only", HTTPStatus.METHOD_NOT_ALLOWED)
        if parts == ["management", "apiversions"]:
            return API_VERSIONS
        if parts == ["management", "v1", "description"]:
            return self.description
        if parts == ["management", "v1", "configureddevices"]:
            return [
                {
                    "DeviceName": d.name,
                    "DeviceType": d.device_type,
                    "DeviceNumber": d.device_number,
                    "UniqueID": d.unique_id,
                }
                for d in self.devices.values()
            ]
        raise BadRequestError(f"unknown management endpoint /{excerpt('/'.join(parts))}", HTTPStatus.NOT_FOUND)

    def _device_member(self, method: str, parts: list[str], request: Request) -> Any:
        _, version, device_type, number, member_name = parts
        if version != "v1":
            raise BadRequestError(f"unsupported API version {excerpt(version)} (this server speaks v1)")
        if not number.isdigit():
            raise BadRequestError(f"device number must be a non-negative integer, not {excerpt(number)}")
        device = self.devices.get((device_type, int(number)))
        if device is None:
            known = ", ".join(f"{t}/{n}" for t, n in self.devices)
            raise BadRequestError(f"no device {excerpt(device_type)}/{number} here (this server has {known})")
        handler = device.member(member_name, method)
        if handler is None:
            if device.has_member(member_name):
                raise BadRequestError(f"{member_name} does not accept {method}", HTTPStatus.METHOD_NOT_ALLOWED)
            raise BadRequestError(f"{device.device_type} has no member {excerpt(member_name)}")
        return handler(request)


class _Handler(BaseHTTPRequestHandler):
    server: AlpacaHttpServer
    protocol_version = "HTTP/1.1"  # keep-alive: clients poll IsSafe often
    timeout = 60  # seconds a silent connection may hold its thread

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._send(400, "text/plain; charset=utf-8", b"bad or too large Content-Length")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        self._send(*self.server.api.handle(method, url.path, url.query, body))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("alpaca http: " + format, *args)


class AlpacaHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, api: AlpacaApi) -> None:
        """Binds the port (so :attr:`port` is known) but does not listen yet: see :meth:`listen`."""
        self.api = api
        super().__init__((host, port), _Handler, bind_and_activate=False)
        try:
            self.server_bind()
        except OSError:
            self.server_close()
            raise

    def listen(self) -> None:
        """Start accepting connections (they queue until ``serve_forever`` runs)."""
        try:
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    @property
    def port(self) -> int:
        return self.server_address[1]


class DiscoveryResponder:
    """Answers ``alpacadiscovery1`` datagrams on the discovery port with ``{"AlpacaPort": n}``.

    The socket is bound with SO_REUSEADDR (and SO_REUSEPORT where there is one) so that other
    Alpaca servers on the same host can listen on the discovery port too, as ASCOM asks.
    IPv4 broadcast only; IPv6 multicast discovery is not served.
    """

    def __init__(self, host: str, port: int, alpaca_port: int) -> None:
        self.alpaca_port = alpaca_port
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind((host, port))
        self.socket.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alpaca-discovery", daemon=True)

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.socket.close()

    def _run(self) -> None:
        reply = json.dumps({"AlpacaPort": self.alpaca_port}).encode("ascii")
        while not self._stop.is_set():
            try:
                data, sender = self.socket.recvfrom(1024)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("alpaca discovery socket failed")
                continue
            if data.startswith(DISCOVERY_MESSAGE):
                try:
                    self.socket.sendto(reply, sender)
                except OSError as error:
                    log.warning("alpaca discovery: cannot answer %s: %s", sender, error)
