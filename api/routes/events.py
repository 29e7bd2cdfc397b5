"""`/events`: the workspace's global event log, in order, to catch up (`GET /events`) or to
follow live (`GET /events/stream`, Server-Sent Events resumable with `Last-Event-ID`).

Both read the application's notification log: each event's `id` is its position there.
Positions only grow, can skip numbers (other workspaces' events, token events, rolled-back
writes), and on PostgreSQL are issued in commit order (the recorder serialises inserts with
a table lock), so reading strictly after the last id seen never misses or repeats an event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.dependencies import Reader, Store
from api.problems import problem_responses
from api.routes.candidacies import HistoryEvent, history_event
from engine.application import Candidacies, history_entry
from engine.errors import CorruptHistory

router = APIRouter(prefix="/events", tags=["events"])
log = structlog.get_logger("closer.api")

MAX_SCAN = 100_000  # log positions one request looks at, at most (all workspaces')


class FeedEvent(HistoryEvent):
    """A candidacy event in the workspace's log."""

    id: int = Field(description="position in the log: pass as `after` / `Last-Event-ID`")
    candidacy_id: str


class UndecodableEvent(BaseModel):
    """A position of the log holding a candidacy event that cannot be decoded: marked
    here, never skipped silently (the candidacy answers the `corrupt-history` problem
    until it is repaired; `closer doctor` lists it)."""

    id: int = Field(description="position in the log: pass as `after` / `Last-Event-ID`")
    candidacy_id: str
    version: int
    type: Literal["UndecodableEvent"] = "UndecodableEvent"
    detail: str = Field(description="e.g. `undecodable event at notification 17, candidacy "
                                    "...`")
    problem: str = "urn:closer:problem:corrupt-history"


class FeedPage(BaseModel):
    events: list[FeedEvent | UndecodableEvent] = Field(
        description="the events; a position that cannot be decoded is an `UndecodableEvent`")
    next_after: int = Field(description="pass as `after` for the next page")
    has_more: bool = Field(description="false once the page reached the end of the log")


@dataclass(frozen=True, slots=True)
class _Page:
    events: list[FeedEvent | UndecodableEvent]
    next_after: int
    has_more: bool


def read_feed(candidacies: Candidacies, workspace: str, after: int, limit: int) -> _Page:
    """Up to ``limit`` of the workspace's candidacy events after position ``after``.

    The store filters by workspace and looks at most `MAX_SCAN` positions ahead, so a
    quiet workspace on a busy server answers quickly (`has_more` says to read on)."""
    recorder: Any = candidacies.recorder
    notifications, next_after, has_more = recorder.select_workspace_events(
        workspace, after, limit, MAX_SCAN)
    events: list[FeedEvent | UndecodableEvent] = []
    for notification in notifications:
        candidacy_id = str(notification.originator_id)
        try:
            entry = history_event(history_entry(
                candidacies.mapper.to_domain_event(notification)))
        except CorruptHistory as error:
            log.error("feed: undecodable event", notification_id=notification.id,
                      candidacy_id=candidacy_id, version=notification.originator_version,
                      error=error.reason)
            events.append(UndecodableEvent(
                id=notification.id, candidacy_id=candidacy_id,
                version=notification.originator_version,
                detail=f"undecodable event at notification {notification.id}, candidacy "
                       f"{candidacy_id} (version {notification.originator_version})"))
            continue
        events.append(FeedEvent(id=notification.id, candidacy_id=candidacy_id,
                                **entry.model_dump()))
    return _Page(events, next_after, has_more)


After = Annotated[int, Query(ge=0, le=2**62, description="the last `id` already seen "
                                                        "(0: from the start)")]


@router.get("", operation_id="listEvents", responses=problem_responses(401, 422))
def list_events(candidacies: Store, principal: Reader, after: After = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> FeedPage:
    """The workspace's events after position `after`, oldest first."""
    page = read_feed(candidacies, principal.workspace, after, limit)
    return FeedPage(events=page.events, next_after=page.next_after, has_more=page.has_more)


@router.get(
    "/stream", operation_id="streamEvents", response_class=StreamingResponse,
    responses={200: {"description": "`text/event-stream`: one SSE message per event, "
                                    "`id` = its position, `data` = the event as JSON",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
               **problem_responses(401, 422)},
)
async def stream_events(
    request: Request, candidacies: Store, principal: Reader, after: After = 0,
    last_event_id: Annotated[str | None, Header(
        alias="Last-Event-ID", pattern=r"^\d{1,18}$",
        description="resume after this event (browsers send it when reconnecting)")] = None,
) -> StreamingResponse:
    """Every event of the workspace as it is recorded, as Server-Sent Events."""
    start = int(last_event_id) if last_event_id is not None else after
    settings = request.app.state.settings
    return StreamingResponse(
        feed_stream(request, candidacies, principal.workspace, start,
                settings.sse_poll_seconds, settings.sse_heartbeat_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def feed_stream(request: Request, candidacies: Candidacies, workspace: str, after: int,
                      poll: float, heartbeat: float) -> AsyncIterator[str]:
    """The workspace's events after ``after`` as SSE text, until the client goes away
    (also the dashboard's live refresh, `api.dashboard.live`)."""
    yield f"retry: {int(max(poll, 1.0) * 1000)}\n\n"
    position = after
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        page = await run_in_threadpool(read_feed, candidacies, workspace, position, 500)
        for event in page.events:
            yield f"id: {event.id}\ndata: {event.model_dump_json()}\n\n"
        position = page.next_after
        if page.events:
            quiet_since = time.monotonic()
        if page.has_more:
            continue
        if time.monotonic() - quiet_since >= heartbeat:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(poll)
