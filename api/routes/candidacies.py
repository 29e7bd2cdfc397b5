"""`/candidacies`: record an interview, list and read candidacies, read a candidacy's history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from api.dependencies import Command, Reader, Store
from api.due import DueAction, due_actions
from api.problems import problem_responses
from engine.application import Candidacies, HistoryEntry
from engine.candidacy import Candidacy
from engine.decisions import manual_refusal
from engine.errors import CandidacyNotFound, CorruptHistory
from engine.lifecycle import TRANSITIONS, Stage
from engine.policy_book import REF_PATTERN, parse_ref
from engine.values import Name, NewCandidacy

router = APIRouter(prefix="/candidacies", tags=["candidacies"])

NO_NUL = r"^[^\x00]*$"  # PostgreSQL refuses NUL in a text parameter: a 422, not a 500
CandidacyId = Annotated[str, Path(description="the candidacy's id (a UUID)", max_length=64)]


# -- request bodies ------------------------------------------------------------------------


PolicyVersionRef = Annotated[str, StringConstraints(pattern=REF_PATTERN, max_length=80)]


class RecordInterview(NewCandidacy):
    """The first interview (unknown fields are refused)."""

    on_behalf_of: Name | None = Field(default=None,
                                      description="who the acting user acts for")
    policy: PolicyVersionRef | None = Field(
        default=None, description="the published policy version it runs under, "
                                  "`NAME@VERSION` (e.g. `playbook@2`; default: the "
                                  "application's, `playbook@1`); an unpublished one is refused")


# -- responses -------------------------------------------------------------------------------


class Recorded(BaseModel):
    """A new candidacy."""

    id: str
    stage: Stage
    version: int


class Hesitation(BaseModel):
    id: str
    text: str
    raised_at: datetime
    answer: str | None = None
    addressed_at: datetime | None = None


class NextStep(BaseModel):
    description: str
    scheduled_for: datetime | None = None
    closed_at: datetime


class ThankYou(BaseModel):
    medium: str
    to: list[str]
    sent_at: datetime


class Nudge(BaseModel):
    sent_at: datetime
    channels: list[str]
    reason: str
    decided_by: dict[str, Any] | None = None
    override: dict[str, Any] | None = Field(
        default=None, description="a person's nudge a playbook rule refused, let through: "
                                  "the reason and the rule it overrode")


class LastReply(BaseModel):
    kind: str
    note: str | None = None
    received_at: datetime
    back_on: date | None = None


class CompetingOffer(BaseModel):
    company: str
    deadline: datetime
    noted_at: datetime


class Pause(BaseModel):
    since: datetime
    until: date | None = None
    ends_at: datetime | None = None
    reason: str


class Ending(BaseModel):
    kind: str = Field(description="advanced, rejected, stalled or withdrawn")
    at: datetime
    reason: str | None = None


class PlaybookRefusal(BaseModel):
    """Why a person's command would be refused now (409 playbook-rule) without an override."""

    rule: str
    reason: str
    allowed_from: datetime | None = None


class ChainBreak(BaseModel):
    """The first break in a candidacy's hash chain (docs/audit.md)."""

    kind: str = Field(description="altered, removed, inserted or reordered")
    version: int | None = None
    notification_id: int | None = None
    detail: str


class CandidacyView(BaseModel):
    """A candidacy as it stands: the current round's steps, and what may and must happen next."""

    id: str
    stage: Stage
    version: int
    round: int
    created_at: datetime
    updated_at: datetime
    candidate: dict[str, Any]
    company: str
    role: str
    timezone: str
    country: str | None = None
    subdivision: str | None = None
    applied_on: date | None = Field(default=None,
                                    description="the day the candidate applied, if recorded")
    policy: dict[str, Any]
    interview: dict[str, Any] = Field(description="the current round's interview")
    hesitations: list[Hesitation]
    no_hesitations: bool
    next_step: NextStep | None = None
    thank_yous: list[ThankYou]
    thanked: list[str]
    nudges: list[Nudge]
    last_reply: LastReply | None = None
    offers: list[CompetingOffer]
    paused: Pause | None = None
    outcome: Ending | None = None
    allowed_actions: list[str] = Field(
        description="commands this API offers that the playbook accepts now, guards asked "
                    "(see docs/api.md for their endpoints)")
    playbook_refusals: dict[str, PlaybookRefusal] = Field(
        default_factory=dict,
        description="allowed commands a playbook rule refuses now without an override "
                    "(`send_nudge`, `stall`)")
    next_due: DueAction | None = Field(default=None,
                                       description="the next step the policy wants taken")
    chain_broken: ChainBreak | None = Field(
        default=None, description="set when this candidacy's stored history is not what was "
                                  "recorded (its first break; `closer audit verify`)")


class Unreadable(BaseModel):
    """A candidacy of the page whose stored history cannot be read (quarantined): it
    answers the `corrupt-history` problem until repaired; `closer doctor` lists it."""

    candidacy_id: str
    version: int = Field(description="the version that cannot be read (of the candidacy, or "
                                     "of a record it needs, e.g. its policy)")
    notification_id: int | None = Field(default=None,
                                        description="its position in the event log")
    candidate: str | None = None
    company: str | None = None
    role: str | None = None
    problem: str = Field(default="urn:closer:problem:corrupt-history",
                         description="the problem type its own URL answers")


class CandidacyPage(BaseModel):
    items: list[CandidacyView]
    unreadable: list[Unreadable] = Field(
        default_factory=list, description="candidacies of this page left out of `items` "
                                          "because their history cannot be read")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null "
                                                "at the end")


def unreadable(error: CorruptHistory, row: Any) -> Unreadable:
    """What a list says of a quarantined candidacy (its current row still names it)."""
    return Unreadable(candidacy_id=row.id, version=error.version,
                      notification_id=error.notification_id, candidate=row.candidate,
                      company=row.company, role=row.role)


class PolicyRef(BaseModel):
    name: str | None = None
    version: int | None = None


class HistoryEvent(BaseModel):
    """One recorded event, as auditors read it."""

    version: int
    type: str
    at: datetime
    actor: str
    on_behalf_of: str | None = None
    stage: Stage = Field(description="the stage after the event")
    data: dict[str, Any]
    decided_by: dict[str, Any] | None = Field(
        default=None, description="for events a cadence policy decided: what decided it")
    policy: PolicyRef | None = Field(default=None, description="scheduled events: the policy")
    rule: str | None = Field(default=None, description="scheduled events: the rule that fired")


class History(BaseModel):
    events: list[HistoryEvent]
    chain_broken: ChainBreak | None = Field(
        default=None, description="set when these events are not what was recorded: the "
                                  "first break in the candidacy's hash chain (docs/audit.md)")


# -- views -----------------------------------------------------------------------------------


def candidacy_view(candidacies: Candidacies, candidacy: Candidacy) -> CandidacyView:
    """The public view of ``candidacy`` now."""
    upcoming = due_actions(candidacies, candidacy)
    now = candidacies.clock.now()
    allowed = TRANSITIONS.enabled(candidacy.stage, candidacy, now)
    policy = candidacies.policies.of(candidacy)
    refusals = {command: refusal._asdict() for command in allowed
                if (refusal := manual_refusal(candidacy, policy, now, command)) is not None}
    return CandidacyView.model_validate({
        "id": str(candidacy.id), "stage": candidacy.stage, "version": candidacy.version,
        "round": candidacy.round, "created_at": candidacy.created_on,
        "updated_at": candidacy.modified_on, "candidate": candidacy.candidate,
        "company": candidacy.company, "role": candidacy.role, "timezone": candidacy.timezone,
        "country": candidacy.country, "subdivision": candidacy.subdivision,
        "applied_on": candidacy.applied_on, "policy": candidacy.policy,
        "interview": candidacy.interview,
        "hesitations": candidacy.hesitations, "no_hesitations": candidacy.no_hesitations,
        "next_step": candidacy.next_step, "thank_yous": candidacy.thank_yous,
        "thanked": candidacy.thanked, "nudges": candidacy.nudges,
        "last_reply": candidacy.last_reply, "offers": candidacy.offers,
        "paused": candidacy.paused, "outcome": candidacy.outcome,
        "allowed_actions": list(allowed), "playbook_refusals": refusals,
        "next_due": upcoming[0] if upcoming else None,
    })


def history_event(entry: HistoryEntry) -> HistoryEvent:
    decided = entry.decided_by or None
    return HistoryEvent(
        version=entry.version, type=entry.type, at=entry.at, actor=entry.actor,
        on_behalf_of=entry.on_behalf_of, stage=Stage(entry.stage), data=entry.data,
        decided_by=decided,
        policy=PolicyRef(name=decided.get("policy"), version=decided.get("version"))
        if decided else None,
        rule=decided.get("rule") if decided else None,
    )


def etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


# -- routes ----------------------------------------------------------------------------------


@router.post("", status_code=201, operation_id="recordInterview",
             responses=problem_responses(400, 401, 403, 409, 422))
async def record_interview(body: RecordInterview, command: Command, request: Request,
                           response: Response) -> Recorded:
    """Record a first interview: opens a candidacy at stage `interviewed` (without a
    `country`, the workspace's default country from the settings, if any), on the policy
    version given (`policy`, a published `NAME@VERSION`) or the default one."""
    fields = {name: getattr(body, name) for name in NewCandidacy.model_fields}
    if fields["country"] is None:
        fields["country"] = request.app.state.settings.country_for(command.principal.workspace)
    details = NewCandidacy.model_construct(**fields)
    policy = parse_ref(body.policy).as_dict() if body.policy is not None else None
    outcome = await command.record(details, body.on_behalf_of, policy)
    response.headers["Location"] = f"/candidacies/{outcome.candidacy_id}"
    return Recorded(id=outcome.candidacy_id, stage=Stage(outcome.stage), version=outcome.version)


@router.get("", operation_id="listCandidacies", responses=problem_responses(401, 422))
def list_candidacies(
    candidacies: Store, principal: Reader,
    stage: Annotated[Stage | None, Query(description="only candidacies at this stage")] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL,
                                   description="text in the candidate's name, the company "
                                               "or the role")] = None,
    cursor: Annotated[str | None, Query(max_length=64, pattern=NO_NUL,
                                        description="`next_cursor` of the previous page")
                      ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CandidacyPage:
    """The workspace's candidacies in a stable order, a page at a time."""
    rows = candidacies.rows(principal.workspace, stage=stage.value if stage else None,
                            text=q or None, after=cursor or None, limit=limit)
    items = []
    corrupt = []
    for row in rows:
        try:
            items.append(candidacy_view(candidacies,
                                        candidacies.get(row.id, principal.workspace)))
        except CandidacyNotFound:  # pragma: no cover - a row always has its candidacy
            continue
        except CorruptHistory as error:
            corrupt.append(unreadable(error, row))
    return CandidacyPage(items=items, unreadable=corrupt,
                         next_cursor=rows[-1].id if len(rows) == limit else None)


@router.get("/{candidacy_id}", operation_id="getCandidacy",
            responses=problem_responses(401, 404, 422, 500))
def get_candidacy(candidacy_id: CandidacyId, candidacies: Store, principal: Reader,
                  response: Response) -> CandidacyView:
    """One candidacy as it stands (`ETag`: its version)."""
    candidacy = candidacies.get(candidacy_id, principal.workspace)
    etag(response, candidacy.version)
    view = candidacy_view(candidacies, candidacy)
    view.chain_broken = chain_break(candidacies, candidacy_id)
    return view


def chain_break(candidacies: Candidacies, candidacy_id: str) -> ChainBreak | None:
    """The first break in the candidacy's chain, for a read to carry (None: intact)."""
    from api.audit_service import chain_warning

    broken = chain_warning(candidacies, candidacy_id)
    if broken is None:
        return None
    return ChainBreak(kind=broken.kind, version=broken.version,
                      notification_id=broken.notification_id, detail=broken.detail)


@router.get("/{candidacy_id}/events", operation_id="getCandidacyEvents",
            responses=problem_responses(401, 404, 422, 500))
def get_candidacy_events(candidacy_id: CandidacyId, candidacies: Store, principal: Reader,
                         response: Response) -> History:
    """Every event of the candidacy, oldest first."""
    row = candidacies.row(candidacy_id)
    if row is None or row.workspace != principal.workspace:
        # Only candidacies have rows: other aggregates' ids are not found either.
        raise CandidacyNotFound(candidacy_id)
    entries = candidacies.history(candidacy_id, principal.workspace)
    etag(response, entries[-1].version)
    return History(events=[history_event(e) for e in entries],
                   chain_broken=chain_break(candidacies, candidacy_id))
