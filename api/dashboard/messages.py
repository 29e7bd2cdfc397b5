"""`/dashboard/messages`: the messages waiting for a person (awaiting approval, blocked,
dead-lettered, failing): each previewed as it would go, with its proofing findings, and
approved, retried or rerouted through the very outbox operations `closer messages` and
the API use (`adapters.outbox.Dispatcher.approve`, `retry`, `reroute_message`).  Editing
a message is correcting what it was built from (the candidacy's contact, name, title or
"why I fit", on the candidacy's page); a retry then builds it again from the corrected
record."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from adapters.errors import PostalMailRefused, UnknownChannel
from adapters.outbox_rows import message_rows
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


def _message_of(candidacies: Candidacies, workspace: str, message_id: str) -> str:
    """404 unless ``message_id`` is a message of ``workspace``; answers its candidacy."""
    try:
        UUID(message_id)
    except ValueError:
        raise PageError(404, "No such message.") from None
    for row in message_rows(candidacies):
        if row.id == message_id and row.workspace == workspace:
            return row.candidacy_id
    raise PageError(404, "No such message.")


async def _by_hand(request: Request, acting: tuple[Viewer, FormData], message_id: str,
                   done: str) -> Response:
    viewer, form = acting
    candidacies: Candidacies = request.app.state.candidacies
    _message_of(candidacies, viewer.workspace, message_id)
    dispatcher = build_dispatcher(candidacies, request.app.state.settings)
    by = viewer.principal.user
    back = safe_next(form.get("back") or f"{PREFIX}/messages")
    try:
        if done == "approved":
            dispatcher.approve(message_id, by=by)
        elif done == "retried":
            dispatcher.retry(message_id, by=by, reason=form.text("reason") or "retried by hand")
        else:
            channel = form.text("channel") or ""
            dispatcher.reroute_message(message_id, channel, by=by,
                                       reason=form.text("reason") or "rerouted by hand")
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
