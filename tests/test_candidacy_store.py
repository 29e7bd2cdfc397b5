"""The application service on a real store (SQLite file and PostgreSQL).

Idempotency keys, expected versions, workspace isolation, input errors, who acted,
late-logged facts, snapshots and the current-row table.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import structlog
import structlog.testing
from builders import PANEL, candidacy_at, interview
from eventsourcing.persistence import IntegrityError as PersistenceIntegrityError
from eventsourcing.persistence import OperationalError, StoredEvent

from conftest import memory_url
from engine.application import SNAPSHOT_INTERVAL, Candidacies, Outcome, history_entry
from engine.candidacy import Candidacy
from engine.clock import FixedClock
from engine.errors import (
    CandidacyNotFound,
    IdempotencyKeyReused,
    IllegalCommand,
    InvalidInput,
    VersionConflict,
)
from engine.store import IdempotencyRecord, eventsourcing_env
from engine.values import Actor

OTHER = Actor(user="recruiter@other.example", workspace="other-agency")


def state(candidacy: Candidacy) -> dict[str, Any]:
    """Everything a candidacy holds (its id, version and times included)."""
    return {k: v for k, v in vars(candidacy).items() if k != "_pending_events"}


def replayed_from_events(app: Candidacies, candidacy_id: str) -> Candidacy:
    """The candidacy folded from every stored event, no snapshot used."""
    candidacy = None
    for event in app.events.get(UUID(candidacy_id)):
        candidacy = event.mutate(candidacy)
    assert isinstance(candidacy, Candidacy)
    return candidacy


def event_count(app: Candidacies, candidacy_id: str) -> int:
    return len(list(app.events.get(UUID(candidacy_id))))


# -- idempotency -----------------------------------------------------------------------


def test_a_retried_interview_records_nothing_and_answers_the_first_outcome(
        candidacies: Candidacies, coach: Actor) -> None:
    first = candidacies.record_interview(coach, interview(), idempotency_key="intake-1")
    again = candidacies.record_interview(coach, interview(), idempotency_key="intake-1")
    assert not first.replayed and again.replayed
    assert (again.candidacy_id, again.version, again.stage, again.data) == (
        first.candidacy_id, first.version, first.stage, first.data)
    assert [r.id for r in candidacies.rows(coach.workspace)] == [first.candidacy_id]


def test_a_retried_command_records_nothing_and_answers_the_first_outcome(
        candidacies: Candidacies, coach: Actor, clock: FixedClock) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    first = candidacies.raise_hesitation(coach, cid, "Too little Go?", idempotency_key="k1")
    clock.advance(timedelta(minutes=5))
    again = candidacies.raise_hesitation(coach, cid, "Too little Go?", idempotency_key="k1")
    assert again == Outcome(cid, 2, "interviewed", {"hesitation_id": "r1h1"}, replayed=True)
    assert first == Outcome(cid, 2, "interviewed", {"hesitation_id": "r1h1"})
    assert event_count(candidacies, cid) == 2
    # The answer stays the first one even after the candidacy moved on.
    candidacies.address_hesitation(coach, cid, "r1h1", "Shipped two Go services")
    late = candidacies.raise_hesitation(coach, cid, "Too little Go?", idempotency_key="k1")
    assert (late.version, late.stage, late.replayed) == (2, "interviewed", True)
    assert event_count(candidacies, cid) == 3


@pytest.mark.parametrize("second", [
    lambda app, actor, cid: app.raise_hesitation(actor, cid, "Another text",
                                                 idempotency_key="k1"),
    lambda app, actor, cid: app.note_competing_offer(
        actor, cid, "Contoso", datetime(2026, 12, 9, tzinfo=UTC), idempotency_key="k1"),
    lambda app, actor, cid: app.record_interview(actor, interview(), idempotency_key="k1"),
], ids=["other-args", "other-command", "other-candidacy"])
def test_a_key_reused_for_another_command_is_refused(
        candidacies: Candidacies, coach: Actor, second: Any) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    candidacies.raise_hesitation(coach, cid, "Too little Go?", idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused) as reused:
        second(candidacies, coach, cid)
    assert reused.value.key == "k1" and "'k1'" in str(reused.value)
    assert event_count(candidacies, cid) == 2
    assert len(candidacies.rows(coach.workspace)) == 1


def test_keys_belong_to_a_workspace(candidacies: Candidacies, coach: Actor) -> None:
    ours = candidacies.record_interview(coach, interview(), idempotency_key="intake-1")
    theirs = candidacies.record_interview(OTHER, interview(), idempotency_key="intake-1")
    assert not theirs.replayed and theirs.candidacy_id != ours.candidacy_id
    assert candidacies.raise_hesitation(OTHER, theirs.candidacy_id, "Visa?",
                                        idempotency_key="h").version == 2
    assert candidacies.raise_hesitation(coach, ours.candidacy_id, "Visa?",
                                        idempotency_key="h").version == 2
    assert len(candidacies.rows(coach.workspace)) == len(candidacies.rows(OTHER.workspace)) == 1


def test_a_refused_command_does_not_spend_its_key(candidacies: Candidacies,
                                                  coach: Actor) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    candidacies.raise_hesitation(coach, cid, "Notice period?")
    with pytest.raises(IllegalCommand):
        candidacies.close_next_step(coach, cid, "Onsite", idempotency_key="close")
    candidacies.address_hesitation(coach, cid, "r1h1", "Four weeks")
    outcome = candidacies.close_next_step(coach, cid, "Onsite", idempotency_key="close")
    assert (outcome.stage, outcome.replayed) == ("next_step_closed", False)


# -- optimistic concurrency ----------------------------------------------------------------


def test_an_expected_version_mismatch_is_refused_and_records_nothing(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    assert candidacies.raise_hesitation(coach, cid, "Relocation?",
                                        expected_version=1).version == 2
    with pytest.raises(VersionConflict) as conflict:
        candidacies.raise_hesitation(coach, cid, "Salary?", expected_version=1)
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert "version 2, not 1" in str(conflict.value)
    assert event_count(candidacies, cid) == 2
    assert candidacies.row(cid).version == 2


def test_a_stale_save_is_a_version_conflict(candidacies: Candidacies, coach: Actor,
                                            clock: FixedClock) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    stale = candidacies.get(cid, coach.workspace)
    candidacies.raise_hesitation(coach, cid, "Relocation?")  # another writer got there first
    stale.raise_hesitation(coach, clock.now(), hesitation_id="r1h1", text="Salary?")
    with pytest.raises(VersionConflict):
        candidacies._save(coach, stale, None, "fingerprint", {})
    assert [e.data["text"] for e in candidacies.history(cid, coach.workspace)[1:]] == [
        "Relocation?"]
    assert candidacies.row(cid).version == 2


# -- the copies a command leaves behind -----------------------------------------------------


def test_a_command_starts_from_the_copy_the_last_one_saved(
        candidacies: Candidacies, coach: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    reads: list[str] = []
    real_load = candidacies._load
    monkeypatch.setattr(candidacies, "_load", lambda uid: reads.append(str(uid)) or
                        real_load(uid))
    candidacies.raise_hesitation(coach, cid, "Relocation?")
    candidacies.raise_hesitation(coach, cid, "Salary?")
    assert reads == []  # both started from the copy the previous command saved
    assert state(candidacies.get(cid, coach.workspace)) == state(
        replayed_from_events(candidacies, cid))
    assert [e.version for e in candidacies.history(cid, coach.workspace)] == [1, 2, 3]


def test_a_copy_another_writer_made_stale_is_decided_again_on_the_stored_state(
        database_url: str, clock: FixedClock, coach: Actor) -> None:
    first = Candidacies(eventsourcing_env(database_url), clock=clock)
    second = Candidacies(eventsourcing_env(database_url), clock=clock)
    try:
        cid = candidacy_at(first, coach, "nudged")  # `first` keeps its copy at nudged
        second.receive_reply(coach, cid, "advanced", note="onsite next week")
        # Starting a round is illegal on the copy (nudged), legal on what is stored.
        outcome = first.start_next_round(coach, cid)
        assert (outcome.stage, outcome.version) == ("interviewed", 8)
        # A stale copy with If-Match: the stored version decides, not the copy's.
        second.note_competing_offer(coach, cid, "Initech", clock.now() + timedelta(days=9))
        with pytest.raises(VersionConflict) as conflict:
            first.raise_hesitation(coach, cid, "Notice period?", expected_version=8)
        assert (conflict.value.expected, conflict.value.actual) == (8, 9)
        assert first.raise_hesitation(coach, cid, "Notice period?",
                                      expected_version=9).version == 10
        # Without one, a command on a stale copy lands on top of the other writer's event.
        second.raise_hesitation(coach, cid, "Visa?")
        assert first.raise_hesitation(coach, cid, "Start date?").version == 12
        texts = [e.data.get("text") or e.data.get("company")
                 for e in first.history(cid, coach.workspace)[8:]]
        assert texts == ["Initech", "Notice period?", "Visa?", "Start date?"]
        assert state(first.get(cid, coach.workspace)) == state(
            replayed_from_events(first, cid))
    finally:
        first.close()
        second.close()


def test_a_refused_command_leaves_no_half_applied_copy(candidacies: Candidacies,
                                                       coach: Actor) -> None:
    cid = candidacy_at(candidacies, coach, "interviewed")
    with pytest.raises(IllegalCommand):
        candidacies.send_nudge(coach, cid)
    with pytest.raises(InvalidInput):
        candidacies.raise_hesitation(coach, cid, "")
    assert candidacies.record_no_hesitations(coach, cid).version == 2
    assert state(candidacies.get(cid, coach.workspace)) == state(
        replayed_from_events(candidacies, cid))


def test_a_kept_copy_is_not_served_to_another_workspace(candidacies: Candidacies,
                                                        coach: Actor) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    with pytest.raises(CandidacyNotFound):
        candidacies.raise_hesitation(OTHER, cid, "?")
    assert candidacies.raise_hesitation(coach, cid, "Relocation?").version == 2
    assert event_count(candidacies, cid) == 2


def test_the_kept_copies_are_bounded(database_url: str, clock: FixedClock,
                                     coach: Actor) -> None:
    app = Candidacies(eventsourcing_env(database_url), clock=clock, recent=3)
    try:
        ids = [app.record_interview(coach, interview()).candidacy_id for _ in range(5)]
        assert len(app.recent) == 3
        for cid in ids:  # the forgotten ones are read back
            assert app.record_no_hesitations(coach, cid).version == 2
        assert len(app.recent) == 3
    finally:
        app.close()


def test_how_many_copies_a_process_keeps_is_a_setting(
        monkeypatch: pytest.MonkeyPatch, coach: Actor) -> None:
    from pydantic import ValidationError

    from api.settings import Settings
    from api.wiring import build_candidacies

    monkeypatch.setenv("CLOSER_DATABASE_URL", memory_url())
    monkeypatch.setenv("CLOSER_RECENT_CANDIDACIES", "0")
    app = build_candidacies(Settings())
    try:
        cid = app.record_interview(coach, interview()).candidacy_id
        assert app.recent.size == 0 and len(app.recent) == 0
        assert app.record_no_hesitations(coach, cid).version == 2  # read back, as before
    finally:
        app.close()
    seven = build_candidacies(Settings(recent_candidacies=7))
    assert seven.recent.size == 7
    seven.close()
    monkeypatch.setenv("CLOSER_RECENT_CANDIDACIES", "-1")
    with pytest.raises(ValidationError, match="recent_candidacies"):
        Settings()


# -- workspaces ------------------------------------------------------------------------------


def test_another_workspace_sees_no_candidacy(candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    with pytest.raises(CandidacyNotFound):
        candidacies.get(cid, OTHER.workspace)
    with pytest.raises(CandidacyNotFound):
        candidacies.history(cid, OTHER.workspace)
    for command in (lambda: candidacies.raise_hesitation(OTHER, cid, "?"),
                    lambda: candidacies.record_no_hesitations(OTHER, cid),
                    lambda: candidacies.withdraw(OTHER, cid, "hijack")):
        with pytest.raises(CandidacyNotFound):
            command()
    assert candidacies.rows(OTHER.workspace) == []
    assert event_count(candidacies, cid) == 1


@pytest.mark.parametrize("candidacy_id", ["not-a-uuid", "5f0c3a52-8f7e-4c7b-9d1e-2a6b4c8d0e11", ""])
def test_an_unknown_id_is_not_found(candidacies: Candidacies, coach: Actor,
                                    candidacy_id: str) -> None:
    with pytest.raises(CandidacyNotFound):
        candidacies.get(candidacy_id, coach.workspace)
    with pytest.raises(CandidacyNotFound):
        candidacies.history(candidacy_id, coach.workspace)
    with pytest.raises(CandidacyNotFound):
        candidacies.record_no_hesitations(coach, candidacy_id)


# -- input errors name the field --------------------------------------------------------------

NAIVE = datetime(2026, 11, 24, 9, 0)
FUTURE = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"interviewed_at": NAIVE}, "interviewed_at"),
    ({"interviewed_at": "2026-11-25T09:00:00"}, "interviewed_at"),
    ({"timezone": "Europe/Atlantis"}, "timezone"),
    ({"country": "XX"}, "country"),
    ({"timeline": {"min_weeks": 4, "max_weeks": 3}}, "timeline"),
    ({"interviewers": []}, "interviewers"),
    ({"favourite_colour": "teal"}, "favourite_colour"),
    ({"interviewers": [{"name": "Ann", "title": "CTO", "email": "ann"}]}, "interviewers.0.email"),
    ({"format": "carrier_pigeon"}, "format"),
], ids=["naive", "naive-text", "timezone", "country", "timeline", "no-interviewers",
        "unknown-field", "email", "format"])
def test_a_bad_interview_names_the_field(candidacies: Candidacies, coach: Actor,
                                         overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as invalid:
        candidacies.record_interview(coach, interview(**overrides))
    assert invalid.value.field == field
    assert str(invalid.value).startswith(f"{field}: ")
    assert candidacies.rows(coach.workspace) == []


@pytest.mark.parametrize(("command", "field"), [
    (lambda a, c, cid: a.raise_hesitation(c, cid, "?", occurred_at=FUTURE), "occurred_at"),
    (lambda a, c, cid: a.raise_hesitation(c, cid, "?", occurred_at=NAIVE), "occurred_at"),
    (lambda a, c, cid: a.raise_hesitation(c, cid, "   "), "text"),
    (lambda a, c, cid: a.receive_reply(c, cid, "update", received_at=FUTURE), "received_at"),
    (lambda a, c, cid: a.receive_reply(c, cid, "maybe"), "kind"),
    (lambda a, c, cid: a.note_competing_offer(c, cid, "Contoso", NAIVE), "deadline"),
    (lambda a, c, cid: a.note_competing_offer(c, cid, "Contoso", FUTURE, occurred_at=FUTURE),
     "occurred_at"),
    (lambda a, c, cid: a.close_next_step(c, cid, "Onsite", scheduled_for=NAIVE),
     "scheduled_for"),
    (lambda a, c, cid: a.pause_cadence(c, cid, "Holiday", until=date(2026, 11, 1)), "until"),
    (lambda a, c, cid: a.send_nudge(c, cid, channels=["fax"]), "channels"),
    (lambda a, c, cid: a.migrate_policy(c, cid, "playbook", 0), "version"),
    (lambda a, c, cid: a.migrate_policy(c, cid, "unpublished", 1), "policy"),
], ids=["future", "naive", "empty-text", "future-reply", "reply-kind", "naive-deadline",
        "future-offer", "naive-schedule", "past-pause", "channel", "policy-version",
        "unpublished-policy"])
def test_a_bad_command_names_the_field_and_records_nothing(
        candidacies: Candidacies, coach: Actor, command: Any, field: str) -> None:
    cid = candidacy_at(candidacies, coach, "awaiting")
    with pytest.raises(InvalidInput) as invalid:
        command(candidacies, coach, cid)
    assert invalid.value.field == field
    assert event_count(candidacies, cid) == candidacies.row(cid).version == 5


@pytest.mark.parametrize(("zone", "country", "now", "until"), [
    ("Europe/London", "GB", datetime(2026, 11, 25, 10, tzinfo=UTC), date(2026, 11, 25)),
    ("Pacific/Auckland", "NZ", datetime(2026, 11, 25, 20, tzinfo=UTC),
     date(2026, 11, 26)),  # already the 26th in Auckland
], ids=["today", "today-ahead-of-utc"])
def test_a_pause_that_would_never_hold_is_refused(
        candidacies: Candidacies, coach: Actor, clock: FixedClock, zone: str, country: str,
        now: datetime, until: date) -> None:
    cid = candidacies.record_interview(
        coach, interview(timezone=zone, country=country)).candidacy_id
    clock.set(now)
    with pytest.raises(InvalidInput) as invalid:
        candidacies.pause_cadence(coach, cid, "Holiday", until=until)
    assert invalid.value.field == "until"


def test_a_return_date_on_a_reply_that_is_not_out_of_office_names_back_on(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacy_at(candidacies, coach, "awaiting")
    with pytest.raises(InvalidInput) as invalid:
        candidacies.receive_reply(coach, cid, "update", back_on=date(2026, 12, 1))
    assert invalid.value.field == "back_on"


def test_the_application_date_is_kept_and_an_event_recorded_before_it_existed_reads_none(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacies.record_interview(coach, interview(applied_on="2026-11-10")).candidacy_id
    assert candidacies.get(cid, coach.workspace).applied_on == date(2026, 11, 10)
    with pytest.raises(InvalidInput) as invalid:
        candidacies.record_interview(coach, interview(applied_on="2026-11-26"))
    assert invalid.value.field == "applied_on"

    # The same event as stored before the field existed: no `applied_on` key at all.
    mapper = candidacies.mapper
    stored = mapper.to_stored_event(next(iter(candidacies.events.get(UUID(cid)))))
    old = mapper.transcoder.decode(stored.state)
    del old["applied_on"]
    event = mapper.to_domain_event(StoredEvent(stored.originator_id, stored.originator_version,
                                               stored.topic, mapper.transcoder.encode(old)))
    assert event.mutate(None).applied_on is None
    assert "applied_on" not in history_entry(event).data


def test_an_interview_key_recorded_before_applied_on_existed_still_matches(
        candidacies: Candidacies, coach: Actor) -> None:
    candidacies.record_interview(coach, interview(), idempotency_key="intake-old")
    record = candidacies.recorder.find_idempotency(coach.workspace, "intake-old")
    # The fingerprint commit 271b976 (before the field) stores for the same request.
    assert record is not None and record.fingerprint == (
        "4556e39fddb7f9453aacf9ecbab25d6ca7140d283084bc0ded59de5a1c8d5b7d")
    with pytest.raises(IdempotencyKeyReused):
        candidacies.record_interview(coach, interview(applied_on="2026-11-10"),
                                     idempotency_key="intake-old")


def test_an_out_of_office_reply_without_a_return_date_pauses_for_the_policys_default(
        candidacies: Candidacies, coach: Actor) -> None:
    # Wednesday 25 November 2026 in London; the playbook policy pauses 5 business days.
    cid = candidacy_at(candidacies, coach, "awaiting")
    candidacies.receive_reply(coach, cid, "out_of_office")
    candidacy = candidacies.get(cid, coach.workspace)
    assert candidacy.paused["until"] == date(2026, 12, 2)
    assert candidacy.paused["reason"] == "out of office"


# -- who acted, and when things happened --------------------------------------------------------


def test_every_event_says_who_acted_for_whom_in_which_workspace(
        candidacies: Candidacies, coach: Actor) -> None:
    maya = Actor(user="maya", workspace="agency")
    cid = candidacy_at(candidacies, coach, "thanked")
    candidacies.send_thank_you(maya, cid, "card", to=["Tom Becker"])
    candidacies.send_nudge(maya, cid, override={"reason": "the test says so"})
    history = candidacies.history(cid, "agency")
    assert [(e.actor, e.on_behalf_of, e.workspace) for e in history] == (
        [("coach@agency.example", "maya", "agency")] * 4 + [("maya", None, "agency")] * 2)
    for event in candidacies.events.get(UUID(cid)):  # as stored, not only as shown
        assert {"actor", "on_behalf_of", "workspace"} <= set(vars(event))


def test_late_logged_facts_keep_when_they_happened(candidacies: Candidacies, coach: Actor,
                                                   clock: FixedClock) -> None:
    now = clock.now()
    cid = candidacies.record_interview(coach, interview(
        interviewers=PANEL, interviewed_at=(now - timedelta(days=2)).isoformat())).candidacy_id
    said = now - timedelta(hours=20)
    candidacies.raise_hesitation(coach, cid, "Team size?", occurred_at=said)
    answered = now - timedelta(hours=19)
    candidacies.address_hesitation(coach, cid, "r1h1", "Led eight", occurred_at=answered)
    offered = now - timedelta(days=1, hours=2)
    candidacies.note_competing_offer(coach, cid, "Contoso", now + timedelta(days=7),
                                     occurred_at=offered)
    candidacies.close_next_step(coach, cid, "Onsite")
    candidacies.send_thank_you(coach, cid, "email")
    clock.advance(timedelta(days=3))
    replied = now + timedelta(days=1)  # logged two days after it arrived
    candidacies.receive_reply(coach, cid, "rejected", note="Internal hire", received_at=replied)

    history = {e.type: e for e in candidacies.history(cid, coach.workspace)}
    assert (history["HesitationRaised"].at, history["HesitationRaised"].data["occurred_at"]) == (
        now, said)
    assert history["HesitationAddressed"].data["occurred_at"] == answered
    assert (history["CompetingOfferNoted"].at,
            history["CompetingOfferNoted"].data["occurred_at"]) == (now, offered)
    assert (history["ReplyReceived"].at, history["ReplyReceived"].data["occurred_at"]) == (
        clock.now(), replied)
    # The state uses when things happened.
    candidacy = candidacies.get(cid, coach.workspace)
    assert candidacy.hesitations[0]["raised_at"] == said
    assert candidacy.hesitations[0]["addressed_at"] == answered
    assert candidacy.offers[0]["noted_at"] == offered
    assert candidacy.last_reply["received_at"] == replied
    assert candidacy.outcome == {"kind": "rejected", "at": replied, "reason": "Internal hire"}
    assert candidacy.modified_on == clock.now()


# -- snapshots ------------------------------------------------------------------------------------


def test_snapshots_every_interval_load_to_the_same_state(
        candidacies: Candidacies, coach: Actor, clock: FixedClock) -> None:
    cid = candidacies.record_interview(coach, interview(interviewers=PANEL)).candidacy_id
    total = 2 * SNAPSHOT_INTERVAL + 3
    for version in range(2, total + 1):
        clock.advance(timedelta(hours=1))
        if version % 2 == 0:  # paused at every multiple of the interval: dates in the snapshot
            candidacies.pause_cadence(coach, cid, f"pause {version}", until=date(2027, 1, 4))
        else:
            candidacies.resume_cadence(coach, cid)
    candidacies.note_competing_offer(coach, cid, "Contoso", clock.now() + timedelta(days=9))
    total += 1

    snapshots = list(candidacies.snapshots.get(UUID(cid)))
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_INTERVAL,
                                                          2 * SNAPSHOT_INTERVAL]
    loaded = candidacies.get(cid, coach.workspace)  # snapshot and events in one query
    assert loaded.version == total
    assert state(loaded) == state(replayed_from_events(candidacies, cid))
    assert state(loaded) == state(candidacies.repository.get(UUID(cid)))  # the library's read
    assert loaded.paused is None and len(loaded.pauses) == SNAPSHOT_INTERVAL + 1
    assert loaded.pauses[0]["since"] == datetime(2026, 11, 25, 11, tzinfo=UTC)

    at_snapshot = candidacies.get(cid, coach.workspace, version=2 * SNAPSHOT_INTERVAL)
    assert at_snapshot.paused["until"] == date(2027, 1, 4)  # a date, back from JSON
    assert isinstance(at_snapshot.paused["until"], date)
    assert not isinstance(at_snapshot.paused["until"], datetime)
    # A fresh application object on the same store loads the same.
    fresh = Candidacies(candidacies.env, clock=clock)
    try:
        assert state(fresh.get(cid, coach.workspace)) == state(loaded)
    finally:
        fresh.close()


def test_a_snapshot_that_cannot_be_written_leaves_the_command_answered_as_recorded(
        candidacies: Candidacies, coach: Actor, clock: FixedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The snapshot is written after the command's events committed: failing then, the
    # command still happened (answered, stored), only without its snapshot (logged).
    def refused(_events: Any, **_: Any) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(candidacies.snapshots, "put", refused)
    cid = candidacies.record_interview(coach, interview(interviewers=PANEL)).candidacy_id
    for version in range(2, SNAPSHOT_INTERVAL):  # paused and resumed up to the one before
        clock.advance(timedelta(hours=1))
        if version % 2 == 0:
            candidacies.pause_cadence(coach, cid, f"pause {version}")
        else:
            candidacies.resume_cadence(coach, cid)
    previous = structlog.get_config()  # (the suite logs errors only)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
                        cache_logger_on_first_use=False)
    try:
        with structlog.testing.capture_logs() as logs:
            outcome = candidacies.note_competing_offer(coach, cid, "Contoso",
                                                       clock.now() + timedelta(days=9))
    finally:
        structlog.configure(**previous)
    assert outcome.version == SNAPSHOT_INTERVAL
    assert [e.version for e in candidacies.history(cid, coach.workspace)][-1] == \
        SNAPSHOT_INTERVAL
    assert list(candidacies.snapshots.get(UUID(cid))) == []
    assert [(line["event"], line["version"]) for line in logs
            if line["log_level"] == "warning"] == [("snapshot not written", SNAPSHOT_INTERVAL)]
    fresh = Candidacies(candidacies.env, clock=clock)
    try:
        assert fresh.get(cid, coach.workspace).version == SNAPSHOT_INTERVAL
    finally:
        fresh.close()


# -- the current row -------------------------------------------------------------------------------


def test_the_row_tracks_stage_and_version_after_every_command(
        candidacies: Candidacies, coach: Actor, clock: FixedClock) -> None:
    first = candidacies.record_interview(coach, interview(interviewers=PANEL))
    cid = first.candidacy_id
    seen = [first]
    steps = [
        lambda: candidacies.raise_hesitation(coach, cid, "Weekend on-call?"),
        lambda: candidacies.address_hesitation(coach, cid, "r1h1", "Fine, paid"),
        lambda: candidacies.close_next_step(coach, cid, "Onsite"),
        lambda: candidacies.send_thank_you(coach, cid, "email", to=["Priya Raman"]),
        lambda: candidacies.pause_cadence(coach, cid, "Travelling"),
        lambda: candidacies.resume_cadence(coach, cid),
        lambda: candidacies.send_thank_you(coach, cid, "card", to=["Tom Becker"]),
        lambda: candidacies.send_nudge(coach, cid, override={"reason": "the test says so"}),
        lambda: candidacies.receive_reply(coach, cid, "advanced"),
        lambda: candidacies.start_next_round(coach, cid),
        lambda: candidacies.withdraw(coach, cid, "Moved abroad"),
    ]
    for step in steps:
        clock.advance(timedelta(hours=5))
        outcome = step()
        row = candidacies.row(cid)
        assert (row.stage, row.version) == (outcome.stage, outcome.version)
        loaded = candidacies.get(cid, coach.workspace)
        assert (row.stage, row.version, row.round) == (loaded.stage, loaded.version, loaded.round)
        seen.append(outcome)
    assert [o.version for o in seen] == list(range(1, len(steps) + 2))
    assert [o.stage for o in seen] == [
        "interviewed", "interviewed", "hesitations_addressed", "next_step_closed", "thanked",
        "thanked", "thanked", "awaiting", "nudged", "advanced", "interviewed", "stalled"]
    row = candidacies.row(cid)
    assert (row.stage, row.version, row.round) == ("stalled", len(steps) + 1, 2)
    assert (row.workspace, row.candidate, row.company) == (
        "agency", "Maya Okafor", "Northwind Analytics")
    assert row.updated_at == clock.now()
    assert row.summary["outcome"] == "withdrawn"
    assert [r.id for r in candidacies.rows("agency", stage="stalled")] == [cid]
    assert candidacies.rows("agency", stage="awaiting") == []


@pytest.mark.parametrize("stage", ["interviewed", "hesitations_addressed", "next_step_closed",
                                   "thanked", "awaiting", "nudged", "advanced", "stalled"])
def test_the_row_matches_the_candidacy_at_each_stage(candidacies: Candidacies, coach: Actor,
                                                     stage: str) -> None:
    cid = candidacy_at(candidacies, coach, stage)
    candidacy = candidacies.get(cid, coach.workspace)
    row = candidacies.row(cid)
    assert (row.stage, row.version, row.round) == (stage, candidacy.version, 1)
    assert [r.id for r in candidacies.rows(coach.workspace, stage=stage)] == [cid]


def test_a_write_the_store_refuses_leaves_nothing_behind(
        candidacies: Candidacies, coach: Actor, clock: FixedClock) -> None:
    """The events, the row and the key of one command commit together or not at all (on
    PostgreSQL they go out as one query string), and the store stays usable."""
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    uid = UUID(cid)
    recorder: Any = candidacies.recorder
    key = IdempotencyRecord(coach.workspace, "k-1", "fingerprint", {"ok": True}, clock.now())

    def event(version: int) -> StoredEvent:
        stored = recorder.select_events(uid)[-1]
        return StoredEvent(originator_id=uid, originator_version=version, topic=stored.topic,
                           state=stored.state)

    recorder.insert_events([event(2)], idempotency=key)
    with pytest.raises(PersistenceIntegrityError):  # the key again: refused...
        recorder.insert_events([event(3)], idempotency=key)
    assert [e.originator_version for e in recorder.select_events(uid)] == [1, 2]  # ...whole
    with pytest.raises(PersistenceIntegrityError):  # a version taken: refused, key unspent
        recorder.insert_events([event(2)], idempotency=IdempotencyRecord(
            coach.workspace, "k-2", "fingerprint", {}, clock.now()))
    assert recorder.find_idempotency(coach.workspace, "k-2") is None
    recorder.insert_events([event(3)])  # and the connection is usable afterwards
    assert [e.originator_version for e in recorder.select_events(uid)] == [1, 2, 3]


# -- the scheduler's page reads and writes ---------------------------------------------


def test_a_page_loads_each_candidacy_as_get_does(candidacies: Candidacies, coach: Actor,
                                                  clock: FixedClock) -> None:
    # One past two snapshots (dates in them), one at each stage, one in another workspace.
    long = candidacies.record_interview(coach, interview(interviewers=PANEL)).candidacy_id
    for version in range(2, 2 * SNAPSHOT_INTERVAL + 4):
        clock.advance(timedelta(hours=1))
        if version % 2 == 0:
            candidacies.pause_cadence(coach, long, f"pause {version}", until=date(2027, 1, 4))
        else:
            candidacies.resume_cadence(coach, long)
    staged = [candidacy_at(candidacies, coach, stage) for stage in
              ("interviewed", "next_step_closed", "awaiting", "nudged", "advanced", "stalled")]
    elsewhere = candidacies.record_interview(OTHER, interview()).candidacy_id
    ids = [staged[0], long, *staged[1:], elsewhere]
    assert len(list(candidacies.snapshots.get(UUID(long)))) == 2

    loaded = candidacies._load_many(ids)

    assert [str(c.id) for c in loaded] == ids
    for cid, candidacy in zip(ids, loaded, strict=True):
        workspace = OTHER.workspace if cid == elsewhere else coach.workspace
        assert state(candidacy) == state(candidacies.get(cid, workspace))
    with pytest.raises(CandidacyNotFound):
        candidacies._load_many([long, str(UUID(int=7))])
    # However many ids a page holds, it is one query (no OR chain for SQLite to refuse).
    many = {UUID(int=n): 0 for n in range(1, 1500)} | {UUID(long): 2 * SNAPSHOT_INTERVAL}
    records = candidacies.recorder.select_records_after(  # type: ignore[attr-defined]
        candidacies.recorder.events_table_name, many)
    assert [(r[0], r[1]) for r in records] == [
        (UUID(long), v) for v in range(2 * SNAPSHOT_INTERVAL + 1, 2 * SNAPSHOT_INTERVAL + 4)]


def test_a_row_never_goes_back_to_an_older_version(candidacies: Candidacies, coach: Actor,
                                                   clock: FixedClock) -> None:
    cid = candidacy_at(candidacies, coach, "awaiting")
    stale = candidacies.get(cid, coach.workspace)
    candidacies.send_nudge(coach, cid, override={"reason": "the test says so"})
    newer = candidacies.row(cid)
    assert (stale.stage, newer.stage) == ("awaiting", "nudged")

    # A row computed from the candidacy as read before the nudge is not written over it...
    candidacies.save(rows=[candidacies.current_row(stale, due_at=clock.now())])
    assert candidacies.row(cid) == newer
    # ...while a row of the same version is (a held action's new due moment).
    later = clock.now() + timedelta(days=1)
    current = candidacies.get(cid, coach.workspace)
    candidacies.save(rows=[candidacies.current_row(current, due_at=later)])
    assert candidacies.row(cid).due_at == later


def test_text_that_looks_like_sql_or_placeholders_is_stored_as_written(
        candidacies: Candidacies, clock: FixedClock) -> None:
    """On PostgreSQL a command's statements are bound on the client into one query string:
    quotes, percent signs, semicolons and backslashes must come back exactly as written."""
    weird = "100% O'Brien \\ \"Co\" %s %(x)s ;; COMMIT; --"
    actor = Actor(user="o'brien; --", workspace="agency%s", on_behalf_of="50% 'quoted'")
    cid = candidacies.record_interview(actor, interview(company=weird)).candidacy_id
    candidacies.note_competing_offer(actor, cid, weird, clock.now() + timedelta(days=9),
                                     idempotency_key="key%s'; --")

    loaded = candidacies.get(cid, actor.workspace)
    assert loaded.company == weird and loaded.offers[0]["company"] == weird
    assert candidacies.row(cid).company == weird
    assert candidacies.history(cid, actor.workspace)[-1].actor == actor.user
    again = candidacies.note_competing_offer(actor, cid, weird, clock.now() + timedelta(days=9),
                                             idempotency_key="key%s'; --")
    assert again.replayed
