"""One test per playbook timing rule, each driving the scheduler through time.

Every test records facts through the application at fixed-clock moments, then
moves the clock forward in steps, calling `engine.scheduler.tick` at each, and
asserts what the scheduler recorded: the event, when, and the rule named in its
``decided_by``.  Nothing here reads the wall clock.

The timing rules themselves do not depend on the store, so they run in memory (the
unit tier) and on SQLite (`app`); what does touch the store (idempotency,
per-candidacy policies, published versions, a whole walk) runs on all three
(`candidacies`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from builders import interview
from outbox_support import console_outbox
from typer.testing import CliRunner

from conftest import MEMORY, memory_url
from engine.application import SCHEDULER, Candidacies, HistoryEntry
from engine.clock import FixedClock
from engine.errors import CandidacyNotFound, InvalidInput
from engine.policy import PolicyError, default_policy, parse_policy, policy_from_dict
from engine.scheduler import tick
from engine.store import eventsourcing_env
from engine.values import Actor
from engine.work_calendar import is_send_time

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
STEP = timedelta(minutes=30)
WORKSPACE = "agency"


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(params=[MEMORY, "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path,
        clock: FixedClock) -> Iterator[Candidacies]:
    """The application on a fresh in-memory store or SQLite file (timing rules do not
    depend on the store)."""
    url = memory_url() if request.param == "memory" else f"sqlite:///{tmp_path}/rules.db"
    application = Candidacies(eventsourcing_env(url), clock=clock)
    yield application
    application.close()


def utc(text: str) -> datetime:
    """An ISO-8601 moment with its offset, in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


def local(text: str, zone: ZoneInfo) -> datetime:
    """A wall-clock moment in ``zone``, in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def drive(app: Candidacies, until: datetime, step: timedelta = STEP) -> None:
    """Tick at the clock's moment, then every ``step`` up to and including ``until``; the
    outbox delivers what each tick decided (decided → dispatched → delivered)."""
    clock: FixedClock = app.clock  # type: ignore[assignment]
    now = clock.now()
    while True:
        clock.set(now)
        tick(app, now)
        console_outbox(app).run_once()
        if now >= until:
            return
        now = min(now + step, until)


def open_candidacy(app: Candidacies, actor: Actor, *, at: datetime | None = None,
                   policy: dict[str, Any] | None = None, **overrides: Any) -> str:
    """Record an interview (at ``at``, default: the clock's moment) with no hesitations."""
    if at is not None:
        app.clock.set(at)  # type: ignore[attr-defined]
    details = interview(**overrides)
    if at is not None and "interviewed_at" not in overrides:
        details["interviewed_at"] = at.isoformat()
    candidacy_id = app.record_interview(actor, details, policy=policy).candidacy_id
    app.record_no_hesitations(actor, candidacy_id)
    return candidacy_id


def thanked(app: Candidacies, actor: Actor, at: datetime, **overrides: Any) -> str:
    """A candidacy whose next step was closed and thank-you emailed by hand at ``at``
    (so it is awaiting from ``at``); the scheduler is not involved yet."""
    candidacy_id = open_candidacy(app, actor, at=at, **overrides)
    app.close_next_step(actor, candidacy_id, "Final round with the CTO")
    app.send_thank_you(actor, candidacy_id, "email", covers_panel=True)
    return candidacy_id


def decisions(app: Candidacies, candidacy_id: str, *types: str) -> list[HistoryEntry]:
    """The events the scheduler recorded for a policy (optionally of some types)."""
    return [e for e in app.history(candidacy_id, WORKSPACE)
            if e.decided_by is not None and (not types or e.type in types)]


def due(entry: HistoryEntry) -> datetime:
    assert entry.decided_by is not None
    return datetime.fromisoformat(entry.decided_by["due_at"])


def rules(entries: list[HistoryEntry]) -> list[tuple[str, str]]:
    return [(e.type, e.decided_by["rule"]) for e in entries]  # type: ignore[index]


@pytest.fixture
def actor() -> Actor:
    return Actor(user="coach@agency.example", workspace=WORKSPACE, on_behalf_of="maya")


def publish(app: Candidacies, name: str, version: int, **sections: Any) -> dict[str, Any]:
    """Publish a policy (default values except ``sections``); return its reference."""
    app.policies.publish(policy_from_dict({"name": name, "version": version, **sections}))
    return {"name": name, "version": version}


# ---------------------------------------------------------------- thank the same day


def test_thank_you_goes_the_same_day_the_next_step_is_closed(app: Candidacies,
                                                             actor: Actor) -> None:
    candidacy_id = open_candidacy(app, actor)  # in person, London, Wed 25 Nov 09:00
    app.clock.set(utc("2026-11-25T10:30:00+00:00"))  # type: ignore[attr-defined]
    app.close_next_step(actor, candidacy_id, "Onsite with the CTO")

    drive(app, utc("2026-11-27T12:00:00+00:00"))

    recorded = decisions(app, candidacy_id)
    assert rules(recorded) == [("ThankYouDecided", "thank_you.same_day")]
    thank_you = recorded[0]
    assert thank_you.at == utc("2026-11-25T10:30:00+00:00")
    assert thank_you.actor == SCHEDULER
    # Decided, the stage stays; the outbox's delivery (the card's task, here on the
    # console at once) thanks the panel and starts the wait.
    assert thank_you.stage == "next_step_closed"
    delivered = [e for e in app.history(candidacy_id, WORKSPACE) if e.type == "MessageDelivered"]
    assert [(e.stage, e.at, e.data["trigger_version"]) for e in delivered] == [
        ("awaiting", thank_you.at, thank_you.version)]
    assert thank_you.data["to"] == ["Daniel Whitfield"]
    assert thank_you.decided_by == {
        "policy": "playbook", "version": 1, "rule": "thank_you.same_day",
        "key": "r1:thank_you", "due_at": "2026-11-25T10:30:00+00:00",
    }
    # Thanked the same day: no overdue alert followed.
    assert decisions(app, candidacy_id, "ReminderSent") == []


def test_thank_you_overdue_alert_fires_once_after_the_interviews_local_day(
        app: Candidacies, actor: Actor) -> None:
    # A video interview at 15:00 in New York (20:00 UTC); the next step is never closed.
    candidacy_id = open_candidacy(
        app, actor, at=utc("2026-11-25T20:30:00+00:00"), format="video",
        interviewed_at="2026-11-25T15:00:00-05:00", timezone="America/New_York", country="US")

    drive(app, utc("2026-11-28T12:00:00+00:00"))

    recorded = decisions(app, candidacy_id)
    assert rules(recorded) == [("ReminderSent", "thank_you.deadline")]
    alert = recorded[0]
    assert alert.data["kind"] == "thank_you_overdue"
    # The end of the interview's LOCAL day (23:59:59 EST), not of the UTC day.
    assert due(alert) == local("2026-11-25T23:59:59", NEW_YORK)
    assert alert.at == utc("2026-11-26T05:00:00+00:00")  # the first tick after it


# ---------------------------------------------------------------- card, email, never postal


@pytest.mark.parametrize(
    ("interview_format", "closed_at", "medium"),
    [
        ("in_person", "2026-11-25T10:30:00+00:00", "card"),  # same day, reception open
        ("video", "2026-11-25T10:30:00+00:00", "email"),  # nobody to leave a card with
        ("in_person", "2026-11-25T18:00:00+00:00", "email"),  # reception closed (17:00)
        ("in_person", "2026-11-26T10:00:00+00:00", "email"),  # closed the next day
    ],
    ids=["in-person-same-day", "video", "in-person-after-hours", "in-person-next-day"],
)
def test_card_preferred_in_person_the_same_day_else_email(
        app: Candidacies, actor: Actor, interview_format: str, closed_at: str,
        medium: str) -> None:
    candidacy_id = open_candidacy(app, actor, format=interview_format)
    app.clock.set(utc(closed_at))  # type: ignore[attr-defined]
    app.close_next_step(actor, candidacy_id, "Onsite with the CTO")

    drive(app, utc(closed_at) + timedelta(hours=6))

    thanks = decisions(app, candidacy_id, "ThankYouDecided")
    assert rules(thanks) == [("ThankYouDecided", "thank_you.same_day")]
    assert thanks[0].data["medium"] == medium
    assert thanks[0].at == due(thanks[0]) == utc(closed_at)


def test_postal_mail_is_never_used(app: Candidacies, actor: Actor) -> None:
    # Refused in a policy, as a thank-you medium and as a nudge channel ...
    for body, field in [('[thank_you]\nmedia = ["card", "postal"]\n', "thank_you.media[1]"),
                        ('[nudge]\nchannels = ["letter"]\n', "nudge.channels[0]")]:
        with pytest.raises(PolicyError) as refused:
            parse_policy('name = "agency"\nversion = 1\n' + body)
        assert refused.value.field == field
        assert "postal mail is never" in refused.value.reason
    # ... and as the medium of a thank-you or the channel of a nudge recorded by hand.
    candidacy_id = open_candidacy(app, actor)
    app.close_next_step(actor, candidacy_id, "Onsite")
    with pytest.raises(InvalidInput, match="postal mail arrives too late"):
        app.send_thank_you(actor, candidacy_id, "postal", covers_panel=True)
    app.send_thank_you(actor, candidacy_id, "card", covers_panel=True)
    with pytest.raises(InvalidInput, match="channels"):
        app.send_nudge(actor, candidacy_id, channels=["postal"])
    # The shipped policy never even considers it.
    assert "postal" not in {m.value for m in default_policy().thank_you.media}


# ---------------------------------------------------------------- how and when to nudge


def test_a_nudge_is_a_voicemail_then_an_email(app: Candidacies, actor: Actor) -> None:
    start = utc("2026-11-25T10:30:00+00:00")
    default = thanked(app, actor, start, asked_to_follow_up=True)
    email_first = publish(app, "email-first", 1,
                          nudge={"channels": ["email", "voicemail"]},
                          routing={"nudge_due": ["nudge_email", "nudge_voicemail"]})
    custom = thanked(app, actor, start, asked_to_follow_up=True, policy=email_first)

    drive(app, utc("2026-11-27T12:00:00+00:00"))

    (nudge,) = decisions(app, default, "NudgeDecided")
    assert nudge.data["channels"] == ["voicemail", "email"]  # in this order
    (other,) = decisions(app, custom, "NudgeDecided")
    assert other.data["channels"] == ["email", "voicemail"]  # the policy's order, kept


def test_no_nudge_before_the_early_end_of_the_stated_timeline(app: Candidacies,
                                                             actor: Actor) -> None:
    # Interview (and thank-you) Wed 25 Nov 10:30 London, "3 to 4 weeks": not before
    # Wed 16 Dec 10:30.
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))

    drive(app, utc("2026-12-16T10:00:00+00:00"))
    assert decisions(app, candidacy_id) == []

    drive(app, utc("2026-12-16T12:00:00+00:00"))
    (nudge,) = decisions(app, candidacy_id)
    assert rules([nudge]) == [("NudgeDecided", "patience.timeline_early_end")]
    assert nudge.at == due(nudge) == utc("2026-12-16T10:30:00+00:00")
    assert nudge.decided_by["key"] == "r1:nudge:1"  # type: ignore[index]


def test_a_nudge_by_hand_does_not_open_the_stated_timeline_early(app: Candidacies,
                                                                  actor: Actor) -> None:
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    app.clock.set(utc("2026-11-27T10:00:00+00:00"))  # type: ignore[attr-defined]
    app.send_nudge(actor, candidacy_id, reason="called the recruiter myself",
                   override={"reason": "the candidate insisted"})

    drive(app, utc("2026-12-17T12:00:00+00:00"))

    # Not 5 business days after the nudge by hand (Fri 4 Dec): the employer said 3 weeks.
    (nudge,) = decisions(app, candidacy_id, "NudgeDecided")
    assert rules([nudge]) == [("NudgeDecided", "patience.timeline_early_end")]
    assert nudge.at == utc("2026-12-16T10:30:00+00:00")
    assert nudge.decided_by["key"] == "r1:nudge:2"  # type: ignore[index]  # it counts


def test_without_a_stated_timeline_the_first_nudge_waits_n_business_days(
        app: Candidacies, actor: Actor) -> None:
    # Thanked Wed 25 Nov 10:30; 7 business days later is Fri 4 Dec 10:30.
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"), timeline=None)

    drive(app, utc("2026-12-05T12:00:00+00:00"))

    (nudge,) = decisions(app, candidacy_id)
    assert rules([nudge]) == [("NudgeDecided", "patience.no_timeline")]
    assert nudge.at == utc("2026-12-04T10:30:00+00:00")


def test_asked_to_follow_up_nudges_before_the_timeline_after_follow_up_days(
        app: Candidacies, actor: Actor) -> None:
    # A "3 to 4 weeks" timeline, but the interviewer asked to be followed up:
    # 2 business days after the thank-you, then every 2 (weekend skipped).
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"),
                           asked_to_follow_up=True)

    drive(app, utc("2026-12-02T12:00:00+00:00"))

    nudges = decisions(app, candidacy_id)
    assert rules(nudges) == [("NudgeDecided", "follow_up.first_nudge"),
                             ("NudgeDecided", "follow_up.spacing")]
    assert [n.at for n in nudges] == [utc("2026-11-27T10:30:00+00:00"),  # Fri
                                      utc("2026-12-01T10:30:00+00:00")]  # Tue


def test_a_competing_offer_deadline_brings_one_tactful_nudge(app: Candidacies,
                                                            actor: Actor) -> None:
    # A slow process (first nudge not before Wed 16 Dec) ...
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    drive(app, utc("2026-11-30T10:00:00+00:00"))
    # ... then, on Mon 30 Nov, an offer elsewhere that must be answered by Fri 4 Dec noon.
    app.note_competing_offer(actor, candidacy_id, "Contoso",
                             local("2026-12-04T12:00:00", LONDON))

    drive(app, utc("2026-12-17T12:00:00+00:00"))

    nudges = decisions(app, candidacy_id, "NudgeDecided")
    assert rules(nudges) == [("NudgeDecided", "competing_offer.before_deadline"),
                             ("NudgeDecided", "patience.timeline_early_end")]
    offer_nudge, first_nudge = nudges
    # Three business days before the deadline (Tue 1 Dec) as the day opens, once only.
    assert offer_nudge.at == utc("2026-12-01T09:00:00+00:00")
    assert offer_nudge.decided_by["key"] == "r1:offer:Contoso"  # type: ignore[index]
    # It is news, not one more nudge: the patient cadence goes on as before.
    assert first_nudge.at == utc("2026-12-16T10:30:00+00:00")
    assert first_nudge.decided_by["key"] == "r1:nudge:1"  # type: ignore[index]


def test_an_offer_nudge_lands_n_business_days_before_even_for_an_evening_deadline(
        app: Candidacies, actor: Actor) -> None:
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    app.clock.set(utc("2026-11-30T10:00:00+00:00"))  # type: ignore[attr-defined]
    # Answer by Fri 4 Dec 18:00: three business days before is Tue 1 Dec, not Wed.
    app.note_competing_offer(actor, candidacy_id, "Contoso",
                             local("2026-12-04T18:00:00", LONDON))

    drive(app, utc("2026-12-04T18:00:00+00:00"))

    (offer_nudge,) = decisions(app, candidacy_id, "NudgeDecided")
    assert offer_nudge.at.astimezone(LONDON).date() == date(2026, 12, 1)


def test_nudges_are_spaced_in_business_days(app: Candidacies, actor: Actor) -> None:
    brisk = publish(app, "brisk", 1, nudge={"spacing_business_days": 3})
    # Interview Wed 2 Dec 09:00, "1 to 4 weeks": nudges Wed 9 Dec, then 3 business
    # days apart: Mon 14 Dec (over the weekend), Thu 17 Dec.
    candidacy_id = thanked(app, actor, utc("2026-12-02T10:30:00+00:00"), policy=brisk,
                           interviewed_at="2026-12-02T09:00:00+00:00",
                           timeline={"min_weeks": 1, "max_weeks": 4})

    drive(app, utc("2026-12-21T12:00:00+00:00"))

    nudges = decisions(app, candidacy_id, "NudgeDecided")
    assert rules(nudges) == [("NudgeDecided", "patience.timeline_early_end"),
                             ("NudgeDecided", "nudge.spacing"), ("NudgeDecided", "nudge.spacing")]
    assert [n.at for n in nudges] == [utc("2026-12-09T09:00:00+00:00"),
                                      utc("2026-12-14T09:00:00+00:00"),
                                      utc("2026-12-17T09:00:00+00:00")]


def test_the_pest_line_is_never_crossed(app: Candidacies, actor: Actor) -> None:
    start = utc("2026-11-25T10:30:00+00:00")
    patient = thanked(app, actor, start)
    asked = thanked(app, actor, start, asked_to_follow_up=True)
    manual = thanked(app, actor, start)
    app.send_nudge(actor, manual, reason="called the recruiter myself",  # counts too
                   override={"reason": "the candidate insisted"})

    drive(app, utc("2027-03-01T12:00:00+00:00"), step=timedelta(hours=2))

    def counted(candidacy_id: str) -> int:
        return sum(1 for e in app.history(candidacy_id, WORKSPACE)
                   if e.type in ("NudgeDecided", "NudgeSent"))

    assert counted(patient) == 3  # pest_line.max_nudges
    assert counted(asked) == 6  # follow_up.max_nudges
    assert counted(manual) == 3  # one by hand, two by the scheduler
    for candidacy_id in (patient, asked, manual):
        assert decisions(app, candidacy_id)[-1].type == "Stalled"


def test_stall_waits_for_the_late_end_of_the_timeline_plus_grace(app: Candidacies,
                                                                 actor: Actor) -> None:
    # Interview Wed 4 Nov, "1 to 6 weeks": nudges Wed 11, 18, 25 Nov exhaust the pest
    # line, but the late end is Wed 16 Dec, plus 5 business days of grace: Wed 23 Dec.
    candidacy_id = thanked(app, actor, utc("2026-11-04T10:30:00+00:00"),
                           interviewed_at="2026-11-04T09:00:00+00:00",
                           timeline={"min_weeks": 1, "max_weeks": 6})

    drive(app, utc("2026-12-23T08:30:00+00:00"))
    assert [n.at for n in decisions(app, candidacy_id)] == [
        utc("2026-11-11T09:00:00+00:00"), utc("2026-11-18T09:00:00+00:00"),
        utc("2026-11-25T09:00:00+00:00")]

    drive(app, utc("2026-12-24T12:00:00+00:00"))
    stall = decisions(app, candidacy_id)[-1]
    assert rules([stall]) == [("Stalled", "stall.exhausted_and_patience_spent")]
    assert stall.at == utc("2026-12-23T09:00:00+00:00")
    assert stall.stage == "stalled"


# ---------------------------------------------------------------- when messages may arrive


def test_a_nudge_due_at_22_local_goes_at_09_the_next_working_day(app: Candidacies,
                                                                actor: Actor) -> None:
    # Thanked Wed 25 Nov at 22:00 London; asked to follow up, so the first nudge falls
    # 2 business days later at 22:00, Friday night: it waits for Monday 09:00.
    candidacy_id = thanked(app, actor, utc("2026-11-25T22:00:00+00:00"),
                           asked_to_follow_up=True)

    drive(app, utc("2026-11-30T12:00:00+00:00"))

    (nudge,) = decisions(app, candidacy_id)
    assert nudge.at == due(nudge) == utc("2026-11-30T09:00:00+00:00")
    assert rules([nudge]) == [("NudgeDecided", "follow_up.first_nudge")]


def test_public_holidays_are_skipped_us_thanksgiving(app: Candidacies, actor: Actor) -> None:
    # Thanked Wed 25 Nov 10:00 local in New York and in London, both asked to follow up:
    # 2 business days later is Mon 30 Nov in the US (Thanksgiving Thursday skipped),
    # Fri 27 Nov in Great Britain.
    new_york = thanked(app, actor, local("2026-11-25T10:00:00", NEW_YORK),
                       asked_to_follow_up=True, timezone="America/New_York", country="US")
    london = thanked(app, actor, local("2026-11-25T10:00:00", LONDON), asked_to_follow_up=True)

    drive(app, local("2026-11-30T12:00:00", NEW_YORK))

    assert [n.at for n in decisions(app, new_york)] == [local("2026-11-30T10:00:00", NEW_YORK)]
    assert decisions(app, london)[0].at == local("2026-11-27T10:00:00", LONDON)


def test_public_holidays_are_skipped_gb_christmas_and_boxing_day(app: Candidacies,
                                                                actor: Actor) -> None:
    # Nudges Wed 16 Dec and Wed 23 Dec; the third is 5 business days after the second:
    # 25 Dec, Boxing Day observed Mon 28 Dec and 1 Jan are skipped, so Mon 4 Jan.
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))

    drive(app, utc("2027-01-05T12:00:00+00:00"))

    assert [n.at for n in decisions(app, candidacy_id, "NudgeDecided")] == [
        utc("2026-12-16T10:30:00+00:00"), utc("2026-12-23T10:30:00+00:00"),
        utc("2027-01-04T10:30:00+00:00")]


def test_send_windows_are_in_the_recipients_time_zone(app: Candidacies, actor: Actor) -> None:
    # Both thanked at the same instant, Tue 3 Nov 01:00 UTC (Mon 20:00 in New York,
    # Tue 06:30 in Kolkata); follow-up nudges fall 2 business days later outside the
    # window, so each waits for 09:00 on ITS recipient's clock on Thu 5 Nov.
    moment = utc("2026-11-03T01:00:00+00:00")
    new_york = thanked(app, actor, moment, asked_to_follow_up=True, format="video",
                       timezone="America/New_York", country="US")
    kolkata = thanked(app, actor, moment, asked_to_follow_up=True, format="video",
                      timezone="Asia/Kolkata", country="IN")

    drive(app, utc("2026-11-05T15:00:00+00:00"))

    (ny_nudge,) = decisions(app, new_york)
    (in_nudge,) = decisions(app, kolkata)
    assert ny_nudge.at == local("2026-11-05T09:00:00", NEW_YORK) == utc(
        "2026-11-05T14:00:00+00:00")
    assert in_nudge.at == local("2026-11-05T09:00:00", KOLKATA) == utc(
        "2026-11-05T03:30:00+00:00")


@pytest.mark.parametrize(
    ("thanked_at", "nudged_at"),
    [
        # Thu 11 Mar 2027 07:00 EST; Sunday 14 Mar the clocks spring forward.
        ("2027-03-11T07:00:00-05:00", "2027-03-15T09:00:00-04:00"),
        # Thu 29 Oct 2026 07:00 EDT; Sunday 1 Nov the clocks fall back.
        ("2026-10-29T07:00:00-04:00", "2026-11-02T09:00:00-05:00"),
    ],
    ids=["spring-forward-2027-03-14", "fall-back-2026-11-01"],
)
def test_a_nudge_across_a_dst_change_keeps_the_local_send_window(
        app: Candidacies, actor: Actor, thanked_at: str, nudged_at: str) -> None:
    candidacy_id = thanked(app, actor, utc(thanked_at), asked_to_follow_up=True,
                           timezone="America/New_York", country="US")

    drive(app, utc(nudged_at) + timedelta(hours=3), step=timedelta(minutes=15))

    (nudge,) = decisions(app, candidacy_id)
    assert nudge.at == utc(nudged_at)
    assert nudge.at.astimezone(NEW_YORK).hour == 9  # not 08:00 or 10:00


def test_a_late_tick_does_not_call_inside_quiet_hours(app: Candidacies, actor: Actor) -> None:
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    # The nudge is due Wed 16 Dec 10:30; the scheduler was down all day and first
    # ticks again at 22:00 that night.
    app.clock.set(utc("2026-12-16T22:00:00+00:00"))  # type: ignore[attr-defined]
    tick(app, app.clock.now())
    assert decisions(app, candidacy_id) == [], "called at 22:00, inside quiet hours"
    # The row now waits for the window, so later ticks that night do not read it again.
    assert app.row(candidacy_id).due_at == utc("2026-12-17T09:00:00+00:00")
    assert tick(app, utc("2026-12-16T23:00:00+00:00")).candidacies == 0

    drive(app, utc("2026-12-17T12:00:00+00:00"))
    (nudge,) = decisions(app, candidacy_id)
    assert nudge.at == utc("2026-12-17T09:00:00+00:00")


# ---------------------------------------------------------------- pauses and replies


def test_a_policy_may_ignore_out_of_office_replies(app: Candidacies, actor: Actor) -> None:
    ignoring = publish(app, "ignores-ooo", 1, pause={"out_of_office_pauses": False})
    # Same spacing as the playbook: without pauses the first nudge is due Wed 16 Dec.
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"), policy=ignoring)
    drive(app, utc("2026-12-10T09:00:00+00:00"))
    app.receive_reply(actor, candidacy_id, "out_of_office", back_on=date(2027, 1, 4))

    drive(app, utc("2026-12-16T12:00:00+00:00"))
    (nudge,) = decisions(app, candidacy_id, "NudgeDecided")
    assert nudge.at == utc("2026-12-16T10:30:00+00:00")


def test_out_of_office_holds_the_cadence_then_later_steps_slip(app: Candidacies,
                                                              actor: Actor) -> None:
    # Asked to follow up: nudges would go Fri 27 Nov, Tue 1 Dec, Thu 3 Dec, ...
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"),
                           asked_to_follow_up=True)
    drive(app, utc("2026-12-01T09:00:00+00:00"))
    assert len(decisions(app, candidacy_id, "NudgeDecided")) == 1
    # Tue 1 Dec 09:00: an out-of-office reply, back on Tue 15 Dec.
    app.receive_reply(actor, candidacy_id, "out_of_office", back_on=date(2026, 12, 15))
    paused = utc("2026-12-15T00:00:00+00:00") - utc("2026-12-01T09:00:00+00:00")

    drive(app, utc("2026-12-15T08:30:00+00:00"))
    assert len(decisions(app, candidacy_id, "NudgeDecided")) == 1  # nothing while away

    drive(app, utc("2026-12-18T12:00:00+00:00"))
    nudges = decisions(app, candidacy_id, "NudgeDecided")
    # The second nudge, due Tue 1 Dec 10:30, slipped by the paused time (to Tue 15 Dec
    # 01:30, so 09:00 that morning); the third is spaced from it, not caught up.
    assert utc("2026-12-01T10:30:00+00:00") + paused == utc("2026-12-15T01:30:00+00:00")
    assert [n.at for n in nudges[1:]] == [utc("2026-12-15T09:00:00+00:00"),
                                          utc("2026-12-17T09:00:00+00:00")]
    assert rules(nudges[1:]) == [("NudgeDecided", "follow_up.spacing")] * 2
    # Never a burst: no two nudges at one tick, each at least the spacing apart.
    calendar = default_policy().work_calendar("GB")
    for earlier, later in zip(nudges, nudges[1:], strict=False):
        assert calendar.business_days_between(earlier.at.date(), later.at.date()) >= 2


def test_a_manual_pause_holds_until_resumed_then_later_steps_slip(app: Candidacies,
                                                                 actor: Actor) -> None:
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"),
                           asked_to_follow_up=True)
    drive(app, utc("2026-12-01T09:00:00+00:00"))
    app.pause_cadence(actor, candidacy_id, "candidate travelling")  # no end date

    drive(app, utc("2026-12-08T12:00:00+00:00"))
    assert len(decisions(app, candidacy_id, "NudgeDecided")) == 1
    assert app.row(candidacy_id).due_at is None  # type: ignore[union-attr]  # held open-ended
    app.resume_cadence(actor, candidacy_id)  # paused 7 days 3 hours

    drive(app, utc("2026-12-11T12:00:00+00:00"))
    nudges = decisions(app, candidacy_id, "NudgeDecided")
    # Due Tue 1 Dec 10:30, slipped 7 days 3 hours: Tue 8 Dec 13:30; then 2 business days.
    assert [n.at for n in nudges[1:]] == [utc("2026-12-08T13:30:00+00:00"),
                                          utc("2026-12-10T13:30:00+00:00")]


def test_an_out_of_office_reply_back_today_holds_nothing(app: Candidacies,
                                                         actor: Actor) -> None:
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"),
                           asked_to_follow_up=True)
    app.clock.set(utc("2026-11-27T08:00:00+00:00"))  # type: ignore[attr-defined]
    # "Back today": the pause ends (local midnight) before the reply came in.
    app.receive_reply(actor, candidacy_id, "out_of_office", back_on=date(2026, 11, 27))

    drive(app, utc("2026-11-27T12:00:00+00:00"))

    (nudge,) = decisions(app, candidacy_id, "NudgeDecided")
    assert nudge.at == utc("2026-11-27T10:30:00+00:00")  # as if no pause


def test_an_update_from_the_employer_restarts_the_wait(app: Candidacies,
                                                      actor: Actor) -> None:
    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    drive(app, utc("2026-12-18T11:00:00+00:00"))  # first nudge Wed 16 Dec 10:30
    # Fri 18 Dec 11:00: "still interviewing, we'll be in touch".
    app.receive_reply(actor, candidacy_id, "update", note="still interviewing")

    drive(app, utc("2026-12-30T12:00:00+00:00"))

    nudges = decisions(app, candidacy_id, "NudgeDecided")
    assert rules(nudges) == [("NudgeDecided", "patience.timeline_early_end"),
                             ("NudgeDecided", "patience.after_update")]
    # Not Wed 23 Dec (spacing from the nudge) but 5 business days after the update,
    # Christmas and Boxing Day observed skipped: Tue 29 Dec 11:00.
    assert nudges[1].at == utc("2026-12-29T11:00:00+00:00")


# ---------------------------------------------------------- the scheduler itself (both stores)


def test_the_scheduler_is_idempotent(candidacies: Candidacies, clock: FixedClock,
                                     actor: Actor) -> None:
    # New York, closed the day after the interview: at 10:00 there on Thu 26 Nov both
    # the overdue alert and the (email) thank-you are due.
    candidacy_id = open_candidacy(
        candidacies, actor, at=utc("2026-11-25T20:30:00+00:00"),
        interviewed_at="2026-11-25T15:00:00-05:00", timezone="America/New_York", country="US")
    clock.set(utc("2026-11-26T15:00:00+00:00"))
    candidacies.close_next_step(actor, candidacy_id, "Onsite")

    first = tick(candidacies, clock.now())
    events = candidacies.history(candidacy_id, WORKSPACE)
    second = tick(candidacies, clock.now())

    assert dict(first.actions) == {"thank_you_overdue": 1, "thank_you": 1}
    assert second.recorded == 0
    assert candidacies.history(candidacy_id, WORKSPACE) == events
    assert rules(decisions(candidacies, candidacy_id)) == [
        ("ReminderSent", "thank_you.deadline"), ("ThankYouDecided", "thank_you.same_day")]
    # Nothing is due any more (the thank-you waits for the outbox), so the next tick
    # does not even load it.
    assert candidacies.row(candidacy_id).due_at is None  # type: ignore[union-attr]
    assert list(candidacies.due_ids(clock.now())) == []


@pytest.mark.file_store  # the CLI opens the store its settings name
def test_closer_tick_twice_for_one_moment_records_once(tmp_path: Path, clock: FixedClock,
                                                       actor: Actor,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from api.cli import app as cli
    from api.settings import get_settings

    url = f"sqlite:///{tmp_path}/cli.db"
    application = Candidacies(eventsourcing_env(url), clock=clock)
    candidacy_id = open_candidacy(application, actor)
    application.close_next_step(actor, candidacy_id, "Onsite")
    application.close()
    monkeypatch.setenv("CLOSER_DATABASE_URL", url)
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        outputs = [runner.invoke(cli, ["tick", "--now", "2026-11-25T10:05:00+00:00"])
                   for _ in range(2)]
    finally:
        get_settings.cache_clear()

    assert [o.exit_code for o in outputs] == [0, 0], [o.output for o in outputs]
    assert "recorded 1 thank_you" in outputs[0].stdout
    assert "recorded nothing" in outputs[1].stdout
    reopened = Candidacies(eventsourcing_env(url), clock=clock)
    try:
        assert rules(decisions(reopened, candidacy_id)) == [
            ("ThankYouDecided", "thank_you.same_day")]
    finally:
        reopened.close()


def test_a_per_candidacy_policy_override_is_recorded_and_applied(
        candidacies: Candidacies, clock: FixedClock, actor: Actor) -> None:
    eager = publish(candidacies, "eager", 1,
                    patience={"first_nudge_without_timeline_business_days": 2},
                    nudge={"spacing_business_days": 1}, pest_line={"max_nudges": 2})
    with pytest.raises(InvalidInput, match="no policy 'nonesuch' version 1"):
        candidacies.record_interview(actor, interview(),
                                     policy={"name": "nonesuch", "version": 1})
    # Thanked Wed 25 Nov 10:30, no timeline: 2 business days, then every business day.
    candidacy_id = thanked(candidacies, actor, utc("2026-11-25T10:30:00+00:00"),
                           policy=eager, timeline=None)
    opened = candidacies.history(candidacy_id, WORKSPACE)[0]
    assert opened.data["policy"] == eager

    drive(candidacies, utc("2026-11-30T12:00:00+00:00"))
    nudges = decisions(candidacies, candidacy_id, "NudgeDecided")
    assert [n.at for n in nudges] == [utc("2026-11-27T10:30:00+00:00"),
                                      utc("2026-11-30T10:30:00+00:00")]
    assert {(n.decided_by["policy"], n.decided_by["version"])  # type: ignore[index]
            for n in nudges} == {("eager", 1)}

    # Moved back to the playbook: recorded as an event, and used from then on (its pest
    # line of 3 allows one more nudge, 5 business days after the last).
    candidacies.migrate_policy(actor, candidacy_id, "playbook", 1)
    migrated = candidacies.history(candidacy_id, WORKSPACE)[-1]
    assert migrated.type == "PolicyMigrated"
    assert (migrated.data["policy"], migrated.data["previous"]) == (
        {"name": "playbook", "version": 1}, eager)
    drive(candidacies, utc("2026-12-08T12:00:00+00:00"))
    later = decisions(candidacies, candidacy_id, "NudgeDecided")[2:]
    assert [(n.at, n.decided_by["policy"]) for n in later] == [  # type: ignore[index]
        (utc("2026-12-07T10:30:00+00:00"), "playbook")]


def test_a_candidacy_stays_on_its_policy_version_when_a_new_one_is_published(
        candidacies: Candidacies, clock: FixedClock, actor: Actor) -> None:
    v1 = publish(candidacies, "agency", 1, nudge={"spacing_business_days": 2})
    old = thanked(candidacies, actor, utc("2026-11-25T10:30:00+00:00"), timeline=None,
                  policy=v1)
    drive(candidacies, utc("2026-12-04T12:00:00+00:00"))
    # The agency edits its policy: version 2 spaces nudges 4 business days apart.
    v2 = publish(candidacies, "agency", 2, nudge={"spacing_business_days": 4})
    with pytest.raises(InvalidInput, match="already published with other rules"):
        publish(candidacies, "agency", 1, nudge={"spacing_business_days": 9})
    new = thanked(candidacies, actor, utc("2026-12-04T12:00:00+00:00"), timeline=None,
                  policy=v2)

    drive(candidacies, utc("2026-12-31T12:00:00+00:00"))

    old_nudges = decisions(candidacies, old, "NudgeDecided")
    # First nudge Fri 4 Dec 10:30 (7 business days), then every 2: Tue 8, Thu 10 Dec.
    assert [n.at for n in old_nudges] == [utc("2026-12-04T10:30:00+00:00"),
                                          utc("2026-12-08T10:30:00+00:00"),
                                          utc("2026-12-10T10:30:00+00:00")]
    assert {n.decided_by["version"] for n in old_nudges} == {1}  # type: ignore[index]
    new_nudges = decisions(candidacies, new, "NudgeDecided")
    assert [n.at for n in new_nudges][:2] == [utc("2026-12-15T12:00:00+00:00"),
                                              utc("2026-12-21T12:00:00+00:00")]
    assert {n.decided_by["version"] for n in new_nudges} == {2}  # type: ignore[index]
    assert candidacies.get(old, WORKSPACE).policy == v1


def test_a_whole_follow_up_is_scheduled_alike_on_both_stores(candidacies: Candidacies,
                                                            clock: FixedClock,
                                                            actor: Actor) -> None:
    candidacy_id = open_candidacy(candidacies, actor)
    clock.set(utc("2026-11-25T10:30:00+00:00"))
    candidacies.close_next_step(actor, candidacy_id, "Onsite with the CTO")

    drive(candidacies, utc("2027-01-12T12:00:00+00:00"))

    assert [(e.type, e.decided_by["rule"], e.at) for e in  # type: ignore[index]
            decisions(candidacies, candidacy_id)] == [
        ("ThankYouDecided", "thank_you.same_day", utc("2026-11-25T10:30:00+00:00")),
        ("NudgeDecided", "patience.timeline_early_end", utc("2026-12-16T09:00:00+00:00")),
        ("NudgeDecided", "nudge.spacing", utc("2026-12-23T09:00:00+00:00")),
        ("NudgeDecided", "nudge.spacing", utc("2027-01-04T09:00:00+00:00")),
        ("Stalled", "stall.exhausted_and_patience_spent", utc("2027-01-11T09:00:00+00:00")),
    ]
    for entry in decisions(candidacies, candidacy_id, "NudgeDecided"):
        policy = default_policy()
        assert is_send_time(entry.at, "Europe/London", policy.send_window,
                            policy.quiet_hours, policy.work_calendar("GB"))


def test_a_page_that_loses_a_race_is_decided_again_one_candidacy_at_a_time(
        app: Candidacies, actor: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    first = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    second = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    app.clock.set(utc("2026-12-16T12:00:00+00:00"))  # type: ignore[attr-defined]
    load_many = app._load_many
    raced: list[str] = []

    def load_then_race(ids: list[object], *corrupt: object) -> list[object]:
        loaded = load_many(ids, *corrupt)
        if not raced:  # a person records a fact on `second` while the page is decided
            raced.append(second)
            app.note_competing_offer(actor, second, "Globex",
                                     utc("2027-01-15T17:00:00+00:00"))
        return loaded

    monkeypatch.setattr(app, "_load_many", load_then_race)
    run = app.apply_policies([first, second], app.clock.now())  # type: ignore[attr-defined]

    assert raced and run.conflicts == []
    assert set(run.applied) == {first, second}
    for candidacy_id in (first, second):
        (nudge,) = decisions(app, candidacy_id, "NudgeDecided")
        assert nudge.decided_by["rule"] == "patience.timeline_early_end"  # type: ignore[index]
    # The person's fact is kept, before the nudge decided after it.
    types = [e.type for e in app.history(second, WORKSPACE)]
    assert types[-2:] == ["CompetingOfferNoted", "NudgeDecided"]


def test_a_held_row_is_saved_with_the_page_even_when_the_page_loses_a_race(
        app: Candidacies, actor: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    # At 22:00 UTC the London nudge is held by quiet hours while the Los Angeles ones
    # (14:00 there) go out: one page holds both kinds, saved in one transaction.
    held = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    sent = [thanked(app, actor, utc("2026-11-25T18:30:00+00:00"),
                    timezone="America/Los_Angeles", country="US") for _ in range(2)]
    app.clock.set(utc("2026-12-16T22:00:00+00:00"))  # type: ignore[attr-defined]
    load_many = app._load_many
    racer = [sent[1]]  # who a person records a fact on while the page is decided
    raced: list[str] = []

    def load_then_race(ids: list[object], *corrupt: object) -> list[object]:
        loaded = load_many(ids, *corrupt)
        if not raced:
            raced.append(racer[0])
            app.note_competing_offer(actor, racer[0], "Globex",
                                     utc("2027-01-15T17:00:00+00:00"))
        return loaded

    monkeypatch.setattr(app, "_load_many", load_then_race)
    run = app.apply_policies([held, *sent], app.clock.now())  # type: ignore[attr-defined]

    assert raced == [sent[1]] and run.conflicts == [] and set(run.applied) == set(sent)
    for candidacy_id in sent:
        (nudge,) = decisions(app, candidacy_id, "NudgeDecided")
        assert nudge.at == utc("2026-12-16T22:00:00+00:00")
    assert decisions(app, held) == []
    assert app.row(held).due_at == utc("2026-12-17T09:00:00+00:00")  # type: ignore[union-attr]

    # A page of one decided candidacy that loses its race: reported, and the held
    # row is still saved.
    other = thanked(app, actor, utc("2026-11-26T18:30:00+00:00"),
                    timezone="America/Los_Angeles", country="US")
    app.clock.set(utc("2026-12-17T22:00:00+00:00"))  # type: ignore[attr-defined]
    racer[0] = other
    raced.clear()
    run = app.apply_policies([held, other], app.clock.now())  # type: ignore[attr-defined]
    assert raced == [other] and run.conflicts == [other] and run.applied == {}
    assert decisions(app, other) == []
    assert app.row(held).due_at == utc("2026-12-18T09:00:00+00:00")  # type: ignore[union-attr]


# ---------------------------------------------------------------- the tick's pages


def test_a_tick_in_small_pages_records_what_each_candidacy_is_due(
        candidacies: Candidacies, actor: Actor) -> None:
    # Nudges due, one held by quiet hours, one not due, one whose thank-you is
    # overdue: in pages of two, each decided and written in turn.
    now = utc("2026-12-16T22:00:00+00:00")
    ids = [thanked(candidacies, actor, utc("2026-11-25T18:30:00+00:00"),
                   timezone="America/Los_Angeles", country="US") for _ in range(3)]
    ids.append(thanked(candidacies, actor, utc("2026-11-25T10:30:00+00:00")))  # held
    ids.append(thanked(candidacies, actor, utc("2026-12-14T10:30:00+00:00")))  # not due
    ids.append(open_candidacy(candidacies, actor, at=utc("2026-12-15T18:30:00+00:00"),
                              timezone="America/Los_Angeles", country="US"))
    candidacies.clock.set(now)  # type: ignore[attr-defined]
    # What each would record on its own (deciding saves nothing).
    expected = {cid: [(a.kind, a.key) for a in
                      candidacies.decide_policies([cid], now).run.applied.get(cid, [])]
                for cid in ids}
    assert sum(map(len, expected.values())) >= 4 and [] in expected.values()
    before = {cid: len(candidacies.history(cid, WORKSPACE)) for cid in ids}

    report = tick(candidacies, now, page=2)

    assert report.candidacies == len(ids) - 1 and report.conflicts == 0
    for cid in ids:
        recorded = candidacies.history(cid, WORKSPACE)[before[cid]:]
        assert [(e.decided_by or {}).get("key") for e in recorded] == [
            key for _, key in expected[cid]]
        candidacy = candidacies.get(cid, WORKSPACE)
        row = candidacies.row(cid)
        assert row is not None and row.version == candidacy.version
    assert report.recorded == sum(map(len, expected.values()))
    assert candidacies.row(ids[3]).due_at == utc("2026-12-17T09:00:00+00:00")  # type: ignore[union-attr]
    assert tick(candidacies, now, page=2).recorded == 0


def test_a_page_that_fails_to_be_written_fails_the_tick(
        app: Candidacies, actor: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [thanked(app, actor, utc("2026-11-25T10:30:00+00:00")) for _ in range(5)]
    now = utc("2026-12-16T12:00:00+00:00")
    record = app.record_decisions
    written: list[int] = []

    def record_then_fail(decisions: Any) -> Any:
        if written:
            raise RuntimeError("disk full")
        written.append(len(decisions.decided))
        return record(decisions)

    monkeypatch.setattr(app, "record_decisions", record_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        tick(app, now, page=2)
    assert written == [2]
    assert sum(len(decisions(app, cid)) for cid in ids) == 2


def test_deciding_a_page_leaves_the_garbage_collector_as_it_found_it(
        app: Candidacies, actor: Actor) -> None:
    import gc

    candidacy_id = thanked(app, actor, utc("2026-11-25T10:30:00+00:00"))
    now = utc("2026-12-16T12:00:00+00:00")
    assert gc.isenabled()
    assert app.decide_policies([candidacy_id], now).run.applied
    assert gc.isenabled()
    with pytest.raises(CandidacyNotFound):
        app.decide_policies([candidacy_id, "00000000-0000-4000-8000-000000000000"], now)
    assert gc.isenabled()
    gc.disable()
    try:
        app.decide_policies([candidacy_id], now)
        assert not gc.isenabled()
    finally:
        gc.enable()
