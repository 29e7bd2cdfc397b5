"""`/healthz`: whether this process serves, its store answers, and `closer serve`'s
background workers (scheduler, outbox, read models) run; with the messages failing now."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from adapters.outbox_rows import message_failures
from api.dependencies import Store
from api.problems import problem_response, problem_responses
from api.supervisor import down, read_state

router = APIRouter(tags=["health"])


class Worker(BaseModel):
    """One background worker of `closer serve` (see `api.supervisor`)."""

    state: Literal["starting", "running", "restarting", "stopped"]
    started_at: datetime | None = None
    down_since: datetime | None = Field(
        default=None, description="when it crashed, until a pass completes again")
    restarts: int = 0
    last_error: str | None = Field(default=None, description="`ErrorType: message`")
    last_error_at: datetime | None = None
    last_success_at: datetime | None = Field(default=None,
                                             description="when its last pass completed")


class Failure(BaseModel):
    """The message that failed last, and why."""

    message_id: str
    channel: str
    status: Literal["failed", "dead_letter"]
    attempts: int
    error: str | None
    at: datetime


class MessageFailures(BaseModel):
    """Messages failing now: retried with back-off (`failed`) or given up (`dead_letter`)."""

    failed: int
    dead_letter: int
    last_failure: Failure | None = None


class Health(BaseModel):
    status: Literal["ok"]
    workers: dict[str, Worker] = Field(
        default_factory=dict,
        description="`closer serve`'s background workers by name (none when it runs none)")
    messages: MessageFailures


# What /healthz reads (the messages failing, the workers' state file) is read again at
# most this often: a load balancer polling it costs no store query per call (0.46 ms of
# CPU and two queries a call before; docs/performance.md, issue 19).
HEALTH_SECONDS = 1.0


def _read(request: Request, candidacies: Any) -> tuple[MessageFailures, dict[str, Any]]:
    """The messages failing now and the workers' state, from the store and the file."""
    counts, latest = message_failures(candidacies)
    last = None if latest is None else Failure(
        message_id=latest.id, channel=latest.channel, status=latest.status,
        attempts=latest.attempts, error=latest.summary.get("last_error"),
        at=latest.updated_at)
    settings = request.app.state.settings
    workers = read_state(settings.background_state_file) if settings.background else {}
    return MessageFailures(**counts, last_failure=last), workers


@router.get("/healthz", operation_id="health", response_model=Health,
            responses=problem_responses(422, 503))
async def health(request: Request, candidacies: Store) -> Any:
    """200 when the event store answers and no background worker has been down longer
    than `CLOSER_BACKGROUND_DOWN_SECONDS`; otherwise a 503 problem (`store-unavailable`,
    or `worker-down` with the same `workers` and `messages`). No token needed.  What it
    reads is at most a second old."""
    state = request.app.state
    held = getattr(state, "health_read", None)
    if held is None or time.monotonic() - held[0] >= HEALTH_SECONDS:
        # Only an answer is kept: a store that fails is asked again on the next call.
        failures, workers = await run_in_threadpool(_read, request, candidacies)
        state.health_read = held = (time.monotonic(), failures, workers)
    _, failures, workers = held
    settings = state.settings
    body = Health(status="ok", workers={n: Worker(**w) for n, w in workers.items()},
                  messages=failures)
    stuck = down(workers, candidacies.clock.now(), settings.background_down_seconds)
    if stuck:
        named = ", ".join(f"{n} (down since {workers[n]['down_since']}: "
                          f"{workers[n]['last_error']})" for n in stuck)
        response: JSONResponse = problem_response(
            request, "worker-down", f"background worker down: {named}",
            **body.model_dump(mode="json", exclude={"status"}))
        return response
    return body
