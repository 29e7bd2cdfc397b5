"""The scheduler: applies what each candidacy's policy says is due.

`tick(now)` finds the candidacies with something due from their current rows
(an index on ``due_at``; no aggregate is loaded unless it is due) and asks the
application to record the due actions.  Running it twice for one moment records
nothing the second time.  `run_forever` is the loop `closer serve` and
`closer scheduler` run.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import structlog

from engine.application import Candidacies, PolicyRun
from engine.audit import verify_chains

log = structlog.get_logger("closer.scheduler")


@dataclass
class TickReport:
    """What one tick did."""

    now: datetime
    candidacies: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    corrupt: int = 0
    """Due candidacies passed over because their history cannot be read."""
    skipped_broken: int = 0
    """Due candidacies passed over because their stored chain is broken (docs/audit.md)."""

    @property
    def recorded(self) -> int:
        return sum(self.actions.values())


def tick(app: Candidacies, now: datetime | None = None, *, page: int = 200) -> TickReport:
    """Apply every due action at ``now`` (the application's clock when omitted)."""
    now = now or app.clock.now()
    report = TickReport(now=now)
    due = list(app.due_ids(now))
    report.candidacies = len(due)
    # One transaction per page; a candidacy someone else changed meanwhile is left for
    # the next tick, which decides again.
    for start in range(0, len(due), page):
        chunk = due[start:start + page]
        batch = _unbroken(app, chunk)
        report.skipped_broken += len(chunk) - len(batch)
        if batch:
            _count(report, app.apply_policies(batch, now))
    return report


def _unbroken(app: Candidacies, candidacy_ids: list[str]) -> list[str]:
    """The candidacies of a page whose stored chain is intact, the page's chains read in
    one query; each broken one is logged with its first finding and left out: a decision
    on altered events is not recorded on top of them."""
    if getattr(app.recorder, "select_chains_checked", None) is None:
        return candidacy_ids  # a recorder without the audit's chains has nothing to check
    uids = [UUID(str(cid)) for cid in candidacy_ids]
    findings = verify_chains(app.recorder, uids)
    intact = []
    for cid, uid in zip(candidacy_ids, uids, strict=True):
        if findings[uid]:
            log.warning("chain broken: not decided", candidacy_id=str(cid),
                        finding=findings[uid][0].line())
        else:
            intact.append(cid)
    return intact


def _count(report: TickReport, run: PolicyRun) -> None:
    report.conflicts += len(run.conflicts)
    report.corrupt += len(run.corrupt)
    for candidacy_id, applied in run.applied.items():
        for action in applied:
            report.actions[action.kind] += 1
            log.info("policy action", candidacy_id=candidacy_id, action=action.kind,
                     rule=action.rule, due_at=action.due_at.isoformat())


def run_forever(app: Candidacies, interval_seconds: float, stop: threading.Event,
                on_pass: Callable[[], object] | None = None) -> None:
    """Tick every ``interval_seconds`` until ``stop`` is set; ``on_pass`` is called after
    each tick that completed (a supervisor's heartbeat)."""
    while not stop.is_set():
        report = tick(app)
        if report.recorded or report.conflicts or report.corrupt or report.skipped_broken:
            log.info("tick", candidacies=report.candidacies, recorded=report.recorded,
                     conflicts=report.conflicts, corrupt=report.corrupt,
                     skipped_broken=report.skipped_broken)
        if on_pass is not None:
            on_pass()
        stop.wait(interval_seconds)
