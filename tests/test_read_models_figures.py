"""Every figure of the Pipeline, At risk and Compliance pages (api/read_models.py):

- on a small history worked out by hand (the figures are written out in the test);
- on a larger simulated one (engine/simulation.py, nudges delivered by a simulated outbox,
  some late), against counts made here straight from the stored events: an independent
  fold over the history, not the read models' handlers.

Every figure counts deliveries, not decisions.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from builders import interview
from test_read_models import LEE, MAYA, at, hand_worked

from api.read_models import (
    FUNNEL,
    Stall,
    about_to_stall,
    follower,
    funnel,
    nudge_compliance,
    override_counts,
    overrides,
    rounds,
    stage_counts,
    stalled,
    thank_you_compliance,
    time_in_stage,
)
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.decisions import Action
from engine.follower import CANDIDACY_TOPIC
from engine.policy import CadencePolicy, default_policy
from engine.scheduler import tick
from engine.simulation import AggregateTarget, drive, generate
from engine.values import Actor

PLAYBOOK = f"{default_policy().name}@{default_policy().version}"


def views(app: Candidacies) -> tuple[Any, Any, Any]:
    runner = follower(app, ["pipeline", "compliance", "timeline"], batch=7)
    runner.run_once()
    return tuple(m.view for m in runner.models)  # type: ignore[return-value]


# -- by hand ------------------------------------------------------------------------------


def test_pipeline_figures_by_hand_with_every_filter(candidacies: Candidacies,
                                                    clock: FixedClock) -> None:
    ids = hand_worked(candidacies, clock)  # A, B by maya on 25 Nov 10:00; C by lee 18:30
    pipeline, _, _ = views(candidacies)

    assert rounds(pipeline) == 1
    # Opened (recorded) in the range: C alone was recorded after 18:00 on 25 Nov.
    assert stage_counts(pipeline, since="2026-11-25T18:00:00+00:00") == {"awaiting": 1}
    assert stage_counts(pipeline, until="2026-11-25T18:00:00+00:00") == {
        "advanced": 1, "stalled": 1}
    assert stage_counts(pipeline, workspace="elsewhere") == {}
    # Contoso is B alone: thanked, never advanced.
    assert funnel(pipeline, 1, company="Contoso") == [
        ("interviewed", 1, 1.0), ("hesitations_addressed", 1, 1.0),
        ("next_step_closed", 1, 1.0), ("thanked", 1, 0.0), ("advanced", 0, None)]
    assert funnel(pipeline, 1, recruiter=MAYA.user)[3] == ("thanked", 2, 0.5)
    assert funnel(pipeline, 2) == [(step.value, 0, None) for step in FUNNEL]
    # maya's stays in next_step_closed: A 8 h, B 1 h (median 4.5 h, p90 8 h).
    assert time_in_stage(pipeline, recruiter=MAYA.user)["next_step_closed"] == (
        2, 4.5 * 3600, 8 * 3600.0)
    assert time_in_stage(pipeline, company="Fabrikam")["next_step_closed"] == (
        1, 12 * 3600.0, 12 * 3600.0)

    b = Stall(ids["B"], "Ada Lovelace", "Contoso", MAYA.user, at(40, 10).isoformat(),
              "no reply", "stall.exhausted_and_patience_spent", PLAYBOOK)
    [got] = stalled(pipeline)
    assert got._replace(candidate=b.candidate) == b
    assert stalled(pipeline, recruiter=LEE.user) == []
    assert stalled(pipeline, since="2026-12-11") == []
    assert stalled(pipeline, company="Contoso") == [got]


def test_compliance_figures_by_hand_with_every_filter(candidacies: Candidacies,
                                                      clock: FixedClock) -> None:
    hand_worked(candidacies, clock)
    _, compliance, _ = views(candidacies)
    # Interviews on 25 Nov (week 48): A and C thanked the same local day, B the next.
    assert thank_you_compliance(compliance, company="Contoso") == {
        (MAYA.user, "2026-W48"): (1, 0)}
    assert thank_you_compliance(compliance, recruiter=LEE.user) == {
        (LEE.user, "2026-W48"): (1, 1)}
    assert thank_you_compliance(compliance, since="2026-11-26") == {}
    # A's nudges were due 2 Dec (on time) and 8 Dec (delivered 9 Dec: late).
    assert nudge_compliance(compliance, since="2026-12-03") == {
        (MAYA.user, "2026-W50"): (1, 0)}
    assert nudge_compliance(compliance, until="2026-12-03") == {
        (MAYA.user, "2026-W49"): (1, 1)}
    assert nudge_compliance(compliance, company="Fabrikam") == {}
    assert override_counts(compliance) == {}


def test_overrides_by_hand_per_recruiter_and_week(candidacies: Candidacies,
                                                  clock: FixedClock) -> None:
    """Two overrides of patience by maya (Thu 26 Nov, week 48; Tue 1 Dec, week 49), one by
    lee (26 Nov), each with its reason."""
    clock.set(at(25, 10))
    made = []
    for who, company in ((MAYA, "Northwind"), (MAYA, "Contoso"), (LEE, "Fabrikam")):
        cid = candidacies.record_interview(who, interview(
            interviewed_at=at(25, 9).isoformat(), company=company)).candidacy_id
        candidacies.record_no_hesitations(who, cid)
        candidacies.close_next_step(who, cid, "a panel")
        candidacies.send_thank_you(who, cid, "email")
        made.append((who, cid))
    for (who, cid), when, reason in zip(made, (at(26, 10), at(31, 10), at(26, 11)),
                                        ("asked for a call", "deadline Friday", "the CTO"),
                                        strict=True):
        clock.set(when)
        candidacies.send_nudge(who, cid, override={"reason": reason})
    _, compliance, _ = views(candidacies)
    assert override_counts(compliance) == {(MAYA.user, "2026-W48"): 1,
                                           (MAYA.user, "2026-W49"): 1,
                                           (LEE.user, "2026-W48"): 1}
    assert [r[4] for r in overrides(compliance)] == ["asked for a call", "the CTO",
                                                     "deadline Friday"]
    assert [r[4] for r in overrides(compliance, company="Contoso")] == ["deadline Friday"]
    assert [r[4] for r in overrides(compliance, recruiter=LEE.user)] == ["the CTO"]
    assert override_counts(compliance, since="2026-11-30") == {(MAYA.user, "2026-W49"): 1}
    assert all(r[3].startswith("patience") for r in overrides(compliance))


def test_about_to_stall_names_the_moment_the_scheduler_then_stalls_it(
        candidacies: Candidacies, clock: FixedClock) -> None:
    """A candidacy nudged to the pest line by the scheduler: At risk says when the stall
    falls due and by which rule; ticking a minute before does not stall it, ticking then
    does, with that rule, and it moves to the stalled list."""
    clock.set(at(25, 10))
    cid = candidacies.record_interview(MAYA, interview(
        interviewed_at=at(25, 9).isoformat())).candidacy_id
    candidacies.record_no_hesitations(MAYA, cid)
    candidacies.close_next_step(MAYA, cid, "a panel")
    candidacies.send_thank_you(MAYA, cid, "email")
    runner = follower(candidacies)
    now = at(25, 12)
    found: list[Stall] = []
    for _ in range(200):  # a tick every 12 hours until a stall is within a week
        now += timedelta(hours=12)
        tick(candidacies, now)
        runner.run_once()
        found = about_to_stall(candidacies, runner.models[0].view, now, workspace="w")
        if found:
            break
    [soon] = found
    assert soon.rule == "stall.exhausted_and_patience_spent" and soon.policy == PLAYBOOK
    assert soon.reason.startswith(f"{default_policy().pest_line.max_nudges} nudges sent")
    assert (soon.candidacy_id, soon.recruiter) == (cid, MAYA.user)
    assert about_to_stall(candidacies, runner.models[0].view, now, workspace="w",
                          recruiter=LEE.user) == []
    due = datetime.fromisoformat(soon.at)
    assert now < due <= now + timedelta(days=7)
    assert about_to_stall(candidacies, runner.models[0].view, now, due - now
                          - timedelta(seconds=1), workspace="w") == []

    tick(candidacies, due - timedelta(minutes=1))
    runner.run_once()
    assert stalled(runner.models[0].view) == []
    tick(candidacies, due)
    runner.run_once()
    [done] = stalled(runner.models[0].view)
    assert (done.candidacy_id, done.at, done.rule) == (cid, soon.at, soon.rule)
    assert about_to_stall(candidacies, runner.models[0].view, due, workspace="w") == []


# -- a larger simulated history, against counts made from the events ----------------------


class DeliveringTarget(AggregateTarget):
    """The simulated outbox delivering every decided nudge too: most within minutes, every
    third two days after it was decided (late, past its due day)."""

    def decide(self, action: Action, policy: CadencePolicy, at: datetime) -> None:
        super().decide(action, policy, at)
        if action.kind in ("nudge", "offer_nudge") and self.state.stage != "stalled":
            version = self.state.version
            late = timedelta(days=2) if version % 3 == 0 else timedelta(minutes=5)
            self.state.deliver_message(
                self.scheduler, at, message_id=f"simulated:{version}",
                kind="offer_nudge" if action.kind == "offer_nudge" else "nudge_email",
                channel="email", trigger_version=version, occurred_at=at + late)


RECRUITERS = ("ana@recruit.example", "ben@recruit.example", "cleo@recruit.example")


def simulated(app: Candidacies, count: int, seed: int = 16) -> None:
    """``count`` simulated candidacies, three recruiters, saved 50 per transaction."""
    policy = default_policy()
    ref = {"name": policy.name, "version": policy.version}
    pending = []
    for index in range(count):
        world = generate(index, seed, policy=ref)
        target = DeliveringTarget(Actor(user=RECRUITERS[index % 3], workspace="simulated",
                                        on_behalf_of=world.facts[0].kwargs["candidate"]["name"]))
        drive(target, list(world.facts), policy, react=world.react)
        pending.append(target.state)
        if len(pending) == 50 or index == count - 1:
            app.save(*pending, rows=[app.current_row(c) for c in pending])
            pending = []


def _week(day: Any) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class Folded:
    """The figures, folded here from the stored events in log order."""

    def __init__(self, events: list[Any]) -> None:
        self.final: dict[UUID, str] = {}
        self.reached: dict[tuple[UUID, int], set[str]] = defaultdict(set)
        self.stays: dict[str, list[float]] = defaultdict(list)
        self.nudges: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.overrides: Counter[str] = Counter()
        self.stalls_by_rule: Counter[str | None] = Counter()
        zone: dict[UUID, ZoneInfo] = {}
        who: dict[UUID, str] = {}
        round_: dict[UUID, int] = {}
        entered: dict[UUID, tuple[str, int, datetime]] = {}
        due: dict[tuple[UUID, int], Any] = {}
        for e in events:
            cid, name = e.originator_id, type(e).__name__
            if name == "InterviewRecorded":
                zone[cid], who[cid], round_[cid] = ZoneInfo(e.timezone), e.actor, 1
            elif name == "RoundStarted":
                round_[cid] = e.round
            stage, r = str(e.stage), round_[cid]
            previous = self.final.get(cid)
            self.final[cid] = stage
            self.reached[(cid, r)].add("thanked" if stage == "awaiting" else stage)
            if cid in entered and entered[cid][:2] != (stage, r):
                old, _, since = entered[cid]
                self.stays[old].append((e.timestamp - since).total_seconds())
            if cid not in entered or entered[cid][:2] != (stage, r):
                entered[cid] = (stage, r, e.timestamp)
            decided = getattr(e, "decided_by", None)
            if name in ("NudgeDecided", "NudgeSent") and decided:
                day = datetime.fromisoformat(decided["due_at"]).astimezone(zone[cid]).date()
                key = (who[cid], _week(day))
                self.nudges[key][0] += 1
                due[(cid, e.originator_version)] = (key, day)
                if name == "NudgeSent":  # decided and assumed delivered then
                    self.nudges[key][1] += e.timestamp.astimezone(zone[cid]).date() <= day
            elif name == "MessageDelivered" and (cid, e.trigger_version) in due:
                key, day = due.pop((cid, e.trigger_version))
                self.nudges[key][1] += e.occurred_at.astimezone(zone[cid]).date() <= day
            if getattr(e, "override", None):
                self.overrides[who[cid]] += 1
            if stage == "stalled" and previous != "stalled":
                # A stall by the policy names its rule; a rejection or withdrawal none.
                self.stalls_by_rule[(decided or {}).get("rule")] += 1

    def funnel(self, r: int) -> list[tuple[str, int, float | None]]:
        steps = [{cid for (cid, rr), seen in self.reached.items() if rr == r
                  and step.value in seen} for step in FUNNEL]
        return [(step.value, len(ids),
                 None if i + 1 == len(steps) or not ids else len(ids & steps[i + 1]) / len(ids))
                for i, (step, ids) in enumerate(zip(FUNNEL, steps, strict=True))]

    def time_in_stage(self) -> dict[str, tuple[int, float, float]]:
        return {stage: (len(v), statistics.median(v),
                        sorted(v)[max(0, math.ceil(0.9 * len(v)) - 1)])
                for stage, v in self.stays.items()}


def overridden(app: Candidacies, clock: FixedClock, count: int) -> None:
    """``count`` candidacies through the application, each nudged by its recruiter inside
    the patience window with an override (the simulation has none)."""
    for index in range(count):
        who = Actor(user=RECRUITERS[index % 3], workspace="simulated")
        clock.set(at(2 + index % 20, 10))
        cid = app.record_interview(who, interview(
            interviewed_at=at(2 + index % 20, 9).isoformat())).candidacy_id
        app.record_no_hesitations(who, cid)
        app.close_next_step(who, cid, "a panel")
        app.send_thank_you(who, cid, "email")
        clock.set(at(3 + index % 20, 10 + index % 5))
        app.send_nudge(who, cid, override={"reason": f"asked to call ({index})"})


def test_figures_equal_counts_made_from_the_events_of_a_simulated_history(
        candidacies: Candidacies, clock: FixedClock) -> None:
    simulated(candidacies, 400)
    overridden(candidacies, clock, 13)
    events = [candidacies.mapper.to_domain_event(n)
              for n in candidacies.recorder.select_notifications(1, 10_000_000)
              if n.topic.startswith(CANDIDACY_TOPIC)]
    folded = Folded(events)
    pipeline, compliance, _ = views(candidacies)

    assert stage_counts(pipeline) == dict(Counter(folded.final.values()))
    assert rounds(pipeline) == max(r for _, r in folded.reached) >= 2
    for r in range(1, rounds(pipeline) + 1):
        assert funnel(pipeline, r) == folded.funnel(r)
    figures = time_in_stage(pipeline, workspace="simulated")
    assert figures.keys() == folded.stays.keys()
    for stage, (n, med, p90) in folded.time_in_stage().items():
        assert figures[stage][0] == n
        assert math.isclose(figures[stage][1], med) and math.isclose(figures[stage][2], p90)

    nudges = nudge_compliance(compliance)
    assert nudges == {k: tuple(v) for k, v in folded.nudges.items()}
    total, on_time = (sum(v[i] for v in nudges.values()) for i in (0, 1))
    assert 0 < on_time < total  # some nudges late: the check has teeth
    assert {who for who, _ in nudges} == set(RECRUITERS)
    for recruiter in RECRUITERS:
        assert nudge_compliance(compliance, recruiter=recruiter) == {
            k: v for k, v in nudges.items() if k[0] == recruiter}

    stalls = stalled(pipeline, limit=10_000)
    assert len(stalls) == Counter(folded.final.values())["stalled"] > 0
    assert Counter(s.rule for s in stalls) == folded.stalls_by_rule
    assert all(s.reason for s in stalls)
    per_recruiter: Counter[str] = Counter()
    for (who, _), n in override_counts(compliance).items():
        per_recruiter[who] += n
    assert per_recruiter == folded.overrides
    assert sum(per_recruiter.values()) > 0
