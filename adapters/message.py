"""What a message is made from (`MessageContext`) and what rendering makes (`Message`).

`MessageContext` is plain data, independent of the engine, so the outbox can
build it from recorded events; `message_id` makes its id deterministic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

# What a message is for (each kind has default templates): the policy's routing names the
# same kinds, so there is one list of them.
from engine.policy import MessageKind

# Fixed forever: changing it would change every message id and resend everything.
NAMESPACE = uuid.UUID("6f1c2a4e-8b0d-5c3e-9a7f-0c105e4d1e55")


def message_id(candidacy_id: object, event_id_or_version: object, channel: str) -> str:
    """The deterministic id of the message one event sends on one channel.

    A uuid5 of the three parts, so a restart computes the same id and a
    channel that deduplicates (SMTP Message-ID, webhook Idempotency-Key)
    never applies the message twice.
    """
    name = f"{candidacy_id}/{event_id_or_version}/{channel.strip().lower()}"
    return str(uuid.uuid5(NAMESPACE, name))


# The template medium a kind uses on channels without their own (console, webhook).
DEFAULT_MEDIUM: dict[MessageKind, str] = {
    MessageKind.THANK_YOU: "email",
    MessageKind.NUDGE_VOICEMAIL: "voicemail",
    MessageKind.NUDGE_EMAIL: "email",
    MessageKind.OFFER_NUDGE: "email",
    MessageKind.REMINDER_THANK_YOU_DUE: "email",
    MessageKind.REMINDER_NEXT_STEP: "email",
    MessageKind.ALERT_STALLED: "email",
    MessageKind.ALERT_OVERDUE: "email",
    MessageKind.NEXT_STEP_INVITE: "calendar",
}

# Kinds the candidate writes to interviewers; Closer writes the rest (reminders, alerts,
# the next step in the candidate's calendar).
CANDIDATE_AUTHORED = frozenset({
    MessageKind.THANK_YOU, MessageKind.NUDGE_VOICEMAIL, MessageKind.NUDGE_EMAIL,
    MessageKind.OFFER_NUDGE,
})


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone name (e.g. Europe/London)") from None
    return value


Text = Annotated[str, Field(min_length=1, max_length=2000)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Person(_Frozen):
    """The candidate or a recruiter."""

    name: Text
    email: str | None = None
    phone: str | None = None


class Interviewer(_Frozen):
    """An interviewer exactly as recorded: every message must spell them so."""

    name: Text
    title: Text
    email: str | None = None
    phone: str | None = None


class NextStep(_Frozen):
    """The next step the interviewers named, e.g. "a systems design interview"."""

    description: Text
    scheduled_for: AwareDatetime | None = None
    duration_minutes: int = Field(default=45, gt=0, le=24 * 60)
    location: str | None = None


class CompetingOffer(_Frozen):
    """Another offer with a reply deadline; mentioned tactfully, never as an ultimatum."""

    company: Text
    deadline: AwareDatetime


class MessageContext(_Frozen):
    """Everything a template needs for one message, validated per kind."""

    kind: MessageKind
    message_id: Text
    candidate: Person
    company: Text
    role: Text
    interview_format: Literal["in_person", "video", "phone"]
    interviewers: tuple[Interviewer, ...] = Field(min_length=1)
    timezone: Annotated[str, AfterValidator(_zone)]
    recipients: tuple[str, ...] = ()  # interviewer names; empty means all of them
    next_step: NextStep | None = None
    fit: str | None = None
    competing_offer: CompetingOffer | None = None
    recruiter: Person | None = None
    note: str | None = None
    interviewed_at: AwareDatetime | None = None
    occurred_at: AwareDatetime | None = None  # when the triggering event happened
    candidacy_id: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MessageContext:
        known = {i.name for i in self.interviewers}
        unknown = [name for name in self.recipients if name not in known]
        if unknown:
            raise ValueError(f"recipients {unknown} are not among the interviewers {sorted(known)}")
        needs = {
            MessageKind.OFFER_NUDGE: ("competing_offer", self.competing_offer is not None),
            MessageKind.REMINDER_NEXT_STEP: ("next_step.scheduled_for",
                                      bool(self.next_step and self.next_step.scheduled_for)),
            MessageKind.NEXT_STEP_INVITE: ("next_step.scheduled_for",
                                    bool(self.next_step and self.next_step.scheduled_for)),
            MessageKind.ALERT_STALLED: ("recruiter", self.recruiter is not None),
            MessageKind.ALERT_OVERDUE: ("recruiter", self.recruiter is not None),
        }
        if self.kind in needs and not needs[self.kind][1]:
            raise ValueError(f"the {self.kind.value} message needs {needs[self.kind][0]}")
        return self

    @property
    def addressees(self) -> tuple[Interviewer, ...]:
        """The interviewers this message is about or to: the recipients, else all."""
        if not self.recipients:
            return self.interviewers
        return tuple(i for i in self.interviewers if i.name in self.recipients)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def candidate_authored(self) -> bool:
        """True when the candidate writes it (to interviewers), False for Closer's own."""
        return self.kind in CANDIDATE_AUTHORED

    def audience(self) -> tuple[Person | Interviewer, ...]:
        """Who receives the message: interviewers, the candidate or the recruiter."""
        if self.kind in (MessageKind.ALERT_STALLED, MessageKind.ALERT_OVERDUE):
            assert self.recruiter is not None  # checked by the validator
            return (self.recruiter,)
        if self.kind in (MessageKind.REMINDER_THANK_YOU_DUE, MessageKind.REMINDER_NEXT_STEP,
                         MessageKind.NEXT_STEP_INVITE):
            return (self.candidate,)
        return self.addressees


def plain_error(error: BaseException) -> str:
    """One clear sentence for ``error``: a pydantic `ValidationError` becomes each problem
    as "where: what" (never pydantic's dump of the input or the link to its docs)."""
    if not isinstance(error, ValidationError):
        return str(error).strip().rstrip(".")
    errors = error.errors(include_url=False, include_input=False, include_context=False)
    problems = []
    for problem in errors:
        loc = tuple(problem["loc"])
        if loc and any(tuple(other["loc"])[:len(loc)] == loc and len(other["loc"]) > len(loc)
                       for other in errors):
            continue  # a container's complaint that only echoes its item's (an empty tuple)
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                        for part in problem["loc"]).lstrip(".")
        what = problem["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        what = what[:1].lower() + what[1:]
        problems.append(f"{where}: {what}" if where else what)
    return "; ".join(problems).rstrip(".")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file carried by a message (a card PDF, an .ics invite)."""

    filename: str
    mimetype: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered message, ready for proofing and delivery.

    ``medium`` is the template flavour it was rendered with (email, card,
    voicemail, calendar); ``channel`` is the adapter that delivers it.
    """

    kind: MessageKind
    channel: str
    medium: str
    to: tuple[str, ...]
    subject: str
    body: str
    message_id: str
    attachments: tuple[Attachment, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)


def local(moment: datetime, context: MessageContext) -> datetime:
    """``moment`` in the candidacy's time zone."""
    return moment.astimezone(context.zone)
