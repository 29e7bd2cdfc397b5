"""`/dashboard/messages`: the messages waiting for a person (awaiting approval, blocked,
dead-lettered, failing): each previewed as it would go, with its proofing findings, and
approved, retried or rerouted through the very outbox operations `closer messages` and
the API routes use (`adapters.outbox.Dispatcher.approve`, `retry`, `reroute_message`, of
`POST .../messages/{id}/approve|retry|reroute`); each form carries the version its card
was rendered at, as the API's `If-Match`, so a card gone stale is refused.  Its text
is edited at `/dashboard/messages/{id}/edit` (previewed and proofed, then recorded by
`Dispatcher.edit`, the method of `POST .../messages/{id}/edit`); what it was built from
(a contact, a name, a title, "why I fit") is corrected on the candidacy's page, and a
retry builds it again from the corrected record."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from adapters.errors import EditRefused, PostalMailRefused, StaleMessage, UnknownChannel
from adapters.outbox import BODY_LIMIT
from adapters.outbox_rows import MessageRow, message_rows
from api.dashboard import outbox
from api.dashboard.filters import PageFilters
from api.dashboard.pages import PREFIX, flash, read_models, render
from api.dashboard.session import Acting, FormData, PageError, SignedIn, Viewer, safe_next
from api.outbox_cli import build_dispatcher
from engine.application import Candidacies

router = APIRouter(prefix=PREFIX, include_in_schema=False)

WAITING = ("approval_needed", "blocked", "dead_letter", "failed")
"""The statuses this page lists, in its order."""
MessageId = Annotated[str, Path(max_length=64)]


@router.get("/messages", name="dashboard_messages")
def messages_page(request: Request, viewer: SignedIn, filters: PageFilters) -> Response:
    candidacies: Candidacies = request.app.state.candidacies
    dispatcher = build_dispatcher(candidacies, request.app.state.settings)
    keep = filters.recruiter_ids(read_models(request))
    groups = []
    for status in WAITING:
        cards = []
        for row in message_rows(candidacies, status=status):
            if row.workspace != viewer.workspace:
                continue
            owner = candidacies.row(row.candidacy_id)
            if owner is None or not filters.keeps(owner, keep) or \
                    not filters.in_range(row.updated_at):
                continue
            cards.append((owner, outbox.card(dispatcher, row)))
        groups.append((status, cards))
    return render(request, viewer, "messages.html", page="dashboard_messages",
                  filters=filters, groups=groups, back=request.url.path)


def _row_of(candidacies: Candidacies, workspace: str, message_id: str) -> MessageRow:
    """The row of ``message_id`` if it is a message of ``workspace``, else 404."""
    try:
        UUID(message_id)
    except ValueError:
        raise PageError(404, "No such message.") from None
    for row in message_rows(candidacies):
        if row.id == message_id and row.workspace == workspace:
            return row
    raise PageError(404, "No such message.")


def _message_of(candidacies: Candidacies, workspace: str, message_id: str) -> str:
    """404 unless ``message_id`` is a message of ``workspace``; answers its candidacy."""
    return _row_of(candidacies, workspace, message_id).candidacy_id


async def _by_hand(request: Request, acting: tuple[Viewer, FormData], message_id: str,
                   done: str) -> Response:
    viewer, form = acting
    candidacies: Candidacies = request.app.state.candidacies
    _message_of(candidacies, viewer.workspace, message_id)
    dispatcher = build_dispatcher(candidacies, request.app.state.settings)
    by = viewer.principal.user
    back = safe_next(form.get("back") or f"{PREFIX}/messages")
    # The version the card was rendered at, as the API's If-Match: what the person read is
    # what is decided on, or nothing is (the Dispatcher's methods refuse a stale one).
    version = form.get("version", "").strip()
    if not version.isdigit():
        raise PageError(400, f"Not {done}: the form carries no version of the message; "
                             "reload the page and send it again.")
    at = int(version)
    try:
        if done == "approved":
            dispatcher.approve(message_id, by=by, expected_version=at)
        elif done == "retried":
            dispatcher.retry(message_id, by=by, reason=form.text("reason") or "retried by hand",
                             expected_version=at)
        else:
            channel = form.text("channel") or ""
            dispatcher.reroute_message(message_id, channel, by=by,
                                       reason=form.text("reason") or "rerouted by hand",
                                       expected_version=at)
    except StaleMessage as error:
        response = RedirectResponse(back, status_code=303)
        flash(response, f"Not {done}: this message changed since the page was opened (it "
                        f"was at version {error.expected}, it is now at version "
                        f"{error.actual}). Check it as it stands now and send it again.")
        return response
    except (UnknownChannel, PostalMailRefused, ValueError) as error:
        response = RedirectResponse(back, status_code=303)
        flash(response, f"Not done: {error}")
        return response
    response = RedirectResponse(back, status_code=303)
    flash(response, f"Message {done}" + (": it goes with the outbox's next pass."
                                         if done != "rerouted" else "."))
    return response


@router.post("/messages/{message_id}/approve", name="dashboard_message_approve")
async def approve(request: Request, message_id: MessageId, acting: Acting) -> Response:
    return await _by_hand(request, acting, message_id, "approved")


@router.post("/messages/{message_id}/retry", name="dashboard_message_retry")
async def retry(request: Request, message_id: MessageId, acting: Acting) -> Response:
    return await _by_hand(request, acting, message_id, "retried")


@router.post("/messages/{message_id}/reroute", name="dashboard_message_reroute")
async def reroute(request: Request, message_id: MessageId, acting: Acting) -> Response:
    return await _by_hand(request, acting, message_id, "rerouted")


# -- a person's own text (issue 16) ------------------------------------------------------------


def _edit_page(request: Request, viewer: Viewer, message_id: str, *, text: str | None = None,
               back: str, status: int = 200, error: str | None = None,
               preview: tuple[str, list[dict[str, str]]] | None = None) -> Response:
    """The edit form of a message as it stands now (``text``: what the person wrote)."""
    if not viewer.can_act:
        raise PageError(403, f"The {viewer.principal.role.value} role only reads: it cannot "
                             "edit a message.")
    candidacies: Candidacies = request.app.state.candidacies
    row = _row_of(candidacies, viewer.workspace, message_id)
    owner = candidacies.row(row.candidacy_id)
    m = outbox.card(build_dispatcher(candidacies, request.app.state.settings), row)
    return render(request, viewer, "message_edit.html", page="dashboard_messages", status=status,
                  owner=owner, m=m, text=m.body if text is None else text, back=back,
                  error=error, preview=preview, limit=BODY_LIMIT)


@router.get("/messages/{message_id}/edit", name="dashboard_message_edit")
def edit_form(request: Request, viewer: SignedIn, message_id: MessageId,
              back: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    back = safe_next(back or f"{PREFIX}/messages")
    return _edit_page(request, viewer, message_id, back=back)


@router.post("/messages/{message_id}/edit", name="dashboard_message_edit_post")
def edit(request: Request, message_id: MessageId, acting: Acting) -> Response:
    """``action=preview`` proofs the text and shows it; ``action=save`` records it (through
    `Dispatcher.edit`, as the API does), refused if the message moved on since the form's
    ``version``, if the text is empty or too long, or if proofing would block it."""
    viewer, form = acting
    candidacies: Candidacies = request.app.state.candidacies
    _row_of(candidacies, viewer.workspace, message_id)
    back = safe_next(form.get("back") or f"{PREFIX}/messages")
    text = form.get("body", "")
    version = form.get("version", "").strip()
    if not version.isdigit():
        return _edit_page(request, viewer, message_id, text=text, back=back, status=400,
                          error="Not saved: the form carries no version; reload the page.")
    dry_run = form.get("action") != "save"
    dispatcher = build_dispatcher(candidacies, request.app.state.settings)
    try:
        message, rendered, report = dispatcher.edit(
            message_id, text, by=viewer.principal.user, expected_version=int(version),
            dry_run=dry_run)
    except StaleMessage as error:
        return _edit_page(request, viewer, message_id, text=text, back=back, status=409,
                          error=(f"Not saved: this message changed since the form was opened "
                                 f"(it was at version {error.expected}, it is now at version "
                                 f"{error.actual}). Below is how it stands now; your text is "
                                 "kept in the box: check it and send again."))
    except EditRefused as error:
        return _edit_page(request, viewer, message_id, text=text, back=back, status=422,
                          error=f"Not saved: {error.reason}.",
                          preview=(text, error.findings) if error.findings else None)
    except ValueError as error:
        return _edit_page(request, viewer, message_id, text=text, back=back, status=409,
                          error=f"Not saved: {error}.")
    if dry_run:
        return _edit_page(request, viewer, message_id, text=text, back=back,
                          preview=(rendered.body, [f.as_dict() for f in report.findings]))
    response = RedirectResponse(back, status_code=303)
    flash(response, "Message edited: your text is what goes"
          + (" once approved." if message.status == "approval_needed"
             else " once retried." if message.status in ("blocked", "dead_letter") else "."))
    return response
