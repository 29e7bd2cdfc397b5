"""`/dashboard/policies`: the published cadence policy versions side by side (every rule,
the differing ones marked), how many of the workspace's candidacies run under each, the
version new candidacies start on, and a form to move candidacies (one, a filter, or all)
to another version.

Its forms go through the very functions of the HTTP API (`api.routes.policies`:
`choose_starting`, `start_migration`, hence `engine.migration.migrate` and the
application's `migrate_policy`), so the guards, the per-candidacy events and the report are
the same; the dashboard's `Acting` checks the CSRF token, the origin and the role first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from adapters.message import plain_error
from api.dashboard.filters import PageFilters
from api.dashboard.pages import PREFIX, flash, render
from api.dashboard.session import Acting, FormData, PageError, SignedIn, Viewer
from api.problems import ProblemError
from api.routes.policies import (
    StartMigration,
    choose_starting,
    pins_view,
    side_by_side,
    start_migration,
    starting,
)
from engine.errors import CloserError
from engine.lifecycle import TRANSITIONS
from engine.migration import MigrationReport
from engine.policy_book import PolicyRef, parse_ref
from engine.values import Actor

router = APIRouter(prefix=PREFIX, include_in_schema=False)

COMPARED = 4
"""At most this many versions side by side (a phone shows them one under another)."""


def _versions(request: Request, viewer: Viewer, recruiter: str | None,
              company: str | None) -> list[dict[str, Any]]:
    """Every published version with its pinned count under the page's filters."""
    from api.read_models import pinned_counts

    candidacies = request.app.state.candidacies
    view = pins_view(request)
    counts = None if view is None else pinned_counts(
        view, workspace=viewer.workspace, recruiter=recruiter, company=company)
    begins = starting(candidacies, viewer.workspace)
    versions = []
    for ref in candidacies.policies.published():
        policy = candidacies.policies.get(*ref)
        versions.append({"ref": str(ref), "policy": policy, "starting": ref == begins,
                         "pinned": None if counts is None else counts.get(tuple(ref), 0)})
    return versions


def _compared(versions: list[dict[str, Any]], chosen: list[str]) -> list[dict[str, Any]]:
    """The versions named in ``chosen`` (else the latest ones), at most `COMPARED`."""
    by_ref = {v["ref"]: v for v in versions}
    unknown = [ref for ref in chosen if ref not in by_ref]
    if unknown:
        raise PageError(404, f"No published policy version {unknown[0]}.")
    picked = [by_ref[ref] for ref in dict.fromkeys(chosen)] or versions[-COMPARED:]
    return picked[:COMPARED]


def _page(request: Request, viewer: Viewer, filters: Any, show: list[str], *,
          only_differences: bool = False, report: MigrationReport | None = None,
          error: str | None = None, status: int = 200, form: FormData | None = None
          ) -> Response:
    versions = _versions(request, viewer, filters.recruiter, filters.company)
    compared = _compared(versions, show)
    rows = side_by_side([v["policy"] for v in compared])
    if only_differences:
        rows = [row for row in rows if row.differs]
    return render(request, viewer, "policies.html", page="dashboard_policies",
                  status=status, filters=filters, versions=versions, compared=compared,
                  rows=rows, only_differences=only_differences, report=report, error=error,
                  stages=TRANSITIONS.stages, form=form or FormData([]),
                  shown=[v["ref"] for v in compared],
                  read_models=pins_view(request) is not None,
                  extra_filters={})


@router.get("/policies", name="dashboard_policies")
def policies(request: Request, viewer: SignedIn, filters: PageFilters,
             show: list[str] = Query(default=[], max_length=COMPARED),  # noqa: B008
             differences: bool = False) -> Response:
    """The page: `show=NAME@VERSION` (repeated) picks the versions side by side,
    `differences=true` keeps only the rules that differ."""
    return _page(request, viewer, filters, show, only_differences=differences)


@router.post("/policies/starting", name="dashboard_policies_starting")
def choose_starting_version(request: Request, acting: Acting) -> Response:
    """The version new candidacies of the workspace start on (the API's own path)."""
    viewer, form = acting
    try:
        target = parse_ref(form.get("policy", ""), "policy")
        changed = choose_starting(request.app.state.candidacies, viewer.principal, target)
    except CloserError as error:
        raise PageError(422, str(error)) from None
    except ProblemError as error:
        raise PageError(404, error.detail or "No such policy version.") from None
    response = RedirectResponse(f"{PREFIX}/policies", status_code=303)
    flash(response, f"New candidacies now start on {target}." if changed
          else f"New candidacies already started on {target}.")
    return response


def migration_body(form: FormData) -> StartMigration:
    """The form's fields as the API's body: one of ``scope`` = one | filter | all."""
    scope = form.get("scope", "")
    body: dict[str, Any] = {"reason": form.text("reason"),
                            "dry_run": form.get("dry_run") == "on"}
    if scope == "one":
        body["candidacy_ids"] = [form.text("candidacy_id") or ""]
    elif scope == "filter":
        body["filter"] = {name: form.text(name)
                          for name in ("stage", "company", "recruiter", "current")}
    elif scope == "all":
        body["all"] = True
    else:
        raise PageError(422, "Say which candidacies to move: one, those matching a filter, "
                             "or all.")
    return StartMigration.model_validate(body)


@router.post("/policies/migrations", name="dashboard_policies_migrate")
def migrate_candidacies(request: Request, acting: Acting, filters: PageFilters) -> Response:
    """Move candidacies to the chosen version (or say what would move): the report is
    shown on the page, with each failure and why."""
    viewer, form = acting
    candidacies = request.app.state.candidacies
    try:
        target = parse_ref(form.get("to", ""), "to")
        body = migration_body(form)
        actor = Actor(user=viewer.principal.user, workspace=viewer.workspace)
        report = start_migration(request, candidacies, actor, PolicyRef(*target), body)
    except ValidationError as error:
        return _page(request, viewer, filters, [], error=plain_error(error), status=422,
                     form=form)
    except CloserError as error:
        return _page(request, viewer, filters, [], error=str(error), status=422, form=form)
    except ProblemError as error:
        return _page(request, viewer, filters, [], error=error.detail or "Not found.",
                     status=404, form=form)
    return _page(request, viewer, filters, [], report=report, form=form)
