"""The playbook's order: every (stage, command) pair, the guards, and the machine.

Four parts:

- the table: every command at every stage, issued through the application on both
  stores with valid arguments; the allowed ones land where the playbook says, every
  other one is refused with the stage and the allowed commands named, and nothing
  is recorded;
- the guards, one test per rule of the playbook;
- agreement: the fast `TRANSITIONS` table the command path uses answers exactly as
  a real `Lifecycle` machine does, for generated candidacy states and arguments;
- the diagram in ``docs/lifecycle.md`` is the one the code generates.  When it is
  stale, regenerate it with::

      CLOSER_REGENERATE_DOCS=1 pytest tests/test_lifecycle.py -k diagram
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from builders import PANEL, candidacy_at, interview
from hypothesis import given, settings
from hypothesis import strategies as st
from statemachine.exceptions import TransitionNotAllowed

from engine.application import Candidacies, Outcome
from engine.errors import IllegalCommand, InvalidInput
from engine.lifecycle import PERSON_COMMANDS, TRANSITIONS, Lifecycle, Stage, mermaid_diagram
from engine.policy import default_policy
from engine.values import Actor

STAGES = TRANSITIONS.stages
COMMANDS = TRANSITIONS.commands
NOT_FINAL = ("interviewed", "hesitations_addressed", "next_step_closed", "thanked",
                     "awaiting", "nudged", "advanced")
SAME = "same"  # the command keeps the stage
PLAYBOOK_V2 = default_policy().model_copy(update={"version": 2})

# What the outbox learns about a message that carries no pending thank-you: a fact that
# keeps the stage (a pending thank-you's delivery is tested with the guards below).
DELIVERY_FACTS = {"deliver_message": SAME, "block_message": SAME,
                  "dead_letter_message": SAME, "ready_task": SAME}

# The playbook, written out by hand: at each stage, the commands allowed (with the
# valid arguments of `issue` below) and the stage each one leads to.
PLAYBOOK: dict[str, dict[str, str]] = {
    "interviewed": {
        "correct_details": SAME,
        "raise_hesitation": SAME,
        "address_hesitation": "hesitations_addressed",  # the only open one
        "record_no_hesitations": "hesitations_addressed",
        "receive_reply": "stalled",  # a rejection, however early
        "note_competing_offer": SAME, "pause_cadence": SAME, "resume_cadence": SAME,
        "send_reminder": SAME, "withdraw": "stalled", "migrate_policy": SAME,
    },
    "hesitations_addressed": {
        "correct_details": SAME,
        "raise_hesitation": "interviewed",
        "close_next_step": "next_step_closed",
        "receive_reply": "stalled",
        "note_competing_offer": SAME, "pause_cadence": SAME, "resume_cadence": SAME,
        "send_reminder": SAME, "withdraw": "stalled", "migrate_policy": SAME,
    },
    "next_step_closed": {
        "correct_details": SAME,
        "send_thank_you": "thanked",  # to one of a panel of two
        "decide_thank_you": SAME, "request_thank_you": SAME,  # only a delivery thanks
        **DELIVERY_FACTS,
        "receive_reply": "advanced",
        "note_competing_offer": SAME, "pause_cadence": SAME, "resume_cadence": SAME,
        "send_reminder": SAME, "withdraw": "stalled", "migrate_policy": SAME,
    },
    "thanked": {
        "correct_details": SAME,
        "send_thank_you": "awaiting",  # to the one not yet thanked
        "decide_thank_you": SAME, "request_thank_you": SAME,
        **DELIVERY_FACTS,
        "receive_reply": "advanced",
        "note_competing_offer": SAME, "pause_cadence": SAME, "resume_cadence": SAME,
        "send_reminder": SAME, "withdraw": "stalled", "migrate_policy": SAME,
    },
    "awaiting": {
        "correct_details": SAME,
        "send_nudge": "nudged", "receive_reply": "advanced", "stall": "stalled",
        "decide_nudge": "nudged", "request_nudge": "nudged",  # counted when decided
        **DELIVERY_FACTS,
        "note_competing_offer": SAME, "pause_cadence": SAME, "resume_cadence": SAME,
        "send_reminder": SAME, "withdraw": "stalled", "migrate_policy": SAME,
    },
    "nudged": {
        "correct_details": SAME,
        "send_nudge": SAME, "receive_reply": "advanced", "stall": "stalled",
        "decide_nudge": SAME, "request_nudge": SAME,
        **DELIVERY_FACTS,
        "note_competing_offer": SAME, "pause_cadence": SAME, "resume_cadence": SAME,
        "send_reminder": SAME, "withdraw": "stalled", "migrate_policy": SAME,
    },
    "advanced": {
        "correct_details": SAME,
        "start_next_round": "interviewed",
        "receive_reply": "stalled",
        **DELIVERY_FACTS,
        "note_competing_offer": SAME, "send_reminder": SAME, "withdraw": "stalled",
        "migrate_policy": SAME,
    },
    "stalled": {},
}


def issue(app: Candidacies, actor: Actor, candidacy_id: str, command: str) -> Outcome:
    """``command`` with valid arguments for the candidacy as it stands."""
    candidacy = app.get(candidacy_id, actor.workspace)
    open_ids = [h["id"] for h in candidacy.open_hesitations()]
    unthanked = [i["name"] for i in candidacy.interview["interviewers"]
                 if i["name"] not in candidacy.thanked]
    now = app.clock.now()
    # Before the thank-you and after advancing, the only reply the playbook takes is a no.
    reply = "rejected" if candidacy.stage in ("interviewed", "hesitations_addressed",
                                              "advanced") else "advanced"
    calls = {
        "raise_hesitation": lambda: app.raise_hesitation(
            actor, candidacy_id, "Is she senior enough to lead the platform team?"),
        "address_hesitation": lambda: app.address_hesitation(
            actor, candidacy_id, open_ids[0] if open_ids else "r1h1",
            "I led a team of six through a platform migration."),
        "record_no_hesitations": lambda: app.record_no_hesitations(actor, candidacy_id),
        "close_next_step": lambda: app.close_next_step(
            actor, candidacy_id, "Onsite with the CTO", scheduled_for=now + timedelta(days=7)),
        "send_thank_you": lambda: app.send_thank_you(
            actor, candidacy_id, "email", to=unthanked[:1] or ["Priya Raman"]),
        "send_nudge": lambda: app.send_nudge(
            actor, candidacy_id, override={"reason": "the test says so"}),
        "receive_reply": lambda: app.receive_reply(
            actor, candidacy_id, reply, note="Onsite next week"),
        "note_competing_offer": lambda: app.note_competing_offer(
            actor, candidacy_id, "Contoso", now + timedelta(days=10)),
        "pause_cadence": lambda: app.pause_cadence(
            actor, candidacy_id, "Candidate on holiday", until=date(2026, 12, 20)),
        "resume_cadence": lambda: app.resume_cadence(actor, candidacy_id),
        "send_reminder": lambda: app.send_reminder(
            actor, candidacy_id, "reminder_next_step", f"next-step-{command}"),
        "stall": lambda: app.stall(actor, candidacy_id, "No reply after three nudges",
                                   override={"reason": "the test says so"}),
        "withdraw": lambda: app.withdraw(actor, candidacy_id, "Accepted another offer"),
        "start_next_round": lambda: app.start_next_round(
            actor, candidacy_id, {"format": "video",
                                  "interviewers": [{"name": "Ada Lin", "title": "CTO"}]}),
        "correct_details": lambda: app.correct_details(
            actor, candidacy_id, {"person": "candidate", "field": "phone",
                                  "value": "+44 20 7946 0958"}),
        "migrate_policy": lambda: (app.policies.publish(PLAYBOOK_V2),
                                   app.migrate_policy(actor, candidacy_id, "playbook", 2))[1],
    }
    message = {"message_id": "m-1", "kind": "nudge_email", "channel": "email",
               "trigger_version": 999}
    on_aggregate = {
        "decide_thank_you": lambda c: c.decide_thank_you(actor, now, medium="email",
                                                         decided_by=DECIDED),
        "request_thank_you": lambda c: c.request_thank_you(actor, now, medium="email", to=[]),
        "decide_nudge": lambda c: c.decide_nudge(actor, now, channels=["voicemail", "email"],
                                                 reason="nudge 1 of 3", decided_by=DECIDED),
        "request_nudge": lambda c: c.request_nudge(actor, now, channels=["email"],
                                                   reason="manual nudge"),
        "deliver_message": lambda c: c.deliver_message(actor, now, **message),
        "block_message": lambda c: c.block_message(actor, now, **message, findings=[],
                                                   fallback=None),
        "dead_letter_message": lambda c: c.dead_letter_message(actor, now, **message,
                                                               error="550", fallback=None),
        "ready_task": lambda c: c.ready_task(actor, now, **message),
    }
    for name, call in on_aggregate.items():
        calls[name] = lambda call=call: _on_aggregate(app, candidacy, call)
    assert set(calls) == set(COMMANDS), "a new command needs valid arguments here"
    return calls[command]()


DECIDED = {"policy": "playbook", "version": 1, "rule": "test", "key": "r1:test",
           "due_at": "2026-11-25T10:00:00+00:00"}


def _on_aggregate(app: Candidacies, candidacy: Any, call: Any) -> Outcome:
    """A command the scheduler or the outbox issues on the aggregate, saved as they save it."""
    call(candidacy)
    app.save(candidacy, rows=[app.current_row(candidacy)])
    return Outcome(str(candidacy.id), candidacy.version, candidacy.stage)


def test_the_playbook_table_covers_every_stage_and_command() -> None:
    assert set(STAGES) == {s.value for s in Stage} == set(PLAYBOOK)
    for stage in STAGES:
        assert set(PLAYBOOK[stage]) == set(TRANSITIONS.allowed(stage)), stage
        assert set(PLAYBOOK[stage]) <= set(COMMANDS)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_at_every_stage(candidacies: Candidacies, coach: Actor, stage: str,
                                      command: str) -> None:
    candidacy_id = candidacy_at(
        candidacies, coach, stage,
        # Set up what the command needs when it is allowed: an open hesitation to
        # address, a pause to resume (paused from the start, so at every stage).
        hesitation=(stage == "interviewed" and command == "address_hesitation"),
        paused=(command == "resume_cadence"),
    )
    before = candidacies.get(candidacy_id, coach.workspace).version
    allowed = PLAYBOOK[stage]

    if command in allowed:
        expected = stage if allowed[command] == SAME else allowed[command]
        outcome = issue(candidacies, coach, candidacy_id, command)
        assert (outcome.stage, outcome.version) == (expected, before + 1)
        reloaded = candidacies.get(candidacy_id, coach.workspace)
        assert (reloaded.stage, reloaded.version) == (expected, before + 1)
        row = candidacies.row(candidacy_id)
        assert (row.stage, row.version) == (expected, before + 1)
        return

    with pytest.raises(IllegalCommand) as refused:
        issue(candidacies, coach, candidacy_id, command)
    error = refused.value
    assert (error.command, error.stage) == (command, stage)
    # Only commands a person may give, each accepted now (its guards asked).
    assert command not in error.allowed
    assert set(error.allowed) <= set(PLAYBOOK[stage]) & PERSON_COMMANDS
    message = str(error)
    assert f"at stage '{stage}'" in message
    assert message.endswith("allowed here: " + (", ".join(error.allowed) or "none"))
    reloaded = candidacies.get(candidacy_id, coach.workspace)
    assert (reloaded.stage, reloaded.version) == (stage, before)
    assert len(candidacies.history(candidacy_id, coach.workspace)) == before
    assert candidacies.row(candidacy_id).version == before


# -- the guards, as the playbook says them ---------------------------------------------


def _refused(call: Any, *, stage: str, why: str | None = None) -> IllegalCommand:
    with pytest.raises(IllegalCommand) as refused:
        call()
    assert refused.value.stage == stage
    if why is not None:
        assert why in str(refused.value)
    return refused.value


def _new(app: Candidacies, actor: Actor, **overrides: Any) -> str:
    return app.record_interview(actor, interview(**{"interviewers": PANEL, **overrides})
                                ).candidacy_id


def test_cannot_close_the_next_step_while_a_hesitation_is_open(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = _new(candidacies, coach)
    first = candidacies.raise_hesitation(coach, cid, "No Kubernetes in production?")
    second = candidacies.raise_hesitation(coach, cid, "Notice period of three months?")
    _refused(lambda: candidacies.close_next_step(coach, cid, "Onsite"), stage="interviewed")

    answered = candidacies.address_hesitation(coach, cid, first.data["hesitation_id"],
                                              "Ran EKS clusters for two years")
    assert answered.stage == "interviewed"  # one is still open
    _refused(lambda: candidacies.close_next_step(coach, cid, "Onsite"), stage="interviewed")

    last = candidacies.address_hesitation(coach, cid, second.data["hesitation_id"],
                                          "Negotiable down to six weeks")
    assert last.stage == "hesitations_addressed"
    assert candidacies.close_next_step(coach, cid, "Onsite").stage == "next_step_closed"


def test_a_new_hesitation_after_all_were_answered_reopens_them(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = _new(candidacies, coach)
    assert candidacies.record_no_hesitations(coach, cid).stage == "hesitations_addressed"
    raised = candidacies.raise_hesitation(coach, cid, "Salary expectations too high?")
    assert raised.stage == "interviewed"
    _refused(lambda: candidacies.close_next_step(coach, cid, "Onsite"), stage="interviewed")
    candidacies.address_hesitation(coach, cid, raised.data["hesitation_id"], "Flexible")
    assert candidacies.get(cid, coach.workspace).stage == "hesitations_addressed"


def test_addressing_an_unknown_or_answered_hesitation_is_refused(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = _new(candidacies, coach)
    first = candidacies.raise_hesitation(coach, cid, "Limited SQL depth?").data["hesitation_id"]
    candidacies.raise_hesitation(coach, cid, "Commute?")
    why = "the hesitation must be one that is raised and not yet answered"
    _refused(lambda: candidacies.address_hesitation(coach, cid, "r1h9", "?"),
             stage="interviewed", why=why)
    candidacies.address_hesitation(coach, cid, first, "Wrote the warehouse's dbt models")
    version = candidacies.get(cid, coach.workspace).version
    _refused(lambda: candidacies.address_hesitation(coach, cid, first, "again"),
             stage="interviewed", why=why)
    assert candidacies.get(cid, coach.workspace).version == version
    answers = [h["answer"] for h in candidacies.get(cid, coach.workspace).hesitations]
    assert answers == ["Wrote the warehouse's dbt models", None]


def test_no_hesitations_is_refused_once_one_was_raised(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = _new(candidacies, coach)
    candidacies.raise_hesitation(coach, cid, "Remote only?")
    _refused(lambda: candidacies.record_no_hesitations(coach, cid), stage="interviewed",
             why="no hesitation may have been raised in this round")


def test_a_thank_you_needs_a_closed_next_step(candidacies: Candidacies, coach: Actor) -> None:
    cid = _new(candidacies, coach)
    _refused(lambda: candidacies.send_thank_you(coach, cid, "email"), stage="interviewed")
    candidacies.record_no_hesitations(coach, cid)
    _refused(lambda: candidacies.send_thank_you(coach, cid, "email"),
             stage="hesitations_addressed")
    candidacies.close_next_step(coach, cid, "Onsite")
    assert candidacies.send_thank_you(coach, cid, "email").stage == "awaiting"


def test_awaiting_only_once_every_interviewer_is_thanked(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacy_at(candidacies, coach, "next_step_closed")
    first = candidacies.send_thank_you(coach, cid, "card", to=["Tom Becker"])
    assert first.stage == "thanked"
    assert candidacies.get(cid, coach.workspace).thanked == ["Tom Becker"]
    second = candidacies.send_thank_you(coach, cid, "email", to=["Priya Raman"])
    assert second.stage == "awaiting"
    candidacy = candidacies.get(cid, coach.workspace)
    assert candidacy.thanked == ["Priya Raman", "Tom Becker"]
    assert [t["medium"] for t in candidacy.thank_yous] == ["card", "email"]


@pytest.mark.parametrize("how", [{"covers_panel": True}, {}, {"to": ["Priya Raman",
                                                                      "Tom Becker"]}])
def test_one_thank_you_may_cover_the_whole_panel(
        candidacies: Candidacies, coach: Actor, how: dict[str, Any]) -> None:
    cid = candidacy_at(candidacies, coach, "next_step_closed")
    assert candidacies.send_thank_you(coach, cid, "voicemail_and_email", **how).stage == "awaiting"
    assert candidacies.get(cid, coach.workspace).thanked == ["Priya Raman", "Tom Becker"]


def test_a_single_interviewer_thanked_means_awaiting(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacies.record_interview(coach, interview()).candidacy_id
    candidacies.record_no_hesitations(coach, cid)
    candidacies.close_next_step(coach, cid, "Reference checks")
    assert candidacies.send_thank_you(coach, cid, "email",
                                      to=["Daniel Whitfield"]).stage == "awaiting"


def test_thanking_the_same_interviewer_twice_is_refused(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacy_at(candidacies, coach, "thanked")  # Priya Raman thanked
    _refused(lambda: candidacies.send_thank_you(coach, cid, "card", to=["Priya Raman"]),
             stage="thanked", why="the thank-you must go to an interviewer not yet thanked")
    with pytest.raises(InvalidInput) as invalid:
        candidacies.send_thank_you(coach, cid, "card", to=["Tom Baker"])  # misspelt
    assert invalid.value.field == "to" and "Tom Baker" in str(invalid.value)
    assert len(candidacies.history(cid, coach.workspace)) == 4


@pytest.mark.parametrize("medium", ["postal", "Postal_Mail", "letter"])
def test_postal_mail_is_not_a_thank_you_medium(
        candidacies: Candidacies, coach: Actor, medium: str) -> None:
    cid = candidacy_at(candidacies, coach, "next_step_closed")
    with pytest.raises(InvalidInput) as invalid:
        candidacies.send_thank_you(coach, cid, medium)
    assert invalid.value.field == "medium"
    assert "postal mail arrives too late" in str(invalid.value)
    assert candidacies.get(cid, coach.workspace).version == 3


@pytest.mark.parametrize("stage", [s for s in STAGES if s not in ("awaiting", "nudged")])
def test_a_nudge_only_while_awaiting_or_nudged(
        candidacies: Candidacies, coach: Actor, stage: str) -> None:
    cid = candidacy_at(candidacies, coach, stage)
    _refused(lambda: candidacies.send_nudge(coach, cid), stage=stage)


def test_nudges_accumulate_while_nudged(candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacy_at(candidacies, coach, "awaiting")
    override = {"reason": "the test says so"}
    assert candidacies.send_nudge(coach, cid, override=override).stage == "nudged"
    assert candidacies.send_nudge(coach, cid, channels=["phone"],
                                  override=override).stage == "nudged"
    nudges = candidacies.get(cid, coach.workspace).nudges
    assert [n["channels"] for n in nudges] == [["voicemail", "email"], ["phone"]]


@pytest.mark.parametrize("stage", ["next_step_closed", "thanked", "awaiting", "nudged"])
@pytest.mark.parametrize(("kind", "lands"), [("advanced", "advanced"), ("rejected", "stalled"),
                                             ("update", None)])
def test_a_reply_decides_or_keeps_the_stage(candidacies: Candidacies, coach: Actor, stage: str,
                                            kind: str, lands: str | None) -> None:
    cid = candidacy_at(candidacies, coach, stage)
    outcome = candidacies.receive_reply(coach, cid, kind, note="From the recruiter")
    assert outcome.stage == (lands or stage)
    candidacy = candidacies.get(cid, coach.workspace)
    assert candidacy.last_reply["kind"] == kind
    if lands:
        assert candidacy.outcome == {"kind": kind, "at": candidacy.modified_on,
                                     "reason": "From the recruiter"}
    else:
        assert candidacy.outcome is None and candidacy.paused is None


def test_out_of_office_keeps_the_stage_and_pauses_until_back(
        candidacies: Candidacies, coach: Actor, clock: Any) -> None:
    cid = candidacy_at(candidacies, coach, "nudged")
    back_on = date(2026, 12, 2)
    outcome = candidacies.receive_reply(coach, cid, "out_of_office", back_on=back_on)
    assert outcome.stage == "nudged"
    paused = candidacies.get(cid, coach.workspace).paused
    assert paused["until"] == back_on and paused["reason"] == "out of office"
    # Midnight in London on the return date (GMT in December).
    assert paused["ends_at"] == datetime(2026, 12, 2, tzinfo=UTC)
    _refused(lambda: candidacies.pause_cadence(coach, cid, "again"), stage="nudged",
             why="the cadence must not be paused already")

    clock.set(datetime(2026, 12, 2, 0, 1, tzinfo=UTC))  # back: the pause lapsed
    _refused(lambda: candidacies.resume_cadence(coach, cid), stage="nudged",
             why="the cadence must be paused")
    assert candidacies.pause_cadence(coach, cid, "candidate ill").stage == "nudged"
    candidacy = candidacies.get(cid, coach.workspace)
    assert candidacy.pauses[-1] == {"since": datetime(2026, 11, 25, 10, tzinfo=UTC),
                                    "until": datetime(2026, 12, 2, tzinfo=UTC),
                                    "reason": "out of office"}


def test_out_of_office_without_a_return_date_pauses_for_the_policys_default(
        candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacy_at(candidacies, coach, "awaiting")
    assert candidacies.receive_reply(coach, cid, "out_of_office").stage == "awaiting"
    paused = candidacies.get(cid, coach.workspace).paused
    assert paused is not None and paused["until"] == date(2026, 12, 2)  # 5 business days


def test_pause_and_resume_keep_the_stage(candidacies: Candidacies, coach: Actor,
                                         clock: Any) -> None:
    cid = candidacy_at(candidacies, coach, "awaiting")
    assert candidacies.pause_cadence(coach, cid, "Candidate travelling").stage == "awaiting"
    clock.advance(timedelta(days=3))
    assert candidacies.resume_cadence(coach, cid).stage == "awaiting"
    _refused(lambda: candidacies.resume_cadence(coach, cid), stage="awaiting",
             why="the cadence must be paused")
    candidacy = candidacies.get(cid, coach.workspace)
    assert candidacy.paused is None
    assert candidacy.pauses == [{"since": datetime(2026, 11, 25, 10, tzinfo=UTC),
                                 "until": datetime(2026, 11, 28, 10, tzinfo=UTC),
                                 "reason": "Candidate travelling"}]


@pytest.mark.parametrize("stage", NOT_FINAL)
def test_withdrawal_stalls_from_any_stage_but_the_final_one(
        candidacies: Candidacies, coach: Actor, stage: str) -> None:
    cid = candidacy_at(candidacies, coach, stage)
    assert candidacies.withdraw(coach, cid, "Took an offer at Contoso").stage == "stalled"
    candidacy = candidacies.get(cid, coach.workspace)
    assert candidacy.outcome["kind"] == "withdrawn"
    assert candidacy.outcome["reason"] == "Took an offer at Contoso"
    last = candidacies.history(cid, coach.workspace)[-1]
    assert (last.type, last.stage, last.data) == ("Withdrawn", "stalled",
                                                  {"reason": "Took an offer at Contoso"})


@pytest.mark.parametrize("how", ["rejected", "withdrawn", "stalled"])
def test_stalled_refuses_every_command(candidacies: Candidacies, coach: Actor,
                                       how: str) -> None:
    cid = candidacy_at(candidacies, coach, "nudged")
    if how == "rejected":
        candidacies.receive_reply(coach, cid, "rejected")
    elif how == "withdrawn":
        candidacies.withdraw(coach, cid, "Relocating")
    else:
        candidacies.stall(coach, cid, "Pest line reached", override={"reason": "the test says so"})
    version = candidacies.get(cid, coach.workspace).version
    for command in COMMANDS:
        error = _refused(lambda command=command: issue(candidacies, coach, cid, command),
                         stage="stalled")
        assert str(error).endswith("allowed here: none")
    assert candidacies.get(cid, coach.workspace).version == version


def test_the_next_round_continues_the_same_history(candidacies: Candidacies, coach: Actor,
                                                   clock: Any) -> None:
    cid = _new(candidacies, coach)
    hesitation = candidacies.raise_hesitation(coach, cid, "Python depth?").data["hesitation_id"]
    candidacies.address_hesitation(coach, cid, hesitation, "Maintainer of a parser library")
    candidacies.close_next_step(coach, cid, "Onsite with the CTO")
    candidacies.note_competing_offer(coach, cid, "Contoso", clock.now() + timedelta(days=14))
    candidacies.send_thank_you(coach, cid, "email")
    candidacies.send_nudge(coach, cid, override={"reason": "the test says so"})
    candidacies.receive_reply(coach, cid, "advanced", note="Onsite on Monday")
    _refused(lambda: candidacies.raise_hesitation(coach, cid, "?"), stage="advanced")

    clock.advance(timedelta(days=5))
    started = candidacies.start_next_round(coach, cid, {
        "format": "video", "interviewers": [{"name": "Ada Lin", "title": "CTO"}]})
    assert (started.stage, started.data) == ("interviewed", {"round": 2})

    candidacy = candidacies.get(cid, coach.workspace)
    assert candidacy.round == 2 and candidacy.outcome is None and candidacy.paused is None
    assert (candidacy.hesitations, candidacy.thanked, candidacy.thank_yous, candidacy.nudges,
            candidacy.next_step, candidacy.last_reply, candidacy.no_hesitations) == (
        [], [], [], [], None, None, False)
    assert [i["name"] for i in candidacy.interview["interviewers"]] == ["Ada Lin"]
    assert candidacy.interview["format"] == "video"
    assert candidacy.interview["interviewed_at"] == clock.now()
    assert candidacy.interview["timeline"] == {"min_weeks": 3, "max_weeks": 4}  # carried
    assert [o["company"] for o in candidacy.offers] == ["Contoso"]  # not per round

    # The new round plays by the same rules, with its own hesitation ids and panel.
    again = candidacies.raise_hesitation(coach, cid, "Team fit?").data["hesitation_id"]
    assert again == "r2h1"
    candidacies.address_hesitation(coach, cid, again, "Met the team at lunch")
    candidacies.close_next_step(coach, cid, "Final with the CEO")
    with pytest.raises(InvalidInput):
        candidacies.send_thank_you(coach, cid, "email", to=["Priya Raman"])  # last round's
    assert candidacies.send_thank_you(coach, cid, "email", to=["Ada Lin"]).stage == "awaiting"

    history = candidacies.history(cid, coach.workspace)
    assert [e.version for e in history] == list(range(1, len(history) + 1))
    types = [e.type for e in history]
    assert types.count("RoundStarted") == 1 and types.count("InterviewRecorded") == 1
    assert types.index("RoundStarted") == 8 and history[7].type == "ReplyReceived"


def test_a_second_round_needs_an_advance(candidacies: Candidacies, coach: Actor) -> None:
    cid = candidacy_at(candidacies, coach, "nudged")
    _refused(lambda: candidacies.start_next_round(coach, cid), stage="nudged")


# -- the table agrees with the machine ----------------------------------------------------

NAMES = ["Priya Raman", "Tom Becker", "Ada Lin"]
IDS = ["r1h1", "r1h2", "r1h3"]
NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)


@st.composite
def candidacy_states(draw: st.DrawFn) -> SimpleNamespace:
    """What the guards read: hesitations, the panel, who is thanked, the pause."""
    raised = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=3))
    hesitations = [{"id": i, "text": "?", "answer": draw(st.sampled_from([None, "answered"]))}
                   for i in raised]
    panel = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1, max_size=3))
    thanked = draw(st.lists(st.sampled_from(panel), unique=True))
    ends_at = draw(st.sampled_from([None, NOW - timedelta(hours=1), NOW + timedelta(days=3)]))
    paused = draw(st.sampled_from([None, {"since": NOW - timedelta(days=1), "until": None,
                                          "ends_at": ends_at, "reason": "holiday"}]))
    pending = draw(st.sampled_from([None, {"triggers": [7], "to": panel},
                                    {"triggers": [7], "to": panel[:1]}]))
    return SimpleNamespace(hesitations=hesitations, thanked=thanked, paused=paused,
                           pending_thank_you=pending,
                           interview={"interviewers": [{"name": n} for n in panel]})


def guard_args(command: str, draw: st.DrawFn) -> dict[str, Any]:
    """The guard arguments `Candidacy` passes for ``command`` (plus ``at``)."""
    args: dict[str, Any] = {"at": draw(st.sampled_from([NOW, NOW + timedelta(days=5), None]))}
    if command in ("raise_hesitation", "address_hesitation"):
        args["hesitation_id"] = draw(st.sampled_from([*IDS, "r9h9"]))
    elif command == "send_thank_you":
        args["to"] = tuple(draw(st.lists(st.sampled_from(NAMES), unique=True)))
        args["covers_panel"] = draw(st.booleans())
    elif command == "receive_reply":
        args["kind"] = draw(st.sampled_from(["advanced", "rejected", "update", "out_of_office"]))
    elif command == "deliver_message":
        args["trigger_version"] = draw(st.sampled_from([7, 8]))
    return args


def machine_target(stage: str, command: str, candidacy: Any, args: dict[str, Any]) -> str | None:
    """Where a real machine resumed at ``stage`` goes, or None when it refuses."""
    machine = Lifecycle(start_value=stage)
    try:
        machine.send(command, candidacy=candidacy, **args)
    except TransitionNotAllowed:
        return None
    return str(machine.current_state_value)


def table_target(stage: str, command: str, candidacy: Any, args: dict[str, Any]) -> str | None:
    try:
        return TRANSITIONS.target(stage, command, candidacy, **args)
    except IllegalCommand as error:
        assert (error.stage, error.command) == (stage, command)
        return None


@settings(max_examples=500, deadline=None)
@given(stage=st.sampled_from(STAGES), command=st.sampled_from(COMMANDS),
       candidacy=candidacy_states(), data=st.data())
def test_the_table_agrees_with_the_machine(stage: str, command: str, candidacy: Any,
                                           data: st.DataObject) -> None:
    args = guard_args(command, data.draw)
    expected = machine_target(stage, command, candidacy, args)
    assert table_target(stage, command, candidacy, args) == expected
    assert TRANSITIONS.is_enabled(stage, command, candidacy, **args) is (expected is not None)


@pytest.mark.parametrize("stage", STAGES)
def test_the_table_allows_what_the_machine_allows(stage: str) -> None:
    machine = Lifecycle(start_value=stage)
    assert [e.id for e in machine.allowed_events] == list(TRANSITIONS.allowed(stage))


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_pair_agrees_on_a_fresh_candidacy(stage: str, command: str) -> None:
    # The exhaustive floor under the generated cases: each pair at least once.
    candidacy = SimpleNamespace(hesitations=[{"id": "r1h1", "text": "?", "answer": None}],
                                thanked=[], paused=None, pending_thank_you=None,
                                interview={"interviewers": [{"name": "Priya Raman"}]})
    args = {"at": NOW, "hesitation_id": "r1h1", "to": ("Priya Raman",), "covers_panel": False,
            "kind": "advanced", "trigger_version": 7}
    assert (table_target(stage, command, candidacy, args)
            == machine_target(stage, command, candidacy, args))


def test_stalled_is_final_and_advanced_is_not() -> None:
    finals = {s.value for s in Lifecycle.states if s.final}
    assert finals == {"stalled"}
    assert TRANSITIONS.allowed("stalled") == ()
    assert "start_next_round" in TRANSITIONS.allowed("advanced")


# -- the generated diagram ------------------------------------------------------------------

LIFECYCLE_DOC = Path(__file__).resolve().parent.parent / "docs" / "lifecycle.md"
BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"


def generated_block() -> str:
    return f"{BEGIN}\n```mermaid\n{mermaid_diagram().rstrip()}\n```\n{END}"


def test_the_lifecycle_diagram_in_docs_is_current() -> None:
    text = LIFECYCLE_DOC.read_text(encoding="utf-8")
    block = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    assert len(block.findall(text)) == 1, f"{LIFECYCLE_DOC} needs one {BEGIN} ... {END} block"
    if os.environ.get("CLOSER_REGENERATE_DOCS") == "1":
        text = block.sub(lambda _: generated_block(), text)
        LIFECYCLE_DOC.write_text(text, encoding="utf-8")
    assert block.search(text).group(0) == generated_block(), (
        "docs/lifecycle.md is stale: regenerate it with "
        "CLOSER_REGENERATE_DOCS=1 pytest tests/test_lifecycle.py -k diagram")
