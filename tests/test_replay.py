"""Replay on small handcrafted histories, each metric worked out by hand; export/import;
live scheduling and replay agreeing on simulated histories.

Histories are recorded through the application (no scheduler ran: the recorded
decisions are whatever the test records), then replayed from the store the way
`closer replay` reads it.  Dates: 5 January 2026 is a Monday; London is on UTC in
winter; GB has no public holiday between 2 January and April.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from builders import policy_variant

from engine.application import Candidacies
from engine.clock import FixedClock
from engine.errors import InvalidInput
from engine.history_io import export, import_file
from engine.policy import CadencePolicy, default_policy
from engine.replay import Filters, JsonlSource, agreement, replay, source_for
from engine.simulation import simulate
from engine.store import eventsourcing_env
from engine.values import Actor
from tests.builders import interview

FAR = datetime(2027, 1, 1, tzinfo=UTC)
ONE = [{"name": "Daniel Whitfield", "title": "VP Engineering"}]


def at(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[Candidacies, FixedClock, Any]]:
    clock = FixedClock(at(5, 10))
    app = Candidacies(eventsourcing_env(database_url), clock=clock)
    yield app, clock, source_for(database_url, app.recorder.events_table_name)
    app.close()


def metrics(source: Any, *policies: CadencePolicy, until: datetime = FAR,
            **options: Any) -> list[dict[str, Any]]:
    result = replay(source, policies, until=until, **options)
    return [m.as_dict() for m in result.metrics]


def record(app: Candidacies, clock: FixedClock, coach: Actor, *, interviewed: datetime,
           logged: datetime, thank_you: str | None = "email", **overrides: Any) -> str:
    """An interview (video, one interviewer, London), no hesitations and the next step
    closed when ``logged``, and a thank-you sent by hand then (unless None)."""
    clock.set(logged)
    data = interview(interviewed_at=interviewed.isoformat(), format="video", interviewers=ONE,
                     **overrides)
    cid = app.record_interview(coach, data).candidacy_id
    app.record_no_hesitations(coach, cid)
    app.close_next_step(coach, cid, "Call with the hiring manager")
    if thank_you:
        app.send_thank_you(coach, cid, thank_you)
    return cid


def reply(app: Candidacies, clock: FixedClock, coach: Actor, cid: str, when: datetime,
          kind: str) -> None:
    clock.set(when)
    app.receive_reply(coach, cid, kind, note="their word")


def test_a_reply_on_day_10_under_a_policy_that_stalls_after_7_days_is_a_premature_stall(
        store: Any, coach: Actor) -> None:
    app, clock, source = store
    cid = record(app, clock, coach, interviewed=at(5, 9), logged=at(5, 10), timeline=None)
    reply(app, clock, coach, cid, at(15, 11), "advanced")
    # impatient: first nudge 1 business day after the thank-you (Tue 6 Jan 10:00); one
    # nudge at most; patience without a timeline 1 week: stalled Mon 12 Jan 10:00 (day 7,
    # grace 0; the last nudge's 1-day spacing ended on the 7th).
    impatient = policy_variant("impatient", patience__first_nudge_without_timeline_business_days=1,
                               patience__window_without_timeline_weeks=1, pest_line__max_nudges=1,
                               stall__grace_business_days=0, nudge__spacing_business_days=1)
    playbook, short = metrics(source, default_policy(), impatient)

    # The playbook: first nudge 7 business days after the thank-you (Wed 14 Jan 10:00),
    # the next one due 21 Jan, after the reply (Thu 15 Jan 11:00), which advances.
    assert playbook["nudges"] == 1 and playbook["pester_load"] == 1
    assert playbook["stalls"] == 0 and playbook["premature_stalls"] == 0
    assert playbook["advanced"] == 1
    assert playbook["days_to_next_step"] == round(10 + 2 / 24, 2)  # 5 Jan 09:00 -> 15 Jan 11:00
    assert playbook["impatience"] == 0  # no timeline was stated
    assert playbook["thank_you_misses"] == 0 and playbook["thank_yous"] == 1
    assert playbook["messages"] == {"email": 2, "voicemail": 1, "card": 0}

    assert short["nudges"] == 1 and short["stalls"] == 1
    assert short["premature_stalls"] == 1 and short["premature_stalls_advanced"] == 1
    assert short["pester_load"] == 1  # its one nudge went to an employer who did reply
    assert short["advanced"] == 0 and short["days_to_next_step"] is None


def test_a_stated_timeline_makes_early_nudges_impatient_and_a_late_rejection_premature(
        store: Any, coach: Actor) -> None:
    app, clock, source = store
    cid = record(app, clock, coach, interviewed=at(5, 9), logged=at(5, 10),
                 timeline={"min_weeks": 2, "max_weeks": 3})
    reply(app, clock, coach, cid, at(10, 10, month=2), "rejected")
    patient = policy_variant("patient", patience__first_nudge_after_timeline_min_business_days=5)
    playbook, later = metrics(source, default_policy(), patient)

    # The playbook nudges at the early end (Mon 19 Jan 09:00: before the late end, 26 Jan
    # 09:00, so impatient), then 26 Jan and 2 Feb; stalls at the later of the late end plus
    # 5 business days (2 Feb) and the last nudge plus 5 (Mon 9 Feb 09:00): a day before the
    # rejection, which came anyway.
    assert playbook["nudges"] == 3 and playbook["impatience"] == 1
    assert playbook["stalls"] == 1 and playbook["premature_stalls"] == 1
    assert playbook["premature_stalls_advanced"] == 0 and playbook["pester_load"] == 3
    assert playbook["rejected"] == 0
    assert playbook["messages"] == {"email": 4, "voicemail": 3, "card": 0}

    # Five business days more patience: nudges 26 Jan, 2 Feb, 9 Feb (none before the late
    # end); the stall would be 16 Feb, so the rejection of 10 Feb is received.
    assert later["nudges"] == 3 and later["impatience"] == 0
    assert later["stalls"] == 0 and later["premature_stalls"] == 0
    assert later["rejected"] == 1 and later["pester_load"] == 3


def test_quiet_hours_that_hold_an_evening_thank_you_past_midnight_miss_the_deadline(
        store: Any, coach: Actor) -> None:
    app, clock, source = store
    record(app, clock, coach, interviewed=at(5, 18), logged=at(5, 20, 30), thank_you=None)
    late_quiet = policy_variant("late-quiet", quiet_hours__start="22:00", quiet_hours__end="07:00")
    next_day = policy_variant("next-day", thank_you__deadline_days_after_interview=1)
    playbook, evening, relaxed = metrics(source, default_policy(), late_quiet, next_day,
                                         until=at(7, 0))

    # The playbook's quiet hours start at 20:00: the thank-you waits for 08:00 on the 6th,
    # after the same-day deadline (23:59:59 on the 5th): one miss, one overdue alert.
    assert playbook["thank_you_misses"] == 1 and playbook["reminders"] == 1
    assert playbook["thank_yous"] == 1
    # Quiet from 22:00, it goes at 20:30; a deadline a day later is met at 08:00.
    assert evening["thank_you_misses"] == 0 and evening["thank_yous"] == 1
    assert relaxed["thank_you_misses"] == 0 and relaxed["thank_yous"] == 1


def test_a_card_left_after_the_policy_already_thanked_is_made_redundant(
        store: Any, coach: Actor) -> None:
    app, clock, source = store
    clock.set(at(5, 10))
    data = interview(interviewed_at=at(5, 9).isoformat(), interviewers=ONE)  # in person
    cid = app.record_interview(coach, data).candidacy_id
    app.record_no_hesitations(coach, cid)
    app.close_next_step(coach, cid, "Onsite with the CTO")
    clock.set(at(5, 11))
    app.send_thank_you(coach, cid, "card")
    (playbook,) = metrics(source, default_policy(), until=at(6, 0))

    # In person, the same day, before the send window closes: the policy says a card at
    # 10:00, when the next step was closed; the one recorded at 11:00 is redundant.
    assert playbook["thank_yous"] == 1 and playbook["messages"]["card"] == 1
    assert playbook["superseded"] == 1 and playbook["thank_you_misses"] == 0


def test_filters_pick_candidacies_by_final_recorded_stage_and_interview_date(
        store: Any, coach: Actor) -> None:
    app, clock, source = store
    first = record(app, clock, coach, interviewed=at(5, 9), logged=at(5, 10), timeline=None)
    reply(app, clock, coach, first, at(8, 10), "advanced")
    record(app, clock, coach, interviewed=at(12, 9), logged=at(12, 10), timeline=None)
    policy = default_policy()

    def count(**filters: Any) -> int:
        return replay(source, [policy], filters=Filters(**filters), until=FAR).replayed

    assert count() == 2
    assert count(stage="advanced") == 1 and count(stage="awaiting") == 1
    assert count(since=at(10, 0)) == 1 and count(since=at(13, 0)) == 0
    assert count(country="GB") == 2 and count(country="US") == 0
    assert Filters.parse(["stage=advanced", "country=gb"], "2026-01-10") == Filters(
        stage="advanced", country="GB", since=at(10, 0))
    with pytest.raises(InvalidInput, match="stage"):
        Filters.parse(["stage=nowhere"])


def test_replay_skips_other_aggregates_and_recomputes_recorded_decisions(
        store: Any, coach: Actor) -> None:
    app, clock, source = store
    app.policies.publish(policy_variant("house", pest_line__max_nudges=2))  # another aggregate
    cid = record(app, clock, coach, interviewed=at(5, 9), logged=at(5, 10), timeline=None)
    # What the live scheduler recorded for this history: nudges on 14 and 21 Jan.
    for day in (14, 21):
        clock.set(at(day, 10))
        assert [a.kind for a in app.apply_policy(cid)] == ["nudge"]
    reply(app, clock, coach, cid, at(22, 10), "advanced")
    (playbook,) = metrics(source, default_policy())
    one = policy_variant("one", pest_line__max_nudges=1)
    (single,) = metrics(source, one)

    assert playbook["candidacies"] == 1 and playbook["nudges"] == 2
    assert playbook["policy_nudges"] == 2 and playbook["pester_load"] == 2
    # One nudge at most: the recorded second nudge is not replayed; the stall comes at the
    # later of the 4 weeks' patience plus 5 business days (9 Feb) and the nudge plus 5
    # (21 Jan): after the reply, so no stall.
    assert single["nudges"] == 1 and single["stalls"] == 0 and single["advanced"] == 1


def test_export_then_import_is_lossless_and_replays_the_same(
        store: Any, tmp_path: Any) -> None:
    app, _clock, source = store
    simulate(app, 25, seed=11)
    app.policies.publish(policy_variant("house", pest_line__max_nudges=2))
    first = io.BytesIO()
    exported = export(source.batches(None), first, with_policies=True)
    path = tmp_path / "histories.jsonl"
    path.write_bytes(first.getvalue())

    copy = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/copy.db"))
    report = import_file(copy, path)
    again = io.BytesIO()
    export(source_for(f"sqlite:///{tmp_path}/copy.db", "stored_events").batches(None), again,
           with_policies=True)
    copy_rows = {(r.id, r.version, r.stage, r.due_at) for r in copy.recorder.select_all_rows()}
    original_rows = {(r.id, r.version, r.stage, r.due_at) for r in app.recorder.select_all_rows()}
    copy.close()

    assert report.events == exported and report.candidacies == 25
    assert report.other_aggregates == 1
    assert again.getvalue() == first.getvalue()
    assert copy_rows == original_rows
    policy = default_policy()
    assert metrics(JsonlSource(path), policy) == metrics(source, policy)
    twice = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/copy.db"))
    with pytest.raises(InvalidInput, match="already in the store"):
        import_file(twice, path)
    twice.close()


def test_a_damaged_export_line_is_named_by_its_number_and_nothing_is_imported(
        store: Any, tmp_path: Any) -> None:
    app, _clock, source = store
    simulate(app, 3, seed=2)
    exported = io.BytesIO()
    export(source.batches(None), exported)
    lines = exported.getvalue().splitlines(keepends=True)
    lines[4] = lines[4][: len(lines[4]) // 2] + b"\n"  # cut short, as by a full disk
    path = tmp_path / "damaged.jsonl"
    path.write_bytes(b"".join(lines))

    with pytest.raises(InvalidInput, match="line 5: not an exported event line"):
        replay(JsonlSource(path), [default_policy()])
    copy = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/copy.db"))
    with pytest.raises(InvalidInput, match="line 5: not an exported event line"):
        import_file(copy, path)
    assert copy.recorder.select_all_rows() == []
    copy.close()


@pytest.mark.parametrize("live", ["playbook", "house"])
def test_replaying_simulated_histories_under_the_live_policy_reproduces_their_decisions(
        store: Any, live: str) -> None:
    app, _clock, source = store
    policy = default_policy() if live == "playbook" else policy_variant(
        "house", pest_line__max_nudges=2, nudge__spacing_business_days=3,
        quiet_hours__start="21:00")
    simulate(app, 120, seed=5, policy=policy)
    report = agreement(source, lambda ref: app.policies.get(ref["name"], ref["version"]))
    assert report.candidacies == 120
    assert report.differing == [] and report.agreeing == 120
    (replayed,) = metrics(source, policy)
    assert replayed["premature_stalls"] == 0 and replayed["ended_early"] == 0
    assert replayed["superseded"] == 0


def test_two_workers_count_the_same_as_one(store: Any) -> None:
    app, _clock, source = store
    simulate(app, 60, seed=2)
    policies = [default_policy(), policy_variant("one", pest_line__max_nudges=1)]
    assert metrics(source, *policies, workers=2) == metrics(source, *policies, workers=1)
    assert replay(source, policies, workers=2, until=FAR).workers == 2


def test_replay_until_stops_where_the_history_was_observed(store: Any, coach: Actor) -> None:
    app, clock, source = store
    record(app, clock, coach, interviewed=at(5, 9), logged=at(5, 10), timeline=None)
    # Nudges due 14 Jan, 21 Jan and 28 Jan: by the 22nd only two have fallen due.
    (seen,) = metrics(source, default_policy(), until=at(22, 0))
    (later,) = metrics(source, default_policy(), until=at(29, 0))
    assert seen["nudges"] == 2 and later["nudges"] == 3


def test_replay_reads_backdated_facts_overrides_and_corrections_as_the_live_engine(
        store: Any, coach: Actor) -> None:
    app, clock, source = store
    clock.set(at(5, 10))
    cid = app.record_interview(coach, interview(
        interviewed_at=at(5, 9).isoformat(), format="video", timeline=None,
        interviewers=[{"name": "Daniel Whitfeld", "title": "VP Engineering"}])).candidacy_id
    app.record_no_hesitations(coach, cid)
    app.close_next_step(coach, cid, "Call with the hiring manager")
    app.correct_details(coach, cid, {"person": "Daniel Whitfeld", "field": "name",
                                     "value": "Daniel Whitfield"})
    app.send_thank_you(coach, cid, "email", to=["Daniel Whitfield"])
    # A nudge by phone on Thursday 8 January, logged on Monday 12th, let through by hand.
    clock.set(at(12, 10))
    app.send_nudge(coach, cid, occurred_at=at(8, 15),
                   override={"reason": "the recruiter asked her to call"})
    clock.set(at(13, 9))
    app.pause_cadence(coach, cid, "candidate travelling", occurred_at=at(12, 18))
    clock.set(at(14, 9))
    app.resume_cadence(coach, cid, occurred_at=at(13, 18))
    # The live scheduler's nudges: spaced from the 8th (and the day paused), not the 12th.
    for day in range(14, 31):  # ticking every hour, as a scheduler does
        for hour in range(24):
            clock.set(at(day, hour))
            app.apply_policy(cid)
    # Hers is the fact "I sent it"; the scheduler's are decisions (no outbox runs here).
    nudges = [e for e in app.history(cid, coach.workspace)
              if e.type in ("NudgeSent", "NudgeDecided")]
    assert [e.type for e in nudges] == ["NudgeSent", "NudgeDecided", "NudgeDecided"]
    assert nudges[0].decided_by is None and nudges[1].decided_by["rule"] == "nudge.spacing"

    report = agreement(source, lambda ref: app.policies.get(ref["name"], ref["version"]),
                       until=at(31, 0))

    assert report.differing == [] and (report.candidacies, report.agreeing) == (1, 1)
    # Each rule saw when things happened: the nudge by phone, the day paused.
    assert [n.decided_by["due_at"] for n in nudges[1:]] == [
        "2026-01-16T15:00:00+00:00", "2026-01-23T15:00:00+00:00"]
