"""The employer's response model: a discrete-time hazard of the employer's decision.

One row per candidacy round and business day since its interview ("person-day"), at risk
until the employer decides (advance or rejection), the candidacy ends another way, or the
history's observation ends.  The daily probability that the employer decides is

    h(d) = expit(x(d) . beta)

with ``x(d)`` the covariates of `FEATURES` as they stand at the start of day ``d``: days
since the interview, the stated timeline (before / inside / after), nudges so far and how
recent the last one is (``nudge_recent`` = exp(-(days since it - 1) / DECAY_DAYS): 1 the
day after a nudge, fading), a competing offer noted, the round, the country.  A decision
is an advance with probability ``expit(a0 + a1 * nudges so far)``.

The employer's updates ("still interviewing") have their own hazard on the same rows,
``expit([x(d), log(d)^2, updates so far] . gamma)``: the daily probability of an update while the
employer has not decided, a recurrent event (the round stays at risk after one).  It is
fitted beside the decision's and drawn from its own stream (`UpdateDraw`), so drawing
updates never changes a decision's draw.

The same model is the simulator's ground truth (`engine.simulation.generate` with
``employer=``) and what `fit` learns from a store, so a test can check that fitting
recovers what simulated the store (tests/test_counterfactual.py).

Fitted with statsmodels' logistic GLM (docs/replay.md says why); statsmodels and numpy are
imported by `fit` only, so the simulator and replay do not load them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.errors import CloserError

FEATURES: tuple[str, ...] = ("intercept", "log_day", "timeline_inside", "timeline_after",
                             "nudges", "nudge_recent", "offer", "round", "country")
"""The hazard's covariates, in coefficient order."""

UPDATE_FEATURES: tuple[str, ...] = (*FEATURES, "log_day_sq", "updates")
"""The update hazard's covariates: the decision's, log(day) squared (an update's hazard
rises then falls: with log(day) alone, the nudge terms, which step with the days, stood
in for the shape, and the simulator's nudge-blind updates showed a nudge effect whose
interval excluded 0 on 2,000 candidacies) and the updates so far in the round."""

ADVANCE_FEATURES: tuple[str, ...] = ("intercept", "nudges")
"""The covariates of the share of decisions that are advances."""

DECAY_DAYS = 3.0
"""How fast a nudge's effect fades (business days): an assumption of the model's shape,
the same for the simulator's truth and the fit (only the effect's size is estimated)."""

HORIZON_DAYS = 60
"""Business days after which an employer that has not decided never does (silence)."""

MIN_CANDIDACIES = 200
"""Fewer candidacies than this and `fit` refuses: the intervals would say nothing."""
MIN_DECISIONS = 50
"""Fewer employer decisions (advances and rejections) than this and `fit` refuses."""
MIN_UPDATES = 20
"""Fewer days with an update than this and `fit` fits no update hazard (the decision's
still): the model then cannot draw updates (`ResponseModel.update` is None)."""
SEPARATED_SE = 10.0
"""An update coefficient whose standard error exceeds this (log-odds) is separated."""

_WORK_START = time(9)
_MINUTES = 8 * 60
"""A drawn decision arrives in the 8 working hours from 09:00 local, to the minute."""


class ModelRefused(CloserError):
    """The store holds too little to fit a model worth using."""


# -- calendar --------------------------------------------------------------------------------


def business_days_between(start: date, day: date) -> int:
    """Weekdays in (start, day]: 1 on the first weekday after the interview's date."""
    if day <= start:
        return 0
    whole, extra = divmod((day - start).days, 7)
    count = whole * 5
    weekday = start.weekday()
    for k in range(1, extra + 1):
        if (weekday + k) % 7 < 5:
            count += 1
    return count


def business_day(start: date, n: int) -> date:
    """The ``n``-th weekday after ``start`` (n >= 1)."""
    weeks, n = divmod(n - 1, 5)
    day = start + timedelta(weeks=weeks)
    n += 1
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


# -- the model -------------------------------------------------------------------------------


def expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


TRUE_DEFAULTS: dict[str, float] = {
    "intercept": -3.3, "log_day": 0.25, "timeline_inside": 0.3, "timeline_after": 0.5,
    "nudges": 0.0, "nudge_recent": 0.0, "offer": 0.4, "round": 0.0, "country": -1.0}
"""The simulator's default employer: about one decision in 20 business days, a stated
timeline's end hastening it, a competing offer too, slower in slow-hiring countries."""

TRUE_UPDATE_DEFAULTS: dict[str, float] = {
    "intercept": -6.3, "log_day": 3.3, "log_day_sq": -0.97, "timeline_inside": 0.0,
    "timeline_after": 0.0, "nudges": 0.0, "nudge_recent": 0.0, "offer": 0.0, "round": 0.0,
    "country": -0.8, "updates": -2.0}
"""The simulator's update hazard when it draws updates from a model (``--update-nudge-
effect``): about what `fit` finds of its nudge-blind updates (a peak of about 3% a day
around the fifth business day, a second update rare)."""


@dataclass
class ResponseModel:
    """Coefficients (by feature name) and, when fitted, their covariance and fit report."""

    coefficients: dict[str, float]
    advance: dict[str, float] = field(
        default_factory=lambda: {"intercept": logit(0.35), "nudges": 0.0})
    decay_days: float = DECAY_DAYS
    horizon_days: int = HORIZON_DAYS
    covariance: list[list[float]] | None = None  # over `FEATURES` then `ADVANCE_FEATURES`
    report: dict[str, Any] | None = None
    update: dict[str, float] | None = None  # the update hazard's (`UPDATE_FEATURES`)
    update_covariance: list[list[float]] | None = None  # over `UPDATE_FEATURES`

    @classmethod
    def truth(cls, nudge_effect: float = 0.0, update_nudge_effect: float | None = None,
              **changes: float) -> ResponseModel:
        """The simulator's employer with this log-odds effect of a fresh nudge on its
        decision; with ``update_nudge_effect``, its updates drawn from
        `TRUE_UPDATE_DEFAULTS` with that effect of a fresh nudge (without: the
        simulator's own nudge-blind updates, as before)."""
        coefficients = {**TRUE_DEFAULTS, "nudge_recent": nudge_effect, **changes}
        update = (None if update_nudge_effect is None
                  else {**TRUE_UPDATE_DEFAULTS, "nudge_recent": update_nudge_effect})
        return cls(coefficients, update=update)

    def vector(self) -> list[float]:
        return ([self.coefficients.get(n, 0.0) for n in FEATURES]
                + [self.advance.get(n, 0.0) for n in ADVANCE_FEATURES])

    def with_vector(self, values: Sequence[float]) -> ResponseModel:
        k = len(FEATURES)
        return ResponseModel(dict(zip(FEATURES, values[:k], strict=True)),
                             dict(zip(ADVANCE_FEATURES, values[k:], strict=True)),
                             self.decay_days, self.horizon_days, update=self.update,
                             update_covariance=self.update_covariance)

    def sampled(self, rng: random.Random) -> ResponseModel:
        """Coefficients drawn from the fit's normal approximation (parameter uncertainty);
        the model itself when it has no covariance (a known truth)."""
        if self.covariance is None:
            return self
        import numpy as np

        mean = np.array(self.vector())
        cov = np.array(self.covariance)
        generator = np.random.default_rng(rng.getrandbits(64))
        return self.with_vector(list(generator.multivariate_normal(mean, cov,
                                                                   method="eigh")))

    def sampled_update(self, rng: random.Random) -> dict[str, float] | None:
        """The update hazard's coefficients drawn from its fit's normal approximation
        (its own stream: the decision's draw does not depend on it); the point
        estimate without a covariance; None without an update hazard."""
        if self.update is None or self.update_covariance is None:
            return self.update
        import numpy as np

        mean = np.array([self.update.get(n, 0.0) for n in UPDATE_FEATURES])
        generator = np.random.default_rng(rng.getrandbits(64))
        values = generator.multivariate_normal(mean, np.array(self.update_covariance),
                                               method="eigh")
        return dict(zip(UPDATE_FEATURES, (float(v) for v in values), strict=True))

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "closer.response_model", "version": 2,
                "features": list(FEATURES), "coefficients": self.coefficients,
                "advance": self.advance, "decay_days": self.decay_days,
                "horizon_days": self.horizon_days, "covariance": self.covariance,
                "update": self.update, "update_covariance": self.update_covariance,
                "report": self.report}

    @classmethod
    def from_dict(cls, data: Any) -> ResponseModel:
        """A model file; one written before updates were modelled (version 1) loads
        without an update hazard (``update`` None: drawing updates refuses it)."""
        from engine.errors import InvalidInput

        if not isinstance(data, dict) or data.get("kind") != "closer.response_model":
            raise InvalidInput("--model", "not a response model written by `closer model fit`")
        update = data.get("update")
        return cls(dict(data["coefficients"]), dict(data["advance"]),
                   float(data["decay_days"]), int(data["horizon_days"]),
                   data.get("covariance"), data.get("report"),
                   None if update is None else dict(update), data.get("update_covariance"))


# -- one round's employer ----------------------------------------------------------------------


@dataclass
class RoundContext:
    """What the model reads about a round, fixed whatever the policy does."""

    interview_day: date           # the interview's local date
    zone: ZoneInfo
    timeline: dict[str, Any] | None
    round: int                    # 1 for the first interview
    country: float                # log(country's mean days / 25)
    offer_day: int | None = None  # business day a competing offer was noted


def country_value(code: str | None) -> float:
    from engine.simulation import MEAN_DAYS

    mean = MEAN_DAYS.get(code or "")
    return math.log(mean / 25.0) if mean else 0.0


def features(ctx: RoundContext, day: int, nudge_days: Sequence[int]) -> list[float]:
    """x(day): nudges counted are those sent on business days before ``day``."""
    before = [k for k in nudge_days if k < day]
    timeline = ctx.timeline
    inside = after = 0.0
    if timeline:
        low, high = timeline["min_weeks"] * 5, timeline["max_weeks"] * 5
        after = 1.0 if day > high else 0.0
        inside = 1.0 if low < day <= high else 0.0
    recent = math.exp(-(day - max(before) - 1) / DECAY_DAYS) if before else 0.0
    offer = 1.0 if ctx.offer_day is not None and ctx.offer_day < day else 0.0
    return [1.0, math.log(day), inside, after, float(len(before)), recent, offer,
            float(ctx.round - 1), ctx.country]


_LOG_DAYS = [0.0] + [math.log(day) for day in range(1, 1001)]


class EmployerDraw:
    """One draw of one round's employer: a uniform per business day (its own seeded
    stream, so every policy meets the same employer) and the model.  The employer decides
    on the first day ``d`` whose uniform falls under ``h(d)``, given the nudges sent."""

    __slots__ = ("ctx", "model", "thresholds", "kind_u", "minute", "base", "b_nudges",
                 "b_recent", "decay")

    def __init__(self, ctx: RoundContext, model: ResponseModel, rng: random.Random,
                 given: RoundRecord | None = None) -> None:
        self.ctx = ctx
        self.model = model
        horizon = model.horizon_days
        draw = rng.random
        uniforms = [draw() for _ in range(horizon)]
        self.kind_u = rng.random()
        self.minute = rng.randrange(0, _MINUTES)  # within the working day
        b = model.coefficients
        self.b_nudges = b.get("nudges", 0.0)
        self.b_recent = b.get("nudge_recent", 0.0)
        self.decay = model.decay_days
        # The linear predictor without the nudge terms, per day (they alone change):
        # `features` spelled out, as it is built once per candidacy and draw.
        constant = (b.get("intercept", 0.0) + b.get("round", 0.0) * (ctx.round - 1)
                    + b.get("country", 0.0) * ctx.country)
        b_log, b_offer = b.get("log_day", 0.0), b.get("offer", 0.0)
        b_inside, b_after = b.get("timeline_inside", 0.0), b.get("timeline_after", 0.0)
        low = high = horizon + 1
        if ctx.timeline:
            low, high = ctx.timeline["min_weeks"] * 5, ctx.timeline["max_weeks"] * 5
        offer = ctx.offer_day if ctx.offer_day is not None else horizon + 1
        logs = _LOG_DAYS
        self.base = [constant + b_log * logs[day]
                     + (b_after if day > high else b_inside if day > low else 0.0)
                     + (b_offer if offer < day else 0.0)
                     for day in range(1, horizon + 1)]
        if given is not None:
            self._condition(uniforms, given, rng)
        # logit(u), spelled out (u == 0.0 can happen: it decides whatever the hazard;
        # u == 1.0 after conditioning: it never decides that day).
        log = math.log
        self.thresholds = [log(u / (1.0 - u)) if 0.0 < u < 1.0
                           else -math.inf if u <= 0.0 else math.inf for u in uniforms]

    def eta(self, day: int, nudge_days: Sequence[int]) -> float:
        """The linear predictor on ``day`` given these nudge days (`decision_day`'s)."""
        before = [k for k in nudge_days if k < day]
        eta = self.base[day - 1]
        if before:
            eta += self.b_nudges * len(before) + self.b_recent * math.exp(
                -(day - max(before) - 1) / self.decay)
        return eta

    def _condition(self, uniforms: list[float], given: RoundRecord,
                   rng: random.Random) -> None:
        """Abduction: the uniforms drawn again given what the record shows of this
        employer under the live policy's nudges (``given``: the round as `rounds_of`
        read it).  No decision on the days before the round's recorded end; on a
        recorded decision's day, a decision, at its recorded minute, of its recorded
        kind; on the day a stall, withdrawal or the history's end censored it, no
        decision before that moment.  Each uniform is drawn from its distribution given
        those constraints (inverse CDF on the same uniform), so under the live policy's
        own nudges the draw decides exactly as recorded, and under another policy's it
        differs only where those nudges change the hazard.  Days after the recorded end
        stay free."""
        horizon = self.model.horizon_days
        nudges = given.nudge_days
        end = given.end_day
        for day in range(1, min(end, horizon + 1)):
            p = expit(self.eta(day, nudges))  # decided that day iff u < p
            uniforms[day - 1] = p + (1.0 - p) * uniforms[day - 1]
        if end < 1 or end > horizon:
            return
        p = expit(self.eta(end, nudges))
        if given.decided:
            uniforms[end - 1] = p * uniforms[end - 1]
            if given.end_at is not None:
                self.minute = min(max(self._minute_of(given.end_at), 0), _MINUTES - 1)
            n = sum(1 for k in nudges if k < end)
            a = self.model.advance
            share = expit(a.get("intercept", 0.0) + a.get("nudges", 0.0) * n)
            self.kind_u = (share * self.kind_u if given.kind == "advanced"
                           else share + (1.0 - share) * self.kind_u)
            return
        # Censored on day `end` at `end_at`: no decision at a minute up to that moment.
        if given.end_at is None or self.day_of(given.end_at) > end:
            excluded = _MINUTES  # censored after that day (past the horizon)
        else:
            excluded = min(max(self._minute_of(given.end_at) + 1, 0), _MINUTES)
        q = excluded / _MINUTES
        decides = p * (1.0 - q) / (1.0 - p * q) if p * q < 1.0 else 0.0
        u = uniforms[end - 1]
        if u < decides:  # it decides that day, after the censoring moment
            uniforms[end - 1] = p * u / decides
            self.minute = excluded + int(rng.random() * (_MINUTES - excluded))
        else:  # it does not decide that day; the minute stays free
            uniforms[end - 1] = p + (1.0 - p) * (u - decides) / (1.0 - decides)

    def _minute_of(self, moment: datetime) -> int:
        """Minutes after the working day's start (09:00 local) of ``moment``."""
        local = moment.astimezone(self.ctx.zone)
        return (local.hour - _WORK_START.hour) * 60 + local.minute - _WORK_START.minute

    def decision_day(self, nudge_days: Sequence[int], after: int = 0) -> int | None:
        """The first business day > ``after`` the employer decides on (None: never)."""
        nudges = sorted(nudge_days)
        b_nudges, b_recent, decay = self.b_nudges, self.b_recent, self.decay
        j = 0
        count = 0
        last = None
        for day in range(after + 1, self.model.horizon_days + 1):
            while j < len(nudges) and nudges[j] < day:
                count += 1
                last = nudges[j]
                j += 1
            eta = self.base[day - 1]
            if last is not None:
                eta += b_nudges * count + b_recent * math.exp(-(day - last - 1) / decay)
            # u < expit(eta)  <=>  logit(u) < eta
            if self.thresholds[day - 1] < eta:
                return day
        return None

    def kind(self, nudges: int) -> str:
        a = self.model.advance
        p = expit(a.get("intercept", 0.0) + a.get("nudges", 0.0) * nudges)
        return "advanced" if self.kind_u < p else "rejected"

    def moment(self, day: int) -> datetime:
        """When on business day ``day`` the decision arrives (a working moment)."""
        local = datetime.combine(business_day(self.ctx.interview_day, day), _WORK_START,
                                 self.ctx.zone) + timedelta(minutes=self.minute)
        from datetime import UTC

        return local.astimezone(UTC)

    def day_of(self, moment: datetime) -> int:
        return business_days_between(self.ctx.interview_day,
                                     moment.astimezone(self.ctx.zone).date())


class UpdateDraw:
    """One draw of one round's updates ("still interviewing"): a uniform and a minute per
    business day from a stream of its own (never the decision's), and the update hazard
    ``coefficients``.  The employer sends an update on day ``d`` when that day's uniform
    falls under the update hazard given the nudges sent before ``d``; the caller keeps
    only the days before the employer decides."""

    __slots__ = ("ctx", "horizon", "thresholds", "minutes", "base", "b_nudges", "b_recent",
                 "b_updates", "decay")

    def __init__(self, ctx: RoundContext, coefficients: dict[str, float], horizon: int,
                 decay: float, rng: random.Random, given: RoundRecord | None = None) -> None:
        self.ctx = ctx
        self.horizon = horizon
        self.decay = decay
        uniforms = [rng.random() for _ in range(horizon)]
        self.minutes = [rng.randrange(0, _MINUTES) for _ in range(horizon)]
        b = coefficients
        self.b_nudges = b.get("nudges", 0.0)
        self.b_recent = b.get("nudge_recent", 0.0)
        self.b_updates = b.get("updates", 0.0)
        self.base = self._base(ctx, b, horizon)
        if given is not None:
            # Given the record (as `EmployerDraw._condition`): on the round's recorded
            # days (its end day included), an update where one was recorded and none
            # where none was, under the recorded nudges; later days stay free.
            recorded = set(given.update_days)
            for day in range(1, min(given.end_day, horizon) + 1):
                p = expit(self.eta(day, given.nudge_days,
                                   sum(1 for k in recorded if k < day)))
                u = uniforms[day - 1]
                uniforms[day - 1] = p * u if day in recorded else p + (1.0 - p) * u
        log = math.log
        self.thresholds = [log(u / (1.0 - u)) if 0.0 < u < 1.0
                           else -math.inf if u <= 0.0 else math.inf for u in uniforms]

    @staticmethod
    def _base(ctx: RoundContext, b: dict[str, float], horizon: int) -> list[float]:
        """The linear predictor without the nudge and update terms, per day: `features`
        spelled out (built once per candidacy and draw), its terms summed in its order
        (the same roundings, so the same draws).  Speed: through `features` it took 40%
        of the drawn-updates replay's CPU (benchmarks/replay_bench.py --model-mode)."""
        b_one, b_log, b_sq = b.get("intercept", 0.0), b.get("log_day", 0.0), b.get(
            "log_day_sq", 0.0)
        b_inside, b_after = b.get("timeline_inside", 0.0), b.get("timeline_after", 0.0)
        b_offer = b.get("offer", 0.0)
        rounds = b.get("round", 0.0) * float(ctx.round - 1)
        country = b.get("country", 0.0) * ctx.country
        low = high = horizon + 1
        if ctx.timeline:
            low, high = ctx.timeline["min_weeks"] * 5, ctx.timeline["max_weeks"] * 5
        offer = ctx.offer_day if ctx.offer_day is not None else horizon + 1
        logs = _LOG_DAYS
        return [b_one + b_log * logs[day]
                + (b_inside if low < day <= high else 0.0)
                + (b_after if day > high else 0.0)
                + (b_offer if offer < day else 0.0)
                + rounds + country + b_sq * logs[day] ** 2
                for day in range(1, horizon + 1)]

    def eta(self, day: int, nudge_days: Sequence[int], updates: int) -> float:
        """The linear predictor on ``day`` given the nudge days and the updates before."""
        before = [k for k in nudge_days if k < day]
        eta = self.base[day - 1] + self.b_updates * updates
        if before:
            eta += self.b_nudges * len(before) + self.b_recent * math.exp(
                -(day - max(before) - 1) / self.decay)
        return eta

    def days(self, nudge_days: Sequence[int], after: int = 0, earlier: int = 0,
             through: int | None = None) -> list[int]:
        """The business days > ``after`` with an update, given these nudges and
        ``earlier`` updates on the days up to ``after``; with ``through``, only the days
        up to it (the caller keeps none after it: later days do not change earlier ones)."""
        last = self.horizon if through is None else min(through, self.horizon)
        out: list[int] = []
        for day in range(after + 1, last + 1):
            if self.thresholds[day - 1] < self.eta(day, nudge_days, earlier + len(out)):
                out.append(day)
        return out

    def moment(self, day: int) -> datetime:
        """When on business day ``day`` a drawn update arrives (a working moment)."""
        from datetime import UTC

        local = datetime.combine(business_day(self.ctx.interview_day, day), _WORK_START,
                                 self.ctx.zone) + timedelta(minutes=self.minutes[day - 1])
        return local.astimezone(UTC)

    def day_of(self, moment: datetime) -> int:
        return business_days_between(self.ctx.interview_day,
                                     moment.astimezone(self.ctx.zone).date())


# -- person-day rows from recorded histories ---------------------------------------------------


@dataclass
class RoundRecord:
    """One recorded round as the fit reads it."""

    ctx: RoundContext
    nudge_days: list[int]
    end_day: int           # the last business day at risk
    decided: bool          # the employer decided on end_day
    kind: str | None       # advanced / rejected
    end_at: datetime | None = None  # the moment it ended (decision, stall, withdrawal...)
    update_days: list[int] = field(default_factory=list)  # business days with an update


_NOT_NUDGES = ("stall.", "thank_you.", "reminder.")


def rounds_of(history: Any) -> list[RoundRecord]:
    """A history (`engine.replay.History` read with ``keep_decisions=True``) cut into its
    rounds: covariates, nudge days, and how each round ended."""
    facts = history.facts
    if not facts or facts[0].name != "InterviewRecorded":
        return []
    first = facts[0]
    zone = ZoneInfo(first.timezone)
    country = country_value(first.country)
    events: list[tuple[datetime, str, Any]] = [(f.at, f.name, f) for f in facts]
    for decision in history.decisions:
        rule = decision["decided_by"]["rule"]
        at = decision["timestamp"]  # decoded by the application's mapper: a datetime
        if rule.startswith("stall."):
            events.append((at, "Stalled", decision))
        elif not rule.startswith(_NOT_NUDGES):
            events.append((at, "NudgeDecided", decision))
    events.sort(key=lambda e: e[0])
    last_seen = events[-1][0]
    out: list[RoundRecord] = []
    current: dict[str, Any] | None = None

    def close(end: datetime, decided: bool, kind: str | None) -> None:
        nonlocal current
        if current is None:
            return
        ctx: RoundContext = current["ctx"]
        day = business_days_between(ctx.interview_day, end.astimezone(zone).date())
        if decided:
            day = max(day, 1)
        day = min(day, HORIZON_DAYS)
        if day >= 1:
            out.append(RoundRecord(ctx, current["nudges"], day, decided and day >= 1, kind,
                                   end, sorted({d for d in current["updates"] if d >= 1})))
        current = None

    number = 0
    for at, name, item in events:
        if name in ("InterviewRecorded", "RoundStarted"):
            close(at, False, None)
            number += 1
            interview = item.interview
            start = interview["interviewed_at"].astimezone(zone).date()
            current = {"ctx": RoundContext(start, zone, interview.get("timeline"), number,
                                           country), "nudges": [], "updates": []}
        elif current is None:
            continue
        elif name in ("NudgeSent", "NudgeDecided"):
            current["nudges"].append(business_days_between(
                current["ctx"].interview_day, at.astimezone(zone).date()))
        elif name == "CompetingOfferNoted" and current["ctx"].offer_day is None:
            current["ctx"].offer_day = business_days_between(
                current["ctx"].interview_day, at.astimezone(zone).date())
        elif name == "ReplyReceived" and item.kind in ("advanced", "rejected"):
            close(at, True, item.kind)
        elif name == "ReplyReceived" and item.kind == "update":
            current["updates"].append(business_days_between(
                current["ctx"].interview_day, at.astimezone(zone).date()))
        elif name in ("Stalled", "Withdrawn"):
            close(at, False, None)
    if current is not None:
        close(last_seen, False, None)
    return out


def person_days(records: Iterable[RoundRecord]) -> tuple[list[list[float]], list[int],
                                                         list[list[float]], list[int]]:
    """The hazard's design (rows, decided that day) and the advance share's (one row per
    decision, advanced or not)."""
    X: list[list[float]] = []
    y: list[int] = []
    A: list[list[float]] = []
    z: list[int] = []
    for record in records:
        for day in range(1, record.end_day + 1):
            X.append(features(record.ctx, day, record.nudge_days))
            y.append(1 if record.decided and day == record.end_day else 0)
        if record.decided:
            nudges = sum(1 for k in record.nudge_days if k < record.end_day)
            A.append([1.0, float(nudges)])
            z.append(1 if record.kind == "advanced" else 0)
    return X, y, A, z


def update_events(records: Iterable[RoundRecord]
                  ) -> tuple[list[int], list[float], list[bool]]:
    """The update hazard's outcome on `person_days`'s rows (1 on a day with an update),
    its extra covariate (the updates on earlier days of the round) and which rows are at
    risk of an update: not the day the employer decided (an update after the decision
    cannot come, so that day is only partly observed, and more often so where nudges
    hasten decisions: on 2,000 simulated candidacies with a true update nudge effect of
    1 it came out 0.61 [0.26, 0.96] with that day kept)."""
    y: list[int] = []
    so_far: list[float] = []
    at_risk: list[bool] = []
    for record in records:
        days = set(record.update_days)
        count = 0
        for day in range(1, record.end_day + 1):
            so_far.append(float(count))
            at_risk.append(not (record.decided and day == record.end_day))
            if day in days:
                y.append(1)
                count += 1
            else:
                y.append(0)
    return y, so_far, at_risk


# -- fitting -------------------------------------------------------------------------------------


def fit(histories: Iterable[Any]) -> ResponseModel:
    """Fit the model on recorded histories (read with ``keep_decisions=True``), with its
    report; `ModelRefused` when there is too little to learn from."""
    import numpy as np
    import statsmodels.api as sm  # type: ignore[import-untyped]

    candidacies = 0
    records: list[RoundRecord] = []
    for history in histories:
        found = rounds_of(history)
        if found:
            candidacies += 1
            records.extend(found)
    decisions = sum(1 for r in records if r.decided)
    if candidacies < MIN_CANDIDACIES or decisions < MIN_DECISIONS:
        raise ModelRefused(
            f"too little data to fit a response model: {candidacies} candidacies and "
            f"{decisions} employer decisions; the minimum is {MIN_CANDIDACIES} candidacies "
            f"and {MIN_DECISIONS} decisions")
    X, y, A, z = person_days(records)
    Xa, ya = np.asarray(X), np.asarray(y, dtype=float)
    # A covariate constant in the data (one round, no offers...) cannot be estimated.
    kept = [j for j in range(len(FEATURES))
            if j == 0 or float(Xa[:, j].std()) > 0.0]
    hazard = sm.GLM(ya, Xa[:, kept], family=sm.families.Binomial()).fit()
    Aa, za = np.asarray(A), np.asarray(z, dtype=float)
    kept_a = [j for j in range(len(ADVANCE_FEATURES)) if j == 0 or float(Aa[:, j].std()) > 0]
    share = sm.GLM(za, Aa[:, kept_a], family=sm.families.Binomial()).fit()

    k, ka = len(FEATURES), len(ADVANCE_FEATURES)
    coefficients = dict.fromkeys(FEATURES, 0.0)
    advance = dict.fromkeys(ADVANCE_FEATURES, 0.0)
    cov = np.zeros((k + ka, k + ka))
    hc = np.asarray(hazard.cov_params())
    for a, i in enumerate(kept):
        coefficients[FEATURES[i]] = float(hazard.params[a])
        for b, j in enumerate(kept):
            cov[i, j] = hc[a, b]
    sc = np.asarray(share.cov_params())
    for a, i in enumerate(kept_a):
        advance[ADVANCE_FEATURES[i]] = float(share.params[a])
        for b, j in enumerate(kept_a):
            cov[k + i, k + j] = sc[a, b]
    hci = np.asarray(hazard.conf_int(0.05))
    sci = np.asarray(share.conf_int(0.05))
    predicted = np.asarray(hazard.predict(Xa[:, kept]))
    yu, so_far, at_risk = update_events(records)
    rows = np.asarray(at_risk)
    update, update_cov, update_report = _fit_updates(
        Xa[rows], kept, np.asarray(yu, dtype=float)[rows], np.asarray(so_far)[rows])
    report = {
        "candidacies": candidacies, "rounds": len(records), "person_days": len(y),
        "decisions": decisions,
        "hazard": [{"feature": FEATURES[i], "coefficient": float(hazard.params[a]),
                    "low": float(hci[a, 0]), "high": float(hci[a, 1])}
                   for a, i in enumerate(kept)],
        "not_estimable": [FEATURES[i] for i in range(k) if i not in kept],
        "advance": [{"feature": ADVANCE_FEATURES[i], "coefficient": float(share.params[a]),
                     "low": float(sci[a, 0]), "high": float(sci[a, 1])}
                    for a, i in enumerate(kept_a)],
        "concordance": concordance(predicted, ya),
        "calibration": calibration(predicted, ya),
        **update_report,
    }
    return ResponseModel(coefficients, advance, covariance=cov.tolist(), report=report,
                         update=update, update_covariance=update_cov)


def _fit_updates(Xa: Any, kept: list[int], y: Any, so_far: Any
                 ) -> tuple[dict[str, float] | None, list[list[float]] | None, dict[str, Any]]:
    """The update hazard on the decision hazard's rows and estimable covariates (and the
    updates so far, when they vary): its coefficients, covariance (over
    `UPDATE_FEATURES`) and report entries; no hazard (None) with fewer than
    `MIN_UPDATES` days with an update."""
    import numpy as np
    import statsmodels.api as sm

    days = int(y.sum())
    if days < MIN_UPDATES:
        return None, None, {"update_days": days, "update_hazard": None,
                            "update_note": f"fewer than {MIN_UPDATES} days with an update: "
                                           "no update hazard fitted"}
    k = len(FEATURES)
    kept = [*kept, k, *([k + 1] if float(so_far.std()) > 0.0 else [])]
    X = np.column_stack([Xa, Xa[:, 1] ** 2, so_far])[:, kept]
    fitted = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    size = len(UPDATE_FEATURES)
    coefficients = dict.fromkeys(UPDATE_FEATURES, 0.0)
    cov = np.zeros((size, size))
    fc = np.asarray(fitted.cov_params())
    for a, i in enumerate(kept):
        coefficients[UPDATE_FEATURES[i]] = float(fitted.params[a])
        for b, j in enumerate(kept):
            cov[i, j] = fc[a, b]
    ci = np.asarray(fitted.conf_int(0.05))
    predicted = np.asarray(fitted.predict(X))
    # Separation (no update at all on such days, e.g. after a stated timeline's end):
    # the estimate runs off towards -inf with a huge standard error.  It keeps its
    # estimate (a hazard of about 0 there) and is drawn without uncertainty, which would
    # otherwise draw absurd hazards.
    separated = [i for i in kept if cov[i, i] > SEPARATED_SE ** 2]
    for i in separated:
        cov[i, :] = 0.0
        cov[:, i] = 0.0
    return coefficients, cov.tolist(), {
        "update_days": days,
        "update_hazard": [{"feature": UPDATE_FEATURES[i],
                           "coefficient": float(fitted.params[a]),
                           "low": float(ci[a, 0]), "high": float(ci[a, 1]),
                           **({"separated": True} if i in separated else {})}
                          for a, i in enumerate(kept)],
        "update_concordance": concordance(predicted, y),
        "update_calibration": calibration(predicted, y)}


def concordance(predicted: Any, observed: Any) -> float:
    """The share of (decided, not decided) person-day pairs the model orders rightly
    (ties count half): the c-statistic, from ranks."""
    from scipy.stats import rankdata  # type: ignore[import-untyped]

    ranks = rankdata(predicted)
    positives = observed == 1
    n1 = int(positives.sum())
    n0 = len(observed) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def calibration(predicted: Any, observed: Any) -> list[dict[str, float]]:
    """Observed vs mean predicted daily hazard by decile of the prediction."""
    import numpy as np

    order = np.argsort(predicted, kind="stable")
    out = []
    for k, chunk in enumerate(np.array_split(order, 10), start=1):
        if len(chunk):
            out.append({"decile": k, "rows": int(len(chunk)),
                        "predicted": float(predicted[chunk].mean()),
                        "observed": float(observed[chunk].mean())})
    return out


def reply_curves(model: ResponseModel, histories: Iterable[Any],
                 days: Sequence[int] = (5, 10, 15, 20, 30, 40, 60)) -> list[dict[str, float]]:
    """`closer model check`: the share of rounds decided by business day d, observed
    (Kaplan-Meier over the recorded rounds) and predicted (the model's survival on each
    round's recorded covariates, averaged)."""
    records = [r for h in histories for r in rounds_of(h)]
    at_risk = [0] * (HORIZON_DAYS + 2)
    events = [0] * (HORIZON_DAYS + 2)
    for r in records:
        for day in range(1, r.end_day + 1):
            at_risk[day] += 1
        if r.decided:
            events[r.end_day] += 1
    observed_survival = [1.0]
    for day in range(1, HORIZON_DAYS + 1):
        s = observed_survival[-1]
        observed_survival.append(s * (1 - events[day] / at_risk[day]) if at_risk[day] else s)
    # Predicted the same way: the model's hazard averaged over the rounds at risk that
    # day (with their recorded covariates), multiplied into a survival curve.
    b = model.vector()[:len(FEATURES)]
    hazard_sum = [0.0] * (HORIZON_DAYS + 2)
    for r in records:
        for day in range(1, r.end_day + 1):
            x = features(r.ctx, day, r.nudge_days)
            hazard_sum[day] += expit(sum(c * v for c, v in zip(b, x, strict=True)))
    predicted_survival = [1.0]
    for day in range(1, HORIZON_DAYS + 1):
        s = predicted_survival[-1]
        predicted_survival.append(s * (1 - hazard_sum[day] / at_risk[day]) if at_risk[day]
                                  else s)
    out: list[dict[str, float]] = [
        {"day": d, "observed": 1 - observed_survival[d],
         "predicted": 1 - predicted_survival[d], "at_risk": at_risk[d]} for d in days
        if d <= HORIZON_DAYS]
    if model.update is None:
        return out
    # Updates: the expected number per round still waiting by day d (the sum of the
    # daily rates, Nelson-Aalen style), observed and predicted on the same rounds.
    g = [model.update.get(n, 0.0) for n in UPDATE_FEATURES]
    observed_rate = [0.0] * (HORIZON_DAYS + 2)
    predicted_rate = [0.0] * (HORIZON_DAYS + 2)
    for r in records:
        updated = set(r.update_days)
        for day in range(1, r.end_day + (0 if r.decided else 1)):
            x = [*features(r.ctx, day, r.nudge_days), _LOG_DAYS[day] ** 2,
                 float(sum(1 for k in updated if k < day))]
            predicted_rate[day] += expit(sum(c * v for c, v in zip(g, x, strict=True)))
            observed_rate[day] += day in updated
    update_risk = [0] * (HORIZON_DAYS + 2)
    for r in records:
        for day in range(1, r.end_day + (0 if r.decided else 1)):
            update_risk[day] += 1
    cumulative_observed = cumulative_predicted = 0.0
    by_day: dict[int, tuple[float, float]] = {}
    for day in range(1, HORIZON_DAYS + 1):
        if update_risk[day]:
            cumulative_observed += observed_rate[day] / update_risk[day]
            cumulative_predicted += predicted_rate[day] / update_risk[day]
        by_day[day] = (cumulative_observed, cumulative_predicted)
    for row in out:
        row["updates_observed"], row["updates_predicted"] = by_day[int(row["day"])]
    return out
