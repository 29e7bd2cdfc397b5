"""`/candidacies/{id}/...`: the playbook's commands.  Each records exactly one event or is
refused cleanly (409 with the stage and the allowed commands), honours `If-Match` and
`Idempotency-Key`, and answers the candidacy's new version (also as `ETag`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Response
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, ConfigDict, Field

from api.dependencies import Command, CommandRunner
from api.problems import problem_responses
from api.routes.candidacies import CandidacyId, PolicyVersionRef
from engine.application import Outcome
from engine.lifecycle import Stage
from engine.policy_book import parse_ref
from engine.values import (
    Correction,
    Day,
    Moment,
    Name,
    NextRound,
    NudgeChannel,
    Offer,
    Reply,
    Text,
    ThankYou,
)

router = APIRouter(prefix="/candidacies/{candidacy_id}", tags=["commands"])

ERRORS = problem_responses(400, 401, 403, 404, 409, 412, 422)
HEADERS = {
    "ETag": {"description": 'the candidacy\'s new version, e.g. `"4"`: send it as `If-Match`',
             "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "`true` when an Idempotency-Key answered the "
                                           "first response again", "schema": {"type": "string"}},
}


def command_route(path: str, operation_id: str,
                  status_code: int = 200) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The route decorator every command shares.  The routes answer `CommandResult`
    already rendered (see `result`); the model documents it."""
    return router.post(path, operation_id=operation_id, status_code=status_code,
                       responses={**ERRORS, status_code: {"headers": HEADERS}},
                       response_model=CommandResult, response_model_exclude_none=True)
HesitationId = Annotated[str, Path(description="a hesitation's id, as raising it answered",
                                   max_length=64)]
MessageId = Annotated[str, Path(description="an outbox message's id (see its messages)",
                                max_length=64)]


# -- request bodies (unknown fields are refused) ----------------------------------------------


class Acting(BaseModel):
    """Every command may say whom the acting user acts for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_behalf_of: Name | None = Field(default=None,
                                      description="who the acting user acts for")


class RaiseHesitation(Acting):
    text: Text = Field(description="the hesitation, in the interviewer's words")
    occurred_at: Moment | None = Field(default=None,
                                              description="when it was voiced (default: now)")


class AddressHesitation(Acting):
    response: Text = Field(description="the candidate's answer")
    occurred_at: Moment | None = None


OCCURRED_AT = Field(default=None, description="when it happened, if earlier than now "
                                                "(not before the interview)")


class Backdated(Acting):
    """A fact that may have happened before it is logged (the body may be omitted)."""

    occurred_at: Moment | None = OCCURRED_AT


class CloseNextStep(Acting):
    description: Text
    scheduled_for: Moment | None = None
    occurred_at: Moment | None = OCCURRED_AT


Mode = Literal["sent", "send_for_me"]
_MODE: Mode = Field(default="sent", description='"sent": I sent it myself (recorded as a fact, '
                                          'no message); "send_for_me": Closer sends it and '
                                          "records what the channel did")


class SendThankYou(ThankYou, Acting):
    """`to` names interviewers exactly as interviewed; without it the whole panel."""

    mode: Mode = _MODE
    occurred_at: Moment | None = Field(default=None,
                                       description="when it went (a card left last night)")


class Override(BaseModel):
    """Do it although a playbook rule refuses it now; the reason is recorded on the event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Text


class SendNudge(Acting):
    channels: list[NudgeChannel] | None = Field(
        default=None, min_length=1, max_length=3,
        description="default: a voicemail, then an email right after")
    reason: Text | None = None
    mode: Mode = _MODE
    occurred_at: Moment | None = OCCURRED_AT
    override: Override | None = Field(
        default=None, description="inside the patience window, before the spacing or beyond "
                                  "the pest line the nudge is refused (409 playbook-rule) "
                                  "without one")


class Stall(Acting):
    reason: Text
    override: Override | None = Field(
        default=None, description="before the pest line is reached and patience spent the "
                                  "stall is refused (409 playbook-rule) without one")


class ConfirmMessage(Acting):
    occurred_at: Moment | None = Field(default=None,
                                       description="when it was done (default: now)")


class ReceiveReply(Reply, Acting):
    """The employer's reply; `back_on` only with `out_of_office`."""


class NoteOffer(Offer, Acting):
    """A competing offer the candidate holds, with its deadline."""


class PauseCadence(Acting):
    reason: Text
    until: Day | None = Field(default=None, description="resume by itself on this date")
    occurred_at: Moment | None = OCCURRED_AT


class Withdraw(Acting):
    reason: Text
    occurred_at: Moment | None = OCCURRED_AT


class CorrectDetails(Correction, Acting):
    """A recorded contact, name spelling, title or "why I fit" that was wrong."""


class MigratePolicy(Acting):
    """Move the candidacy to another published policy version (`PolicyMigrated`)."""

    policy: PolicyVersionRef = Field(description="the published version to move to, "
                                                 "`NAME@VERSION` (e.g. `playbook@2`)")
    reason: Text | None = Field(default=None, description="why (recorded on the event)")


class StartNextRound(NextRound, Acting):
    """The next round's interview; unset fields carry over from the last round."""


# -- response ----------------------------------------------------------------------------------


class CommandResult(BaseModel):
    """What the command did: the candidacy's new version and stage (a replayed
    Idempotency-Key answers exactly the first response)."""

    id: str
    version: int
    stage: Stage
    hesitation_id: str | None = Field(default=None, description="raising a hesitation: its id")
    round: int | None = Field(default=None, description="starting a round: its number")


def result(outcome: Outcome, command: CommandRunner, status_code: int = 200) -> Response:
    """`CommandResult` as JSON (its fields in order, none of them null), with the headers
    the command set: built here instead of FastAPI validating and serialising a model the
    engine's own values already satisfy (a measurable share of a command's CPU)."""
    body: dict[str, Any] = {"id": outcome.candidacy_id, "version": outcome.version,
                            "stage": Stage(outcome.stage).value}
    for name in _OPTIONAL_RESULTS:
        value = outcome.data.get(name)
        if value is not None:
            body[name] = value
    response = Response(orjson.dumps(body), status_code, media_type="application/json")
    response.headers.raw.extend(command.response.headers.raw)
    return response


_OPTIONAL_RESULTS = [name for name in CommandResult.model_fields
                     if name not in ("id", "version", "stage")]


# -- commands ----------------------------------------------------------------------------------


@command_route("/hesitations", "raiseHesitation", status_code=201)
async def raise_hesitation(candidacy_id: CandidacyId, body: RaiseHesitation,
                           command: Command) -> Response:
    """The interviewer voiced a hesitation; answers its `hesitation_id`."""
    app = command.candidacies
    outcome = await command.run(app.raise_hesitation, candidacy_id, body.text,
                                occurred_at=body.occurred_at, on_behalf_of=body.on_behalf_of)
    return result(outcome, command, 201)


@command_route("/hesitations/{hesitation_id}/address", "addressHesitation")
async def address_hesitation(candidacy_id: CandidacyId, hesitation_id: HesitationId,
                             body: AddressHesitation, command: Command) -> Response:
    """The candidate answered a hesitation."""
    app = command.candidacies
    outcome = await command.run(app.address_hesitation, candidacy_id, hesitation_id,
                                body.response, occurred_at=body.occurred_at,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/no-hesitations", "recordNoHesitations")
async def record_no_hesitations(candidacy_id: CandidacyId, command: Command,
                                body: Backdated | None = None) -> Response:
    """The interviewer had no hesitations."""
    body = body or Backdated()
    outcome = await command.run(command.candidacies.record_no_hesitations, candidacy_id,
                                occurred_at=body.occurred_at, on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/next-step", "closeNextStep")
async def close_next_step(candidacy_id: CandidacyId, body: CloseNextStep,
                          command: Command) -> Response:
    """The candidate closed for the next step."""
    outcome = await command.run(command.candidacies.close_next_step, candidacy_id,
                                body.description, scheduled_for=body.scheduled_for,
                                occurred_at=body.occurred_at, on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/thank-you", "sendThankYou")
async def send_thank_you(candidacy_id: CandidacyId, body: SendThankYou,
                         command: Command) -> Response:
    """A thank-you went out (to the named interviewers, or the whole panel)."""
    outcome = await command.run(command.candidacies.send_thank_you, candidacy_id,
                                body.medium.value, to=list(body.to),
                                covers_panel=body.covers_panel, mode=body.mode,
                                occurred_at=body.occurred_at,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/nudges", "sendNudge")
async def send_nudge(candidacy_id: CandidacyId, command: Command,
                     body: SendNudge | None = None) -> Response:
    """A manual nudge, sent by the person or to be sent for them; the playbook's patience,
    spacing and pest line bind it either way."""
    body = body or SendNudge()
    options = {"reason": body.reason} if body.reason else {}
    outcome = await command.run(command.candidacies.send_nudge, candidacy_id,
                                channels=[c.value for c in body.channels or ()] or None,
                                occurred_at=body.occurred_at, mode=body.mode,
                                override=body.override.model_dump() if body.override else None,
                                on_behalf_of=body.on_behalf_of, **options)
    return result(outcome, command)


@command_route("/messages/{message_id}/confirm", "confirmMessage")
async def confirm_message(candidacy_id: CandidacyId, message_id: MessageId, command: Command,
                          body: ConfirmMessage | None = None) -> Response:
    """A card or voicemail task was done: the message is delivered, confirmed by you."""
    body = body or ConfirmMessage()
    outcome = await command.run(command.candidacies.confirm_message, candidacy_id,
                                message_id, occurred_at=body.occurred_at,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/stall", "stall")
async def stall(candidacy_id: CandidacyId, body: Stall, command: Command) -> Response:
    """Give up waiting by hand; refused before the pest line and patience are spent."""
    outcome = await command.run(command.candidacies.stall, candidacy_id, body.reason,
                                override=body.override.model_dump() if body.override else None,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/replies", "receiveReply")
async def receive_reply(candidacy_id: CandidacyId, body: ReceiveReply,
                        command: Command) -> Response:
    """The employer replied: advanced, rejected, an update, or out of office."""
    outcome = await command.run(command.candidacies.receive_reply, candidacy_id,
                                body.kind.value, note=body.note, received_at=body.received_at,
                                back_on=body.back_on, on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/offers", "noteCompetingOffer")
async def note_competing_offer(candidacy_id: CandidacyId, body: NoteOffer,
                               command: Command) -> Response:
    """The candidate holds a competing offer with a deadline."""
    outcome = await command.run(command.candidacies.note_competing_offer, candidacy_id,
                                body.company, body.deadline, occurred_at=body.noted_at,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/pause", "pauseCadence")
async def pause_cadence(candidacy_id: CandidacyId, body: PauseCadence,
                        command: Command) -> Response:
    """Hold every timer, until a date or until resumed."""
    outcome = await command.run(command.candidacies.pause_cadence, candidacy_id, body.reason,
                                until=body.until, occurred_at=body.occurred_at,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/resume", "resumeCadence")
async def resume_cadence(candidacy_id: CandidacyId, command: Command,
                         body: Backdated | None = None) -> Response:
    """Let the timers run again."""
    body = body or Backdated()
    outcome = await command.run(command.candidacies.resume_cadence, candidacy_id,
                                occurred_at=body.occurred_at, on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/withdraw", "withdraw")
async def withdraw(candidacy_id: CandidacyId, body: Withdraw, command: Command) -> Response:
    """The candidate withdrew."""
    outcome = await command.run(command.candidacies.withdraw, candidacy_id, body.reason,
                                occurred_at=body.occurred_at, on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/corrections", "correctDetails")
async def correct_details(candidacy_id: CandidacyId, body: CorrectDetails,
                          command: Command) -> Response:
    """Correct the candidate's or an interviewer's email, phone, name or title, or the
    candidate's "why I fit"; the history keeps the original (before and after)."""
    correction = Correction.model_construct(
        **{name: getattr(body, name) for name in Correction.model_fields})
    outcome = await command.run(command.candidacies.correct_details, candidacy_id, correction,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/rounds", "startNextRound")
async def start_next_round(candidacy_id: CandidacyId, command: Command,
                           body: StartNextRound | None = None) -> Response:
    """After advancing, start the next interview round."""
    body = body or StartNextRound()
    details = NextRound.model_construct(
        **{name: getattr(body, name) for name in NextRound.model_fields})
    outcome = await command.run(command.candidacies.start_next_round, candidacy_id, details,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)


@command_route("/policy", "migratePolicy")
async def migrate_policy(candidacy_id: CandidacyId, body: MigratePolicy,
                         command: Command) -> Response:
    """Move the candidacy to another published policy version: recorded as
    `PolicyMigrated` (from, to, who, why), and the scheduler decides with it from then on.
    Refused for a stalled candidacy (409) and for the version it is on (422)."""
    target = parse_ref(body.policy)
    outcome = await command.run(command.candidacies.migrate_policy, candidacy_id,
                                target.name, target.version, reason=body.reason,
                                on_behalf_of=body.on_behalf_of)
    return result(outcome, command)
