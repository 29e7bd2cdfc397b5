"""`/dashboard/stream`: the workspace's event feed as Server-Sent Events for the pages'
live refresh (htmx's SSE extension), signed in by the session cookie (a browser's
EventSource cannot send the API's bearer token).  The very stream `GET /events/stream`
answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from api.dashboard.pages import PREFIX
from api.dashboard.session import SignedIn
from api.routes import events

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/stream", name="dashboard_stream")
async def stream(request: Request, viewer: SignedIn,
                 last_event_id: Annotated[str | None, Header(
                     alias="Last-Event-ID", pattern=r"^\d{1,18}$")] = None
                 ) -> StreamingResponse:
    candidacies = request.app.state.candidacies
    # From the log's end (or where the browser left off): a page asks only what is new.
    start = int(last_event_id) if last_event_id else candidacies.recorder.max_notification_id() or 0
    settings = request.app.state.settings
    return StreamingResponse(
        events.feed_stream(request, candidacies, viewer.workspace, start,
                       settings.sse_poll_seconds, settings.sse_heartbeat_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
