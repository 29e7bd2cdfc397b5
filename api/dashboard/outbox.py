"""Messages as the dashboard shows them: status, subject, recipients, the rendered body and
the proofing findings, read from the outbox (`adapters.outbox`) and rendered by the very
adapter and proofing step a delivery uses (`adapters.proofing.prepare`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from adapters.errors import AdapterError
from adapters.message import MessageContext, plain_error
from adapters.outbox import EDITABLE, Dispatcher, OutboxMessage, with_edit
from adapters.outbox_rows import MessageRow
from adapters.proofing import prepare

STUCK = ("blocked", "dead_letter")
"""The statuses a person may retry or reroute."""


@dataclass
class MessageCard:
    id: str
    candidacy_id: str
    kind: str
    channel: str
    status: str
    attempts: int
    updated_at: datetime
    subject: str | None = None
    to: list[str] = field(default_factory=list)
    body: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    last_error: str | None = None
    problem: str | None = None
    approved_by: str | None = None
    version: int = 0
    edited: bool = False  # a person's text in place of the template's

    @property
    def can_approve(self) -> bool:
        return self.status == "approval_needed"

    @property
    def stuck(self) -> bool:
        return self.status in STUCK

    @property
    def can_edit(self) -> bool:
        return self.status in EDITABLE


def card(dispatcher: Dispatcher, row: MessageRow) -> MessageCard:
    """The message of ``row``, with its body: what a person approves is exactly what the
    approval request recorded; otherwise rendered again from its context."""
    summary = row.summary or {}
    shown = MessageCard(
        id=row.id, candidacy_id=row.candidacy_id, kind=row.kind, channel=row.channel,
        status=row.status, attempts=row.attempts, updated_at=row.updated_at,
        subject=summary.get("subject"), findings=list(summary.get("findings") or []),
        last_error=summary.get("last_error"))
    app = dispatcher.app
    message: OutboxMessage = app.repository.get(UUID(row.id))
    shown.approved_by = getattr(message, "approved_by", None)
    shown.version = message.version
    edited = getattr(message, "edited_body", None)
    shown.edited = edited is not None
    if row.status == "approval_needed":
        for event in reversed(list(app.events.get(UUID(row.id)))):
            if isinstance(event, OutboxMessage.ApprovalRequested):
                shown.subject, shown.to = event.subject, list(event.to)
                shown.body = edited if edited is not None else event.body
                return shown
    try:
        adapter = dispatcher.adapter(message.channel)
        context = MessageContext.model_validate(message.context)
    except (ValidationError, AdapterError, ValueError, TypeError) as error:
        shown.problem = f"cannot build the {message.channel} message: {plain_error(error)}"
        return shown
    rendered, proof = with_edit(message, *prepare(adapter, context, dispatcher.rules),
                                context, dispatcher.rules)
    if rendered is not None:
        shown.subject = shown.subject or rendered.subject
        shown.to, shown.body = list(rendered.to), rendered.body
    if not shown.findings and not proof.passed:
        shown.findings = [f.as_dict() for f in proof.findings]
    return shown
