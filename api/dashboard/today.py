"""`/dashboard/today`: what a recruiter does today.  Thank-yous due today or overdue
(with the local deadline), nudges (and stalls) due, replies to log, next steps tomorrow;
for each held item why it waits.  With a date range (``since``..``until``, the
candidacy's local days, both included; ``until`` defaults to today) it is the same for
those days: what is due in them (before ``since`` left out, so a range without one keeps
the overdue), replies to log for nudges sent in them, next steps scheduled in them.

Everything here is asked of the engine's one decision function (`engine.decisions.plan`,
`outstanding`, `held_until`), the same the scheduler and `GET /agenda` follow: this page
only sorts its answers into a recruiter's day and words them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.dashboard.filters import Filters, PageFilters
from api.dashboard.pages import PREFIX, read_models, render
from api.dashboard.session import SignedIn
from engine.application import Candidacies
from engine.candidacy import Candidacy
from engine.decisions import Action, held_until, outstanding, plan
from engine.errors import CandidacyNotFound, CorruptHistory
from engine.lifecycle import Stage
from engine.policy import CadencePolicy

router = APIRouter(prefix=PREFIX, include_in_schema=False)

_PAGE = 200
_NUDGES = ("nudge", "offer_nudge", "stall")
_BEFORE_NEXT_STEP = (Stage.INTERVIEWED, Stage.HESITATIONS_ADDRESSED)
# A closed candidacy plans nothing and holds nothing (`plan` and `outstanding` answer
# [] for it): the day reads the open stages' rows only, through the (workspace, stage,
# id) index, not the whole workspace (100,000 candidacies, most closed: Today 14 s ->
# see docs/performance.md, "Dashboard (issue 16)").
_OPEN = tuple(s for s in Stage if s not in (Stage.ADVANCED, Stage.STALLED))
_WAITING = (Stage.AWAITING, Stage.NUDGED)  # for the employer, where nudges come from


@dataclass
class Item:
    """One line of the day: a candidacy and the step it needs."""

    candidacy_id: str
    candidate: str
    company: str
    role: str
    stage: str
    kind: str
    due_at: datetime | None = None
    due_local: str = ""
    deadline_local: str = ""
    overdue: bool = False
    rule: str = ""
    waits: str | None = None
    note: str = ""
    due_now: bool = False  # due, and nothing holds it: the next tick (or you) sends it


@dataclass
class Day:
    thank_yous: list[Item] = field(default_factory=list)
    nudges: list[Item] = field(default_factory=list)
    replies: list[Item] = field(default_factory=list)
    tomorrow: list[Item] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.thank_yous) + len(self.nudges) + len(self.replies) + len(self.tomorrow)


def local(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment as the candidacy's place reads it: ``Tue 1 Dec 23:59 (Europe/London)``."""
    if moment is None:
        return ""
    at = moment.astimezone(zone)
    return f"{at:%a} {at.day} {at:%b %H:%M} ({zone.key})"


def _in_quiet_hours(now: datetime, zone: ZoneInfo, policy: CadencePolicy) -> bool:
    quiet = policy.quiet_hours
    at = now.astimezone(zone).time()
    if quiet.start < quiet.end:
        return quiet.start <= at < quiet.end
    return at >= quiet.start or at < quiet.end


def paused_now(candidacy: Candidacy, now: datetime) -> dict[str, Any] | None:
    """The candidacy's pause if it holds at ``now`` (a dated one may have ended unseen)."""
    paused = candidacy.paused
    if paused is None or (paused.get("ends_at") is not None and paused["ends_at"] <= now):
        return None
    return paused


def why_waiting(action: Action, candidacy: Candidacy, policy: CadencePolicy,
                now: datetime) -> str | None:
    """Why ``action`` is not carried out now, in a sentence (None: it goes at the next
    tick): a pause, patience, quiet hours or the send window, as `plan` and
    `held_until` decide them."""
    zone = ZoneInfo(candidacy.timezone)
    paused = paused_now(candidacy, now)
    if paused is not None:
        until = paused.get("until")
        reason = paused.get("reason") or "paused"
        return (f"paused until {until:%a %-d %b %Y} ({reason})" if until
                else f"paused until resumed ({reason})")
    moment = action.due_at if action.due_at > now else held_until(action, candidacy, policy,
                                                                 now)
    if moment <= now:
        return None
    rule = action.rule
    # Due later, on a later day, by a rule of patience or spacing: that rule holds it (a
    # moment later the same day may be the send window's doing: `plan` moves a due moment
    # into it, so the two read alike there).
    if action.due_at > now and rule.startswith(("patience", "follow_up", "nudge.spacing")) \
            and moment.astimezone(zone).date() > now.astimezone(zone).date():
        return f"patience until {local(moment, zone)} ({rule})"
    if _in_quiet_hours(now, zone, policy):
        return f"quiet hours until {local(moment, zone)}"
    return f"outside the send window until {local(moment, zone)}"


def _item(candidacy: Candidacy, row: Any, kind: str, **fields: Any) -> Item:
    return Item(candidacy_id=row.id, candidate=row.candidate, company=row.company,
                role=row.role, stage=candidacy.stage, kind=kind, **fields)


def day_of(candidacies: Candidacies, candidacy: Candidacy, row: Any, now: datetime,
           day: Day, since: date | None = None, until: date | None = None) -> None:
    """Sort what ``candidacy`` needs into ``day`` (today; or the local days ``since`` ..
    ``until``, both included, ``until`` defaulting to today: see the module)."""
    policy = candidacies.policies.of(candidacy)
    zone = ZoneInfo(candidacy.timezone)
    today = now.astimezone(zone).date()
    ranged = since is not None or until is not None
    end_of_today = datetime.combine((until or today) + timedelta(days=1), time(0), zone)
    start = datetime.combine(since, time(0), zone) if since is not None else None

    def in_range(moment: datetime | None) -> bool:
        return moment is None or start is None or moment >= start
    actions = [*outstanding(candidacy, policy), *plan(candidacy, policy)]
    deadline = next((a.due_at for a in actions if a.kind == "thank_you_overdue"), None)
    thank_you = next((a for a in actions if a.kind == "thank_you"), None)
    if thank_you is not None or deadline is not None:
        due = thank_you.due_at if thank_you else deadline
        latest = max((m for m in (due, deadline) if m is not None), default=None)
        if ((due is not None and due < end_of_today) or (deadline and deadline < end_of_today)) \
                and in_range(latest):
            waits = why_waiting(thank_you, candidacy, policy, now) if thank_you else None
            pending = candidacy.pending_thank_you
            if thank_you is None and candidacy.stage in _BEFORE_NEXT_STEP:
                waits = "waits for the next step to be closed"
            elif thank_you is None and pending is not None:
                waits = ("every channel failed: " + pending["failed"]) if pending.get("failed") \
                    else "decided: waiting for approval or delivery (see Messages)"
            day.thank_yous.append(_item(
                candidacy, row, "thank_you", due_at=due, due_local=local(due, zone),
                deadline_local=local(deadline, zone),
                overdue=deadline is not None and deadline < now,
                rule=thank_you.rule if thank_you else "thank_you.deadline", waits=waits,
                note=thank_you.note if thank_you else "",
                due_now=thank_you is not None and waits is None and thank_you.due_at <= now))
    for action in actions:
        if action.kind in _NUDGES and not in_range(action.due_at):
            continue
        if action.kind in _NUDGES and action.due_at < end_of_today:
            waits = why_waiting(action, candidacy, policy, now)
            day.nudges.append(_item(
                candidacy, row, action.kind, due_at=action.due_at,
                due_local=local(action.due_at, zone), rule=action.rule, waits=waits,
                note=action.note, due_now=waits is None and action.due_at <= now))
        elif action.kind in _NUDGES and paused_now(candidacy, now) is not None:
            day.nudges.append(_item(
                candidacy, row, action.kind, due_at=action.due_at,
                due_local=local(action.due_at, zone), rule=action.rule,
                waits=why_waiting(action, candidacy, policy, now), note=action.note))
    paused = paused_now(candidacy, now)
    if paused is not None and paused.get("ends_at") is None and candidacy.stage in _WAITING \
            and not any(a.kind in _NUDGES for a in actions):
        # An open-ended pause holds the next nudge out of `plan` altogether: say so.
        day.nudges.append(_item(candidacy, row, "nudge", rule="pause",
                                waits=f"paused until resumed ({paused.get('reason')})"))
    if candidacy.stage == Stage.NUDGED:
        last = candidacy.nudges[-1]["sent_at"] if candidacy.nudges else None
        # A range keeps the replies to the nudges sent in it.
        if not ranged or (last is not None and in_range(last) and last < end_of_today):
            day.replies.append(_item(candidacy, row, "reply", due_at=last,
                                     due_local=local(last, zone),
                                     note="nudged: log the employer's reply when it comes"))
    step = candidacy.next_step
    if step and step.get("scheduled_for") is not None:
        at = step["scheduled_for"]
        on = at.astimezone(zone).date()
        if (on == today + timedelta(days=1)) if not ranged else \
                (max(since or today, today) <= on <= (until or today)):
            day.tomorrow.append(_item(candidacy, row, "next_step", due_at=at,
                                      due_local=local(at, zone), note=step["description"]))


def _rows(candidacies: Candidacies, workspace: str, stage: Stage) -> Iterator[Any]:
    """The workspace's rows in ``stage``, a page at a time (the ``(workspace, stage, id)``
    index read in order)."""
    cursor: str | None = None
    while True:
        rows = candidacies.rows(workspace, stage=stage.value, after=cursor, limit=_PAGE)
        yield from rows
        if len(rows) < _PAGE:
            return
        cursor = rows[-1].id


def the_day(candidacies: Candidacies, filters: Filters, keep: set[str] | None) -> Day:
    """What the day holds for the candidacies the filters keep (``keep``: the ids the
    recruiter filter keeps, None: any)."""
    now = candidacies.clock.now()
    day = Day()
    for stage in _OPEN:
        for row in _rows(candidacies, filters.workspace, stage):
            if not filters.keeps(row, keep):
                continue
            try:
                candidacy = candidacies.get(row.id, filters.workspace)
                day_of(candidacies, candidacy, row, now, day, filters.since, filters.until)
            except CandidacyNotFound:  # pragma: no cover - a row always has its candidacy
                continue
            except CorruptHistory:
                day.unreadable.append(row.id)
    for items in (day.thank_yous, day.nudges, day.replies, day.tomorrow):
        items.sort(key=lambda i: (not i.overdue, i.due_at or now, i.candidacy_id))
    return day


@router.get("/today", name="dashboard_today")
def today_page(request: Request, viewer: SignedIn, filters: PageFilters) -> Response:
    day = the_day(request.app.state.candidacies, filters,
                  filters.recruiter_ids(read_models(request)))
    return render(request, viewer, "today.html", page="dashboard_today", filters=filters,
                  day=day)


@router.get("/today/items", name="dashboard_today_items")
def today_items(request: Request, viewer: SignedIn, filters: PageFilters) -> Response:
    """The day's lists alone, for the page's live refresh (htmx)."""
    day = the_day(request.app.state.candidacies, filters,
                  filters.recruiter_ids(read_models(request)))
    return render(request, viewer, "today_items.html", filters=filters, day=day)
