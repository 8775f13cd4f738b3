"""The ASCOM Alpaca wire protocol: request parameters, transaction ids, answers and error numbers.

Two kinds of failure, as the Alpaca API specifies:

- :class:`BadRequestError` — the request itself is wrong (unknown device type or number, unknown
  member, a missing or malformed parameter, a ClientID that is not an unsigned 32-bit
  integer). Answered with HTTP 400 (or 404/405) and a plain-text message.
- :class:`AlpacaError` — a well-formed request the device refuses (not implemented, invalid
  value, not connected). Answered with HTTP 200 and ``ErrorNumber``/``ErrorMessage`` in JSON.

Parameter names are case-insensitive in a GET query string and case-sensitive in a PUT form
body (the spec's rule; ConformU checks both).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from obsy.messages import excerpt

# Error numbers (ASCOM.ErrorCodes, as Alpaca carries them).
NOT_IMPLEMENTED = 0x400
INVALID_VALUE = 0x401
VALUE_NOT_SET = 0x402
NOT_CONNECTED = 0x407
INVALID_OPERATION = 0x40B
ACTION_NOT_IMPLEMENTED = 0x40C
UNSPECIFIED_ERROR = 0x4FF

UINT32_MAX = 2**32 - 1


class BadRequestError(Exception):
    """A request Alpaca answers with an HTTP error status and a plain-text message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class AlpacaError(Exception):
    """A device-level error: HTTP 200 with ``ErrorNumber`` and ``ErrorMessage``."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(message)
        self.number = number


def not_implemented(what: str) -> AlpacaError:
    return AlpacaError(NOT_IMPLEMENTED, f"{what} is not implemented by OBSY")


def not_connected(device: str) -> AlpacaError:
    return AlpacaError(NOT_CONNECTED, f"the {device} is not connected: connect first")


@dataclass(frozen=True)
class Request:
    method: str  # "GET" or "PUT"
    params: dict[str, str]
    """GET: names lower-cased (case-insensitive); PUT: names exactly as sent."""

    @classmethod
    def parse(cls, method: str, query: str, body: bytes) -> Request:
        if method == "GET":
            pairs = parse_qsl(query, keep_blank_values=True)
            return cls(method, {name.lower(): value for name, value in pairs})
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError("the form body is not UTF-8") from None
        return cls(method, dict(parse_qsl(text, keep_blank_values=True)))

    def get(self, name: str) -> str | None:
        """A parameter by its specified name (e.g. ``ClientTransactionID``), honouring the casing rule."""
        return self.params.get(name.lower() if self.method == "GET" else name)

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise BadRequestError(f"missing parameter {name}")
        return value

    def uint32(self, name: str) -> int:
        """An optional unsigned 32-bit parameter (ClientID, ClientTransactionID); 0 when absent."""
        value = self.get(name)
        if value is None:
            return 0
        try:
            number = int(value)
        except ValueError:
            raise BadRequestError(f"{name} must be an unsigned 32-bit integer, not {excerpt(value)}") from None
        if not 0 <= number <= UINT32_MAX:
            raise BadRequestError(f"{name} must be an unsigned 32-bit integer, not {number}")
        return number

    def boolean(self, name: str) -> bool:
        value = self.require(name)
        if value.lower() not in ("true", "false"):
            raise BadRequestError(f"{name} must be True or False, not {excerpt(value)}")
        return value.lower() == "true"

    def number(self, name: str) -> float:
        value = self.require(name)
        try:
            return float(value)
        except ValueError:
            raise BadRequestError(f"{name} must be a number, not {excerpt(value)}") from None


class TransactionCounter:
    """ServerTransactionID: a per-server number that grows with every answer, wrapping at 2^32."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.last = 0

    def next(self) -> int:
        with self._lock:
            self.last = (next(self._counter) - 1) % UINT32_MAX + 1
            return self.last


def answer(client_transaction_id: int, server_transaction_id: int, value: Any = None, *, has_value: bool) -> dict:
    body: dict[str, Any] = {}
    if has_value:
        body["Value"] = value
    body |= {
        "ClientTransactionID": client_transaction_id,
        "ServerTransactionID": server_transaction_id,
        "ErrorNumber": 0,
        "ErrorMessage": "",
    }
    return body


def error_answer(client_transaction_id: int, server_transaction_id: int, error: AlpacaError) -> dict:
    return {
        "ClientTransactionID": client_transaction_id,
        "ServerTransactionID": server_transaction_id,
        "ErrorNumber": error.number,
        "ErrorMessage": str(error),
    }
