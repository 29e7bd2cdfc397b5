"""Moving candidacies from one published policy version to another, many at a time.

A migration of many is a batch of the application's own per-candidacy command
(`Candidacies.migrate_policy`, one `PolicyMigrated` each): every candidacy is decided
and saved on its own, so one that is refused (stalled, changed meanwhile, unreadable)
does not stop the others, and the report says how many moved and why each other did
not.  Candidacies already on the target are left alone, so running the same migration
twice moves nothing the second time.  A dry run selects and checks the same way and
records nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from engine.audit import first_break
from engine.errors import (
    CandidacyNotFound,
    CloserError,
    CorruptHistory,
    IllegalCommand,
    InvalidInput,
    VersionConflict,
)
from engine.lifecycle import TRANSITIONS, Stage
from engine.policy_book import PolicyRef
from engine.store import CandidacyRow
from engine.values import Actor

PAGE = 500
RETRIES = 5
"""A candidacy changed by another writer meanwhile is migrated again on its new state."""


@dataclass(frozen=True, slots=True)
class MigrationFilter:
    """Which candidacies of the actor's workspace to move: those that match every
    criterion given (``ids``: only these).  Stalled candidacies (their follow-up is over)
    are selected only by id or by ``stage="stalled"``, and then refused one by one."""

    stage: str | None = None
    company: str | None = None
    current: PolicyRef | None = None  # the version they are on now
    ids: frozenset[str] | None = None
    among: frozenset[str] | None = None
    """A criterion as a set of ids (a recruiter's candidacies, say): unlike ``ids``, those
    it names that are not there or do not match are simply not selected."""

    def matches(self, row: CandidacyRow) -> bool:
        if self.stage is not None and row.stage != self.stage:
            return False
        if self.stage is None and self.ids is None and row.stage == Stage.STALLED.value:
            return False  # its follow-up is over: moved only when asked for by id or stage
        if self.company is not None and row.company != self.company:
            return False
        if self.ids is not None and row.id not in self.ids:
            return False
        if self.among is not None and row.id not in self.among:
            return False
        return self.current is None or _ref(row) == self.current


@dataclass(frozen=True, slots=True)
class Failure:
    """A candidacy the migration could not move, and why (an error's kind and message)."""

    candidacy_id: str
    problem: str
    detail: str


@dataclass
class MigrationReport:
    """What a migration did (or, in a dry run, would do), candidacy ids by outcome."""

    target: PolicyRef
    dry_run: bool
    moved: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already on the target
    failed: list[Failure] = field(default_factory=list)

    @property
    def selected(self) -> int:
        return len(self.moved) + len(self.unchanged) + len(self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {"target": str(self.target), "dry_run": self.dry_run,
                "selected": self.selected, "moved": len(self.moved),
                "unchanged": len(self.unchanged), "failed": len(self.failed),
                "moved_ids": list(self.moved), "unchanged_ids": list(self.unchanged),
                "failures": [{"candidacy_id": f.candidacy_id, "problem": f.problem,
                              "detail": f.detail} for f in self.failed]}


def select(app: Any, workspace: str, chosen: MigrationFilter) -> Iterator[CandidacyRow]:
    """The workspace's candidacy rows that ``chosen`` matches, in id order."""
    if chosen.stage is not None and chosen.stage not in TRANSITIONS.stages:
        raise InvalidInput("stage", f"{chosen.stage!r} is not a stage (the stages: "
                                    f"{', '.join(TRANSITIONS.stages)})")
    after = None
    while True:
        page = app.rows(workspace, stage=chosen.stage, after=after, limit=PAGE)
        yield from (row for row in page if chosen.matches(row))
        if len(page) < PAGE:
            return
        after = page[-1].id


def migrate(app: Any, actor: Actor, target: PolicyRef, chosen: MigrationFilter, *,
            reason: str | None = None, dry_run: bool = False) -> MigrationReport:
    """Move every candidacy ``chosen`` selects in ``actor``'s workspace to ``target``
    (unknown ``ids`` are reported as failures, not silently skipped)."""
    app.policies.get(target.name, target.version)  # refuse an unpublished target first
    report = MigrationReport(target=target, dry_run=dry_run)
    seen: set[str] = set()
    for row in select(app, actor.workspace, chosen):
        seen.add(row.id)
        _one(app, actor, row, target, reason, dry_run, report)
    for missing in sorted((chosen.ids or frozenset()) - seen):
        # Not there, another workspace's, or not matching the other criteria: named.
        found = app.row(missing) if _is_uuid(missing) else None
        if found is None or found.workspace != actor.workspace:
            report.failed.append(Failure(missing, "not-found", str(CandidacyNotFound(missing))))
    return report


def _one(app: Any, actor: Actor, row: CandidacyRow, target: PolicyRef, reason: str | None,
         dry_run: bool, report: MigrationReport) -> None:
    if _ref(row) == target:
        report.unchanged.append(row.id)
        return
    broken = first_break(app.recorder, UUID(row.id))
    if broken is not None:
        # Not moved on top of altered events, as a single command would not be (docs/audit.md).
        report.failed.append(Failure(row.id, "chain-broken", (
            f"not migrated: its stored history is not what was recorded ({broken.line()}); "
            "an admin runs `closer audit verify` and restores it")))
        return
    for attempt in range(RETRIES):
        try:
            if dry_run:
                # The aggregate's own checks, on a copy read for the purpose and dropped.
                candidacy = app.get(row.id, actor.workspace)
                candidacy.migrate_policy(actor, app.clock.now(), policy=target.as_dict(),
                                         reason=reason)
            else:
                app.migrate_policy(actor, row.id, target.name, target.version, reason=reason)
        except VersionConflict as error:
            if attempt + 1 < RETRIES:
                continue
            report.failed.append(Failure(row.id, "concurrent-modification", str(error)))
        except CloserError as error:
            report.failed.append(Failure(row.id, _PROBLEMS.get(type(error), "invalid-input"),
                                         str(error)))
        else:
            report.moved.append(row.id)
        return


_PROBLEMS: dict[type[CloserError], str] = {
    IllegalCommand: "illegal-command", CorruptHistory: "corrupt-history",
    CandidacyNotFound: "not-found", InvalidInput: "invalid-input"}
"""Each refusal as the HTTP API's problem type names it."""


def _ref(row: CandidacyRow) -> PolicyRef | None:
    policy = (row.summary or {}).get("policy") or {}
    if "name" not in policy:
        return None
    return PolicyRef(str(policy["name"]), int(policy["version"]))


def ids_filter(ids: Iterable[str]) -> MigrationFilter:
    """A filter of exactly these candidacies."""
    return MigrationFilter(ids=frozenset(str(i) for i in ids))


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
