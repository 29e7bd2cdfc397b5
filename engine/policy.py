"""The cadence policy: the playbook's timing rules as validated, versioned data.

A :class:`CadencePolicy` says when to thank, how and when to nudge, where the
line between persistent and pest lies, when to declare a candidacy stalled,
and when messages may reach the recipient. The pydantic field defaults below
are the ONE home of the default numbers; the shipped ``default_policy.toml``
spells every one of them out and a test keeps the two identical.

Policies are read from TOML with :func:`load_policy`, which refuses any problem
with a :class:`PolicyError` naming the file, the field and the reason.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
from collections.abc import Mapping
from datetime import datetime, time
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.errors import CloserError
from engine.work_calendar import WorkCalendar, allowed_send_intervals, work_calendar

__all__ = [
    "DEFAULT_POLICY_PATH",
    "CadencePolicy",
    "Channel",
    "CompetingOfferRule",
    "FollowUpRule",
    "HolidayRule",
    "Medium",
    "MessageKind",
    "NudgeRule",
    "PatienceRule",
    "PauseRule",
    "PestLine",
    "PolicyChange",
    "PolicyError",
    "QuietHours",
    "Routing",
    "SendWindow",
    "StallRule",
    "ThankYouRule",
    "Weekday",
    "WorkingWeek",
    "default_policy",
    "diff_policies",
    "rule_fields",
    "load_policy",
    "parse_policy",
    "policy_from_dict",
    "policy_to_toml",
    "slip_after_pause",
]

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")

# Words people use for paper post; each gets the playbook's reason instead of "unknown".
_POSTAL_WORDS = frozenset({"postal", "post", "mail", "postal_mail", "letter", "snail_mail"})


class PolicyError(CloserError, ValueError):
    """A policy file or mapping is invalid: names the source, the field path and the reason.

    ``problems`` lists every ``(field_path, reason)`` found; ``field`` and ``reason``
    are the first one. ``field`` is ``None`` for whole-file problems (missing file,
    TOML syntax).
    """

    def __init__(self, source: str, problems: list[tuple[str | None, str]]) -> None:
        self.source = source
        self.problems = problems
        self.field, self.reason = problems[0]
        parts = [f"{field}: {reason}" if field else reason for field, reason in problems]
        super().__init__(f"{source}: " + "; ".join(parts))


class _Invalid(ValueError):
    """Raised inside validators to point at a field below the validated model."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(reason)


# ---------------------------------------------------------------- value types


class Medium(StrEnum):
    """How a thank-you reaches the interviewer (never postal mail)."""

    CARD = "card"
    EMAIL = "email"
    VOICEMAIL = "voicemail"


class Channel(StrEnum):
    """How a nudge reaches the employer."""

    VOICEMAIL = "voicemail"
    EMAIL = "email"


class MessageKind(StrEnum):
    """What the routing table can ask to be sent or raised."""

    THANK_YOU = "thank_you"
    NUDGE_VOICEMAIL = "nudge_voicemail"
    NUDGE_EMAIL = "nudge_email"
    OFFER_NUDGE = "offer_nudge"
    REMINDER_THANK_YOU_DUE = "reminder_thank_you_due"
    REMINDER_NEXT_STEP = "reminder_next_step"
    ALERT_STALLED = "alert_stalled"
    ALERT_OVERDUE = "alert_overdue"
    NEXT_STEP_INVITE = "next_step_invite"


class Weekday(StrEnum):
    """A day of the week, as written in policy files."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """0 for Monday to 6 for Sunday, as ``date.weekday()`` counts."""
        return _WEEKDAY_NUMBERS[self]


_WEEKDAY_NUMBERS = {day: number for number, day in enumerate(Weekday)}


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def _enum_item(enum: type[StrEnum], noun: str, postal_reason: str | None) -> BeforeValidator:
    """A before-validator giving clear reasons for unknown (or postal) enum values."""

    def check(value: object) -> object:
        if isinstance(value, enum):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a {noun} name (string), got {_toml_type(value)}")
        word = value.strip().lower()
        if postal_reason is not None and word.replace(" ", "_") in _POSTAL_WORDS:
            raise ValueError(postal_reason)
        for member in enum:
            if member.value == word:
                return member
        raise ValueError(f"unknown {noun} {value!r}; choose from {_choices(enum)}")

    return BeforeValidator(check)


def _weekday_item(value: object) -> object:
    """Accept ``mon`` or ``monday`` in any case."""
    if isinstance(value, str):
        word = value.strip().lower()
        for member in Weekday:
            if word in (member.value, _FULL_DAY_NAMES[member]):
                return member
        raise ValueError(f"unknown weekday {value!r}; use {_choices(Weekday)}")
    if isinstance(value, Weekday):
        return value
    raise ValueError(f"expected a weekday name such as \"mon\", got {_toml_type(value)}")


_FULL_DAY_NAMES = {
    Weekday.MON: "monday", Weekday.TUE: "tuesday", Weekday.WED: "wednesday",
    Weekday.THU: "thursday", Weekday.FRI: "friday", Weekday.SAT: "saturday",
    Weekday.SUN: "sunday",
}

_POSTAL_MEDIUM = (
    "postal mail is never used for a thank-you: a letter arrives after the decision; "
    "use card (left at reception the same day), email or voicemail"
)
_POSTAL_CHANNEL = (
    "postal mail is never a nudge channel: it is too slow to move a decision; "
    "use voicemail or email"
)

MediumItem = Annotated[Medium, _enum_item(Medium, "medium", _POSTAL_MEDIUM)]
ChannelItem = Annotated[Channel, _enum_item(Channel, "channel", _POSTAL_CHANNEL)]
MessageKindItem = Annotated[MessageKind, _enum_item(MessageKind, "message kind", None)]
WeekdayItem = Annotated[Weekday, BeforeValidator(_weekday_item)]


def _parse_local_time(value: object) -> time:
    """Read a wall-clock time from ``"09:00"``, ``"09:00:30"`` or a TOML local time."""
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError("a local time takes no UTC offset: it is read in the recipient's zone")
        if value.microsecond:
            raise ValueError("a local time has at most seconds, no fractions")
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", value.strip())
        if match:
            hour, minute, second = (int(part or 0) for part in match.groups())
            if hour < 24 and minute < 60 and second < 60:
                return time(hour, minute, second)
        raise ValueError(
            f"expected a local time such as \"09:00\" (00:00 to 23:59:59), got {value!r}"
        )
    raise ValueError(f"expected a local time such as \"09:00\", got {_toml_type(value)}")


def _format_local_time(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


LocalTime = Annotated[
    time, BeforeValidator(_parse_local_time), PlainSerializer(_format_local_time, return_type=str)
]


def _at_least(minimum: int, why: str) -> AfterValidator:
    """An after-validator refusing values below ``minimum`` with the playbook's reason."""

    def check(value: int) -> int:
        if value < minimum:
            raise ValueError(f"must be at least {minimum} (got {value}): {why}")
        return value

    return AfterValidator(check)


def _at_most(maximum: int, why: str) -> AfterValidator:
    """An after-validator refusing values above ``maximum`` with the playbook's reason."""

    def check(value: int) -> int:
        if value > maximum:
            raise ValueError(f"must be at most {maximum} (got {value}): {why}")
        return value

    return AfterValidator(check)


def _no_duplicates(values: tuple[Any, ...], noun: str) -> tuple[Any, ...]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"lists {noun} {str(value)!r} twice")
        seen.add(value)
    return values


_SECTION = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- sections


class ThankYouRule(BaseModel):
    """Thank the interviewer the same day, by the best medium available.

    A card is eligible only when the interview was in person AND the candidate can
    leave it at reception that same day; otherwise the next medium in ``media``.
    """

    model_config = _SECTION

    deadline_days_after_interview: Annotated[
        StrictInt,
        _at_least(0, "the deadline cannot come before the interview"),
        _at_most(3, "a thank-you later than that reads as an afterthought"),
    ] = Field(0, description="0 = the interview's own local day.")
    deadline_local_time: LocalTime = Field(
        time(23, 59, 59), description="Local time (interview's place) the deadline falls at."
    )
    media: tuple[MediumItem, ...] = Field(
        (Medium.CARD, Medium.EMAIL, Medium.VOICEMAIL),
        description="Preference order; the first one possible is used.",
    )
    email_after_voicemail_within_minutes: Annotated[
        StrictInt,
        _at_least(0, "the email follows the voicemail, not the other way round"),
        _at_most(60, "the email must follow the voicemail at once"),
    ] = Field(5, description="A voicemail thank-you's email goes this many minutes after it.")
    within_send_window: StrictBool = Field(
        False, description="False: the same-day deadline beats the send window."
    )

    @field_validator("media")
    @classmethod
    def _media_listed_once(cls, media: tuple[Medium, ...]) -> tuple[Medium, ...]:
        if not media:
            raise ValueError(
                "needs at least one medium; the playbook order is card, email, voicemail"
            )
        return _no_duplicates(media, "medium")


class PatienceRule(BaseModel):
    """Processes take 3-4 weeks; respect the timeline the employer gave."""

    model_config = _SECTION

    first_nudge_after_timeline_min_business_days: Annotated[
        StrictInt, _at_least(0, "never nudge before the early end of the stated timeline")
    ] = Field(0, description="Business days after interview + min_weeks before the first nudge.")
    first_nudge_without_timeline_business_days: Annotated[
        StrictInt, _at_least(1, "give the employer at least a business day")
    ] = Field(7, description="No timeline stated: first nudge this many business days after.")
    window_without_timeline_weeks: Annotated[
        StrictInt,
        _at_least(1, "a process takes weeks, not days"),
        _at_most(26, "past half a year the candidacy has stalled whatever the rule says"),
    ] = Field(4, description="Assumed late end of the process when no timeline was stated.")


class NudgeRule(BaseModel):
    """How to nudge: a voicemail, then an email right after, spaced in business days."""

    model_config = _SECTION

    spacing_business_days: Annotated[
        StrictInt, _at_least(1, "a spacing of 0 would nudge twice on the same day")
    ] = Field(5, description="Business days between two nudges.")
    channels: tuple[ChannelItem, ...] = Field(
        (Channel.VOICEMAIL, Channel.EMAIL), description="Channels of one nudge, in order."
    )
    channel_gap_minutes: Annotated[
        StrictInt,
        _at_least(0, "channels go in order"),
        _at_most(60, "the email follows the voicemail right after, not hours later"),
    ] = Field(5, description="The nudge's email goes this many minutes after its voicemail.")

    @field_validator("channels")
    @classmethod
    def _channels_listed_once(cls, channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if not channels:
            raise ValueError(
                "a nudge needs at least one channel; the playbook uses voicemail then email"
            )
        return _no_duplicates(channels, "channel")


class PestLine(BaseModel):
    """The line between persistent and pest: the most nudges before declaring a stall."""

    model_config = _SECTION

    max_nudges: Annotated[
        StrictInt,
        _at_least(0, "0 means never nudge; fewer than none is impossible"),
        _at_most(10, "more than 10 nudges is pestering by any measure"),
    ] = Field(3, description="Nudges allowed before the candidacy can be declared stalled.")


class StallRule(BaseModel):
    """Stalled once the nudges are exhausted and the timeline's late end plus grace passed."""

    model_config = _SECTION

    grace_business_days: Annotated[
        StrictInt, _at_least(0, "the grace period cannot be negative")
    ] = Field(5, description="Business days after the late end of the timeline.")


class FollowUpRule(BaseModel):
    """When the interviewer asked to be followed up: call until the next step is set."""

    model_config = _SECTION

    first_nudge_after_business_days: Annotated[
        StrictInt, _at_least(1, "the thank-you already covers the interview day")
    ] = Field(2, description="Replaces the timeline wait: first nudge after this many days.")
    spacing_business_days: Annotated[
        StrictInt, _at_least(1, "a spacing of 0 would call twice on the same day")
    ] = Field(2, description="Business days between follow-up nudges.")
    max_nudges: Annotated[
        StrictInt,
        _at_least(0, "fewer than no nudges is impossible"),
        _at_most(10, "more than 10 calls is pestering even when asked to follow up"),
    ] = Field(6, description="The pest line when asked to follow up.")


class CompetingOfferRule(BaseModel):
    """A competing offer with a deadline: one tactful nudge well before that deadline."""

    model_config = _SECTION

    nudge_business_days_before_deadline: Annotated[
        StrictInt,
        _at_least(1, "on the deadline day itself it is an ultimatum, not a tactful nudge"),
        _at_most(20, "that far ahead the offer is not yet pressing"),
    ] = Field(3, description="The offer nudge goes this many business days before the deadline.")
    counts_toward_pest_line: StrictBool = Field(
        False, description="False: the offer nudge is news, not one more nudge."
    )


class SendWindow(BaseModel):
    """Local hours, in the RECIPIENT's time zone, when messages may arrive: ``[start, end)``."""

    model_config = _SECTION

    start: LocalTime = time(9, 0)
    end: LocalTime = time(17, 0)

    @model_validator(mode="after")
    def _not_empty(self) -> SendWindow:
        if self.end == self.start:
            raise _Invalid(
                "end",
                f"the send window is empty: it starts and ends at {_format_local_time(self.start)}",
            )
        if self.end < self.start:
            raise _Invalid(
                "end",
                f"must be after start ({_format_local_time(self.end)} < "
                f"{_format_local_time(self.start)}): a send window cannot wrap past midnight",
            )
        return self


class QuietHours(BaseModel):
    """Local hours, in the recipient's time zone, when nothing is sent; may wrap midnight."""

    model_config = _SECTION

    start: LocalTime = time(20, 0)
    end: LocalTime = time(8, 0)

    @model_validator(mode="after")
    def _not_whole_day(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError(
                f"quiet hours from {_format_local_time(self.start)} to "
                f"{_format_local_time(self.end)} cover the whole day: nothing could ever be sent"
            )
        return self


class WorkingWeek(BaseModel):
    """The days nudges and business-day counts use."""

    model_config = _SECTION

    days: tuple[WeekdayItem, ...] = (
        Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI,
    )

    @field_validator("days")
    @classmethod
    def _some_days_once(cls, days: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        if not days:
            raise ValueError("a working week needs at least one working day")
        return _no_duplicates(days, "weekday")

    @property
    def weekday_numbers(self) -> tuple[int, ...]:
        """The working days as ``date.weekday()`` numbers, sorted."""
        return tuple(sorted(day.number for day in self.days))


class HolidayRule(BaseModel):
    """Whether public holidays (country/subdivision given per candidacy) are skipped."""

    model_config = _SECTION

    honour: StrictBool = Field(True, description="Skip public holidays like weekends.")
    observed: StrictBool = Field(
        True, description="Also skip the observed day of a weekend holiday."
    )


class Routing(BaseModel):
    """Which message kinds each transition or timer produces, in order (empty: none)."""

    model_config = _SECTION

    next_step_closed: tuple[MessageKindItem, ...] = (MessageKind.THANK_YOU,)
    thank_you_due: tuple[MessageKindItem, ...] = (MessageKind.REMINDER_THANK_YOU_DUE,)
    thank_you_overdue: tuple[MessageKindItem, ...] = (MessageKind.ALERT_OVERDUE,)
    nudge_due: tuple[MessageKindItem, ...] = (MessageKind.NUDGE_VOICEMAIL, MessageKind.NUDGE_EMAIL)
    offer_deadline_near: tuple[MessageKindItem, ...] = (MessageKind.OFFER_NUDGE,)
    stalled: tuple[MessageKindItem, ...] = (MessageKind.ALERT_STALLED,)
    next_step_tomorrow: tuple[MessageKindItem, ...] = (MessageKind.REMINDER_NEXT_STEP,)

    @field_validator("*")
    @classmethod
    def _kinds_listed_once(cls, kinds: tuple[MessageKind, ...]) -> tuple[MessageKind, ...]:
        return _no_duplicates(kinds, "message kind")

    def kinds_for(self, trigger: str) -> tuple[MessageKind, ...]:
        """The message kinds routed from ``trigger`` (a field name of this table)."""
        if trigger not in type(self).model_fields:
            known = ", ".join(type(self).model_fields)
            raise KeyError(f"unknown trigger {trigger!r}; known: {known}")
        kinds: tuple[MessageKind, ...] = getattr(self, trigger)
        return kinds


class PauseRule(BaseModel):
    """Pauses: an out-of-office reply or a manual pause holds every timer until the return date.

    The slip rule (see :func:`slip_after_pause`): afterwards every later step shifts by
    the paused duration; a step that fell due during the pause fires once at resume,
    never in a burst.
    """

    model_config = _SECTION

    out_of_office_pauses: StrictBool = Field(
        True, description="An out-of-office reply pauses the candidacy until its return date."
    )
    no_return_date_business_days: Annotated[
        StrictInt,
        _at_least(1, "a pause must last at least a business day"),
        _at_most(30, "beyond six weeks ask the candidate instead of waiting silently"),
    ] = Field(5, description="Pause length when an out-of-office reply gives no return date.")


_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class CadencePolicy(BaseModel):
    """The playbook's timing rules, named and versioned; defaults encode the playbook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Short lowercase name, e.g. 'playbook'.")
    version: Annotated[StrictInt, _at_least(1, "versions count from 1")]
    description: str = ""
    thank_you: ThankYouRule = ThankYouRule()
    patience: PatienceRule = PatienceRule()
    nudge: NudgeRule = NudgeRule()
    pest_line: PestLine = PestLine()
    stall: StallRule = StallRule()
    follow_up: FollowUpRule = FollowUpRule()
    competing_offer: CompetingOfferRule = CompetingOfferRule()
    send_window: SendWindow = SendWindow()
    quiet_hours: QuietHours = QuietHours()
    working_week: WorkingWeek = WorkingWeek()
    holidays: HolidayRule = HolidayRule()
    routing: Routing = Routing()
    pause: PauseRule = PauseRule()

    @field_validator("name")
    @classmethod
    def _short_name(cls, name: str) -> str:
        if not _NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a policy name: use lowercase letters, digits, '-', '_' or '.', "
                "starting with a letter or digit (e.g. 'playbook')"
            )
        return name

    @model_validator(mode="after")
    def _coherent(self) -> CadencePolicy:
        if not allowed_send_intervals(self.send_window, self.quiet_hours):
            raise _Invalid(
                "send_window",
                f"the send window {_format_local_time(self.send_window.start)}-"
                f"{_format_local_time(self.send_window.end)} lies entirely inside the quiet hours "
                f"{_format_local_time(self.quiet_hours.start)}-"
                f"{_format_local_time(self.quiet_hours.end)}: nothing could ever be sent",
            )
        expected = tuple(MessageKind(f"nudge_{channel.value}") for channel in self.nudge.channels)
        if self.routing.nudge_due != expected:
            raise _Invalid(
                "routing.nudge_due",
                f"must be {[kind.value for kind in expected]} to match nudge.channels "
                f"{[channel.value for channel in self.nudge.channels]}",
            )
        return self

    def work_calendar(self, country: str | None, subdivision: str | None = None) -> WorkCalendar:
        """The shared working-day calendar of a candidacy's place under this policy."""
        return work_calendar(
            country, subdivision, self.working_week.weekday_numbers,
            self.holidays.honour, self.holidays.observed,
        )

    @cached_property
    def places(self) -> dict[tuple[Any, str | None, str | None], Any]:
        """The cadence's calendar maths for each candidacy place (time zone, country,
        subdivision) under these rules, filled by `engine.decisions.place_of`: kept with the
        policy, which is frozen, so nothing derived from it goes stale."""
        return {}

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> CadencePolicy:
        """pydantic's copy, less the `places` derived from the original's rules (``update``
        may change them)."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("places", None)
        return copied

    def fingerprint(self) -> str:
        """SHA-256 of the canonical TOML: changes whenever any rule changes."""
        return hashlib.sha256(policy_to_toml(self).encode()).hexdigest()


# ---------------------------------------------------------------- the slip rule


def slip_after_pause(due: datetime, paused_at: datetime, resumed_at: datetime) -> datetime:
    """When a pending step fires once a pause ``[paused_at, resumed_at)`` is over.

    The slip rule: timers are held during the pause, so a step due at or after
    ``paused_at`` shifts later by the paused duration; a step already due before the
    pause fires once, at ``resumed_at``. Since each step is due a spacing after the
    previous one actually fired, at most one step fires at resume: never a burst.
    """
    if resumed_at < paused_at:
        raise ValueError(
            f"a pause cannot end ({resumed_at.isoformat()}) "
            f"before it starts ({paused_at.isoformat()})"
        )
    if due < paused_at:
        return resumed_at
    return due + (resumed_at - paused_at)


# ---------------------------------------------------------------- loading


_TOML_TYPES: dict[type, str] = {
    bool: "boolean", int: "integer", float: "float", str: "string",
    list: "array", tuple: "array", dict: "table", time: "time", datetime: "datetime",
}


def _toml_type(value: object) -> str:
    for python_type, toml_name in _TOML_TYPES.items():
        if type(value) is python_type:
            return f"{toml_name} {value!r}" if toml_name not in ("array", "table") else toml_name
    return type(value).__name__


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _known_fields(loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model section at ``loc`` (for 'did you mean' hints)."""
    model: type[BaseModel] = CadencePolicy
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _closest(word: str, known: list[str]) -> str | None:
    """The known field a typo most likely meant; prefixes count, as field names are long."""
    best, best_score = None, 0.0
    for name in known:
        score = max(
            difflib.SequenceMatcher(None, word, name).ratio(),
            difflib.SequenceMatcher(None, word, name[: len(word) + 1]).ratio(),
        )
        if score > best_score:
            best, best_score = name, score
    return best if best_score >= 0.75 else None


def _reason(error: Mapping[str, Any]) -> tuple[tuple[int | str, ...], str]:
    """Turn one pydantic error into (location, plain reason)."""
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "value_error":
        cause = ctx.get("error")
        if isinstance(cause, _Invalid):
            loc = loc + tuple(cause.field.split("."))
        return loc, str(cause) if cause is not None else error["msg"]
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1])
        close = _closest(str(loc[-1]), known)
        hint = f"did you mean {close!r}? " if close else ""
        listing = f"known here: {', '.join(known)}" if known else "no fields are known here"
        return loc, f"unknown field ({hint}{listing})"
    if kind == "missing":
        return loc, "is required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a table [{_path(loc)}], got {_toml_type(value)}"
    if kind in ("tuple_type", "list_type"):
        return loc, f"expected an array, got {_toml_type(value)}"
    if kind == "int_type":
        return loc, f"expected an integer, got {_toml_type(value)}"
    if kind == "bool_type":
        return loc, f"expected true or false, got {_toml_type(value)}"
    if kind == "string_type":
        return loc, f"expected a string, got {_toml_type(value)}"
    return loc, f"{error['msg']} (got {_toml_type(value)})"


def policy_from_dict(data: object, source: str = "<policy>") -> CadencePolicy:
    """Validate a mapping (e.g. parsed TOML or JSON: anything, checked here) into a policy,
    or raise :class:`PolicyError`."""
    if not isinstance(data, Mapping):
        reason = f"expected a table of policy fields, got {_toml_type(data)}"
        raise PolicyError(source, [(None, reason)])
    try:
        return CadencePolicy.model_validate(dict(data))
    except ValidationError as exc:
        problems: list[tuple[str | None, str]] = []
        for error in exc.errors():
            loc, reason = _reason(error)
            problems.append((_path(loc) or None, reason))
        raise PolicyError(source, problems) from None


def parse_policy(text: str, source: str = "<string>") -> CadencePolicy:
    """Validate TOML text into a policy, or raise :class:`PolicyError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, [(None, f"invalid TOML: {exc}")]) from None
    return policy_from_dict(data, source)


def load_policy(path: str | Path) -> CadencePolicy:
    """Read and validate a TOML policy file; any problem raises :class:`PolicyError`.

    The error names the file, the field path (e.g. ``nudge.spacing_business_days``)
    and the reason. Nothing is returned, so nothing is applied, on error.
    """
    file = Path(path)
    source = str(file)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise PolicyError(source, [(None, "no such policy file")]) from None
    except IsADirectoryError:
        raise PolicyError(source, [(None, "is a directory, not a policy file")]) from None
    except OSError as exc:
        raise PolicyError(source, [(None, f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [(None, f"not UTF-8 text (byte {exc.start})")]) from None
    return parse_policy(text, source)


@lru_cache(maxsize=1)
def default_policy() -> CadencePolicy:
    """The shipped playbook policy (``engine/default_policy.toml``, name 'playbook', version 1)."""
    return load_policy(DEFAULT_POLICY_PATH)


# ---------------------------------------------------------------- output


def policy_to_toml(policy: CadencePolicy) -> str:
    """The policy as TOML that :func:`parse_policy` reads back to an equal policy."""
    return tomli_w.dumps(policy.model_dump(mode="json"))


class PolicyChange(NamedTuple):
    """One field whose value differs between two policies."""

    field: str
    old: Any
    new: Any


def _leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            flat.update(_leaves(value, path))
        else:
            flat[path] = value
    return flat


def rule_fields(policy: CadencePolicy) -> dict[str, Any]:
    """Every field of ``policy`` by dotted path, in field order, as written in TOML."""
    return _leaves(policy.model_dump(mode="json"))


def diff_policies(a: CadencePolicy, b: CadencePolicy) -> list[PolicyChange]:
    """Every field whose value differs, as ``(field_path, a_value, b_value)``, in field order.

    Values are shown as they are written in TOML (strings for times and enums).
    """
    left = _leaves(a.model_dump(mode="json"))
    right = _leaves(b.model_dump(mode="json"))
    return [
        PolicyChange(path, left[path], right[path])
        for path in left
        if left[path] != right[path]
    ]
