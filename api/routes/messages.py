"""`GET /candidacies/{id}/messages`: what the outbox drafted, proofed, sent or failed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from adapters.outbox import messages
from api.dependencies import Reader, Store
from api.problems import problem_responses
from api.routes.candidacies import CandidacyId
from engine.errors import CandidacyNotFound

router = APIRouter(prefix="/candidacies", tags=["messages"])


class MessageView(BaseModel):
    """One outbound message on one channel, as it stands."""

    id: str
    kind: str
    channel: str
    status: str = Field(description="queued, approval_needed, blocked, sent, failed, "
                                    "dead_letter or cancelled (its candidacy ended first)")
    attempts: int
    next_attempt_at: datetime | None
    updated_at: datetime
    subject: str | None
    findings: list[dict[str, Any]] = Field(description="proofing findings that block it")
    last_error: str | None
    trigger: dict[str, Any] = Field(description="the candidacy event that caused it")


class Messages(BaseModel):
    messages: list[MessageView]


@router.get("/{candidacy_id}/messages", operation_id="getCandidacyMessages",
            responses=problem_responses(401, 404, 422))
def get_candidacy_messages(candidacy_id: CandidacyId, candidacies: Store,
                           principal: Reader) -> Messages:
    """The candidacy's messages, oldest first, with their proofing findings."""
    row = candidacies.row(candidacy_id)
    if row is None or row.workspace != principal.workspace:
        raise CandidacyNotFound(candidacy_id)
    return Messages(messages=[
        MessageView(id=m.id, kind=m.kind, channel=m.channel, status=m.status,
                    attempts=m.attempts, next_attempt_at=m.next_attempt_at,
                    updated_at=m.updated_at, subject=m.summary.get("subject"),
                    findings=m.summary.get("findings") or [],
                    last_error=m.summary.get("last_error"),
                    trigger=m.summary.get("trigger") or {})
        for m in messages(candidacies, candidacy_id=row.id)])
