"""A few realistic candidacies walked through the playbook, for `closer demo` and
`closer serve --demo`; the last, interviewed today, opens the dashboard's Today page on a
thank-you due today.

The demo runs as Closer runs: people record what happened, the scheduler ticks every hour
of the month and the outbox dispatches what it decides, so a fresh user sees thank-yous and
nudges go out.  It needs no settings: every interviewer has an email and a phone, alerts go
to a demo recruiter unless one is configured, and email without an SMTP host is written to
a folder (see `api.outbox_cli.build_dispatcher`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from api.settings import Settings
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.scheduler import tick
from engine.values import Actor, ReplyKind

COACH = Actor(user="coach@demo.closer", workspace="demo", on_behalf_of="the candidate")
DEMO_RECRUITER = {"name": "Dana Reyes", "email": "dana.reyes@demo.closer.example"}
DEMO_DAYS = 30
TICK_EVERY = timedelta(hours=1)

Step = Callable[[Candidacies, dict[str, str]], Any]


def demo_settings(settings: Settings) -> Settings:
    """``settings`` with the demo's defaults where nothing is configured: the recruiter who
    receives alerts."""
    if settings.recruiter_name:
        return settings
    return settings.model_copy(update={"recruiter_name": DEMO_RECRUITER["name"],
                                       "recruiter_email": DEMO_RECRUITER["email"]})


def seed_demo(app: Candidacies, clock: FixedClock, *,
              dispatch: Callable[[], Any] | None = None,
              until: datetime | None = None) -> list[str]:
    """Walk four candidacies from ``clock``'s moment to ``until`` (default: 30 days on),
    ticking the scheduler every hour and calling ``dispatch`` (an outbox pass) whenever
    something was recorded; returns their ids."""
    start = clock.now().replace(second=0, microsecond=0)  # round moments read better
    end = until or start + timedelta(days=DEMO_DAYS)
    steps = sorted(_timeline(start, end), key=lambda step: step[0])
    ids: dict[str, str] = {}
    moment = start
    while moment <= end:
        clock.set(moment)
        recorded = False
        while steps and steps[0][0] <= moment:
            _, step = steps.pop(0)
            clock.set(max(moment, clock.now()))
            step(app, ids)
            recorded = True
        recorded = tick(app, moment).recorded > 0 or recorded
        if recorded and dispatch is not None:
            dispatch()
        moment += TICK_EVERY
    late = [step for at, step in steps if at <= end]  # due between the last hour and the end
    if late:
        clock.set(max(end, clock.now()))
        for step in late:
            step(app, ids)
        tick(app, clock.now())
        if dispatch is not None:
            dispatch()
    return [ids[name] for name in ("maya", "luis", "anika", "sam") if name in ids]


def _interview(at: datetime, **overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "candidate": {"name": "Maya Okafor", "email": "maya.okafor@example.com",
                      "phone": "+44 20 7946 0018"},
        "company": "Northwind Analytics", "role": "Senior Data Engineer",
        "format": "in_person",
        "interviewers": [{"name": "Daniel Whitfield", "title": "VP Engineering",
                          "email": "d.whitfield@northwind.example", "phone": "+44 20 7946 0102"}],
        "interviewed_at": at.isoformat(), "timezone": "Europe/London", "country": "GB",
        "timeline": {"min_weeks": 3, "max_weeks": 4},
    }
    base.update(overrides)
    return base


def _timeline(start: datetime, end: datetime) -> list[tuple[datetime, Step]]:
    """What people record, and when; the scheduler and the outbox do the rest."""
    day = timedelta(days=1)
    hour = timedelta(hours=1)
    # Sam's interview: earlier on the demo's last day in London, so the dashboard opens on a
    # thank-you due today (the next step is for the person trying the demo to close).
    london = ZoneInfo("Europe/London")
    sam_at = max(end - hour, datetime.combine(end.astimezone(london).date(), time(0, 5),
                                              london).astimezone(UTC))

    def sam_interviewed(app: Candidacies, ids: dict[str, str]) -> None:
        cid = app.record_interview(COACH, _interview(
            min(sam_at, app.clock.now()), company="Tailspin Toys", role="Analytics Engineer",
            format="video",
            candidate={"name": "Sam Lee", "email": "sam.lee@example.com",
                       "phone": "+44 20 7946 0031"},
            interviewers=[{"name": "Grace Kim", "title": "Director of Analytics",
                           "email": "grace.kim@tailspin.example",
                           "phone": "+44 20 7946 0140"}])).candidacy_id
        ids["sam"] = cid
        app.record_no_hesitations(COACH, cid)

    def maya_interviewed(app: Candidacies, ids: dict[str, str]) -> None:
        # In person in London: the candidate hands a card in at reception herself.
        cid = app.record_interview(COACH, _interview(start - 2 * hour)).candidacy_id
        ids["maya"] = cid
        h = app.raise_hesitation(COACH, cid, "Limited experience with streaming pipelines")
        app.address_hesitation(COACH, cid, h.data["hesitation_id"],
                               "Built the Kafka ingestion at my last role; happy to walk "
                               "through it")
        app.close_next_step(COACH, cid, "Technical deep-dive with the data platform team",
                            scheduled_for=start + 27 * day)
        app.send_thank_you(COACH, cid, "card")

    def maya_advanced(app: Candidacies, ids: dict[str, str]) -> None:
        cid = ids["maya"]
        app.receive_reply(COACH, cid, ReplyKind.ADVANCED, note="Invited to the final round")
        app.start_next_round(COACH, cid, {"interviewed_at": app.clock.now().isoformat(),
                                          "format": "video"})

    def luis_interviewed(app: Candidacies, ids: dict[str, str]) -> None:
        # A video panel in New York that asked to be followed up: the policy thanks each
        # interviewer by email and calls until the next step is set.
        cid = app.record_interview(COACH, _interview(
            app.clock.now() - hour, company="Contoso Health", role="Platform Engineer",
            format="video", timezone="America/New_York", country="US",
            candidate={"name": "Luis Ortega", "email": "luis.ortega@example.com",
                       "phone": "+1 212 555 0144"},
            interviewers=[{"name": "Priya Raman", "title": "Engineering Manager",
                           "email": "priya.raman@contoso.example", "phone": "+1 212 555 0170"},
                          {"name": "Tom Becker", "title": "Staff Engineer",
                           "email": "tom.becker@contoso.example", "phone": "+1 212 555 0171"}],
            timeline=None, asked_to_follow_up=True)).candidacy_id
        ids["luis"] = cid
        app.record_no_hesitations(COACH, cid)
        app.close_next_step(COACH, cid, "Call with the hiring manager next week")

    def luis_away(app: Candidacies, ids: dict[str, str]) -> None:
        app.receive_reply(COACH, ids["luis"], ReplyKind.OUT_OF_OFFICE,
                          back_on=(app.clock.now() + 5 * day).date())

    def anika_interviewed(app: Candidacies, ids: dict[str, str]) -> None:
        cid = app.record_interview(COACH, _interview(
            app.clock.now() - 4 * hour, company="Fabrikam", role="Data Engineer",
            format="phone", timezone="Asia/Kolkata", country="IN",
            candidate={"name": "Anika Sharma", "email": "anika.sharma@example.com",
                       "phone": "+91 80 5550 1234"},
            interviewers=[{"name": "Rahul Mehta", "title": "Head of Data",
                           "email": "rahul.mehta@fabrikam.example", "phone": "+91 80 5550 1200"}],
            timeline={"min_weeks": 2, "max_weeks": 3})).candidacy_id
        ids["anika"] = cid
        app.record_no_hesitations(COACH, cid)
        app.close_next_step(COACH, cid, "Take-home exercise")

    def anika_offer(app: Candidacies, ids: dict[str, str]) -> None:
        app.note_competing_offer(COACH, ids["anika"], "Globex", app.clock.now() + 8 * day)

    def anika_rejected(app: Candidacies, ids: dict[str, str]) -> None:
        app.receive_reply(COACH, ids["anika"], ReplyKind.REJECTED,
                          note="Went with an internal candidate")

    return [
        (start, maya_interviewed),
        (start + day + 8 * hour, luis_interviewed),
        (start + 5 * day, luis_away),
        (start + 2 * day + 2 * hour, anika_interviewed),
        (start + 16 * day, anika_offer),
        (start + 23 * day, maya_advanced),
        (start + 26 * day, anika_rejected),
        (sam_at, sam_interviewed),
    ]
