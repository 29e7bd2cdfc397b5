"""`/dashboard/candidacies` (search) and `/dashboard/candidacies/{id}`: one candidacy's
whole timeline (facts, decisions with their rule and policy version, deliveries with the
proofing findings, hesitations with their answers, corrections), the rendered body of
every message, and forms for the commands the playbook allows now, only those."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from adapters.outbox_rows import message_rows
from api.dashboard import outbox
from api.dashboard.commands import COMMANDS, new_key, refusal, run
from api.dashboard.filters import PageFilters
from api.dashboard.pages import PREFIX, flash, read_models, render
from api.dashboard.session import Acting, PageError, SignedIn, Viewer
from api.dashboard.today import local, paused_now
from api.outbox_cli import build_dispatcher
from api.problems import ProblemError
from api.read_models import event_kind, summary
from engine.application import Candidacies
from engine.candidacy import Candidacy
from engine.decisions import manual_refusal
from engine.errors import CandidacyNotFound, CloserError, CorruptHistory
from engine.lifecycle import TRANSITIONS, Stage
from engine.values import NudgeChannel, ReplyKind, ThankYouMedium

router = APIRouter(prefix=PREFIX, include_in_schema=False)

CandidacyId = Annotated[str, Path(max_length=64)]
_DETAILS = {"HesitationRaised": ("text",), "HesitationAddressed": ("answer",),
            "MessageBlocked": ("findings", "fallback"), "MessageDeadLettered": ("error",
                                                                                "fallback"),
            "ContactCorrected": ("person", "field", "before", "after"),
            "NameCorrected": ("person", "before", "after"),
            "DetailCorrected": ("person", "field", "before", "after"),
            "CadencePaused": ("until",), "ReplyReceived": ("back_on",)}


@dataclass
class Line:
    """One event of the timeline."""

    version: int
    type: str
    kind: str
    at: str
    occurred_at: str
    actor: str
    stage: str
    summary: str
    rule: str | None
    policy: str | None
    details: dict[str, Any]


def timeline(candidacies: Candidacies, candidacy: Candidacy) -> list[Line]:
    """Every event of the candidacy, oldest first, as the timeline read model words it
    (read from the history itself, so a page is current the moment a form is sent)."""
    zone = ZoneInfo(candidacy.timezone)
    lines = []
    asked: dict[str, str] = {}  # hesitation id -> its text: an answer shows its question
    event: Any  # read by name, as the read model reads it (the library types it a protocol)
    for event in candidacies.events.get(candidacy.id):
        decided = getattr(event, "decided_by", None) or {}
        occurred = getattr(event, "occurred_at", None)
        name = type(event).__name__
        lines.append(Line(
            version=event.originator_version, type=name, kind=event_kind(event),
            at=local(event.timestamp, zone),
            occurred_at=local(occurred, zone) if isinstance(occurred, datetime) and
            abs((occurred - event.timestamp).total_seconds()) > 60 else "",
            actor=event.actor, stage=str(event.stage), summary=summary(event),
            rule=decided.get("rule"),
            policy=f"{decided['policy']}@{decided['version']}" if decided.get("policy") else None,
            details={k: getattr(event, k) for k in _DETAILS.get(name, ())
                     if getattr(event, k, None) not in (None, [], "")}))
        if name == "HesitationRaised":
            asked[event.hesitation_id] = event.text
        elif name == "HesitationAddressed" and event.hesitation_id in asked:
            lines[-1].details = {"hesitation": asked[event.hesitation_id], **lines[-1].details}
    return lines


def command_forms(candidacies: Candidacies, candidacy: Candidacy) -> list[dict[str, Any]]:
    """The commands the playbook accepts now (guards asked), each with the rule that would
    refuse it without an override."""
    now = candidacies.clock.now()
    policy = candidacies.policies.of(candidacy)
    forms = []
    for command in TRANSITIONS.enabled(candidacy.stage, candidacy, now):
        if command not in COMMANDS:
            continue
        refused = manual_refusal(candidacy, policy, now, command)
        forms.append({"command": command, "label": COMMANDS[command].label,
                      "refusal": refused._asdict() if refused else None,
                      "key": new_key()})
    return forms


def candidacy_page(request: Request, viewer: Viewer, candidacy_id: str, *, status: int = 200,
                   error: str | None = None) -> Response:
    candidacies: Candidacies = request.app.state.candidacies
    try:
        candidacy = candidacies.get(candidacy_id, viewer.workspace)
    except CandidacyNotFound:
        raise PageError(404, "No such candidacy.") from None
    except CorruptHistory as broken:
        raise PageError(500, f"This candidacy's history cannot be read ({broken.reason}); "
                             "closer doctor lists it.") from None
    dispatcher = build_dispatcher(candidacies, request.app.state.settings)
    cards = [outbox.card(dispatcher, row)
             for row in message_rows(candidacies, candidacy_id=str(candidacy.id))]
    zone = ZoneInfo(candidacy.timezone)
    from api.audit_service import chain_warning

    # Commands on a broken chain are refused (api.dependencies.refuse_if_chain_broken):
    # the page says why and offers none.
    chain = chain_warning(candidacies, candidacy_id)
    return render(
        request, viewer, "candidacy.html", status=status, page="dashboard_candidacies",
        candidacy=candidacy, lines=timeline(candidacies, candidacy), messages=cards,
        chain_broken=chain,
        forms=command_forms(candidacies, candidacy) if viewer.can_act and chain is None
        else [],
        paused=paused_now(candidacy, candidacies.clock.now()), local=lambda m: local(m, zone),
        error=error, mediums=[m.value for m in ThankYouMedium],
        channels=[c.value for c in NudgeChannel], reply_kinds=[k.value for k in ReplyKind],
        interviewers=[i["name"] for i in candidacy.interview.get("interviewers", [])])


@router.get("/candidacies", name="dashboard_candidacies")
def search(request: Request, viewer: SignedIn, filters: PageFilters,
           q: Annotated[str | None, Query(max_length=200)] = None,
           stage: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    """The workspace's candidacies, by text (candidate, company, role) and stage."""
    if stage and stage not in {s.value for s in Stage}:
        raise PageError(400, f"stage: {stage!r} is not a stage")
    text = (q or "").replace("\x00", "").strip() or None
    rows = request.app.state.candidacies.rows(viewer.workspace, stage=stage or None,
                                              text=text, limit=100)
    keep = filters.recruiter_ids(read_models(request))
    rows = [r for r in rows if filters.keeps(r, keep) and filters.in_range(r.updated_at)]
    return render(request, viewer, "candidacies.html", page="dashboard_candidacies",
                  filters=filters, rows=rows, q=text or "", stage=stage or "",
                  stages=[s.value for s in Stage],
                  extra_filters={k: v for k, v in (("q", text), ("stage", stage)) if v})


@router.get("/candidacies/{candidacy_id}", name="dashboard_candidacy")
def candidacy_view(request: Request, viewer: SignedIn, candidacy_id: CandidacyId) -> Response:
    return candidacy_page(request, viewer, candidacy_id)


@router.post("/candidacies/{candidacy_id}/{command}", name="dashboard_command")
async def command(request: Request, candidacy_id: CandidacyId,
                  command: Annotated[str, Path(max_length=40)], acting: Acting) -> Response:
    """Send one command from its form; a refusal shows the page again, saying why."""
    viewer, form = acting
    candidacies: Candidacies = request.app.state.candidacies
    if command not in COMMANDS:
        raise PageError(404, "No such command.")
    row = candidacies.row(candidacy_id) if _uuid_like(candidacy_id) else None
    if row is None or row.workspace != viewer.workspace:
        raise PageError(404, "No such candidacy.")
    if not form.get("version", "").strip().isdigit():
        # Every form carries the version it was rendered at (its If-Match); one without
        # would be applied to whatever the candidacy has become.
        return candidacy_page(request, viewer, candidacy_id, status=400,
                              error="Not applied: the form carries no version of the "
                                    "candidacy; reload the page and send it again.")
    zone = candidacies.get(candidacy_id, viewer.workspace).timezone
    try:
        outcome = await run(candidacies, viewer, candidacy_id, command, form, zone,
                            request.app.state)
    except (CloserError, ValidationError, ProblemError) as error:
        status, message = refusal(error)
        return candidacy_page(request, viewer, candidacy_id, status=status, error=message)
    response = RedirectResponse(f"{PREFIX}/candidacies/{candidacy_id}", status_code=303)
    flash(response, f"Recorded: {COMMANDS[command].label.lower()} (now version "
                    f"{outcome.version}, {outcome.stage}).")
    return response


def _uuid_like(value: str) -> bool:
    from uuid import UUID

    try:
        UUID(value)
    except ValueError:
        return False
    return True
