"""``/sites/{site}/uploads/{path}``: a bridged site's large files, by resumable PUTs (obsy.upload.protocol).

Only a bridged site (``web.sites``) uploads, only with an API token of an operator account limited
to sites (``users.sites``), and the site check (``api/security.py``) lets it upload only for its
own sites: the per-site upload token.
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from obsy.upload.protocol import (
    CHECKSUM_HEADER,
    OFFSET_HEADER,
    RETRY_AFTER_HEADER,
    ContentRange,
    ProtocolError,
    parse_checksum,
)
from obsy_web.api.files import SERVED_SUFFIXES, UPLOADED_SUMMARY, relative_parts
from obsy_web.api.fleet import fleet_of
from obsy_web.api.security import get_context, operator
from obsy_web.auth.accounts import Principal
from obsy_web.context import WebContext
from obsy_web.uploads import BusyError, UploadStore

router = APIRouter(tags=["fleet"])
ROUTE = "/sites/{site}/uploads/{path:path}"


_MAKING = threading.Lock()


def store_of(context: WebContext) -> UploadStore:
    """The service's one upload store (its slots count every upload), made on first use."""
    with _MAKING:
        if context.uploads is None:
            context.uploads = UploadStore(context.data_dir, context.config.web.uploads)
        return context.uploads


def _checked(site: str, path: str, who: Principal, context: WebContext) -> tuple[str, ...]:
    if who.via != "token":
        raise HTTPException(403, "uploads need the site's API token ('Authorization: Bearer <token>')")
    if who.sites is None:  # a site's files come from that site's own account, not a centre-wide one
        raise HTTPException(403, f"uploads need the token of an account limited to site {site}; {who.username} is not")
    found = fleet_of(context).get(site)
    if found is None or found.bridge is None:
        bridged = ", ".join(s.id for s in fleet_of(context).sites[1:]) or "none"
        raise HTTPException(404, f"no bridged site {site!r} to take files from (bridged: {bridged})")
    parts = relative_parts(path)
    if parts is None:
        raise HTTPException(422, f"the path {path[:120]!r} must be relative, without '..' or hidden parts")
    suffix = "." + parts[-1].rsplit(".", 1)[-1].lower() if "." in parts[-1] else ""
    if suffix not in SERVED_SUFFIXES and not UPLOADED_SUMMARY.match("/".join(parts)):
        raise HTTPException(
            422,
            f"files of type {suffix or '(none)'} are not taken: {', '.join(sorted(SERVED_SUFFIXES))}, "
            "and allsky/<night>/products/summary.json",
        )
    return parts


@router.head(ROUTE, summary="How much of a file the centre holds (Upload-Offset)")
def upload_offset(
    site: str, path: str, who: Principal = Depends(operator), context: WebContext = Depends(get_context)
) -> Response:
    _checked(site, path, who, context)
    staged = store_of(context).staged(site, path)
    expected = staged.expected()
    headers = {OFFSET_HEADER: str(staged.offset() if expected else 0)}
    if expected:
        headers["Upload-Length"] = str(expected[0])
    return Response(status_code=200, headers=headers)


@router.put(
    ROUTE,
    status_code=204,
    summary="One chunk of a bridged site's file (Content-Range); 201 when the file is complete",
    responses={
        201: {"description": "complete: the checksum matches and the file is in place"},
        409: {"description": "the chunk does not start where the centre stands (Upload-Offset)"},
        413: {"description": "larger than web.uploads.max_file_bytes"},
        422: {"description": "bad Content-Range or Upload-Checksum, or the whole file's checksum did not match"},
        503: {"description": "busy: try again after Retry-After seconds"},
    },
)
async def upload_chunk(
    site: str,
    path: str,
    request: Request,
    who: Principal = Depends(operator),
    context: WebContext = Depends(get_context),
) -> Response:
    parts = _checked(site, path, who, context)
    try:
        span = ContentRange.parse(request.headers.get("content-range"))
        sha256 = parse_checksum(request.headers.get(CHECKSUM_HEADER))
    except ProtocolError as exc:
        raise HTTPException(422, str(exc)) from None
    settings = context.config.web.uploads
    if span.total > settings.max_file_bytes:
        raise HTTPException(
            413, f"{span.total} bytes is more than web.uploads.max_file_bytes ({settings.max_file_bytes})"
        )
    store = store_of(context)
    try:
        store.admit(site, path)
    except BusyError as exc:
        raise HTTPException(503, f"busy: {exc}", headers={RETRY_AFTER_HEADER: str(settings.retry_after)}) from None
    try:
        return await _take(store, site=site, path=path, parts=parts, span=span, sha256=sha256, request=request)
    finally:
        store.release(site, path)


async def _take(
    store: UploadStore,
    *,
    site: str,
    path: str,
    parts: tuple[str, ...],
    span: ContentRange,
    sha256: str,
    request: Request,
) -> Response:
    staged = store.staged(site, path)
    if staged.expected() != (span.total, sha256):
        if span.first != 0:  # another version of the file, or nothing held: start at 0
            staged.drop()
            raise HTTPException(
                409, "the centre holds nothing of this version: start at 0", headers={OFFSET_HEADER: "0"}
            )
        await run_in_threadpool(staged.begin, span.total, sha256, path)
    offset = staged.offset()
    if span.first != offset:
        raise HTTPException(
            409, f"the centre holds {offset} bytes: send from there", headers={OFFSET_HEADER: str(offset)}
        )
    taken = 0
    with staged.part.open("ab") as part:
        try:
            async for received in request.stream():
                block = received[: span.length - taken]
                if block:
                    await run_in_threadpool(part.write, block)
                    taken += len(block)
                if taken == span.length:
                    break  # more than Content-Range said is not read
        except ClientDisconnect:
            pass  # what arrived is kept: the site resumes from it
        finally:
            part.flush()
            store.received[(site, path)] += taken
    if taken < span.length or offset + taken < span.total:
        return Response(status_code=204, headers={OFFSET_HEADER: str(offset + taken)})
    if not await run_in_threadpool(store.finish, site, parts, staged, sha256):
        raise HTTPException(422, "the whole file's checksum does not match: the upload starts again at 0")
    return Response(status_code=201, headers={OFFSET_HEADER: str(span.total)})
