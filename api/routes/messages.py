"""`/candidacies/{id}/messages`: what the outbox drafted, proofed, sent or failed; and a
person's hand on them (recruiters and admins): the approval of one awaiting approval, the
retry or reroute of a blocked or dead-lettered one, a person's own text for either."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from adapters.errors import EditRefused, PostalMailRefused, StaleMessage, UnknownChannel
from adapters.outbox import BODY_LIMIT, Dispatcher
from adapters.outbox_rows import message_rows
from api.auth import Principal
from api.dependencies import Reader, Store, Writer, expected_version
from api.outbox_cli import build_dispatcher
from api.problems import ProblemError, problem_responses
from api.routes.candidacies import CandidacyId
from engine.application import Candidacies
from engine.errors import CandidacyNotFound, InvalidInput
from engine.values import Name, Text

router = APIRouter(prefix="/candidacies", tags=["messages"])


class MessageView(BaseModel):
    """One outbound message on one channel, as it stands."""

    id: str
    version: int | None = Field(default=None, description="the message's version: send it "
                                "as `If-Match` to edit it (absent on rows written before)")
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
    edited: bool = Field(default=False, description="a person's text replaces the template's")


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
                    trigger=m.summary.get("trigger") or {},
                    version=m.summary.get("version"), edited=bool(m.summary.get("edited")))
        for m in message_rows(candidacies, candidacy_id=row.id)])


# -- a person's retry or reroute of a stuck message (issue 13) ------------------------------


class Retry(BaseModel):
    """Queue a blocked or dead-lettered message again, once what stopped it is corrected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Text = "retried by hand"


class Reroute(BaseModel):
    """Send a blocked or dead-lettered message on another channel instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Name = Field(description="e.g. `voicemail` for an interviewer with no email")
    reason: Text = "rerouted by hand"


MessageId = Annotated[str, Path(description="the message's id, as listed", max_length=64)]
MessageIfMatch = Annotated[str | None, Header(
    alias="If-Match", max_length=64, pattern=r'^\s*(?:W/)?"?\d{1,18}"?\s*$|^\*$',
    description="The version the person read the message at (`version` in the "
                "messages' list, or a previous edit's `ETag`); a stale one answers 412.")]


def _stuck_message(candidacies: Candidacies, principal: Principal, candidacy_id: str,
                   message_id: str) -> None:
    """404 unless ``message_id`` is a message of this workspace's candidacy."""
    row = candidacies.row(candidacy_id)
    if row is None or row.workspace != principal.workspace:
        raise CandidacyNotFound(candidacy_id)
    if message_id not in {m.id for m in message_rows(candidacies, candidacy_id=row.id)}:
        raise ProblemError("not-found", f"no message {message_id} for candidacy {row.id}")


def _by_hand(request: Request, candidacies: Candidacies, principal: Principal,
             candidacy_id: str, message_id: str, act: Callable[[Dispatcher], None]) -> Messages:
    _stuck_message(candidacies, principal, candidacy_id, message_id)
    dispatcher = build_dispatcher(candidacies, request.app.state.settings)
    try:
        act(dispatcher)
    except StaleMessage as error:
        raise ProblemError("version-conflict", str(error), expected_version=error.expected,
                           current_version=error.actual) from None
    except (UnknownChannel, PostalMailRefused) as error:
        raise InvalidInput("channel", str(error)) from None
    except ValueError as error:
        raise ProblemError("message-state", str(error)) from None
    return get_candidacy_messages(candidacy_id, candidacies, principal)


@router.post("/{candidacy_id}/messages/{message_id}/retry", operation_id="retryMessage",
             responses=problem_responses(400, 401, 403, 404, 409, 412, 422))
def retry_message(candidacy_id: CandidacyId, message_id: MessageId, request: Request,
                  candidacies: Store, principal: Writer, body: Retry | None = None,
                  if_match: MessageIfMatch = None) -> Messages:
    """Queue a blocked or dead-lettered message again, its context rebuilt from the
    corrected candidacy; answers the candidacy's messages.  A stale `If-Match` is 412."""
    reason = (body or Retry()).reason
    by, version = principal.user, expected_version(if_match)
    return _by_hand(request, candidacies, principal, candidacy_id, message_id,
                    lambda d: d.retry(message_id, by=by, reason=reason,
                                      expected_version=version))


@router.post("/{candidacy_id}/messages/{message_id}/reroute", operation_id="rerouteMessage",
             responses=problem_responses(400, 401, 403, 404, 409, 412, 422))
def reroute_message(candidacy_id: CandidacyId, message_id: MessageId, body: Reroute,
                    request: Request, candidacies: Store, principal: Writer,
                    if_match: MessageIfMatch = None) -> Messages:
    """Send a blocked or dead-lettered message on another channel, with the corrected
    context; answers the candidacy's messages.  A stale `If-Match` is 412."""
    by, version = principal.user, expected_version(if_match)
    return _by_hand(request, candidacies, principal, candidacy_id, message_id,
                    lambda d: d.reroute_message(message_id, body.channel, by=by,
                                                reason=body.reason, expected_version=version))


# -- a person's own text for a message (issue 16) ---------------------------------------------


class EditMessage(BaseModel):
    """A person's own text for a message awaiting approval, blocked or dead-lettered: it
    replaces the template's body (subject, recipients and channel stay)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    body: str = Field(max_length=BODY_LIMIT, description="the whole text, as it will go; "
                      "proofed (names, titles, spelling, tone, length) before it is recorded")
    dry_run: bool = Field(default=False, description="proof and answer it, record nothing "
                          "(a preview: findings are answered, not refused)")


class EditedMessage(BaseModel):
    """The message as it would go with the edit, and its proofing."""

    id: str
    status: str
    version: int = Field(description="the message's version after the edit (also `ETag`)")
    recorded: bool = Field(description="false for a dry run")
    subject: str | None
    to: list[str]
    body: str
    passed: bool = Field(description="whether proofing lets it go")
    findings: list[dict[str, Any]]



@router.post("/{candidacy_id}/messages/{message_id}/edit", operation_id="editMessage",
             responses=problem_responses(400, 401, 403, 404, 409, 412, 422))
def edit_message(candidacy_id: CandidacyId, message_id: MessageId, body: EditMessage,
                 request: Request, response: Response, candidacies: Store,
                 principal: Writer, if_match: MessageIfMatch = None) -> EditedMessage:
    """Replace the body of a message awaiting approval, blocked or dead-lettered with a
    person's own text, recorded as the message's `Edited` event once proofing passes; it is
    what goes once the message is approved (or retried).  Nothing is recorded for a dry
    run, a stale `If-Match` (412), a message in another state (409 `message-state`), or a
    text empty, too long or blocked by proofing (422, the findings in `reason`)."""
    _stuck_message(candidacies, principal, candidacy_id, message_id)
    dispatcher = build_dispatcher(candidacies, request.app.state.settings)
    try:
        message, rendered, report = dispatcher.edit(
            message_id, body.body, by=principal.user,
            expected_version=expected_version(if_match), dry_run=body.dry_run)
    except StaleMessage as error:
        raise ProblemError("version-conflict", str(error), expected_version=error.expected,
                           current_version=error.actual) from None
    except EditRefused as error:
        raise InvalidInput("body", error.reason) from None
    except ValueError as error:
        raise ProblemError("message-state", str(error)) from None
    response.headers["ETag"] = f'"{message.version}"'
    return EditedMessage(id=str(message.id), status=message.status, version=message.version,
                         recorded=not body.dry_run, subject=rendered.subject,
                         to=list(rendered.to), body=rendered.body, passed=report.passed,
                         findings=[f.as_dict() for f in report.findings])


# -- a person's approval (issue 16) -----------------------------------------------------------


@router.post("/{candidacy_id}/messages/{message_id}/approve", operation_id="approveMessage",
             responses=problem_responses(401, 403, 404, 409, 412, 422))
def approve_message(candidacy_id: CandidacyId, message_id: MessageId, request: Request,
                    response: Response, candidacies: Store, principal: Writer,
                    if_match: MessageIfMatch = None) -> Messages:
    """Approve a message awaiting approval, as it stands (its edited text, if any): the
    outbox delivers it on its next pass; answers the candidacy's messages, the approved
    one's new version as `ETag`.  Nothing is recorded for a stale `If-Match` (412: the
    message changed since it was read, e.g. its text was edited) or a message in another
    state (409 `message-state`).  The method of the dashboard's **Approve and send** and
    of `closer messages approve` (`Dispatcher.approve`)."""
    _stuck_message(candidacies, principal, candidacy_id, message_id)
    dispatcher = build_dispatcher(candidacies, request.app.state.settings)
    try:
        message = dispatcher.approve(message_id, by=principal.user,
                                     expected_version=expected_version(if_match))
    except StaleMessage as error:
        raise ProblemError("version-conflict", str(error), expected_version=error.expected,
                           current_version=error.actual) from None
    except ValueError as error:
        raise ProblemError("message-state", str(error)) from None
    response.headers["ETag"] = f'"{message.version}"'
    return get_candidacy_messages(candidacy_id, candidacies, principal)
