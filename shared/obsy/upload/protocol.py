"""The upload protocol, shared by the site's sender and the centre's web service.

``HEAD <base>/api/v1/sites/<site>/uploads/<path>``
    ``Upload-Offset``: the bytes of ``<path>`` the centre holds so far (0: none).
``PUT <base>/api/v1/sites/<site>/uploads/<path>`` with ``Content-Range: bytes <first>-<last>/<total>``
and ``Upload-Checksum: sha256=<hex of the whole file>``; the body is bytes ``first..last``.
    204 and ``Upload-Offset``: taken, send on from there. 201: the file is complete and its
    checksum matches; it is in place. 409 and ``Upload-Offset``: ``first`` is not where the
    centre stands (a lost answer, a restart); send from the offset it gives. 429 or 503 with
    ``Retry-After``: busy (every upload slot taken, its staging space full); try again later.
    413: larger than the centre takes. 422: a bad header, or the checksum of the whole file
    did not match (what was held is dropped: the next try starts at 0).

``<path>`` is relative to the site's data directory (``allsky/<night>/<frame id>.jpg``).
An upload is authorised by an API token of an account limited to that site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OFFSET_HEADER = "Upload-Offset"
CHECKSUM_HEADER = "Upload-Checksum"
RETRY_AFTER_HEADER = "Retry-After"
UPLOAD_ROUTE = "/api/v1/sites/{site}/uploads/{path}"
_RANGE = re.compile(r"^bytes (\d{1,15})-(\d{1,15})/(\d{1,15})$")
_CHECKSUM = re.compile(r"^sha256=([0-9a-f]{64})$")


class ProtocolError(ValueError):
    """A header that does not follow the protocol; the message names it."""


@dataclass(frozen=True)
class ContentRange:
    first: int
    last: int  # inclusive, as HTTP has it
    total: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def header(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.total}"

    @classmethod
    def parse(cls, value: str | None) -> ContentRange:
        match = _RANGE.match((value or "").strip())
        if match is None:
            raise ProtocolError(f"Content-Range must be 'bytes <first>-<last>/<total>', not {(value or '')[:60]!r}")
        first, last, total = (int(group) for group in match.groups())
        if not first <= last < total:
            raise ProtocolError(f"Content-Range {value!r}: need first <= last < total")
        return cls(first, last, total)


def checksum_header(hex_digest: str) -> str:
    return f"sha256={hex_digest}"


def parse_checksum(value: str | None) -> str:
    """The hex SHA-256 of ``Upload-Checksum``."""
    match = _CHECKSUM.match((value or "").strip())
    if match is None:
        raise ProtocolError(f"{CHECKSUM_HEADER} must be 'sha256=<64 lowercase hex digits>', not {(value or '')[:80]!r}")
    return match.group(1)
