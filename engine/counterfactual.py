"""Replay with a modelled employer (`closer replay --employer model`), outcomes with intervals.

Recorded mode (`engine.replay`) keeps every employer reply where it was.  Here the
employer's decision in a candidacy's last round (its advance or rejection) is dropped and
drawn instead from a `ResponseModel`, given the nudges the replayed policy sends: each
policy's nudge redraws the decision from the next business day on
(`engine.response_model.EmployerDraw`).  The draw is given what the record shows of that
employer under the nudges actually sent (`EmployerDraw._condition`): under the live
policy it decides as recorded; under another, only where its nudges change the hazard.
With ``updates=True`` the last round's updates after the interview are drawn too, from
the model's update hazard (`engine.response_model.UpdateDraw`), given the nudges and the
record in the same way, so a nudge can bring one; otherwise (the default) they stay as
recorded.  The update draws have their own seeded streams, so the decision's uniforms
are the same either way; a policy that waits after an update (the playbook's
``patience.after_update``) can still nudge differently when the updates move, and so
meet a different decision.  Everything else stays as recorded (interviews, earlier
rounds, out-of-office replies, offers, people's own messages).

Each candidacy is run ``draws`` times per policy.  Draw ``r`` has its coefficients drawn
once from the fit's normal approximation (parameter uncertainty) and, per candidacy, its
own seeded uniforms, the same for every policy (common random numbers: a difference
between policies is the policies', not the dice's).  The report bootstraps over
candidacies and draws (`summarise`).

Partitions (ranges of candidacy ids) run in this process, in worker processes, or on a
Dask cluster (``cluster``); results are merged in partition order, so they are the same
wherever they ran.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.decisions import Action
from engine.errors import InvalidInput
from engine.replay import (
    SPECS,
    Filters,
    ReplayPolicy,
    ReplayTarget,
    candidacy_histories,
)
from engine.response_model import (
    EmployerDraw,
    ResponseModel,
    RoundContext,
    RoundRecord,
    UpdateDraw,
    business_days_between,
    country_value,
    rounds_of,
)
from engine.simulation import SKIPPED, drive

__all__ = ["OUTCOMES", "Outcomes", "model_replay", "summarise"]

_REPLY = SPECS["engine.candidacy:Candidacy.ReplyReceived"]

OUTCOMES: dict[str, tuple[str, str]] = {
    "advanced": ("share advanced", "higher"),
    "stalled": ("share stalled", "lower"),
    "stalled_would_advance": ("share stalled that would have advanced later", "lower"),
    "days_median": ("days to the employer's word, median (Kaplan-Meier)", "lower"),
    "days_p90": ("days to the employer's word, 90th percentile (Kaplan-Meier)", "lower"),
    "nudges": ("nudges per candidacy", "lower"),
    "pest_breaches": ("share breaching the pest line (manual nudges included)", "lower"),
    "same_day_thank_you": ("same-day thank-you rate", "higher"),
    "updates": ("employer updates per candidacy", "neither"),
    "pester_load": ("nudges per candidacy sent before a reply that came", "lower"),
}
"""What model mode reports per policy: (label, the better direction: "neither" for a
count that is no aim in itself)."""

_MEANS = ("advanced", "stalled", "stalled_would_advance", "nudges", "pest_breaches",
          "same_day_thank_you", "updates", "pester_load")


class _Redrawn:
    """A drawn decision a later nudge replaced: it no longer happens."""

    name = "RedrawnReply"
    __slots__ = ("at",)

    def __init__(self, at: datetime) -> None:
        self.at = at


class ModelTarget(ReplayTarget):
    """The replay target, skipping the decisions a nudge redrew."""

    __slots__ = ()

    def fact(self, fact: Any) -> str:
        if type(fact) is _Redrawn:
            return SKIPPED
        return super().fact(fact)


def _reply(at: datetime, kind: str, note: str = "drawn from the response model") -> Any:
    fact: Any = object.__new__(_REPLY.fact)
    fact.__dict__ = {"kind": kind, "note": note,
                     "occurred_at": at, "back_on": None, "back_at": None, "timestamp": at,
                     "at": at}
    return fact


class _Employer:
    """One run's employer: the draw, the nudges so far, the pending decision fact."""

    __slots__ = ("draw", "nudge_days", "pending", "live", "updates")

    def __init__(self, draw: EmployerDraw, nudge_days: list[int], live: list[Any],
                 updates: _Updates | None = None) -> None:
        self.draw = draw
        self.nudge_days = nudge_days
        self.live = live
        self.updates = updates
        day = draw.decision_day(nudge_days)
        self.pending: Any = None if day is None else self._fact(day)

    def _fact(self, day: int) -> Any:
        return _reply(self.draw.moment(day),
                      self.draw.kind(sum(1 for k in self.nudge_days if k < day)))

    def react(self, action: Action, at: datetime, state: Any) -> list[Any] | None:
        if action.kind not in ("nudge", "offer_nudge"):
            return None
        new = self._redraw(at)
        if self.updates is None:
            return new
        # The updates after the nudge's day, given it and the (re)drawn decision.
        day = self.draw.day_of(at)
        more = self.updates.place(self.nudge_days, day, self.pending)
        return [*(new or ()), *more] or None

    def _redraw(self, at: datetime) -> list[Any] | None:
        draw = self.draw
        day = draw.day_of(at)
        self.nudge_days.append(day)
        pending = self.pending
        if pending is not None and (pending.at <= at or draw.day_of(pending.at) <= day):
            return None
        decided = draw.decision_day(self.nudge_days, after=day)
        new = None if decided is None else self._fact(decided)
        if pending is not None:
            live = self.live
            for k in range(len(live) - 1, -1, -1):
                if live[k] is pending:
                    live[k] = _Redrawn(pending.at)
                    break
        self.pending = new
        return None if new is None else [new]


class _Updates:
    """One run's drawn updates in the last round: which are in the fact list now.

    An update falls on a day the draw says (`UpdateDraw.days`), before the employer's
    decision and a recorded withdrawal, and after the interview; on a day the record
    has updates, they are the recorded facts (their moments, their place in the list),
    else one drawn fact at the day's drawn minute.  A nudge redraws the days after its
    own: updates no longer drawn are replaced by `_Redrawn` (skipped), new ones
    returned to be inserted."""

    __slots__ = ("draw", "recorded", "live", "stop", "stop_day", "placed", "made")

    def __init__(self, draw: UpdateDraw, recorded: dict[int, list[Any]], live: list[Any],
                 stop: datetime | None) -> None:
        self.draw = draw
        self.recorded = recorded
        self.live = live
        self.stop = stop
        self.stop_day = draw.horizon if stop is None else draw.day_of(stop)
        self.placed: dict[int, list[Any]] = {}  # day -> the update facts in `live`
        self.made: dict[int, Any] = {}  # day -> its drawn fact (the same on a redraw)

    def _facts(self, day: int) -> list[Any]:
        facts = self.recorded.get(day)
        if facts is None:
            fact = self.made.get(day)
            if fact is None:
                fact = self.made[day] = _reply(self.draw.moment(day), "update",
                                               "drawn from the response model (update)")
            facts = [fact]
        return facts

    def start(self, nudge_days: Sequence[int], decision: Any) -> None:
        """The first draw, given the candidate's own nudges: the recorded updates not
        drawn leave the fact list, those drawn stay in their places, the new ones go in
        in time order."""
        new = self.place(nudge_days, 0, decision)
        kept = {id(f) for facts in self.placed.values() for f in facts}
        recorded = {id(f) for day, facts in self.recorded.items() if day >= 1 for f in facts}
        self.live[:] = [f for f in self.live if id(f) not in recorded or id(f) in kept]
        present = {id(f) for f in self.live}
        for fact in new:
            if id(fact) not in present:
                _insert(self.live, fact)

    def place(self, nudge_days: Sequence[int], after: int, decision: Any) -> list[Any]:
        """Draw the days after ``after``; return the facts to insert."""
        earlier = sum(1 for day in self.placed if day <= after)
        # No update after the decision's day or the withdrawal's: the days after are not
        # drawn (later days do not change earlier ones).  Speed: 15% of the drawn-updates
        # replay's CPU (benchmarks/replay_bench.py --model-mode).
        through = min(self.stop_day, self.draw.horizon if decision is None
                      else self.draw.day_of(decision.at))
        wanted: dict[int, list[Any]] = {}
        for day in self.draw.days(nudge_days, after, earlier, through):
            facts = [f for f in self._facts(day)
                     if (decision is None or f.at < decision.at)
                     and (self.stop is None or f.at < self.stop)]
            if facts:
                wanted[day] = facts
        new: list[Any] = []
        for day in [d for d in self.placed if d > after]:
            if wanted.get(day) != self.placed[day]:  # none that day now, or fewer
                gone = {id(f) for f in self.placed.pop(day)}
                live = self.live
                for k in range(len(live) - 1, -1, -1):
                    if id(live[k]) in gone:
                        live[k] = _Redrawn(live[k].at)
        for day, facts in wanted.items():
            if day not in self.placed:
                self.placed[day] = facts
                new.extend(facts)
        return new


@dataclass(slots=True)
class _Prepared:
    """A recorded candidacy ready for model mode: its facts without the last round's
    decision, that round's context and the candidate's own nudge days."""

    history: Any
    facts: list[Any]
    ctx: RoundContext
    own_nudges: list[int]
    interview_at: datetime
    observed: RoundRecord | None = None  # the last round as recorded: what the draws are given
    updates: dict[int, list[Any]] = field(default_factory=dict)  # recorded, by business day
    withdrawn_at: datetime | None = None  # a recorded withdrawal in the last round


def prepare(history: Any) -> _Prepared | None:
    facts = history.facts
    if not facts or facts[0].name != "InterviewRecorded":
        return None
    start = max(i for i, f in enumerate(facts) if f.name in ("InterviewRecorded",
                                                               "RoundStarted"))
    first = facts[0]
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(first.timezone)
    interview = facts[start].interview
    day = interview["interviewed_at"].astimezone(zone).date()
    number = 1 + sum(1 for f in facts[:start + 1] if f.name == "RoundStarted")
    kept = facts[:start + 1]
    ctx = RoundContext(day, zone, interview.get("timeline"), number,
                       country_value(first.country))
    own: list[int] = []
    updates: dict[int, list[Any]] = {}
    withdrawn_at = None
    for fact in facts[start + 1:]:
        if fact.name == "ReplyReceived" and fact.kind in ("advanced", "rejected"):
            continue  # the modelled decision
        if fact.name == "ReplyReceived" and fact.kind == "update":
            updates.setdefault(business_days_between(day, fact.at.astimezone(zone).date()),
                               []).append(fact)
        if fact.name == "Withdrawn" and withdrawn_at is None:
            withdrawn_at = fact.at
        if fact.name == "CompetingOfferNoted" and ctx.offer_day is None:
            ctx.offer_day = business_days_between(day, fact.at.astimezone(zone).date())
        if fact.name == "NudgeSent":
            own.append(business_days_between(day, fact.at.astimezone(zone).date()))
        kept.append(fact)
    # The last round as recorded, under the live policy's nudges (decided and by hand):
    # the employer's draws are conditioned on it (`EmployerDraw._condition`).
    recorded = rounds_of(history)
    observed = recorded[-1] if recorded and recorded[-1].ctx.round == number else None
    return _Prepared(history, kept, ctx, own, interview["interviewed_at"], observed,
                     updates, withdrawn_at)


class _Run:
    """The loop's tally for one (candidacy, policy, draw): what the outcomes need."""

    __slots__ = ("nudges", "round_nudges", "most", "thanked_at", "last", "updates",
                 "pester", "unanswered")

    def __init__(self) -> None:
        self.nudges = 0
        self.round_nudges = 0
        self.most = 0
        self.thanked_at: datetime | None = None
        self.last: datetime | None = None
        self.updates = 0
        self.pester = 0  # nudges before a reply that came (as recorded mode's pester_load)
        self.unanswered = 0

    def _nudge(self, offer: bool) -> None:
        self.nudges += 1
        self.unanswered += 1
        if not offer:
            self.round_nudges += 1
            self.most = max(self.most, self.round_nudges)

    def fact(self, fact: Any, state: Any) -> None:
        self.last = fact.at
        name = fact.name
        if name == "NudgeSent":
            self._nudge(False)
        elif name == "RoundStarted":
            self.round_nudges = 0
            self.unanswered = 0
        elif name == "ThankYouSent" and self.thanked_at is None:
            self.thanked_at = fact.at
        elif name == "ReplyReceived" and fact.kind != "out_of_office":
            self.pester += self.unanswered
            self.unanswered = 0
            if fact.kind == "update":
                self.updates += 1

    def decision(self, action: Action, at: datetime, state: Any) -> None:
        self.last = at
        if action.kind in ("nudge", "offer_nudge"):
            self._nudge(action.kind == "offer_nudge")
        elif action.kind == "thank_you" and self.thanked_at is None:
            self.thanked_at = at

    def skipped(self, fact: Any) -> None:
        pass

    def refused(self, facts: Sequence[Any], index: int, end: int, state: Any) -> None:
        """Stalled by the policy before a reply that was still to come in the round (a
        decision or an update): its nudges count in the pester load, as recorded mode's."""
        outcome = state.outcome
        if not (outcome and outcome.get("kind") == "stalled"):
            return
        for k in range(index, end):
            fact = facts[k]
            if fact.name == "RoundStarted":
                return
            if fact.name == "ReplyReceived" and fact.kind != "out_of_office":
                self.pester += self.unanswered
                self.unanswered = 0
                return


@dataclass
class Records:
    """Per policy, per draw: one row per candidacy (the outcome arrays' columns)."""

    labels: list[str]
    draws: int
    rows: list[list[list[tuple[Any, ...]]]] = field(default_factory=list)
    events: int = 0
    candidacies: int = 0
    updates: str = "recorded"  # the last round's updates: "recorded" or "model" (drawn)

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = [[[] for _ in range(self.draws)] for _ in self.labels]

    def merge(self, other: Records) -> None:
        for mine, theirs in zip(self.rows, other.rows, strict=True):
            for a, b in zip(mine, theirs, strict=True):
                a.extend(b)
        self.events += other.events
        self.candidacies += other.candidacies


ROW = ("advanced", "stalled", "stalled_would_advance", "days", "decided", "nudges",
       "pest_breaches", "same_day_thank_you", "updates", "pester_load")


def _outcome(prepared: _Prepared, target: ModelTarget, run: _Run, employer: _Employer,
             policy: ReplayPolicy, until: datetime | None) -> tuple[Any, ...]:
    state = target.state
    outcome = state.outcome or {}
    kind = outcome.get("kind")
    stalled = kind == "stalled"
    pending = employer.pending
    would = bool(stalled and pending is not None and pending.kind == "advanced")
    if kind in ("advanced", "rejected") and outcome["at"] >= prepared.interview_at:
        days, decided = (outcome["at"] - prepared.interview_at).total_seconds() / 86400, 1
    else:
        # Censored where the run was last seen: the stall, a withdrawal, the end.
        end: datetime = outcome["at"] if stalled else (run.last or prepared.interview_at)
        days, decided = max((end - prepared.interview_at).total_seconds() / 86400, 0.0), 0
    zone = prepared.ctx.zone
    first_day = prepared.history.facts[0].interview["interviewed_at"].astimezone(zone).date()
    same_day = int(run.thanked_at is not None
                   and run.thanked_at.astimezone(zone).date() == first_day)
    breach = int(run.most > policy.policy.pest_line.max_nudges)
    return (int(kind == "advanced"), int(stalled), int(would), days, decided, run.nudges,
            breach, same_day, run.updates, run.pester)


def _draw_models(model: ResponseModel, draws: int, seed: int) -> list[ResponseModel]:
    return [model.sampled(random.Random(f"{seed}:coefficients:{r}")) for r in range(draws)]


def _check_update_hazard(model: ResponseModel) -> None:
    if model.update is None:
        raise InvalidInput("--updates", "this response model has no update hazard (a "
                                        "model file written before updates were modelled, "
                                        "or too few updates in the store): refit it with "
                                        "`closer model fit`, or keep the recorded updates")


def _draw_updates(model: ResponseModel, draws: int, seed: int) -> list[dict[str, float]]:
    """Each draw's update coefficients, from streams of their own (not the decision's)."""
    _check_update_hazard(model)
    out = []
    for r in range(draws):
        drawn = model.sampled_update(random.Random(f"{seed}:update-coefficients:{r}"))
        assert drawn is not None
        out.append(drawn)
    return out


def _insert(live: list[Any], fact: Any) -> None:
    """Into the time-ordered list, after the facts at the same moment."""
    position = len(live)
    while position > 1 and live[position - 1].at > fact.at:
        position -= 1
    live.insert(position, fact)


def model_partition(source: Any, partition: Any, policies: Sequence[ReplayPolicy],
                    model: ResponseModel, draws: int, seed: int, filters: Filters,
                    until: datetime | None, updates: bool = False) -> Records:
    """Every candidacy of one id range, under each policy, ``draws`` times (with
    ``updates``, the last round's updates drawn too)."""
    models = _draw_models(model, draws, seed)
    update_models = _draw_updates(model, draws, seed) if updates else []
    records = Records([p.label for p in policies], draws)
    # With the recorded decisions: the live policy's nudges are what the record of the
    # employer's decision was given (`prepare`).
    for history in candidacy_histories(source.batches(partition), keep_decisions=True):
        records.events += history.events
        prepared = prepare(history)
        if prepared is None or not filters.admit(history):
            continue
        records.candidacies += 1
        ident = str(history.id)
        for r, drawn in enumerate(models):
            draw = EmployerDraw(prepared.ctx, drawn, random.Random(f"{seed}:{ident}:{r}"),
                                prepared.observed)
            update_draw = None
            if updates:
                # Its own stream: the decision's uniforms above are the same either way.
                update_draw = UpdateDraw(prepared.ctx, update_models[r], drawn.horizon_days,
                                         drawn.decay_days,
                                         random.Random(f"{seed}:{ident}:{r}:updates"),
                                         prepared.observed)
            for p, policy in enumerate(policies):
                live = list(prepared.facts)
                placed = None if update_draw is None else _Updates(
                    update_draw, prepared.updates, live, prepared.withdrawn_at)
                employer = _Employer(draw, list(prepared.own_nudges), live, placed)
                if employer.pending is not None:
                    _insert(live, employer.pending)
                if placed is not None:
                    placed.start(employer.nudge_days, employer.pending)
                target = ModelTarget()
                target.read(history)
                run = _Run()
                drive(target, live, policy, until=until,  # type: ignore[arg-type]
                      tally=run, react=employer.react)
                records.rows[p][r].append(_outcome(prepared, target, run, employer, policy,
                                                   until))
    return records


def model_replay(source: Any, policies: Sequence[Any], model: ResponseModel, *,
                 draws: int = 10, seed: int = 0, filters: Filters | None = None,
                 until: datetime | None = None, workers: int = 1,
                 cluster: str | Any | None = None, updates: bool = False) -> Records:
    """Run every partition (here, in ``workers`` processes, or on the Dask cluster at
    ``cluster``: an address or a `distributed.Client`) and merge them in order.
    ``updates``: draw the last round's updates from the model too (else as recorded)."""
    views = [p if isinstance(p, ReplayPolicy) else ReplayPolicy(p) for p in policies]
    filters = filters or Filters()
    if updates:
        _check_update_hazard(model)  # here, before any partition runs
    parts = source.partitions(max(workers, 2) * 4 if (workers > 1 or cluster) else 1)
    here = [(source, part, views, model, draws, seed, filters, until, updates)
            for part in parts]
    # Policies cross to other processes as their JSON documents: a policy that has been
    # planned with carries caches whose pickle refers back to its wrapper.
    documents = [(p.policy.model_dump(mode="json"), p.label) for p in views]
    args = [(a[0], a[1], documents, *a[3:]) for a in here]
    if cluster is not None:
        results = _on_dask(cluster, args)
    elif workers > 1 and len(parts) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Spawned, not forked: after a fit, numpy's BLAS threads exist in this process,
        # and a forked child can hang on their locks.  The executor (unlike Pool) reports
        # a worker's failure instead of waiting for it for ever.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(
                "spawn")) as pool:
            results = list(pool.map(_remote_partition, *zip(*args, strict=True)))
    else:
        results = [model_partition(*a) for a in here]
    total = Records([p.label for p in views], draws,
                    updates="model" if updates else "recorded")
    for part in results:
        total.merge(part)
    return total


def _remote_partition(source: Any, partition: Any, policies: list[tuple[dict[str, Any], str]],
                      *rest: Any) -> Records:
    """`model_partition` in another process or on a Dask worker, the policies given as
    their JSON documents."""
    from engine.policy import policy_from_dict

    views = [ReplayPolicy(policy_from_dict(data), label) for data, label in policies]
    return model_partition(source, partition, views, *rest)


def _on_dask(cluster: Any, args: list[tuple[Any, ...]]) -> list[Records]:
    from distributed import Client

    # distributed's API is unannotated: called through Any.
    client: Any = cluster if isinstance(cluster, Client) else Client(cluster)  # type: ignore[no-untyped-call]
    try:
        futures = [client.submit(_remote_partition, *a, pure=False) for a in args]
        return list(client.gather(futures))
    finally:
        if client is not cluster:
            client.close()


# -- intervals --------------------------------------------------------------------------------


@dataclass
class Outcomes:
    """One policy's outcomes: the estimate and its 95% bootstrap interval, per outcome."""

    label: str
    estimates: dict[str, float | None]
    intervals: dict[str, tuple[float | None, float | None]]
    samples: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """The bootstrap replicates, the same resamples for every policy of one run."""

    def difference(self, other: Outcomes, key: str) -> tuple[float, float] | None:
        """The 95% interval of (this - other) for ``key``, paired over the same resamples
        (None when either has no finite replicate)."""
        import numpy as np

        mine, theirs = np.asarray(self.samples.get(key, [])), np.asarray(
            other.samples.get(key, []))
        if not len(mine) or len(mine) != len(theirs):
            return None
        diff = mine - theirs
        diff = diff[np.isfinite(diff)]
        if not len(diff):
            return None
        low, high = np.percentile(diff, [2.5, 97.5])
        return float(low), float(high)

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.label,
                **{k: {"estimate": self.estimates[k], "low": self.intervals[k][0],
                       "high": self.intervals[k][1], "better": OUTCOMES[k][1]}
                   for k in OUTCOMES}}


def _km_quantiles(days: Any, decided: Any, weights: Any, qs: Sequence[float]) -> list[Any]:
    """Kaplan-Meier quantiles of days to the employer's word (half-day bins), weighted;
    None where the curve never falls that far (too many never answered)."""
    import numpy as np

    bins = np.minimum((days * 2).astype(int), 2000)
    events = np.bincount(bins, weights=weights * decided, minlength=2001)
    leaving = np.bincount(bins, weights=weights, minlength=2001)
    at_risk = leaving.sum() - np.concatenate(([0.0], np.cumsum(leaving)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1 - events / at_risk, 1.0)
    survival = np.cumprod(factor)
    out: list[Any] = []
    for q in qs:
        hit = np.nonzero(survival <= 1 - q)[0]
        out.append(float((hit[0] + 0.5) / 2) if len(hit) else None)
    return out


def _estimates(arrays: Any, weights: Any) -> dict[str, float | None]:
    import numpy as np

    total = weights.sum()
    out: dict[str, float | None] = {}
    for k, name in enumerate(ROW):
        if name in _MEANS:
            out[name] = float((arrays[..., k] * weights).sum() / total)
    median, p90 = _km_quantiles(arrays[..., 3].ravel(), arrays[..., 4].ravel(),
                                np.broadcast_to(weights, arrays.shape[:2]).ravel(),
                                (0.5, 0.9))
    out["days_median"], out["days_p90"] = median, p90
    return out


def summarise(records: Records, *, replicates: int = 400, seed: int = 0) -> list[Outcomes]:
    """Estimates and 95% percentile intervals, bootstrapping candidacies and draws
    together (the same resamples for every policy, so their intervals compare)."""
    import numpy as np

    n = len(records.rows[0][0]) if records.rows and records.rows[0] else 0
    d = records.draws
    generator = np.random.default_rng(seed)
    resamples = [(np.bincount(generator.integers(0, d, d), minlength=d),
                  np.bincount(generator.integers(0, n, n), minlength=n))
                 for _ in range(replicates)] if n else []
    out = []
    for label, rows in zip(records.labels, records.rows, strict=True):
        if not n:
            out.append(Outcomes(label, dict.fromkeys(OUTCOMES), dict.fromkeys(
                OUTCOMES, (None, None))))
            continue
        arrays = np.asarray(rows, dtype=float)  # draws x candidacies x ROW
        estimates = _estimates(arrays, np.ones((d, n)))
        samples: dict[str, list[float]] = {k: [] for k in OUTCOMES}
        for wd, wn in resamples:
            values = _estimates(arrays, np.outer(wd, wn).astype(float))
            for k in OUTCOMES:
                v = values[k]
                samples[k].append(float("inf") if v is None else v)
        intervals: dict[str, tuple[float | None, float | None]] = {}
        for k in OUTCOMES:
            # No interpolation: a replicate whose curve never fell that far is infinite.
            low = np.quantile(samples[k], 0.025, method="lower")
            high = np.quantile(samples[k], 0.975, method="higher")
            intervals[k] = (None if not np.isfinite(low) else float(low),
                            None if not np.isfinite(high) else float(high))
        out.append(Outcomes(label, {k: estimates[k] for k in OUTCOMES}, intervals, samples))
    return out
