"""Replay with a modelled employer (`closer replay --employer model`), outcomes with intervals.

Recorded mode (`engine.replay`) keeps every employer reply where it was.  Here the
employer's decision in a candidacy's last round (its advance or rejection) is dropped and
drawn instead from a `ResponseModel`, given the nudges the replayed policy sends: each
policy's nudge redraws the decision from the next business day on
(`engine.response_model.EmployerDraw`).  The draw is given what the record shows of that
employer under the nudges actually sent (`EmployerDraw._condition`): under the live
policy it decides as recorded; under another, only where its nudges change the hazard.
Everything else stays as recorded (interviews, earlier rounds, updates, out-of-office
replies, offers, people's own messages).

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
}
"""What model mode reports per policy: (label, the better direction)."""

_MEANS = ("advanced", "stalled", "stalled_would_advance", "nudges", "pest_breaches",
          "same_day_thank_you")


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


def _reply(at: datetime, kind: str) -> Any:
    fact: Any = object.__new__(_REPLY.fact)
    fact.__dict__ = {"kind": kind, "note": "drawn from the response model",
                     "occurred_at": at, "back_on": None, "back_at": None, "timestamp": at,
                     "at": at}
    return fact


class _Employer:
    """One run's employer: the draw, the nudges so far, the pending decision fact."""

    __slots__ = ("draw", "nudge_days", "pending", "live")

    def __init__(self, draw: EmployerDraw, nudge_days: list[int], live: list[Any]) -> None:
        self.draw = draw
        self.nudge_days = nudge_days
        self.live = live
        day = draw.decision_day(nudge_days)
        self.pending: Any = None if day is None else self._fact(day)

    def _fact(self, day: int) -> Any:
        return _reply(self.draw.moment(day),
                      self.draw.kind(sum(1 for k in self.nudge_days if k < day)))

    def react(self, action: Action, at: datetime, state: Any) -> list[Any] | None:
        if action.kind not in ("nudge", "offer_nudge"):
            return None
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
    for fact in facts[start + 1:]:
        if fact.name == "ReplyReceived" and fact.kind in ("advanced", "rejected"):
            continue  # the modelled decision
        if fact.name == "CompetingOfferNoted" and ctx.offer_day is None:
            ctx.offer_day = business_days_between(day, fact.at.astimezone(zone).date())
        if fact.name == "NudgeSent":
            own.append(business_days_between(day, fact.at.astimezone(zone).date()))
        kept.append(fact)
    # The last round as recorded, under the live policy's nudges (decided and by hand):
    # the employer's draws are conditioned on it (`EmployerDraw._condition`).
    recorded = rounds_of(history)
    observed = recorded[-1] if recorded and recorded[-1].ctx.round == number else None
    return _Prepared(history, kept, ctx, own, interview["interviewed_at"], observed)


class _Run:
    """The loop's tally for one (candidacy, policy, draw): what the outcomes need."""

    __slots__ = ("nudges", "round_nudges", "most", "thanked_at", "last")

    def __init__(self) -> None:
        self.nudges = 0
        self.round_nudges = 0
        self.most = 0
        self.thanked_at: datetime | None = None
        self.last: datetime | None = None

    def _nudge(self, offer: bool) -> None:
        self.nudges += 1
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
        elif name == "ThankYouSent" and self.thanked_at is None:
            self.thanked_at = fact.at

    def decision(self, action: Action, at: datetime, state: Any) -> None:
        self.last = at
        if action.kind in ("nudge", "offer_nudge"):
            self._nudge(action.kind == "offer_nudge")
        elif action.kind == "thank_you" and self.thanked_at is None:
            self.thanked_at = at

    def skipped(self, fact: Any) -> None:
        pass

    def refused(self, facts: Sequence[Any], index: int, end: int, state: Any) -> None:
        pass


@dataclass
class Records:
    """Per policy, per draw: one row per candidacy (the outcome arrays' columns)."""

    labels: list[str]
    draws: int
    rows: list[list[list[tuple[Any, ...]]]] = field(default_factory=list)
    events: int = 0
    candidacies: int = 0

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
       "pest_breaches", "same_day_thank_you")


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
            breach, same_day)


def _draw_models(model: ResponseModel, draws: int, seed: int) -> list[ResponseModel]:
    return [model.sampled(random.Random(f"{seed}:coefficients:{r}")) for r in range(draws)]


def model_partition(source: Any, partition: Any, policies: Sequence[ReplayPolicy],
                    model: ResponseModel, draws: int, seed: int, filters: Filters,
                    until: datetime | None) -> Records:
    """Every candidacy of one id range, under each policy, ``draws`` times."""
    models = _draw_models(model, draws, seed)
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
            for p, policy in enumerate(policies):
                live = list(prepared.facts)
                employer = _Employer(draw, list(prepared.own_nudges), live)
                if employer.pending is not None:
                    position = len(live)
                    while position > 1 and live[position - 1].at > employer.pending.at:
                        position -= 1
                    live.insert(position, employer.pending)
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
                 cluster: str | Any | None = None) -> Records:
    """Run every partition (here, in ``workers`` processes, or on the Dask cluster at
    ``cluster``: an address or a `distributed.Client`) and merge them in order."""
    views = [p if isinstance(p, ReplayPolicy) else ReplayPolicy(p) for p in policies]
    filters = filters or Filters()
    parts = source.partitions(max(workers, 2) * 4 if (workers > 1 or cluster) else 1)
    here = [(source, part, views, model, draws, seed, filters, until) for part in parts]
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
    total = Records([p.label for p in views], draws)
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
