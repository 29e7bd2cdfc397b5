"""Candidacies pinned to a published policy version, and moved between versions (issue 16):
a candidacy starts on a chosen version, a migration is a recorded `PolicyMigrated` (from,
to, who, why), the scheduler then decides with the new version, and a migration of many is
a batch where one refusal does not stop the others."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from builders import candidacy_at, interview

from engine.application import Candidacies
from engine.clock import FixedClock
from engine.errors import IllegalCommand, InvalidInput
from engine.migration import MigrationFilter, ids_filter, migrate
from engine.policy import default_policy
from engine.policy_book import PolicyRef, parse_ref
from engine.scheduler import tick
from engine.values import Actor

ACTOR = Actor(user="maya@agency.example", workspace="agency")
RIVAL = Actor(user="lee@rival.example", workspace="rival")
V2 = default_policy().model_copy(update={"version": 2, "description": "quicker nudges"})
PLAYBOOK_2 = PolicyRef("playbook", 2)


def on(app: Candidacies, candidacy_id: str) -> dict[str, object]:
    return dict(app.get(candidacy_id, ACTOR.workspace).policy)


def test_a_policy_version_is_written_name_at_version() -> None:
    assert parse_ref("playbook@2") == PolicyRef("playbook", 2)
    assert str(PolicyRef("agency-uk.v", 12)) == "agency-uk.v@12"
    for bad in ("playbook", "playbook@0", "Playbook@1", "playbook@x", "@1", "a@1@2", 7, None):
        with pytest.raises(InvalidInput, match="is not NAME@VERSION") as refused:
            parse_ref(bad, "to")
        assert refused.value.field == "to"


def test_published_lists_every_version_with_the_builtin_one(candidacies: Candidacies) -> None:
    assert candidacies.policies.published() == [PolicyRef("playbook", 1)]
    candidacies.policies.publish(V2)
    candidacies.policies.publish(V2.model_copy(update={"name": "agency"}))
    assert candidacies.policies.published() == [
        PolicyRef("agency", 2), PolicyRef("playbook", 1), PolicyRef("playbook", 2)]
    candidacies.policies.publish(V2)  # identical again: nothing new
    assert candidacies.policies.published()[-1] == PLAYBOOK_2


def test_an_interview_may_start_on_a_published_version(candidacies: Candidacies) -> None:
    candidacies.policies.publish(V2)
    started = candidacies.record_interview(ACTOR, interview(), policy=PLAYBOOK_2.as_dict())
    assert on(candidacies, started.candidacy_id) == {"name": "playbook", "version": 2}
    with pytest.raises(InvalidInput, match="no policy 'playbook' version 3 has been published"):
        candidacies.record_interview(ACTOR, interview(), policy={"name": "playbook",
                                                                 "version": 3})


def test_the_idempotency_key_of_an_interview_covers_its_policy(
        candidacies: Candidacies) -> None:
    candidacies.policies.publish(V2)
    first = candidacies.record_interview(ACTOR, interview(), policy=PLAYBOOK_2.as_dict(),
                                         idempotency_key="k1")
    again = candidacies.record_interview(ACTOR, interview(), policy=PLAYBOOK_2.as_dict(),
                                         idempotency_key="k1")
    assert again.replayed and again.candidacy_id == first.candidacy_id
    with pytest.raises(Exception, match="already used for a different command"):
        candidacies.record_interview(ACTOR, interview(), idempotency_key="k1")


def test_a_migration_is_recorded_with_from_to_who_and_why(candidacies: Candidacies) -> None:
    candidacies.policies.publish(V2)
    candidacy_id = candidacy_at(candidacies, ACTOR, "awaiting")

    outcome = candidacies.migrate_policy(ACTOR, candidacy_id, "playbook", 2,
                                         reason="the agency's quicker cadence")

    event = candidacies.history(candidacy_id, ACTOR.workspace)[-1]
    assert event.type == "PolicyMigrated" and event.version == outcome.version
    assert event.actor == ACTOR.user and event.stage == "awaiting"
    assert event.data == {"policy": {"name": "playbook", "version": 2},
                          "previous": {"name": "playbook", "version": 1},
                          "reason": "the agency's quicker cadence"}
    assert on(candidacies, candidacy_id) == {"name": "playbook", "version": 2}
    assert candidacies.row(candidacy_id).summary["policy"] == {"name": "playbook",  # type: ignore[union-attr]
                                                               "version": 2}


def test_a_migration_is_refused_cleanly(candidacies: Candidacies) -> None:
    candidacies.policies.publish(V2)
    candidacy_id = candidacy_at(candidacies, ACTOR, "awaiting")
    before = len(candidacies.history(candidacy_id, ACTOR.workspace))
    with pytest.raises(InvalidInput, match="no policy 'playbook' version 9"):
        candidacies.migrate_policy(ACTOR, candidacy_id, "playbook", 9)
    with pytest.raises(InvalidInput, match="already runs under playbook@1"):
        candidacies.migrate_policy(ACTOR, candidacy_id, "playbook", 1)
    with pytest.raises(InvalidInput, match="reason: must be non-empty"):
        candidacies.migrate_policy(ACTOR, candidacy_id, "playbook", 2, reason="  ")
    stalled = candidacy_at(candidacies, ACTOR, "stalled")
    with pytest.raises(IllegalCommand, match="cannot migrate_policy at stage 'stalled'"):
        candidacies.migrate_policy(ACTOR, stalled, "playbook", 2)
    assert len(candidacies.history(candidacy_id, ACTOR.workspace)) == before


def test_a_repeated_migration_with_its_key_records_once(candidacies: Candidacies) -> None:
    candidacies.policies.publish(V2)
    candidacy_id = candidacy_at(candidacies, ACTOR, "awaiting")
    first = candidacies.migrate_policy(ACTOR, candidacy_id, "playbook", 2, idempotency_key="m")
    again = candidacies.migrate_policy(ACTOR, candidacy_id, "playbook", 2, idempotency_key="m")
    assert again.replayed and again.version == first.version
    assert [e.type for e in candidacies.history(candidacy_id, ACTOR.workspace)].count(
        "PolicyMigrated") == 1


def test_the_scheduler_decides_with_the_new_version(candidacies: Candidacies,
                                                    clock: FixedClock) -> None:
    # Version 2 nudges after 2 business days without a timeline; version 1 after 7.
    quick = default_policy().model_copy(update={
        "version": 2, "patience": default_policy().patience.model_copy(
            update={"first_nudge_without_timeline_business_days": 2})})
    candidacies.policies.publish(quick)
    candidacy_id = candidacies.record_interview(ACTOR, interview(timeline=None)).candidacy_id
    candidacies.record_no_hesitations(ACTOR, candidacy_id)
    candidacies.close_next_step(ACTOR, candidacy_id, "an onsite")
    candidacies.send_thank_you(ACTOR, candidacy_id, "email", covers_panel=True)
    friday = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # thanked Wed: 2 business days on
    assert "nudge" not in tick(candidacies, friday).actions

    candidacies.migrate_policy(ACTOR, candidacy_id, "playbook", 2)
    clock.set(friday)
    tick(candidacies, friday)

    nudge = candidacies.history(candidacy_id, ACTOR.workspace)[-1]
    assert nudge.type == "NudgeDecided"
    assert (nudge.decided_by["policy"], nudge.decided_by["version"]) == ("playbook", 2)  # type: ignore[index]


def test_migrating_many_reports_counts_and_failures(candidacies: Candidacies) -> None:
    candidacies.policies.publish(V2)
    awaiting = [candidacy_at(candidacies, ACTOR, "awaiting") for _ in range(3)]
    stalled = candidacy_at(candidacies, ACTOR, "stalled")
    already = candidacy_at(candidacies, ACTOR, "interviewed")
    candidacies.migrate_policy(ACTOR, already, "playbook", 2)
    theirs = candidacy_at(candidacies, RIVAL, "awaiting")

    report = migrate(candidacies, ACTOR, PLAYBOOK_2,
                     ids_filter([*awaiting, stalled, already, theirs, "nonsense"]),
                     reason="agency-wide move")

    assert sorted(report.moved) == sorted(awaiting)
    assert report.unchanged == [already]
    failed = {f.candidacy_id: f.problem for f in report.failed}
    assert failed == {stalled: "illegal-command", theirs: "not-found",
                      "nonsense": "not-found"}
    assert report.as_dict()["moved"] == 3 and report.selected == 7
    for candidacy_id in awaiting:
        assert on(candidacies, candidacy_id) == PLAYBOOK_2.as_dict()
        assert candidacies.history(candidacy_id, ACTOR.workspace)[-1].data["reason"] == \
            "agency-wide move"
    assert candidacies.get(theirs, RIVAL.workspace).policy == {"name": "playbook",
                                                                "version": 1}
    # Again: nothing left to move, nothing recorded.
    again = migrate(candidacies, ACTOR, PLAYBOOK_2, ids_filter(awaiting))
    assert (again.moved, sorted(again.unchanged)) == ([], sorted(awaiting))


def test_a_filter_selects_by_stage_company_and_current_version(
        candidacies: Candidacies) -> None:
    candidacies.policies.publish(V2)
    candidacies.policies.publish(V2.model_copy(update={"version": 3}))
    northwind = candidacy_at(candidacies, ACTOR, "awaiting")
    contoso = candidacies.record_interview(ACTOR, interview(company="Contoso")).candidacy_id
    interviewed = candidacy_at(candidacies, ACTOR, "interviewed")
    on_two = candidacy_at(candidacies, ACTOR, "awaiting")
    candidacies.migrate_policy(ACTOR, on_two, "playbook", 2)
    candidacy_at(candidacies, ACTOR, "stalled")  # left alone by a filter or "all"

    by_stage = migrate(candidacies, ACTOR, PolicyRef("playbook", 3),
                       MigrationFilter(stage="awaiting", current=PolicyRef("playbook", 1)),
                       dry_run=True)
    assert by_stage.moved == [northwind] and by_stage.dry_run
    by_company = migrate(candidacies, ACTOR, PolicyRef("playbook", 3),
                         MigrationFilter(company="Contoso"), dry_run=True)
    assert by_company.moved == [contoso]
    everything = migrate(candidacies, ACTOR, PolicyRef("playbook", 3), MigrationFilter())
    assert sorted(everything.moved) == sorted([northwind, contoso, interviewed, on_two])
    assert everything.failed == [] and everything.unchanged == []


def test_a_dry_run_records_nothing_and_says_what_would_fail(candidacies: Candidacies) -> None:
    candidacies.policies.publish(V2)
    candidacy_id = candidacy_at(candidacies, ACTOR, "awaiting")
    stalled = candidacy_at(candidacies, ACTOR, "stalled")
    versions = {c: candidacies.get(c, ACTOR.workspace).version for c in (candidacy_id, stalled)}

    report = migrate(candidacies, ACTOR, PLAYBOOK_2, ids_filter([candidacy_id, stalled]),
                     dry_run=True)

    assert report.moved == [candidacy_id]
    assert [(f.candidacy_id, f.problem) for f in report.failed] == [(stalled,
                                                                     "illegal-command")]
    assert {c: candidacies.get(c, ACTOR.workspace).version for c in versions} == versions
    assert on(candidacies, candidacy_id) == {"name": "playbook", "version": 1}


def test_an_unpublished_target_is_refused_before_anything_moves(
        candidacies: Candidacies) -> None:
    candidacy_id = candidacy_at(candidacies, ACTOR, "awaiting")
    with pytest.raises(InvalidInput, match="no policy 'playbook' version 2"):
        migrate(candidacies, ACTOR, PLAYBOOK_2, MigrationFilter())
    assert on(candidacies, candidacy_id) == {"name": "playbook", "version": 1}


def test_a_workspace_chooses_the_version_its_new_candidacies_start_on(
        candidacies: Candidacies, clock: FixedClock) -> None:
    book = candidacies.policies
    book.publish(V2)
    assert book.starting(ACTOR.workspace) is None
    assert book.choose_starting(ACTOR.workspace, PLAYBOOK_2, ACTOR.user, clock.now())
    assert not book.choose_starting(ACTOR.workspace, PLAYBOOK_2, ACTOR.user, clock.now())
    assert book.starting(ACTOR.workspace) == PLAYBOOK_2 and book.starting("rival") is None

    started = candidacies.record_interview(ACTOR, interview()).candidacy_id
    named = candidacies.record_interview(ACTOR, interview(),
                                         policy={"name": "playbook", "version": 1}).candidacy_id
    theirs = candidacies.record_interview(RIVAL, interview()).candidacy_id
    assert on(candidacies, started) == PLAYBOOK_2.as_dict()
    assert on(candidacies, named) == {"name": "playbook", "version": 1}
    assert candidacies.get(theirs, RIVAL.workspace).policy == {"name": "playbook",
                                                                "version": 1}
    with pytest.raises(InvalidInput, match="no policy 'playbook' version 5"):
        book.choose_starting(ACTOR.workspace, PolicyRef("playbook", 5), ACTOR.user,
                             clock.now())
    assert book.choose_starting(ACTOR.workspace, PolicyRef("playbook", 1), ACTOR.user,
                                clock.now())
    assert on(candidacies, candidacies.record_interview(ACTOR, interview()).candidacy_id) == \
        {"name": "playbook", "version": 1}
    assert on(candidacies, started) == PLAYBOOK_2.as_dict()  # open ones keep theirs


def test_listing_reads_only_the_log_written_since_the_last_listing(
        candidacies: Candidacies) -> None:
    book = candidacies.policies
    candidacy_at(candidacies, ACTOR, "awaiting")
    assert book.published() == [PolicyRef("playbook", 1)]
    read: list[tuple[int, int | None]] = []
    select = candidacies.recorder.select_notifications

    def counted(start: int, limit: int, stop: int | None = None, **kwargs: object) -> object:
        read.append((start, stop))
        return select(start, limit, stop, **kwargs)  # type: ignore[arg-type]

    candidacies.recorder.select_notifications = counted  # type: ignore[method-assign]
    assert book.published() == [PolicyRef("playbook", 1)]
    assert read == []  # nothing new in the log: not read at all
    top = candidacies.recorder.max_notification_id()
    book.publish(V2)
    fresh = Candidacies(candidacies.env, clock=candidacies.clock)  # reads the whole log
    try:
        assert book.published() == fresh.policies.published() == [PolicyRef("playbook", 1),
                                                                  PLAYBOOK_2]
    finally:
        fresh.close()
    assert read[0] == (top + 1, top + 1)  # from just after the last listing
