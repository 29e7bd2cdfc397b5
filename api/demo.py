"""A few realistic candidacies walked through the playbook, for `closer demo`."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.application import Candidacies
from engine.clock import FixedClock
from engine.values import Actor

COACH = Actor(user="coach@demo.closer", workspace="demo", on_behalf_of="the candidate")


def seed_demo(app: Candidacies, clock: FixedClock) -> list[str]:
    """Record three candidacies over three weeks of ``clock`` time; returns their ids."""
    start = clock.now()
    ids = [_advanced_after_a_nudge(app, clock, start), _thanked_panel(app, clock, start),
           _rejected_with_offer(app, clock, start)]
    return ids


def _interview(at: datetime, **overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "candidate": {"name": "Maya Okafor", "email": "maya.okafor@example.com",
                      "phone": "+44 20 7946 0018"},
        "company": "Northwind Analytics", "role": "Senior Data Engineer",
        "format": "in_person",
        "interviewers": [{"name": "Daniel Whitfield", "title": "VP Engineering",
                          "email": "d.whitfield@northwind.example"}],
        "interviewed_at": at.isoformat(), "timezone": "Europe/London", "country": "GB",
        "timeline": {"min_weeks": 3, "max_weeks": 4},
    }
    base.update(overrides)
    return base


def _advanced_after_a_nudge(app: Candidacies, clock: FixedClock, start: datetime) -> str:
    clock.set(start)
    cid = app.record_interview(COACH, _interview(start - timedelta(hours=2))).candidacy_id
    h = app.raise_hesitation(COACH, cid, "Limited experience with streaming pipelines")
    app.address_hesitation(COACH, cid, h.data["hesitation_id"],
                           "Built the Kafka ingestion at my last role; happy to walk through it")
    app.close_next_step(COACH, cid, "Technical deep-dive with the data platform team",
                        scheduled_for=start + timedelta(days=9))
    clock.advance(timedelta(hours=3))
    app.send_thank_you(COACH, cid, "card")
    clock.advance(timedelta(days=21))
    app.send_nudge(COACH, cid, channels=["voicemail", "email"])
    clock.advance(timedelta(days=2))
    app.receive_reply(COACH, cid, "advanced", note="Invited to the final round")
    app.start_next_round(COACH, cid, {"interviewed_at": clock.now().isoformat(),
                                      "format": "video"})
    return cid


def _thanked_panel(app: Candidacies, clock: FixedClock, start: datetime) -> str:
    clock.set(start + timedelta(days=1))
    cid = app.record_interview(COACH, _interview(
        clock.now() - timedelta(hours=1), company="Contoso Health", role="Platform Engineer",
        format="video", timezone="America/New_York", country="US",
        candidate={"name": "Luis Ortega", "email": "luis.ortega@example.com"},
        interviewers=[{"name": "Priya Raman", "title": "Engineering Manager"},
                      {"name": "Tom Becker", "title": "Staff Engineer"}],
        timeline=None, asked_to_follow_up=True)).candidacy_id
    app.record_no_hesitations(COACH, cid)
    app.close_next_step(COACH, cid, "Call with the hiring manager next week")
    clock.advance(timedelta(hours=2))
    app.send_thank_you(COACH, cid, "email", to=["Priya Raman"])
    app.send_thank_you(COACH, cid, "email", to=["Tom Becker"])
    clock.advance(timedelta(days=4))
    app.receive_reply(COACH, cid, "out_of_office", back_on=(clock.now() + timedelta(days=5)).date())
    return cid


def _rejected_with_offer(app: Candidacies, clock: FixedClock, start: datetime) -> str:
    clock.set(start + timedelta(days=2))
    cid = app.record_interview(COACH, _interview(
        clock.now() - timedelta(hours=4), company="Fabrikam", role="Data Engineer",
        format="phone", timezone="Asia/Kolkata", country="IN",
        candidate={"name": "Anika Sharma", "email": "anika.sharma@example.com"},
        interviewers=[{"name": "Rahul Mehta", "title": "Head of Data"}],
        timeline={"min_weeks": 2, "max_weeks": 3})).candidacy_id
    app.record_no_hesitations(COACH, cid)
    app.close_next_step(COACH, cid, "Take-home exercise")
    app.send_thank_you(COACH, cid, "voicemail_and_email")
    clock.advance(timedelta(days=10))
    app.note_competing_offer(COACH, cid, "Globex", clock.now() + timedelta(days=7))
    # Inside the stated timeline: the offer's deadline is the reason to nudge anyway.
    app.send_nudge(COACH, cid, reason="competing offer deadline",
                   override={"reason": "a competing offer expires in a week"})
    clock.advance(timedelta(days=3))
    app.receive_reply(COACH, cid, "rejected", note="Went with an internal candidate")
    return cid
