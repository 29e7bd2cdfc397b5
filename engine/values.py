"""The facts a user hands us, validated before anything is recorded.

Each model refuses unknown fields (a typo never passes silently) and names
the field and the reason when it refuses.  The API reuses these models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.errors import InvalidInput

# Control characters: PostgreSQL's text columns refuse NUL outright, and the others would
# reach terminals and mail headers; a Text keeps its tabs and line breaks.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_in_text(value: str) -> str:
    if _CONTROL_IN_TEXT.search(value):
        raise ValueError("must not contain control characters (other than tab and line breaks)")
    return value


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
                 AfterValidator(_no_control_in_text)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                 AfterValidator(_no_control)]

_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone name (e.g. Europe/London)") from None
    if value not in _timezones():
        raise ValueError(f"{value!r} is not an IANA time zone name (e.g. Europe/London)")
    return value


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _countries() -> frozenset[str]:
    import holidays  # a heavy import, needed only when a country is given

    return frozenset(holidays.list_supported_countries())


def _country(value: str) -> str:
    code = value.upper()
    if code not in _countries():
        raise ValueError(f"{value!r} is not an ISO 3166 country code with a holiday calendar")
    return code


def _not_a_number(value: Any) -> Any:
    # Lax parsing would read 20000 as seconds since 1970: a typo must not become a date.
    if isinstance(value, (int, float)):
        raise ValueError("must be ISO-8601 text, e.g. 2026-11-25T10:00:00+01:00, not a number")
    return value


FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2200, 12, 31)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The range every moment and date given to Closer must fall in: far enough inside
`datetime`'s own (years 1 to 9999) that whatever the calendar derives from it (local days in
any zone, weeks of patience, a year of holidays) never overflows."""

_OUT_OF_RANGE = f"must be between {FIRST_DAY} and {LAST_DAY} (UTC)"


def _moment_in_range(moment: datetime) -> datetime:
    # Aware datetimes compare without conversion: 0001-01-01T00:00+14:00 is refused here,
    # not overflowed by a later astimezone().
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(_OUT_OF_RANGE)
    return moment


def _day_in_range(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(_OUT_OF_RANGE)
    return day


Moment = Annotated[AwareDatetime, BeforeValidator(_not_a_number),
                   AfterValidator(_moment_in_range)]
"""An aware date-time, given as ISO-8601 text with an offset, between `EARLIEST` and
`LATEST`."""

Day = Annotated[date, BeforeValidator(_not_a_number), AfterValidator(_day_in_range)]
"""A calendar date, given as ISO-8601 text (2026-12-01), between `FIRST_DAY` and
`LAST_DAY`."""


def in_range(moment: datetime, field: str) -> datetime:
    """``moment`` if it lies between `EARLIEST` and `LATEST`, else `InvalidInput` naming
    ``field`` (for moments that do not come through a model, e.g. the CLI's options)."""
    try:
        return _moment_in_range(moment)
    except ValueError as error:
        raise InvalidInput(field, str(error)) from None


def day_in_range(day: date, field: str) -> date:
    """``day`` if it lies between `FIRST_DAY` and `LAST_DAY`, else `InvalidInput`."""
    try:
        return _day_in_range(day)
    except ValueError as error:
        raise InvalidInput(field, str(error)) from None

Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
"""An email address (at most 254 characters, as SMTP allows: checked before the pattern)."""
TimeZoneName = Annotated[str, AfterValidator(_timezone)]
CountryCode = Annotated[str, AfterValidator(_country)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InterviewFormat(StrEnum):
    IN_PERSON = "in_person"
    VIDEO = "video"
    PHONE = "phone"


class ThankYouMedium(StrEnum):
    """How a thank-you travels.  Postal mail is not one: it arrives too late."""

    CARD = "card"
    EMAIL = "email"
    VOICEMAIL_AND_EMAIL = "voicemail_and_email"


class NudgeChannel(StrEnum):
    VOICEMAIL = "voicemail"
    EMAIL = "email"
    PHONE = "phone"


class ReplyKind(StrEnum):
    ADVANCED = "advanced"
    REJECTED = "rejected"
    UPDATE = "update"
    OUT_OF_OFFICE = "out_of_office"


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be one line, without line breaks")
    return value


OneLine = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
                    AfterValidator(_one_line)]
"""One line of text (no line breaks), e.g. the candidate's "why I fit"."""


class Candidate(_Strict):
    name: Name
    email: Email
    phone: Name | None = None
    why_i_fit: OneLine | None = Field(
        default=None, description="the candidate's one line on why they fit, for the "
                                  "thank-you (e.g. \"I ran the same migration at Globex.\")")


class Interviewer(_Strict):
    """An interviewer exactly as their card spells them: the thank-you must match."""

    name: Name
    title: Name
    email: Email | None = None
    phone: Name | None = None


class Timeline(_Strict):
    """The timeline the employer stated, e.g. "3 to 4 weeks"."""

    min_weeks: float = Field(gt=0, le=52)
    max_weeks: float = Field(gt=0, le=52)

    @model_validator(mode="after")
    def _ordered(self) -> Timeline:
        if self.max_weeks < self.min_weeks:
            raise ValueError("max_weeks must not be less than min_weeks")
        return self


class Interview(_Strict):
    """Everything recorded about one interview round."""

    format: InterviewFormat
    interviewers: list[Interviewer] = Field(min_length=1, max_length=50)
    interviewed_at: Moment
    timeline: Timeline | None = None
    asked_to_follow_up: bool = False

    @model_validator(mode="after")
    def _distinct_names(self) -> Interview:
        names = [i.name for i in self.interviewers]
        if len(set(names)) != len(names):
            raise ValueError("interviewers must have distinct names")
        return self


class NewCandidacy(Interview):
    """The first interview, with who and where it concerns."""

    candidate: Candidate
    company: Name
    role: Name
    timezone: TimeZoneName
    country: CountryCode | None = None
    subdivision: Name | None = None
    applied_on: Day | None = Field(
        default=None, description="the day the candidate applied for the role, if known "
                                  "(not after the interview's day in its time zone)")

    @field_validator("applied_on")
    @classmethod
    def _applied_before_the_interview(cls, applied_on: date | None,
                                      info: ValidationInfo) -> date | None:
        # A field validator, so the refusal names the field `applied_on`; declared after
        # `interviewed_at` and `timezone`, which are in `info.data` when they are valid.
        moment, zone = info.data.get("interviewed_at"), info.data.get("timezone")
        if applied_on is None or moment is None or zone is None:
            return applied_on
        day = moment.astimezone(ZoneInfo(zone)).date()
        if applied_on > day:
            raise ValueError(f"{applied_on.isoformat()} is after the interview's day "
                             f"({day.isoformat()} in {zone})")
        return applied_on


class NextRound(_Strict):
    """The next interview round; unset fields carry over from the last round."""

    format: InterviewFormat | None = None
    interviewers: list[Interviewer] | None = Field(default=None, min_length=1, max_length=50)
    interviewed_at: Moment | None = None
    timeline: Timeline | None = None
    asked_to_follow_up: bool | None = None


class Reply(_Strict):
    kind: ReplyKind
    note: Text | None = None
    received_at: Moment | None = None
    back_on: Day | None = Field(default=None, validate_default=True)

    @field_validator("back_on")
    @classmethod
    def _back_on_for_out_of_office(cls, back_on: date | None, info: ValidationInfo) -> date | None:
        # A field validator, so the refusal names the field `back_on`.
        # An out-of-office reply without a return date pauses for the policy's default.
        kind = info.data.get("kind")
        if kind is not ReplyKind.OUT_OF_OFFICE and back_on is not None:
            raise ValueError("back_on only goes with an out_of_office reply")
        return back_on


class Offer(_Strict):
    company: Name
    deadline: Moment
    noted_at: Moment | None = None


class CorrectedField(StrEnum):
    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    TITLE = "title"
    WHY_I_FIT = "why_i_fit"


class Correction(_Strict):
    """A recorded detail that was wrong: whose (``candidate`` or an interviewer's name as
    recorded now), which field, and its right value."""

    person: Name = Field(description="`candidate`, or an interviewer's name as recorded now")
    field: CorrectedField
    value: str = Field(description="the right value (an email address for `email`; one "
                                   "line for `why_i_fit`)")

    @field_validator("value")
    @classmethod
    def _value_fits_the_field(cls, value: str, info: ValidationInfo) -> str:
        field = info.data.get("field")
        if field is None:
            return value  # the field itself is refused
        try:
            return str(_corrected_value(field).validate_python(value))
        except ValidationError as error:
            raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None


@cache
def _corrected_value(field: CorrectedField) -> Any:
    """How ``field``'s value is validated: as it is when first recorded."""
    kinds: dict[CorrectedField, Any] = {
        CorrectedField.EMAIL: Annotated[str, StringConstraints(strip_whitespace=True),
                                        AfterValidator(_email)],
        CorrectedField.WHY_I_FIT: OneLine,
    }
    return TypeAdapter(kinds.get(field, Name))


class ThankYou(_Strict):
    medium: ThankYouMedium
    to: list[Name] = Field(default_factory=list)
    covers_panel: bool = False

    @field_validator("medium", mode="before")
    @classmethod
    def _never_postal(cls, medium: Any) -> Any:
        # A field validator, so the refusal names the field `medium`.
        if str(medium).lower() in {"postal", "mail", "letter", "post", "postal_mail"}:
            raise ValueError("postal mail arrives too late: use card, email or voicemail_and_email")
        return medium


@dataclass(frozen=True, slots=True)
class Actor:
    """Who issues a command: a user of a workspace, maybe on a candidate's behalf."""

    user: str
    workspace: str
    on_behalf_of: str | None = None


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], data: Any) -> Model:
    """``model`` built from ``data``, or `InvalidInput` naming the first bad field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise invalid_input(error) from None


def invalid_input(error: ValidationError) -> InvalidInput:
    """The first problem of a pydantic error as `InvalidInput`; the others joined in."""
    problems = error.errors()
    first = problems[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    reason = first["msg"].removeprefix("Value error, ")
    if len(problems) > 1:
        reason += f" (and {len(problems) - 1} more problem(s))"
    return InvalidInput(field, reason)


def aware(moment: datetime | None, field: str) -> datetime | None:
    """Refuse a naive datetime for ``field`` (its zone would be a guess), and one outside
    `EARLIEST`..`LATEST`."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(field, "needs a time zone offset, e.g. 2026-11-25T10:00:00+01:00")
    return in_range(moment, field)


__all__ = [
    "EARLIEST", "FIRST_DAY", "LAST_DAY", "LATEST", "Actor", "Candidate", "CorrectedField",
    "Correction", "Day", "Interview", "InterviewFormat", "Interviewer", "Moment", "NewCandidacy",
    "NextRound", "NudgeChannel", "Offer", "Reply", "ReplyKind", "ThankYou", "ThankYouMedium",
    "Timeline", "aware", "day_in_range", "in_range", "invalid_input", "validated",
]
