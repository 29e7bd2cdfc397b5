"""`/policies`: the published cadence policy versions, how many of the workspace's
candidacies run under each, what changed between two versions, and migrations of many
candidacies to a version (one `PolicyMigrated` each, through the application's own
`migrate_policy`; one candidacy is `POST /candidacies/{id}/policy`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.dependencies import Reader, Store, Writer
from api.problems import ProblemError, problem_responses
from api.routes.candidacies import PolicyVersionRef
from engine.application import Candidacies
from engine.errors import InvalidInput
from engine.lifecycle import Stage
from engine.migration import MigrationFilter, MigrationReport, migrate
from engine.policy import CadencePolicy, diff_policies, policy_to_toml
from engine.policy_book import PolicyRef, parse_ref
from engine.values import Actor, Name, Text

router = APIRouter(prefix="/policies", tags=["policies"])

PolicyName = Annotated[str, Path(description="a published policy's name",
                                 pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
PolicyVersion = Annotated[int, Path(description="its version", ge=1, le=999_999_999)]
CandidacyIdText = Annotated[str, Field(min_length=1, max_length=64)]
_IDENTITY = frozenset({"name", "version", "description"})


# -- responses --------------------------------------------------------------------------------


class PolicySummary(BaseModel):
    """One published version."""

    policy: str = Field(description="`NAME@VERSION`")
    name: str
    version: int
    description: str
    fingerprint: str = Field(description="a hash of its canonical TOML")
    pinned: int | None = Field(description="how many of the workspace's candidacies run "
                                           "under it (as far as the read model has followed "
                                           "the log; null on a store without read models)")


class PolicyList(BaseModel):
    items: list[PolicySummary]
    starting: str = Field(description="the version the workspace's new candidacies start "
                                      "on when their interview names none")


class StartingPolicy(BaseModel):
    """The version the workspace's new candidacies start on."""

    starting: str
    changed: bool = Field(description="false when it already was")


class PolicyDetail(PolicySummary):
    """One published version in full."""

    toml: str = Field(description="the version as a policy file")
    rules: dict[str, Any] = Field(description="every section and field, as in the file")


class PolicyChange(BaseModel):
    """One field whose value differs."""

    field: str = Field(description="dotted path, e.g. `nudge.spacing_business_days`")
    before: Any = Field(description="its value in `against`")
    after: Any = Field(description="its value in `policy`")


class PolicyDiff(BaseModel):
    """What `policy` changes against `against`, field by field (identity apart)."""

    policy: str
    against: str
    changes: list[PolicyChange]


class MigrationFailure(BaseModel):
    candidacy_id: str
    problem: str = Field(description="the problem type's name, e.g. `illegal-command`")
    detail: str


class MigrationResult(BaseModel):
    """What the migration did (or would do, `dry_run`): counts, then the ids."""

    target: str
    dry_run: bool
    selected: int
    moved: int
    unchanged: int = Field(description="already on the target: left alone")
    failed: int
    moved_ids: list[str]
    unchanged_ids: list[str]
    failures: list[MigrationFailure]


# -- request ----------------------------------------------------------------------------------


class MigrationCriteria(BaseModel):
    """Candidacies of the workspace matching every criterion given.  Stalled ones
    (their follow-up is over) only with `stage: stalled`, and then each is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Stage | None = None
    company: Name | None = Field(default=None, description="exactly this company")
    recruiter: Name | None = Field(default=None, description="who recorded the interview "
                                                             "(as the read model knows it)")
    current: PolicyVersionRef | None = Field(default=None,
                                             description="on this version now, `NAME@VERSION`")


class StartMigration(BaseModel):
    """Exactly one of `candidacy_ids`, `filter` or `all: true`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidacy_ids: list[CandidacyIdText] | None = Field(default=None, min_length=1,
                                                        max_length=1000)
    filter: MigrationCriteria | None = None
    all: bool = Field(default=False, description="every open candidacy of the workspace")
    reason: Text | None = Field(default=None, description="why (recorded on each event)")
    dry_run: bool = Field(default=False, description="say what would move; record nothing")
    on_behalf_of: Name | None = Field(default=None,
                                      description="who the acting user acts for")


# -- helpers ----------------------------------------------------------------------------------


def published(candidacies: Candidacies, name: str, version: int) -> CadencePolicy:
    """The published version, or 404 naming it."""
    try:
        return candidacies.policies.get(name, version)
    except InvalidInput as error:
        raise ProblemError("not-found", error.reason) from None


def pins_view(request: Request) -> Any:
    """The policies read model's view on this app's store (None: a store without read
    models, the in-memory one), made once per app."""
    state = request.app.state
    if not hasattr(state, "policy_pins"):
        from api.read_models import read_models

        state.policy_pins = None
        if hasattr(state.candidacies.recorder, "datastore"):  # SQLite and PostgreSQL
            state.policy_pins = read_models(state.candidacies, ["policies"])[0].view
    return state.policy_pins


def pinned(request: Request, workspace: str) -> dict[tuple[str, int], int] | None:
    from api.read_models import pinned_counts

    view = pins_view(request)
    return None if view is None else pinned_counts(view, workspace=workspace)


def summary(policy: CadencePolicy, counts: dict[tuple[str, int], int] | None) -> dict[str, Any]:
    return {"policy": f"{policy.name}@{policy.version}", "name": policy.name,
            "version": policy.version, "description": policy.description,
            "fingerprint": policy.fingerprint(),
            "pinned": None if counts is None else counts.get((policy.name, policy.version), 0)}


def changes(older: CadencePolicy, newer: CadencePolicy) -> list[PolicyChange]:
    """Rule changes from ``older`` to ``newer`` (name, version and description apart)."""
    return [PolicyChange(field=c.field, before=c.old, after=c.new)
            for c in diff_policies(older, newer) if c.field not in _IDENTITY]


class SideBySideRow(BaseModel):
    """One field across several versions; ``differs`` when they do not all agree."""

    field: str
    values: list[Any]
    differs: bool


def side_by_side(policies: list[CadencePolicy]) -> list[SideBySideRow]:
    """Every rule of ``policies`` in field order, one value per policy (identity apart):
    the rows a page shows side by side, those that differ marked."""
    from engine.policy import rule_fields

    columns = [rule_fields(p) for p in policies]
    fields = list(columns[0]) if columns else []
    return [SideBySideRow(field=name, values=[c.get(name) for c in columns],
                          differs=len({repr(c.get(name)) for c in columns}) > 1)
            for name in fields if name not in _IDENTITY]


def migration_filter(request: Request, workspace: str, body: StartMigration) -> MigrationFilter:
    """The body's one selection as a `MigrationFilter`; 422 unless exactly one is given."""
    given = [name for name, on in (("candidacy_ids", body.candidacy_ids is not None),
                                   ("filter", body.filter is not None), ("all", body.all)) if on]
    if len(given) != 1:
        reason = ("give exactly one of candidacy_ids, filter or all: true"
                  + (f" (got {', '.join(given)})" if given else ""))
        raise InvalidInput(given[-1] if given else "candidacy_ids", reason)
    if body.candidacy_ids is not None:
        return MigrationFilter(ids=frozenset(body.candidacy_ids))
    criteria = body.filter or MigrationCriteria()
    among = None
    if criteria.recruiter is not None:
        from api.read_models import pinned_ids

        view = pins_view(request)
        if view is None:
            raise InvalidInput("filter.recruiter", "this store keeps no read models: filter "
                                                   "by stage, company or current version")
        among = frozenset(pinned_ids(view, workspace=workspace, recruiter=criteria.recruiter))
    return MigrationFilter(
        stage=criteria.stage.value if criteria.stage else None, company=criteria.company,
        current=parse_ref(criteria.current, "filter.current") if criteria.current else None,
        among=among)


def report_body(report: MigrationReport) -> MigrationResult:
    return MigrationResult.model_validate(report.as_dict())


def start_migration(request: Request, candidacies: Candidacies, actor: Actor,
                    target: PolicyRef, body: StartMigration) -> MigrationReport:
    """The one migration path of the API and the dashboard's form."""
    published(candidacies, target.name, target.version)
    chosen = migration_filter(request, actor.workspace, body)
    return migrate(candidacies, actor, target, chosen, reason=body.reason,
                   dry_run=body.dry_run)


def starting(candidacies: Candidacies, workspace: str) -> PolicyRef:
    """The version ``workspace``'s new candidacies start on."""
    chosen = candidacies.policies.starting(workspace)
    if chosen is not None:
        return chosen
    return PolicyRef(candidacies.default_policy["name"], candidacies.default_policy["version"])


def choose_starting(candidacies: Candidacies, principal: Any, target: PolicyRef) -> bool:
    """The one path of the API and the dashboard's form: 404 for an unpublished version."""
    published(candidacies, target.name, target.version)
    return candidacies.policies.choose_starting(principal.workspace, target, principal.user,
                                                candidacies.clock.now())


# -- routes -----------------------------------------------------------------------------------


@router.get("", operation_id="listPolicies", responses=problem_responses(401, 422))
def list_policies(request: Request, candidacies: Store, principal: Reader) -> PolicyList:
    """Every published policy version, with how many of the workspace's candidacies run
    under each."""
    counts = pinned(request, principal.workspace)
    items = [summary(candidacies.policies.get(*ref), counts)
             for ref in candidacies.policies.published()]
    return PolicyList.model_validate({"items": items,
                                      "starting": str(starting(candidacies, principal.workspace))})


@router.get("/{name}/{version}", operation_id="getPolicy",
            responses=problem_responses(401, 404, 422))
def get_policy(name: PolicyName, version: PolicyVersion, request: Request,
               candidacies: Store, principal: Reader) -> PolicyDetail:
    """One published version: every rule, its TOML, and how many candidacies it holds."""
    policy = published(candidacies, name, version)
    return PolicyDetail.model_validate({
        **summary(policy, pinned(request, principal.workspace)),
        "toml": policy_to_toml(policy), "rules": policy.model_dump(mode="json")})


@router.get("/{name}/{version}/diff", operation_id="diffPolicies",
            responses=problem_responses(401, 404, 422))
def diff_policy(
    name: PolicyName, version: PolicyVersion, candidacies: Store, principal: Reader,
    against: Annotated[PolicyVersionRef, Query(
        description="the version to compare with, `NAME@VERSION` (e.g. `playbook@1`)")],
) -> PolicyDiff:
    """What this version changes against another, field by field."""
    policy = published(candidacies, name, version)
    base_ref = parse_ref(against, "against")
    base = published(candidacies, base_ref.name, base_ref.version)
    return PolicyDiff(policy=f"{name}@{version}", against=str(base_ref),
                      changes=changes(base, policy))


@router.post("/{name}/{version}/migrations", operation_id="migrateCandidacies",
             responses=problem_responses(400, 401, 403, 404, 422))
async def migrate_candidacies(name: PolicyName, version: PolicyVersion, body: StartMigration,
                              request: Request, candidacies: Store,
                              principal: Writer) -> MigrationResult:
    """Move candidacies (by id, by a filter, or all open ones) to this version, each
    with its own `PolicyMigrated`: one refused does not stop the others, and the answer
    counts them and says why each failure failed.  Those already on it are left alone,
    so repeating a migration records nothing new.  `dry_run` records nothing."""
    actor = Actor(user=principal.user, workspace=principal.workspace,
                  on_behalf_of=body.on_behalf_of)
    report = await run_in_threadpool(start_migration, request, candidacies, actor,
                                     PolicyRef(name, version), body)
    return report_body(report)


@router.post("/{name}/{version}/starting", operation_id="startNewCandidaciesOn",
             responses=problem_responses(401, 403, 404, 422))
async def start_new_candidacies_on(name: PolicyName, version: PolicyVersion,
                                   candidacies: Store, principal: Writer) -> StartingPolicy:
    """From now on the workspace's new candidacies start on this version when their
    interview names none; open candidacies keep theirs (move them with a migration)."""
    target = PolicyRef(name, version)
    changed = await run_in_threadpool(choose_starting, candidacies, principal, target)
    return StartingPolicy(starting=str(target), changed=changed)
