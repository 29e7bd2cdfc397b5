"""The playbook's commands as dashboard forms: each form's fields become the very body
model its HTTP route takes (`api.routes.commands`), and run through the very
`CommandRunner` the API uses, so guards, the form's idempotency key and its expected
version (the `If-Match` of a form: the version it was rendered at) hold alike.  A form
rendered at an older version is refused, never applied."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Response
from pydantic import BaseModel, ValidationError

from api.dashboard.session import FormData, Viewer
from api.dependencies import CommandRunner
from api.problems import ProblemError
from api.routes import commands as api
from engine.application import Candidacies, Outcome
from engine.errors import (
    CloserError,
    IdempotencyKeyReused,
    IllegalCommand,
    InvalidInput,
    PlaybookRule,
    VersionConflict,
)

Call = Callable[[Candidacies, Any], tuple[Callable[..., Outcome], tuple[Any, ...], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class FormCommand:
    """One command a form may send: the API's body model, and how the route calls the
    application with it."""

    label: str
    body: type[BaseModel]
    call: Call


def _override(body: Any) -> dict[str, Any] | None:
    return body.override.model_dump() if body.override else None


COMMANDS: dict[str, FormCommand] = {
    "raise_hesitation": FormCommand(
        "Raise a hesitation", api.RaiseHesitation,
        lambda app, b: (app.raise_hesitation, (b.text,), {"occurred_at": b.occurred_at})),
    "address_hesitation": FormCommand(
        "Answer the hesitation", api.AddressHesitation,
        lambda app, b: (app.address_hesitation, (b.hesitation_id, b.response),
                        {"occurred_at": b.occurred_at})),
    "record_no_hesitations": FormCommand(
        "Record: no hesitations", api.Backdated,
        lambda app, b: (app.record_no_hesitations, (), {"occurred_at": b.occurred_at})),
    "close_next_step": FormCommand(
        "Close the next step", api.CloseNextStep,
        lambda app, b: (app.close_next_step, (b.description,),
                        {"scheduled_for": b.scheduled_for, "occurred_at": b.occurred_at})),
    "send_thank_you": FormCommand(
        "Thank-you", api.SendThankYou,
        lambda app, b: (app.send_thank_you, (b.medium.value,),
                        {"to": list(b.to), "covers_panel": b.covers_panel, "mode": b.mode,
                         "occurred_at": b.occurred_at})),
    "send_nudge": FormCommand(
        "Nudge", api.SendNudge,
        lambda app, b: (app.send_nudge, (),
                        {"channels": [c.value for c in b.channels or ()] or None,
                         "occurred_at": b.occurred_at, "mode": b.mode,
                         "override": _override(b),
                         **({"reason": b.reason} if b.reason else {})})),
    "stall": FormCommand(
        "Stall", api.Stall,
        lambda app, b: (app.stall, (b.reason,), {"override": _override(b)})),
    "receive_reply": FormCommand(
        "Log the employer's reply", api.ReceiveReply,
        lambda app, b: (app.receive_reply, (b.kind.value,),
                        {"note": b.note, "received_at": b.received_at, "back_on": b.back_on})),
    "note_competing_offer": FormCommand(
        "Note a competing offer", api.NoteOffer,
        lambda app, b: (app.note_competing_offer, (b.company, b.deadline),
                        {"occurred_at": b.noted_at})),
    "pause_cadence": FormCommand(
        "Pause", api.PauseCadence,
        lambda app, b: (app.pause_cadence, (b.reason,),
                        {"until": b.until, "occurred_at": b.occurred_at})),
    "resume_cadence": FormCommand(
        "Resume", api.Backdated,
        lambda app, b: (app.resume_cadence, (), {"occurred_at": b.occurred_at})),
    "withdraw": FormCommand(
        "Withdraw", api.Withdraw,
        lambda app, b: (app.withdraw, (b.reason,), {"occurred_at": b.occurred_at})),
    "correct_details": FormCommand(
        "Correct a detail", api.CorrectDetails,
        lambda app, b: (app.correct_details, (_correction(b),), {})),
    "start_next_round": FormCommand(
        "Start the next round", api.StartNextRound,
        lambda app, b: (app.start_next_round, (_next_round(b),), {})),
}
"""Every command a person gives (`engine.lifecycle.PERSON_COMMANDS`) with its form."""


def _correction(body: Any) -> Any:
    from engine.values import Correction

    return Correction.model_construct(**{n: getattr(body, n) for n in Correction.model_fields})


def _next_round(body: Any) -> Any:
    from engine.values import NextRound

    return NextRound.model_construct(**{n: getattr(body, n) for n in NextRound.model_fields})


class _Hesitation(api.AddressHesitation):
    hesitation_id: str


COMMANDS["address_hesitation"] = FormCommand(
    COMMANDS["address_hesitation"].label, _Hesitation, COMMANDS["address_hesitation"].call)

# Form fields that are not the body's: the form's own bookkeeping.
_BOOKKEEPING = frozenset({"csrf", "version", "idempotency_key"})
_MOMENTS = frozenset({"scheduled_for", "occurred_at", "received_at", "deadline", "noted_at",
                      "interviewed_at"})
_OVERRIDE = "override_reason"


def body_of(command: str, form: FormData, zone: str) -> dict[str, Any]:
    """The API body the form's fields say: blanks left out, a local date-time (the
    browser's ``datetime-local``, in the candidacy's zone) given its offset, an override
    reason made the override."""
    body: dict[str, Any] = {}
    for name, value in form.items():
        value = value.strip()
        if name in _BOOKKEEPING or not value:
            continue
        if name == _OVERRIDE:
            body["override"] = {"reason": value}
        elif name in _MOMENTS:
            body[name] = _moment(value, zone)
        elif name == "channels":
            body[name] = [v for v in form.all(name) if v]
        else:
            body[name] = value
    return body


def _moment(value: str, zone: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # the body model names the field and the problem
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.isoformat()


def new_key() -> str:
    """The idempotency key a rendered form carries: sending it twice records it once."""
    return "form-" + secrets.token_urlsafe(18)


async def run(candidacies: Candidacies, viewer: Viewer, candidacy_id: str, command: str,
              form: FormData, zone: str, state: Any) -> Outcome:
    """Run the form's ``command`` as the API would, with the app's (``state``'s) in-flight
    keys and command turns (raises the engine's errors, or `ValidationError` for a
    field)."""
    spec = COMMANDS[command]
    body = spec.body.model_validate(body_of(command, form, zone))
    method, args, kwargs = spec.call(candidacies, body)
    version = form.get("version", "").strip()  # the route refuses a form without one
    runner = CommandRunner(candidacies, viewer.principal,
                           int(version) if version.isdigit() else None,
                           form.text("idempotency_key"), state.inflight, Response(),
                           state.command_turns)
    return await runner.run(method, candidacy_id, *args, **kwargs)


def refusal(error: Exception) -> tuple[int, str]:
    """The status and the sentence a refused form shows (nothing was applied)."""
    if isinstance(error, VersionConflict):
        return 409, (f"Not applied: this candidacy changed since the form was opened (it was "
                     f"at version {error.expected}, it is now at version {error.actual}). "
                     "Below is how it stands now: check it and send again if still right.")
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "form"
        reason = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
        return 422, f"Not applied: {field}: {reason}"
    if isinstance(error, InvalidInput):
        return 422, f"Not applied: {error.field}: {error.reason}"
    if isinstance(error, PlaybookRule):
        return 409, f"Not applied: {error.reason} (rule {error.rule}); give a reason to override"
    if isinstance(error, IllegalCommand):
        return 409, f"Not applied: {error}"
    if isinstance(error, IdempotencyKeyReused):
        return 409, "Not applied: this form was already used for another command; reload"
    if isinstance(error, CloserError):
        return 409, f"Not applied: {error}"
    if isinstance(error, ProblemError):
        return 409, f"Not applied: {error.detail or error.kind}"
    raise error
