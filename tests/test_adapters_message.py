"""Message ids and message contexts."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from adapters_fixtures import make_context
from pydantic import ValidationError

from adapters.message import message_id
from engine.policy import MessageKind


def test_message_id_is_a_stable_uuid5_per_candidacy_event_and_channel() -> None:
    first = message_id("candidacy-1", 3, "email")
    assert first == message_id("candidacy-1", 3, "email")
    assert first == message_id("candidacy-1", "3", " Email ")
    assert uuid.UUID(first).version == 5
    others = {message_id("candidacy-1", 4, "email"), message_id("candidacy-2", 3, "email"),
              message_id("candidacy-1", 3, "voicemail")}
    assert first not in others and len(others) == 3


def test_message_id_does_not_change_between_releases() -> None:
    # A changed namespace would resend every message after an upgrade.
    assert message_id("c", 1, "email") == "b979675e-0525-5392-bc51-9012a70e3f7b"


def test_recipients_default_to_every_interviewer_and_must_be_interviewers() -> None:
    assert [i.name for i in make_context().addressees] == ["Sarah Whitfield", "John Okafor"]
    only = make_context(recipients=["John Okafor"])
    assert [i.name for i in only.addressees] == ["John Okafor"]
    with pytest.raises(ValidationError, match="not among the interviewers"):
        make_context(recipients=["Jon Okafor"])


@pytest.mark.parametrize(("kind", "missing", "needs"), [
    ("offer_nudge", {"competing_offer": None}, "competing_offer"),
    ("reminder_next_step", {"next_step": None}, "next_step.scheduled_for"),
    ("next_step_invite", {"next_step": {"description": "a call"}}, "next_step.scheduled_for"),
    ("alert_stalled", {"recruiter": None}, "recruiter"),
])
def test_each_kind_demands_what_its_templates_need(kind: str, missing: dict, needs: str) -> None:
    with pytest.raises(ValidationError, match=needs.replace(".", r"\.")):
        make_context(kind, **missing)


def test_naive_datetimes_and_unknown_zones_are_refused() -> None:
    with pytest.raises(ValidationError):
        make_context(interviewed_at=datetime(2026, 11, 25, 10, 0))
    with pytest.raises(ValidationError, match="IANA"):
        make_context(timezone="Mars/Olympus")


def test_audience_follows_the_kind() -> None:
    assert [p.name for p in make_context("reminder_next_step").audience()] == ["Maya Castellanos"]
    assert [p.name for p in make_context("alert_overdue").audience()] == ["Dana Reyes"]
    assert make_context("thank_you").candidate_authored
    assert not make_context(MessageKind.ALERT_STALLED.value).candidate_authored
