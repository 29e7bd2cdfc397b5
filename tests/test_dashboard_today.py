"""Why a held item on Today waits, in the engine's own terms: quiet hours, the send window,
patience until a date, a pause until a date (`api.dashboard.today.why_waiting`, asked of
`engine.decisions`'s `plan` and `held_until`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from api_support import WORKSPACE, sqlite_only
from builders import candidacy_at, interview

from api.dashboard.filters import Filters
from api.dashboard.today import the_day, why_waiting
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.decisions import Action, plan
from engine.values import Actor

COACH = Actor(user="coach@agency", workspace=WORKSPACE)
EVERYONE = Filters(workspace=WORKSPACE)


@sqlite_only
def test_a_thank_you_closed_late_waits_for_the_end_of_quiet_hours(
        candidacies: Candidacies, clock: FixedClock) -> None:
    clock.set(datetime(2026, 11, 25, 21, 30, tzinfo=UTC))  # 21:30 in London: quiet
    cid = candidacies.record_interview(COACH, interview(format="video")).candidacy_id
    candidacies.record_no_hesitations(COACH, cid)
    candidacies.close_next_step(COACH, cid, "Onsite")
    [item] = the_day(candidacies, EVERYONE, None).thank_yous
    assert item.waits == "quiet hours until Thu 26 Nov 08:00 (Europe/London)"
    assert item.deadline_local == "Wed 25 Nov 23:59 (Europe/London)"
    assert not item.overdue and not item.due_now
    clock.set(datetime(2026, 11, 26, 0, 30, tzinfo=UTC))
    [item] = the_day(candidacies, EVERYONE, None).thank_yous
    assert item.overdue


@sqlite_only
def test_a_nudge_due_in_the_evening_waits_for_the_send_window(
        candidacies: Candidacies, clock: FixedClock) -> None:
    cid = candidacy_at(candidacies, COACH, "awaiting")
    candidacy = candidacies.get(cid, WORKSPACE)
    policy = candidacies.policies.of(candidacy)
    evening = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # Wednesday 18:00 in London
    nudge = Action("nudge", evening - timedelta(hours=1), "patience.no_timeline", "r1:nudge1",
                   ("voicemail", "email"))
    assert why_waiting(nudge, candidacy, policy, evening) == \
        "outside the send window until Thu 26 Nov 09:00 (Europe/London)"
    morning = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert why_waiting(nudge, candidacy, policy, morning) is None  # it goes now


@sqlite_only
def test_a_nudge_not_yet_allowed_waits_for_patience_until_its_date(
        candidacies: Candidacies, clock: FixedClock) -> None:
    cid = candidacy_at(candidacies, COACH, "awaiting")
    candidacy = candidacies.get(cid, WORKSPACE)
    policy = candidacies.policies.of(candidacy)
    [nudge] = [a for a in plan(candidacy, policy) if a.kind == "nudge"]
    waits = why_waiting(nudge, candidacy, policy, clock.now())
    assert waits is not None and waits.startswith("patience until ")
    assert f"({nudge.rule})" in waits and nudge.rule.startswith("patience.")


@sqlite_only
def test_a_paused_candidacy_waits_until_its_date_and_shows_on_today(
        candidacies: Candidacies, clock: FixedClock) -> None:
    cid = candidacy_at(candidacies, COACH, "awaiting")
    candidacies.pause_cadence(COACH, cid, "candidate travelling", until=date(2026, 12, 9))
    [item] = the_day(candidacies, EVERYONE, None).nudges
    assert item.candidacy_id == cid
    assert item.waits == "paused until Wed 9 Dec 2026 (candidate travelling)"
    clock.set(datetime(2026, 12, 10, 12, 0, tzinfo=UTC))  # the pause has ended unseen
    candidacy = candidacies.get(cid, WORKSPACE)
    policy = candidacies.policies.of(candidacy)
    [nudge] = [a for a in plan(candidacy, policy) if a.kind == "nudge"]
    assert not (why_waiting(nudge, candidacy, policy, clock.now()) or "").startswith("paused")


@sqlite_only
def test_an_open_ended_pause_shows_its_held_nudge_on_today(candidacies: Candidacies) -> None:
    cid = candidacy_at(candidacies, COACH, "awaiting")
    candidacies.pause_cadence(COACH, cid, "candidate travelling")
    [item] = the_day(candidacies, EVERYONE, None).nudges
    assert (item.candidacy_id, item.waits) == (cid, "paused until resumed (candidate travelling)")


@sqlite_only
def test_today_lists_a_nudged_candidacy_and_reads_no_closed_one(
        candidacies: Candidacies, monkeypatch: pytest.MonkeyPatch) -> None:
    nudged = candidacy_at(candidacies, COACH, "nudged")
    stalled = candidacy_at(candidacies, COACH, "stalled")
    loaded: list[str] = []
    get = candidacies.get
    monkeypatch.setattr(candidacies, "get",
                        lambda cid, *a, **k: loaded.append(str(cid)) or get(cid, *a, **k))
    day = the_day(candidacies, EVERYONE, None)
    assert [item.candidacy_id for item in day.replies] == [nudged]
    assert nudged in loaded and stalled not in loaded  # a closed candidacy is not read


@sqlite_only
def test_a_date_range_shows_what_falls_due_in_those_days(
        candidacies: Candidacies, clock: FixedClock) -> None:
    waiting = candidacy_at(candidacies, COACH, "awaiting")
    candidacy = candidacies.get(waiting, WORKSPACE)
    [nudge] = [a for a in plan(candidacy, candidacies.policies.of(candidacy))
               if a.kind == "nudge"]
    due = nudge.due_at.astimezone(ZoneInfo(candidacy.timezone)).date()
    today = clock.now().astimezone(ZoneInfo(candidacy.timezone)).date()
    assert due > today  # patience holds it past today: not on today's list
    assert not [i for i in the_day(candidacies, EVERYONE, None).nudges if i.candidacy_id == waiting]
    on_the_day = the_day(candidacies, Filters(WORKSPACE, since=due, until=due), None).nudges
    assert [i.candidacy_id for i in on_the_day] == [waiting]
    assert [i.candidacy_id for i in the_day(candidacies, Filters(WORKSPACE, until=due),
                                            None).nudges] == [waiting]
    after = Filters(WORKSPACE, since=due + timedelta(days=1), until=due + timedelta(days=9))
    assert the_day(candidacies, after, None).nudges == []
    # A thank-you due today is in a range holding today, not in one after it.
    thanked = candidacies.record_interview(COACH, interview()).candidacy_id
    assert [i.candidacy_id for i in the_day(candidacies, EVERYONE, None).thank_yous] == [thanked]
    assert [i.candidacy_id for i in the_day(
        candidacies, Filters(WORKSPACE, since=today, until=today), None).thank_yous] == [thanked]
    assert the_day(candidacies, Filters(WORKSPACE, since=today + timedelta(days=1),
                                        until=due), None).thank_yous == []
    # A next step scheduled in a week: not "tomorrow", but in a range holding its day.
    step = datetime.combine(today + timedelta(days=7), time(14), ZoneInfo("Europe/London"))
    candidacies.record_no_hesitations(COACH, thanked)
    candidacies.close_next_step(COACH, thanked, "Onsite", scheduled_for=step)
    assert the_day(candidacies, EVERYONE, None).tomorrow == []
    week = Filters(WORKSPACE, since=today, until=today + timedelta(days=7))
    assert [i.candidacy_id for i in the_day(candidacies, week, None).tomorrow] == [thanked]
