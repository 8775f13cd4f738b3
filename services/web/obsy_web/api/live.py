"""``/live``: every bus message as it arrives, as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from obsy_web.api.fleet import site_filter
from obsy_web.api.security import get_context, viewer
from obsy_web.context import WebContext

router = APIRouter(tags=["status"], dependencies=[Depends(viewer)])


@router.get(
    "/live",
    summary='Live bus messages (text/event-stream): one \'data: {"topic": ..., "payload": ...}\' per message',
    description=(
        "This site's messages, or with site= a bridged site's (its topics relative to its prefix, as this "
        'site\'s are; and {"topic": "link", "payload": {"id", "reachable", "link", "since", "status"}} when its '
        "bridge connects or breaks)."
    ),
    response_class=StreamingResponse,
)
async def live(
    request: Request, context: WebContext = Depends(get_context), site: str | None = Depends(site_filter)
) -> StreamingResponse:
    followed = None if site is None or site == context.config.site_id() else site

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n: connected\n\n"
        async for message in context.hub.listen(site=followed):
            if await request.is_disconnected() or getattr(request.app.state, "closing", False):
                return
            if message is None:
                yield ": keep-alive\n\n"
            else:
                yield f"data: {json.dumps(message, separators=(',', ':'))}\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
